package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/metric"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

func TestMain(m *testing.M) {
	if err := engine.Init(); err != nil {
		fmt.Fprintf(os.Stderr, "cluster tests need ONNX Runtime: %v\nrun scripts/setup.sh from the repository root (or set %s)\n", err, engine.EnvLibrary)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		code = checkLeaks()
	}
	os.Exit(code)
}

// checkLeaks fails the test binary on goroutines left running. It waits up
// to abandonedReadBound for them to end: getObject returns when its
// context ends and leaves the object read to end by itself within nats.go's
// API timeout (5 s, see objects.go), so a test that ended a run
// mid-download can leave one waiting for its next chunk for that long
// (seen twice under load); one still there after the bound is a leak.
func checkLeaks() int {
	opts := []goleak.Option{
		// nats.go's Object Store Get hands chunks to the reader through a
		// pipe from the subscription's goroutine; when a test stops a worker
		// mid-download, that goroutine can still be inside the pipe write as
		// the check runs (seen once in CI, in nats.go v1.55.0's
		// (*obs).Get.func2). Our readers always Close their result.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"),
		// nats.go v1.55.0 starts resetPendingAcksOnReconnect for the first
		// async publish and reads connStatusCh under the lock only once it
		// runs; when the JetStream context is cleaned up before that
		// (cleanupReplySub sets connStatusCh to nil), the goroutine receives
		// from a nil channel for ever (seen once in CI). It holds nothing of
		// ours.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	}
	deadline := time.Now().Add(abandonedReadBound)
	for {
		err := goleak.Find(opts...)
		if err == nil {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// abandonedReadBound is how long checkLeaks waits for abandoned object
// reads: nats.go's 5 s API timeout and a margin.
const abandonedReadBound = 7 * time.Second

// fixture is the path of a model under testdata/models.
func fixture(name string) string { return filepath.Join("..", "testdata", "models", name) }

// loadModel loads a fixture model.
func loadModel(t testing.TB, name string) *model.CompressedModel {
	t.Helper()
	m, err := model.Load(model.Config{Model: fixture(name)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkFor polls fn every interval until it returns nil, failing the test
// with fn's last error after timeout (as nats-server's tests do).
func checkFor(t testing.TB, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// startServer runs an embedded NATS server for the test.
func startServer(t testing.TB, o ServerOptions) *Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := StartServer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// testSecret is the fleet secret of the tests' coordinators and workers.
const testSecret = "fleetcal-test-secret-0123456789"

// connect opens a coordinator-role connection to srv, closed at the end of
// the test.
func connect(t testing.TB, srv *Server) *nats.Conn {
	t.Helper()
	return connectAs(t, srv.ClientURL(), srv.CoordinatorConn())
}

// connectAs opens a client connection with o, closed at the end of the test.
func connectAs(t testing.TB, url string, o ConnOptions) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := Connect(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// noPermissionErrors fails the test if the server refused nc anything.
func noPermissionErrors(t testing.TB, nc *nats.Conn) {
	t.Helper()
	if err := nc.LastError(); err != nil {
		t.Errorf("connection %s: %v", nc.Opts.User, err)
	}
}

// writeNpy writes a float32 array in numpy's .npy format (version 1.0).
func writeNpy(t testing.TB, path string, shape []int, values []float32) {
	t.Helper()
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	for _, v := range values {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dataset is a folder of .npy samples of shape [3 16 16] (the convnet
// fixtures' input without its batch axis) and a labels file.
type dataset struct {
	dir    string // holds calib/ and labels.json
	n      int
	labels map[string]int
}

// makeDataset writes n random samples, values in [-2, 2); the samples
// listed in bad get shape [3 8 8] instead.
func makeDataset(t testing.TB, n int, seed uint64, bad ...int) *dataset {
	t.Helper()
	d := &dataset{dir: t.TempDir(), n: n, labels: map[string]int{}}
	calib := filepath.Join(d.dir, "calib")
	if err := os.MkdirAll(calib, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		shape := []int{3, 16, 16}
		for _, b := range bad {
			if b == i {
				shape = []int{3, 8, 8}
			}
		}
		v := make([]float32, shape[0]*shape[1]*shape[2])
		for k := range v {
			v[k] = rng.Float32()*4 - 2
		}
		name := fmt.Sprintf("%03d", i)
		writeNpy(t, filepath.Join(calib, name+".npy"), shape, v)
		d.labels[name] = rng.IntN(10)
	}
	b, err := json.Marshal(d.labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "labels.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// spec is a RunSpec reading the dataset, as a config file in d.dir with
// relative paths decodes.
func (d *dataset) spec() RunSpec {
	return RunSpec{
		DataSource:  data.Config{Type: "npy", Path: "calib", BaseDir: d.dir},
		Annotations: &pipeline.Annotations{Path: filepath.Join(d.dir, "labels.json")},
		Len:         d.n,
	}
}

// decodeSource decodes a data_source entry with paths relative to dir.
func decodeSource(t testing.TB, raw, dir string) pipeline.DataSource {
	t.Helper()
	src, err := pipeline.DecodeDataSource(json.RawMessage(raw), dir)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// loader opens the dataset for m's inputs, as a worker does.
func (d *dataset) loader(t testing.TB, m *model.CompressedModel) pipeline.DataLoader {
	t.Helper()
	var inputs []pipeline.TensorInfo
	for _, v := range model.Inputs(m.Models()[0].Proto) {
		inputs = append(inputs, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	l, err := data.Open(t.Context(), data.Config{Type: "npy", Path: "calib"}, &data.Annotations{Path: "labels.json"}, d.dir, inputs)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// newAccuracy is the top-1 accuracy metric.
func newAccuracy(t testing.TB) pipeline.Metric {
	t.Helper()
	m, err := metric.New(json.RawMessage(`{"name": "accuracy", "top_k": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testLayout asks for per-sample and per-channel statistics on several
// activations of the convnet fixtures.
func testLayout() pipeline.StatsLayout {
	specs := []pipeline.StatSpec{
		{Kind: pipeline.StatMin}, {Kind: pipeline.StatMax}, {Kind: pipeline.StatAbsMax},
		{Kind: pipeline.StatQuantile, Q: 0.999}, {Kind: pipeline.StatMean},
		{Kind: pipeline.StatChannelMin, Axis: 1}, {Kind: pipeline.StatChannelMax, Axis: 1},
	}
	return pipeline.StatsLayout{"input": specs, "relu_0_out": specs, "conv_1_out": specs, "logits": specs[:4]}
}

// reference runs the local engine on the dataset.
func reference(t testing.TB, d *dataset, m *model.CompressedModel, opts pipeline.PredictOptions) pipeline.PredictResult {
	t.Helper()
	e, err := engine.New(d.loader(t, m), engine.Options{Requests: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.SetModel(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	res, err := e.Predict(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// workers runs in-process workers until stopped (or the test ends).
type workers struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
	list   []*Worker
}

// startWorkers starts n workers on nc.
func startWorkers(t testing.TB, nc *nats.Conn, n int, opts WorkerOptions) *workers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ws := &workers{t: t, cancel: cancel}
	for i := range n {
		o := opts
		if o.Secret == "" {
			o.Secret = testSecret
		}
		if o.Name == "" {
			o.Name = fmt.Sprintf("w%d", i)
		} else if n > 1 {
			o.Name = fmt.Sprintf("%s%d", opts.Name, i)
		}
		w, err := NewWorker(nc, o)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		ws.list = append(ws.list, w)
		ws.wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				ws.mu.Lock()
				ws.errs = append(ws.errs, err)
				ws.mu.Unlock()
			}
		})
	}
	t.Cleanup(ws.stop)
	return ws
}

// stop stops the workers, waits for them and reports their errors.
func (ws *workers) stop() {
	ws.cancel()
	ws.wg.Wait()
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, err := range ws.errs {
		ws.t.Errorf("worker: %v", err)
	}
	ws.errs = nil
}

// slowLoader delays every Item, and blocks items listed in gate until the
// gate channel is closed.
type slowLoader struct {
	pipeline.DataLoader
	delay time.Duration
	gate  map[int]chan struct{}
}

func (l *slowLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if ch, ok := l.gate[i]; ok {
		select {
		case <-ch:
		case <-ctx.Done():
			return pipeline.Sample{}, ctx.Err()
		}
	}
	if l.delay > 0 {
		t := time.NewTimer(l.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return pipeline.Sample{}, ctx.Err()
		}
	}
	return l.DataLoader.Item(ctx, i)
}

// newEngine creates a coordinator with test-friendly defaults.
func newEngine(t testing.TB, nc *nats.Conn, spec RunSpec, opts EngineOptions) *Engine {
	t.Helper()
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 10 * time.Millisecond
	}
	if opts.Secret == "" {
		opts.Secret = testSecret
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	e, err := NewEngine(nc, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// sameStats fails the test unless got and want are bit-identical, as Sets
// and as wire bytes.
func sameStats(t testing.TB, got, want pipeline.PredictResult) {
	t.Helper()
	if got.Samples != want.Samples {
		t.Errorf("samples: got %d, want %d", got.Samples, want.Samples)
	}
	if !got.Stats.Equal(want.Stats) {
		t.Fatalf("statistics differ from the local engine's:\ngot  tensors %v\nwant tensors %v", got.Stats.Tensors(), want.Stats.Tensors())
	}
	gb, err := got.Stats.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	wb, err := want.Stats.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(gb) != string(wb) {
		t.Fatalf("statistics encode differently: %d bytes (sha %s), want %d bytes (sha %s)", len(gb), sum(gb), len(wb), sum(wb))
	}
}

// dirEntries lists the names in dir.
func dirEntries(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names, nil
}
