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
// Failures: a failed shard is handed back (NakWithDelay) until its last
// delivery, where the worker terminates it and stores the error under the
// shard's key; a shard whose workers die MaxDeliver times is reported by
// the server's max-deliveries advisory. Either way the coordinator splits
// the shard (sharding.Split) and publishes the halves; a single sample that
// keeps failing fails Predict with a *ShardError naming the sample and the
// worker's error. Failures splitting cannot cure (the worker's data, the
// model or layout: ErrSetup; another ONNX Runtime version: ErrRefused) fail
// Predict on the shard's last delivery, without splitting. Workers
// report progress on the core subject "fleetcal.event.<predict>"; when
// nothing progresses for EngineOptions.IdleTimeout, Predict fails with
// ErrNoWorker.
//
// Metrics are registered on explicit registries: NewCoordinatorMetrics,
// NewWorkerMetrics, served by ServeMetrics.
//
// cluster is the only package that imports nats.go and nats-server. It
// must never be imported by reduce/, sharding/, engine/ or pipeline/.
package cluster
