package worker_test

import (
	"context"
	"errors"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/worker"
)

// A worker binary of the user's own: it registers the user's data source
// type and postprocess (as the coordinator does), then runs the worker
// command (--nats, credentials, --secret-file, ...).
func Example() {
	data.Register("my-source", func(ctx context.Context, cfg data.Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error) {
		return nil, errors.New("open " + cfg.Path + " the user's way")
	})
	pipeline.RegisterPostprocess("my-postprocess", func(out map[string]pipeline.Tensor, meta map[string]any) (map[string]pipeline.Tensor, error) {
		return out, nil
	})
	worker.Main(worker.Options{Name: "my-worker"})
}
