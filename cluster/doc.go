// Package cluster spreads calibration over a fleet of CPU workers with NATS
// JetStream: the coordinator side is a pipeline.Engine (Engine) whose
// Predict runs on workers (Worker); an embedded NATS server (StartServer)
// makes one process enough.
//
//	srv, err := cluster.StartServer(ctx, cluster.ServerOptions{})   // 127.0.0.1, random port
//	defer srv.Shutdown()
//	nc, err := cluster.Connect(ctx, srv.ClientURL(), cluster.ConnOptions{})
//	defer nc.Close()
//
//	// coordinator
//	eng, err := cluster.NewEngine(nc, cluster.RunSpec{DataSource: cfg.Engine.DataSource,
//		Annotations: cfg.Engine.Annotations, BaseDir: cfg.Dir, Len: n}, cluster.EngineOptions{})
//	err = eng.SetModel(m)
//	res, err := eng.Predict(ctx, pipeline.PredictOptions{StatsLayout: layout, Sampler: sampler})
//
//	// each worker, in its own process (cmd/worker) or goroutine
//	w, err := cluster.NewWorker(nc, cluster.WorkerOptions{Concurrency: 2})
//	err = w.Run(ctx) // until ctx ends
//
// # The protocol
//
// SetModel marshals each stage (model.Marshal) and puts it in the Object
// Store ModelsBucket under the hex SHA-256 of its bytes, once. The first
// Predict of a run stores the RunSpec in the KeyValue bucket RunsBucket
// (with ShipData, the data files go to DataBucket first).
//
// Predict cuts the sampler's indices into shards of whole batches
// (sharding.Plan) and publishes one small JSON message per shard on the
// work-queue stream StreamName, subject "fleetcal.shard.<run>.<predict>":
// run, shard key, indices, model digests, statistics layout, batch size,
// the ONNX Runtime version expected and whether the metric needs outputs.
// Workers share the durable pull consumer ConsumerName (explicit ack,
// AckWait, MaxDeliver) and pull one message at a time with Fetch(1), so no
// message waits in a buffer while its ack timer runs. While a shard runs
// the worker sends InProgress every AckWait/3.
//
// A worker stores its result with KeyValue.Create under
// "<predict>.<shard key>" in ResultsBucket: the encoded partial reduce.Set
// (and the outputs, for a metric) inline, or in the Object Store
// PartialsBucket above 512 KiB, with their SHA-256. The first Create wins;
// a later delivery of the same shard gets ErrKeyExists, counts a duplicate
// and drops its result. The coordinator watches its keys, verifies and
// decodes each result and merges it with reduce.Set.Merge, which is exact:
// histograms and non-finite counts (integer sums) on arrival, per-sample
// values in shard order as soon as no earlier shard is pending, so it holds
// the merged statistics and the results that overtook a slower shard, never
// one partial per shard. The statistics are bit-identical to one process's,
// whatever the number of workers, the shard size and the order of arrival.
// With a metric, the coordinator calls Metric.Update in sample-index order.
//
// Failures are of two sorts. A failure any worker would repeat (the same
// model, layout and data are everywhere) is deterministic: ONNX Runtime
// refusing the model or the statistics model (engine.ErrBadModel: its type
// or shape check, an unknown operator or opset, an invalid graph), a model
// that does not decode, a statistic of a tensor that is missing or not
// float, a sample with a missing input, the wrong shape or dtype, NaN or
// Inf, a data file that does not decode or a data config that cannot be
// used (the list, by sentinel, is deterministicCauses). The worker stores
// it under the shard's key on the first delivery, with its kind and cause,
// and terminates the shard; the coordinator fails Predict at once with a
// *ShardError whose error matches ErrDeterministic and the worker's
// sentinel (engine.ErrBadInput, ...) and carries the message an in-process
// engine gives, which names the sample when one is at fault. It then
// publishes on the core subject "fleetcal.cancel.<predict>", so that
// workers stop the predict's shards they are running, and purges the
// shards still queued. Nothing is retried and no retry is logged.
//
// Every other failure may pass, or be one worker's own, and is retried: a
// worker killed or stalled mid-shard (the shard is redelivered after
// AckWait), NATS trouble, a data folder a worker cannot see, an ONNX
// Runtime session that fails for a reason other than the model
// (engine.ErrSession), an error running a shard's samples. The worker
// hands the shard back (NakWithDelay) until its last delivery, where it
// terminates it and stores the error; a shard whose workers die
// MaxDeliver times is reported by the server's max-deliveries advisory.
// Either way the coordinator splits the shard (sharding.Split) and
// publishes the halves; a single sample that keeps failing fails Predict
// with a *ShardError wrapping ErrDeadLetter and naming the sample.
// Failures splitting cannot cure (ErrSetup: the worker could not prepare
// the shard; ErrRefused: another ONNX Runtime version) fail Predict on the
// shard's last delivery, without splitting. Workers report progress on the
// core subject "fleetcal.event.<predict>"; when nothing progresses for
// EngineOptions.IdleTimeout, Predict fails with ErrNoWorker.
//
// A run ends with Engine.End, finished or interrupted: the coordinator
// publishes "run" on "fleetcal.cancel.<run>" (workers stop the run's
// shards, drop those still queued on delivery and release its sessions and
// downloads), purges the run's subjects from the work queue and deletes its
// spec from RunsBucket and its files from DataBucket. A worker that missed
// the message, or joins later, finds no spec for the shard's run and drops
// the shard without computing or reporting it. Object Store reads return as
// soon as their context ends.
//
// Metrics are registered on explicit registries: NewCoordinatorMetrics,
// NewWorkerMetrics, served by ServeMetrics.
//
// cluster is the only package that imports nats.go and nats-server. It
// must never be imported by reduce/, sharding/, engine/ or pipeline/.
package cluster
