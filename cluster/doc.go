// Package cluster spreads calibration over a fleet of CPU workers with NATS
// JetStream: the coordinator side is a pipeline.Engine (Engine) whose
// Predict runs on workers (Worker); an embedded NATS server (StartServer)
// makes one process enough.
//
//	srv, err := cluster.StartServer(ctx, cluster.ServerOptions{})   // 127.0.0.1, random port
//	defer srv.Shutdown()
//	nc, err := cluster.Connect(ctx, srv.ClientURL(), srv.CoordinatorConn())
//	defer nc.Close()
//	secret := cluster.NewSecret() // or the one the workers hold
//
//	// coordinator
//	cfg, err := pipeline.LoadConfig(path) // data_source decoded, paths resolved
//	eng, err := cluster.NewEngine(nc, cluster.RunSpec{DataSource: cfg.Engine.DataSource,
//		Annotations: cfg.Engine.Annotations, Len: n}, cluster.EngineOptions{Secret: secret})
//	err = eng.SetModel(ctx, m)
//	res, err := eng.Predict(ctx, pipeline.PredictOptions{StatsLayout: layout, Sampler: sampler})
//
//	// each worker, in its own process (cmd/worker) or goroutine, with the worker role
//	wnc, err := cluster.Connect(ctx, srv.ClientURL(), srv.WorkerConn())
//	w, err := cluster.NewWorker(wnc, cluster.WorkerOptions{Concurrency: 2, Secret: secret})
//	err = w.Run(ctx) // until ctx ends
//
// # The protocol
//
// SetModel marshals each stage (model.Marshal) and puts it in the Object
// Store ModelsBucket under the hex SHA-256 of its bytes, once; its ctx
// cancels the upload (an interrupt during a large model's upload). The first
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
// A worker stores its result (sealed, see Trust) under "<predict>.<shard
// key>" (with "=<attempt>" for a shard redone) in ResultsBucket, with a
// publish that expects no earlier value on the key (a create that never
// reads the key): the encoded partial reduce.Set (and the outputs, for a
// metric) inline, or in the Object Store PartialsBucket above 512 KiB,
// with their SHA-256. The first create wins; a later delivery of the same
// shard finds the key taken, counts a duplicate and drops its result. The coordinator watches its keys, verifies and
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
// # User code on the fleet
//
// RunSpec.DataSource is a typed pipeline.DataSource; the run spec carries
// it as its registered type name and its JSON, and workers decode it
// through their own registry (pipeline.DecodeDataSourceType) and open the
// loader from it; with ShipData, the coordinator ships the files it lists
// (Files) and the workers read it rebased on their download folder
// (Rebase). Workers run RunSpec.Postprocess (pipeline.RegisterPostprocess)
// on each sample's outputs, and the registered statistics a layout names
// (pipeline.RegisterStatistic) on each sample's activations. So a user's
// data source, postprocess and statistics run on the fleet when every
// worker binary registers them: a user's main registers them and calls
// worker.Main (package worker), which imports package data for the
// built-in types (cluster itself does not import data). NewEngine checks,
// on the coordinator, that the data source decodes back through the
// registry, that the postprocess is registered and that the data and
// annotations files exist; Predict checks the layout's statistics before
// publishing a shard, and a worker binary without one of them hands the
// shard back (a setup failure, retried: another worker may have it), saying so. Annotations other than integers and strings
// travel as gob (a box []float32 as it is; a type of the user's own
// registered with gob.Register on both sides), so the metric receives the
// value the loader made, as with the in-process engine.
//
// # Trust
//
// Anyone who can reach the NATS server could write under a shard's result
// key, publish shards or change a run spec. Three layers keep a run to its
// coordinator and the workers it trusts:
//
// Authentication. The embedded server (StartServer) always requires
// credentials, wherever it listens. It has two roles. The coordinator's user
// (generated, Server.CoordinatorConn, never leaves the process) has every
// right. The worker role (ServerOptions.User/Password, generated when not
// given, and the public key of ServerOptions.NKeyFile) may only do what
// serving shards takes (workerPermissions): pull and acknowledge shards of
// the work queue, read run specs, models and shipped data, create result
// keys and large partials, publish progress events and hear cancellations.
// It may not publish shards, write run specs, models or data, watch results,
// cancel predicts, or create, change or delete streams and consumers, and
// it may not read results or partial statistics, of its run or another
// (only the metadata of the partials it writes, which an object put reads).
// The embedded server serves one coordinator,
// so "the runs a worker was given" are all of its runs; on an external
// server the operator grants the same subjects.
//
// The fleet secret. The coordinator and its workers share a secret S
// (EngineOptions.Secret, WorkerOptions.Secret; --secret-file or
// $FLEETCAL_SECRET; generated in memory and handed to local workers when the
// coordinator embeds the server). It never travels on the bus: the
// authenticated channel that delivers it is the one the operator uses to
// start workers (a file, an environment variable, or the command line the
// coordinator logs once with --listen). Each run derives its key
//
//	K_run = HMAC-SHA256(S, "fleetcal run key v1" 0x00 run id)
//
// (runKey), so a worker derives it from the run id alone and the key of one
// run says nothing of another's. Messages are sealed (seal): a 4-byte magic,
// then HMAC-SHA256(K_run, "fleetcal/<purpose>/v1" 0x00 context 0x00 body),
// then the JSON body, where the purpose is run, shard or result and the
// context the run id (run specs) or the result key
// "<predict>.<shard>[=<attempt>]" (shards and results). The predict id holds
// the run id and a random nonce of the coordinator, so a MAC binds a result
// to its run, its coordinator instance, its pass, its shard and its attempt:
// a result replayed from another run, another pass or another shard does not
// verify. Large partials in the Object Store are bound by the SHA-256 the
// sealed result carries. Shards carry keyID(K_run), a digest of the key: a
// worker holding another secret hands the shard back (and says why) instead
// of producing results nobody can check; a shard whose MAC does not verify
// is dropped.
//
// What the coordinator does with a result. A value under a result key that
// does not verify (forged, replayed, garbage, a forged error) is dropped,
// counted in fleetcal_coordinator_results_rejected_total
// {reason="unauthenticated"} and the shard redone: republished as a new
// attempt whose result key holds a random token, which nobody could have
// filled ahead. So is a result deleted before the coordinator read it
// (reason "deleted"), and one whose partial in the Object Store is missing
// or altered (the Object Store is not sealed). Nothing unauthenticated can
// end or bend a run; a client with the worker role but without the secret
// can only slow it by taking shards (as a stalled worker would). An
// authenticated result that cannot be used (statistics or outputs that do
// not decode, an inline payload that does not match its checksum) is dropped
// and the shard redone too (reason "bad_payload"), up to MaxDeliver times,
// then the run fails naming the shard and worker: only a holder of the
// secret can have made it.
//
// Same data everywhere. Without ShipData, workers read the data files at the
// coordinator's paths. The run spec lists every file the data source and
// annotations read (dataFiles: the data folder recursively, or the files
// beside a data file, and the annotations file) with its size and SHA-256
// (dataManifest). Per-file digests were chosen over per-sample ones: the
// coordinator would have to decode every sample (images, preprocessing) to
// hash samples, while hashing files is one sequential read, and a file is
// what differs between machines. A worker checks the list once per run
// before its first shard (verifyData): the file list and sizes first, which
// name a missing, extra or resized file without reading, then the SHA-256 of
// each file; a difference refuses the run (ErrDataMismatch, kind refused),
// and the run fails naming the file on the shard's last delivery. The cost,
// one read of the data set per worker (digestCache keeps the digests of
// files whose size, modification time and inode do not change, for the next
// runs), is skipped when every worker reads the coordinator's own files
// (RunSpec.SameHost: local workers of a server that does not listen) and
// with ShipData (downloads are verified by SHA-256).
//
// Limits. Progress events are hints and not sealed: a worker-role client can
// publish some for a predict, which only delays the idle timeout and
// misleads the log. A worker-role client without the secret can take shards
// and sit on them, as a stalled worker would (each comes back after
// AckWait). A worker holding the secret is trusted: it derives every run's
// key and its statistics are believed. digestCache trusts a file whose size,
// modification time and inode did not change.
//
// Metrics are registered on explicit registries: NewCoordinatorMetrics,
// NewWorkerMetrics, served by ServeMetrics.
//
// cluster is the only package that imports nats.go and nats-server. It
// must never be imported by reduce/, sharding/, engine/ or pipeline/.
package cluster
