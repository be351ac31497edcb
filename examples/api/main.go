// Command api is POT's API sample in Go: a custom DataLoader (box
// annotations), Metric and statistic, a postprocess, an engine (in process
// or a fleet), a pipeline with DefaultQuantization, Predict with a stats
// layout and per-sample metrics, and save_model, on examples/fashion-mnist.
//
//	go run ./examples/api -out /tmp/api            # ONNX Runtime in this process
//	go run ./examples/api -out /tmp/api -workers 2 # embedded NATS, 2 workers
//
// Fleet workers rebuild the loader, postprocess and statistic by their
// registered names (init); a worker binary of its own would call worker.Main.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/gob"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"

	_ "github.com/fleetcal/fleetcal/algorithms/all" // DefaultQuantization, ...
	"github.com/fleetcal/fleetcal/cluster"
	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
	"github.com/fleetcal/fleetcal/worker"
)

// Annotation is a sample's class and the box of its garment (x0, y0, x1, y1
// in [0, 1]): the kind of annotation a detection metric compares with.
type Annotation struct {
	Label int
	Box   []float32
}

func init() {
	data.Register("fashion-idx", openFashion)
	pipeline.RegisterPostprocess("argmax", argmax)
	gob.Register(Annotation{}) // annotations travel from workers to the metric
	// A custom statistic, POT's stats_layout {'node': {'active': fn}}: the
	// share of a sample's activations above 0 (kept per sample).
	pipeline.RegisterStatistic("active", pipeline.Statistic{Compute: func(t pipeline.Tensor) ([]float64, error) {
		x := t.Data.([]float32)
		n := len(x) - len(slices.DeleteFunc(slices.Clone(x), func(v float32) bool { return v > 0 }))
		return []float64{float64(n) / float64(len(x))}, nil
	}})
}

// fashionLoader is the DataLoader: IDX images and labels, in memory.
type fashionLoader struct{ images, labels []byte }

// openFashion reads <path>/train-{images-idx3,labels-idx1}-ubyte.gz.
func openFashion(_ context.Context, cfg data.Config, baseDir string, _ []pipeline.TensorInfo, _ map[string]any) (pipeline.DataLoader, error) {
	dir := filepath.Join(baseDir, cfg.Path)
	img, err1 := readIDX(filepath.Join(dir, "train-images-idx3-ubyte.gz"), 16)
	lab, err2 := readIDX(filepath.Join(dir, "train-labels-idx1-ubyte.gz"), 8)
	if err := errors.Join(err1, err2); err != nil || len(img) != 784*len(lab) {
		return nil, fmt.Errorf("data source %s: %d images, %d labels: %v", dir, len(img)/784, len(lab), err)
	}
	return &fashionLoader{images: img, labels: lab}, nil
}

// readIDX returns the body of a gzipped IDX file.
func readIDX(file string, header int) ([]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	z, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	b, err := io.ReadAll(z)
	if len(b) < header {
		return nil, fmt.Errorf("%s: truncated (%v)", file, err)
	}
	return b[header:], err
}

func (l *fashionLoader) Len() int { return len(l.labels) }

// Item normalizes as in training; the box holds the pixels above 64.
func (l *fashionLoader) Item(_ context.Context, i int) (pipeline.Sample, error) {
	if i < 0 || i >= l.Len() {
		return pipeline.Sample{}, fmt.Errorf("sample %d: %w", i, pipeline.ErrIndexOutOfRange)
	}
	x, box := make([]float32, 784), []float32{1, 1, 0, 0}
	for j, p := range l.images[784*i : 784*(i+1)] {
		x[j] = (float32(p)/255 - 0.2860) / 0.3530
		if c, r := float32(j%28)/28, float32(j/28)/28; p > 64 {
			box[0], box[1], box[2], box[3] = min(box[0], c), min(box[1], r), max(box[2], c+1.0/28), max(box[3], r+1.0/28)
		}
	}
	return pipeline.Sample{Inputs: map[string]pipeline.Tensor{"input": {Shape: []int64{1, 1, 28, 28}, Data: x}},
		Annotation: Annotation{Label: int(l.labels[i]), Box: box}}, nil
}

// argmax is the postprocess (POT's postprocess_output): logits → class.
func argmax(out map[string]pipeline.Tensor, _ map[string]any) (map[string]pipeline.Tensor, error) {
	logits, ok := out["logits"].Data.([]float32)
	if !ok || len(logits) == 0 {
		return nil, fmt.Errorf("output logits: %T, want float32 values", out["logits"].Data)
	}
	best := slices.Index(logits, slices.Max(logits)) // the first of the largest
	return map[string]pipeline.Tensor{"class": {Shape: []int64{1}, Data: []int64{int64(best)}}}, nil
}

// Accuracy is the Metric: top-1 accuracy, and the garment's area. As in
// POT, Value is a list per sample of the last Update, AvgValue the mean.
type Accuracy struct {
	last       map[string][]float64
	hits, area float64
	n          int
}

func (m *Accuracy) Update(out map[string]pipeline.Tensor, annotation any) error {
	a, ok := annotation.(Annotation)
	class, ok2 := out["class"].Data.([]int64)
	if !ok || !ok2 || len(a.Box) != 4 {
		return fmt.Errorf("annotation %v, outputs %v: want an Annotation with a box and a class", annotation, out)
	}
	m.last = map[string][]float64{"accuracy": {0}, "box_area": {float64((a.Box[2] - a.Box[0]) * (a.Box[3] - a.Box[1]))}}
	if class[0] == int64(a.Label) {
		m.last["accuracy"][0] = 1
	}
	m.hits, m.area, m.n = m.hits+m.last["accuracy"][0], m.area+m.last["box_area"][0], m.n+1
	return nil
}

func (m *Accuracy) Value() map[string][]float64 { return m.last }
func (m *Accuracy) AvgValue() map[string]float64 {
	return map[string]float64{"accuracy": m.hits / float64(m.n), "box_area": m.area / float64(m.n)}
}
func (m *Accuracy) HigherBetter() bool { return true }
func (m *Accuracy) Reset()             { *m = Accuracy{} }
func (m *Accuracy) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"accuracy": {Direction: "higher-better", Type: "accuracy"},
		"box_area": {Direction: "higher-better", Type: "area"}}
}

// Result is what run prints: the saved files, the metrics, the statistics.
type Result struct {
	Saved     []model.SavedFile
	Metrics   map[string]float64 // the INT8 model's, on samples 0..7
	PerSample []pipeline.PerSampleMetric
	Relu2     [2][]float64 // per-sample max and active share of /Relu_2_output_0
}

// run quantizes the model in dir/model.onnx on the fleet of workers (0: in
// this process) and writes the INT8 model to out.
func run(ctx context.Context, dir, out string, workers int) (*Result, error) {
	fp32, err := model.Load(model.Config{Model: "model.onnx", BaseDir: dir, Name: "fashion_cnn"})
	if err != nil {
		return nil, err
	}
	ds := data.Config{Type: "fashion-idx", Path: "data/calib", BaseDir: dir}
	loader, err := openFashion(ctx, ds, dir, nil, nil)
	if err != nil {
		return nil, err
	}
	var eng pipeline.Engine
	if workers == 0 {
		e, err := engine.New(loader, engine.Options{Postprocess: argmax})
		if err != nil {
			return nil, err
		}
		defer e.Close()
		eng = e
	} else {
		fctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() { stop(); wg.Wait() }()
		if eng, err = startFleet(fctx, &wg, ds, loader.Len(), workers); err != nil {
			return nil, err
		}
	}
	p, err := pipeline.Create([]pipeline.AlgorithmConfig{{Name: "DefaultQuantization",
		Params: json.RawMessage(`{"preset": "performance", "stat_subset_size": 300}`)}}, pipeline.AlgorithmEnv{Engine: eng})
	if err != nil {
		return nil, err
	}
	q, err := p.Run(ctx, fp32)
	if err != nil {
		return nil, err
	}
	if err := eng.SetModel(ctx, q); err != nil { // POT's engine.set_model, engine.predict
		return nil, err
	}
	layout := pipeline.StatsLayout{"/Relu_2_output_0": {{Kind: pipeline.StatMax}, {Kind: "active"}}}
	res, err := eng.Predict(ctx, pipeline.PredictOptions{StatsLayout: layout, Metric: &Accuracy{}, MetricPerSample: true,
		Sampler: pipeline.NewBatchSampler(loader.Len(), 1, []int{0, 1, 2, 3, 4, 5, 6, 7})})
	if err != nil {
		return nil, err
	}
	r := &Result{Metrics: res.Metrics, PerSample: res.PerSample, Relu2: [2][]float64{
		res.Stats.Get("/Relu_2_output_0", "max").Column(0), res.Stats.Get("/Relu_2_output_0", "active").Column(0)}}
	r.Saved, err = model.Save(q, out, "fashion_cnn", false)
	return r, err
}

// startFleet embeds a NATS server, starts workers in this process (wg
// waits for them) and returns the fleet's engine; all stop when ctx ends.
func startFleet(ctx context.Context, wg *sync.WaitGroup, ds data.Config, n, workers int) (pipeline.Engine, error) {
	srv, err := cluster.StartServer(ctx, cluster.ServerOptions{})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, srv.Shutdown)
	secret, wc := cluster.NewSecret(), srv.WorkerConn()
	for i := range workers {
		args := []string{"--nats", srv.ClientURL(), "--user", wc.User, "--password", wc.Password, "--name", fmt.Sprint("w", i), "--log-level", "warn"}
		wg.Go(func() { worker.Run(ctx, args, io.Discard, os.Stderr, worker.Options{Secret: secret}) })
	}
	nc, err := cluster.Connect(ctx, srv.ClientURL(), srv.CoordinatorConn())
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, nc.Close)
	return cluster.NewEngine(nc, cluster.RunSpec{DataSource: ds, Len: n, Postprocess: "argmax", SameHost: true},
		cluster.EngineOptions{Secret: secret})
}

func main() {
	dir := flag.String("data", "examples/fashion-mnist", "folder of examples/fashion-mnist")
	out := flag.String("out", "", "output folder of the INT8 model")
	workers := flag.Int("workers", 0, "workers of an embedded fleet (0: ONNX Runtime in this process)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "api: -out DIR is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := run(ctx, *dir, *out, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
	fmt.Printf("saved %s\nINT8 %v\nper sample %v\n/Relu_2_output_0: max %v, active %v\n", r.Saved[0].Model, r.Metrics, r.PerSample, r.Relu2[0], r.Relu2[1])
}
