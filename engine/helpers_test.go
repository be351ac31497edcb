package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

func TestMain(m *testing.M) {
	if err := Init(); err != nil {
		fmt.Fprintf(os.Stderr, "engine tests need ONNX Runtime: %v\nrun scripts/setup.sh from the repository root (or set %s)\n", err, EnvLibrary)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fixture is the path of a model under testdata/models.
func fixture(name string) string { return filepath.Join("..", "testdata", "models", name) }

// loadProto reads a fixture model.
func loadProto(t testing.TB, name string) *onnxpb.ModelProto {
	t.Helper()
	p, err := model.LoadFile(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// loadModel wraps a fixture as a single-stage CompressedModel.
func loadModel(t testing.TB, name string) *model.CompressedModel {
	t.Helper()
	return model.NewCompressedModel(name, false, &model.Stage{Name: name, Proto: loadProto(t, name), Path: fixture(name)})
}

// sliceLoader is an in-memory DataLoader.
type sliceLoader struct {
	samples []pipeline.Sample
	mu      sync.Mutex
	calls   int
}

func (l *sliceLoader) Len() int { return len(l.samples) }

func (l *sliceLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if err := ctx.Err(); err != nil {
		return pipeline.Sample{}, err
	}
	if i < 0 || i >= len(l.samples) {
		return pipeline.Sample{}, fmt.Errorf("%w: %d", pipeline.ErrIndexOutOfRange, i)
	}
	l.mu.Lock()
	l.calls++
	l.mu.Unlock()
	return l.samples[i], nil
}

// randomSamples makes n samples of one float32 input, values in [-2, 2),
// annotated with their index, with a fake file path.
func randomSamples(n int, input string, shape []int64, seed uint64) *sliceLoader {
	rng := rand.New(rand.NewPCG(seed, 1))
	l := &sliceLoader{}
	for i := range n {
		d := make([]float32, pipeline.NumElements(shape))
		for k := range d {
			d[k] = rng.Float32()*4 - 2
		}
		l.samples = append(l.samples, pipeline.Sample{
			Inputs:     map[string]pipeline.Tensor{input: {Shape: slices.Clone(shape), Data: d}},
			Annotation: i,
			Metadata:   map[string]any{"path": fmt.Sprintf("calib/%03d.npy", i)},
		})
	}
	return l
}

// withOutputs returns a copy of p with the tensors added as graph outputs.
func withOutputs(p *onnxpb.ModelProto, tensors ...string) *onnxpb.ModelProto {
	q := proto.Clone(p).(*onnxpb.ModelProto)
	for _, t := range tensors {
		if !slices.ContainsFunc(q.Graph.Output, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == t }) {
			q.Graph.Output = append(q.Graph.Output, model.TensorOutput(t, onnxFloat))
		}
	}
	return q
}

// refStats is the reference computation of the test: a plain loop over a
// sample's float32 values, NaN/±Inf skipped, -0 reported as +0. Without
// finite values, mn and mx are NaN; a channel without is NaN too.
func refStats(data []float32, shape []int64, axis int) (mn, mx float64, cmn, cmx []float64, bad uint64) {
	fin := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	z := func(v float32) float64 {
		if v == 0 {
			return 0
		}
		return float64(v)
	}
	first := true
	var lo, hi float32
	for _, v := range data {
		if !fin(v) {
			bad++
			continue
		}
		if first || v < lo {
			lo = v
		}
		if first || v > hi {
			hi = v
		}
		first = false
	}
	mn, mx = z(lo), z(hi)
	if first {
		mn, mx = math.NaN(), math.NaN()
	}
	if axis < 0 {
		return
	}
	inner := 1
	for _, d := range shape[axis+1:] {
		inner *= int(d)
	}
	c := int(shape[axis])
	clo, chi := make([]float32, c), make([]float32, c)
	seen := make([]bool, c)
	for i, v := range data {
		if !fin(v) {
			continue
		}
		k := (i / inner) % c
		if !seen[k] || v < clo[k] {
			clo[k] = v
		}
		if !seen[k] || v > chi[k] {
			chi[k] = v
		}
		seen[k] = true
	}
	for k := range c {
		if !seen[k] {
			clo[k], chi[k] = float32(math.NaN()), float32(math.NaN())
		}
		cmn = append(cmn, z(clo[k]))
		cmx = append(cmx, z(chi[k]))
	}
	return
}

// argmaxMetric is top-1 accuracy of output out against the label
// index%10 of a sample annotated with its index; it records the order of
// Update calls.
type argmaxMetric struct {
	out     string
	correct int
	n       int
	last    float64
	order   []int
}

func (m *argmaxMetric) Value() map[string][]float64 {
	return map[string][]float64{"accuracy": {m.last}}
}
func (m *argmaxMetric) AvgValue() map[string]float64 {
	return map[string]float64{"accuracy": float64(m.correct) / float64(max(m.n, 1))}
}
func (m *argmaxMetric) HigherBetter() bool { return true }
func (m *argmaxMetric) Reset()             { m.correct, m.n, m.last, m.order = 0, 0, 0, nil }
func (m *argmaxMetric) Attributes() map[string]pipeline.MetricAttributes {
	return map[string]pipeline.MetricAttributes{"accuracy": {Direction: "higher-better", Type: "accuracy"}}
}
func (m *argmaxMetric) Update(outputs map[string]pipeline.Tensor, annotation any) error {
	t, ok := outputs[m.out]
	if !ok {
		return fmt.Errorf("no output %q", m.out)
	}
	d := t.Float32s()
	best := 0
	for i, v := range d {
		if v > d[best] {
			best = i
		}
	}
	m.last = 0
	if best == annotation.(int)%10 {
		m.last = 1
		m.correct++
	}
	m.n++
	m.order = append(m.order, annotation.(int))
	return nil
}
