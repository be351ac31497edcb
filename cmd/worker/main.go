// Command worker joins a fleetcal NATS JetStream cluster and serves
// calibration shards: it pulls one shard at a time per --concurrency slot,
// runs it with ONNX Runtime and stores its partial statistics. SIGTERM or
// SIGINT stops it gracefully: the shard in progress is handed back for
// immediate redelivery, and the folder where it downloads shipped data
// ($TMPDIR/fleetcal-downloads-*) is removed; a worker that starts removes
// the folders of killed workers. It drops the shards of runs that are
// gone (ended by their coordinator) without computing them.
//
//	FLEETCAL_SECRET=... worker --nats nats://coordinator:4222 --user fleet --password secret \
//	       --concurrency 2 --threads 2 --metrics-addr :9102
//
// The fleet secret (--secret-file or $FLEETCAL_SECRET) is the coordinator's:
// run specs, shards and results are authenticated with keys derived from it.
//
// It is package worker's Main with the built-in data sources only; a
// worker binary with the user's own loaders, postprocess functions and
// annotation types is a main of the same two lines that registers them
// first (see package worker). The logic lives in package cluster
// (cluster.WorkerConfig, cluster.RunWorker).
package main

import (
	"context"
	"io"

	"github.com/fleetcal/fleetcal/worker"
)

func main() { worker.Main(worker.Options{}) }

// run executes the command line and returns the exit code (for tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return worker.Run(ctx, args, stdout, stderr, worker.Options{})
}

// envSampleDelay is the test hook of package worker.
const envSampleDelay = worker.EnvTestSampleDelay
