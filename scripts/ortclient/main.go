// Command ortclient compares an FP32 model and its INT8 version the way an
// independent ONNX Runtime client would: plain sessions with ONNX Runtime's
// default options (only the intra-op thread count set), the user's original
// model files as given, FP32 and INT8 runs alternated. It is a measuring
// tool for BENCHMARKS.md and scripts/corpus/run.sh, not part of the product,
// and on purpose shares no inference code with fleetcal's engine (it uses
// the engine package only to find the ONNX Runtime library and the data
// package to read .npy/.npz samples).
//
//	go run ./scripts/ortclient --fp32 model.onnx --int8 out/model.onnx --data heldout/ [--runs 21] [--threads 1]
//	    [--other before/model.onnx] [--profile [--kernels N]]
//
// It prints one JSON object: fidelity over every sample of --data (top-1
// agreement of the first output's last axis, cosine similarity of all float
// outputs: mean and minimum over samples) and latency (milliseconds per
// inference on the first sample: median, 10th and 90th percentile of each
// model, and the median of the per-round FP32/INT8 ratios; rounds run
// FP32 then INT8, then INT8 then FP32, alternately; with --other, a third
// model in the same rounds, the order rotating).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/pipeline"
)

type session struct {
	s       *ort.DynamicAdvancedSession
	inputs  []model.ValueInfo
	outputs []model.ValueInfo
}

func open(path string, threads int) (*session, error) {
	p, err := model.LoadFile(path)
	if err != nil {
		return nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
	}
	s := &session{inputs: model.Inputs(p), outputs: model.Outputs(p)}
	var in, out []string
	for _, v := range s.inputs {
		in = append(in, v.Name)
	}
	for _, v := range s.outputs {
		out = append(out, v.Name)
	}
	s.s, err = ort.NewDynamicAdvancedSession(path, in, out, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// run returns the float32 outputs (nil for other types) of one inference.
func (s *session) run(sample pipeline.Sample) ([][]float32, error) {
	var in []ort.Value
	defer func() {
		for _, v := range in {
			v.Destroy()
		}
	}()
	for _, vi := range s.inputs {
		t, ok := sample.Inputs[vi.Name]
		if !ok {
			return nil, fmt.Errorf("sample has no input %q", vi.Name)
		}
		v, err := toORT(t)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", vi.Name, err)
		}
		in = append(in, v)
	}
	out := make([]ort.Value, len(s.outputs))
	if err := s.s.Run(in, out); err != nil {
		return nil, err
	}
	res := make([][]float32, len(out))
	for i, v := range out {
		if t, ok := v.(*ort.Tensor[float32]); ok {
			res[i] = slices.Clone(t.GetData())
		}
		v.Destroy()
	}
	return res, nil
}

func toORT(t pipeline.Tensor) (ort.Value, error) {
	if len(t.Shape) == 0 {
		switch d := t.Data.(type) {
		case []float32:
			return ort.NewScalar(d[0])
		case []int64:
			return ort.NewScalar(d[0])
		case []int32:
			return ort.NewScalar(d[0])
		}
		return nil, fmt.Errorf("unsupported scalar type %T", t.Data)
	}
	shape := ort.NewShape(t.Shape...)
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewTensor(shape, d)
	case []int64:
		return ort.NewTensor(shape, d)
	case []int32:
		return ort.NewTensor(shape, d)
	case []uint8:
		return ort.NewTensor(shape, d)
	case []int8:
		return ort.NewTensor(shape, d)
	case []float64:
		return ort.NewTensor(shape, d)
	}
	return nil, fmt.Errorf("unsupported element type %T", t.Data)
}

type stats struct {
	MedianMS float64 `json:"median_ms"`
	P10MS    float64 `json:"p10_ms"`
	P90MS    float64 `json:"p90_ms"`
}

func summarize(ms []float64) stats {
	s := slices.Sorted(slices.Values(ms))
	q := func(f float64) float64 { return s[int(math.Round(f*float64(len(s)-1)))] }
	return stats{MedianMS: q(0.5), P10MS: q(0.1), P90MS: q(0.9)}
}

type result struct {
	Samples       int        `json:"samples"`
	Top1Agreement float64    `json:"top1_agreement"`
	CosineMean    float64    `json:"cosine_mean"`
	CosineMin     float64    `json:"cosine_min"`
	Runs          int        `json:"latency_runs"`
	Threads       int        `json:"threads"`
	FP32          stats      `json:"fp32"`
	INT8          stats      `json:"int8"`
	Speedup       float64    `json:"speedup_median_of_ratios"`
	SpeedupSpread [2]float64 `json:"speedup_p10_p90"`
	Profile       *profile   `json:"profile,omitempty"`
	// Other is --other's latency, timed in the same rounds (another INT8
	// model, e.g. before a change): its speed-up and the ratio of INT8 to
	// Other speed-ups are from the same runs.
	Other *otherResult `json:"other,omitempty"`
	// Flips are the samples whose top-1 differs, with the FP32 model's
	// margin between its two best scores there (a near-tie flips easily).
	Flips []flip `json:"top1_flips,omitempty"`
}

type otherResult struct {
	Model         string     `json:"model"`
	Latency       stats      `json:"latency"`
	Speedup       float64    `json:"speedup_median_of_ratios"`
	SpeedupSpread [2]float64 `json:"speedup_p10_p90"`
	// INT8VsOther is the median of the per-round --other/--int8 time
	// ratios: above 1, --int8 is faster than --other.
	INT8VsOther float64 `json:"int8_vs_other_median_of_ratios"`
}

type flip struct {
	Sample     int     `json:"sample"`
	FP32Margin float64 `json:"fp32_top2_margin"`
}

// margin is the difference between the two largest values of the first
// row along the last axis.
func margin(v []float32, info model.ValueInfo) float64 {
	row := v
	if k := len(info.Shape); k > 0 && info.Shape[k-1] > 0 && int(info.Shape[k-1]) <= len(v) {
		row = v[:info.Shape[k-1]]
	}
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range row {
		switch f := float64(x); {
		case f > a:
			a, b = f, a
		case f > b:
			b = f
		}
	}
	return a - b
}

// profile is what ONNX Runtime's profiler saw the two models run as.
type profile struct {
	FP32Ops map[string]int `json:"fp32_kernels"`
	INT8Ops map[string]int `json:"int8_kernels"`
	// INT8Micros is the INT8 model's time per inference by kernel.
	INT8Micros map[string]float64 `json:"int8_us_by_kernel"`
	// WeightDQ names the DequantizeLinear nodes of a constant (a weight)
	// that ran at inference time: their layer did not fuse.
	WeightDQ []string `json:"weight_dequantize_at_runtime"`
	// FloatCompute names the float Conv/MatMul/Gemm kernels the INT8 model
	// still ran.
	FloatCompute []string `json:"int8_float_compute_kernels"`
	// FP32Kernels and INT8Kernels are every kernel each model ran, by node
	// (--kernels).
	FP32Kernels []engine.KernelRun `json:"fp32_kernel_list,omitempty"`
	INT8Kernels []engine.KernelRun `json:"int8_kernel_list,omitempty"`
}

func main() {
	fp32 := flag.String("fp32", "", "the FP32 model as the user gave it")
	int8 := flag.String("int8", "", "the quantized model")
	dir := flag.String("data", "", "folder of .npy/.npz samples (fleetcal's npy data source)")
	runs := flag.Int("runs", 21, "alternated latency rounds (each runs both models once)")
	warmup := flag.Int("warmup", 3, "untimed rounds first")
	threads := flag.Int("threads", 1, "intra-op threads (0: ONNX Runtime's default)")
	limit := flag.Int("samples", 0, "fidelity on the first N samples only (0: all)")
	prof := flag.Bool("profile", false, "add ONNX Runtime's kernel profile of both models")
	kernels := flag.Int("kernels", 0, "with --profile: list every kernel of both models, profiled over N runs")
	other := flag.String("other", "", "another INT8 model timed in the same alternated rounds (latency only)")
	flag.Parse()
	if err := run(*fp32, *int8, *other, *dir, *runs, *warmup, *threads, *limit, *prof, *kernels); err != nil {
		fmt.Fprintln(os.Stderr, "ortclient:", err)
		os.Exit(1)
	}
}

func run(fp32, int8, other, dir string, runs, warmup, threads, limit int, prof bool, kernels int) error {
	if fp32 == "" || int8 == "" || dir == "" {
		return errors.New("--fp32, --int8 and --data are required")
	}
	if runs < 1 {
		return errors.New("--runs must be at least 1")
	}
	if err := engine.Init(); err != nil {
		return err
	}
	a, err := open(fp32, threads)
	if err != nil {
		return err
	}
	b, err := open(int8, threads)
	if err != nil {
		return err
	}
	var infos []pipeline.TensorInfo
	for _, v := range a.inputs {
		infos = append(infos, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	ctx := context.Background()
	loader, err := data.Open(ctx, data.Config{Type: "npy", Path: dir}, nil, "", infos)
	if err != nil {
		return err
	}
	n := loader.Len()
	if limit > 0 {
		n = min(n, limit)
	}
	if n == 0 {
		return fmt.Errorf("%s: no samples", dir)
	}
	res := result{Samples: n, Runs: runs, Threads: threads, CosineMin: 1}
	agree := 0
	var first pipeline.Sample
	for i := range n {
		s, err := loader.Item(ctx, i)
		if err != nil {
			return err
		}
		if i == 0 {
			first = s
		}
		oa, err := a.run(s)
		if err != nil {
			return fmt.Errorf("%s: sample %d: %w", fp32, i, err)
		}
		ob, err := b.run(s)
		if err != nil {
			return fmt.Errorf("%s: sample %d: %w", int8, i, err)
		}
		if argmaxLast(oa[0], a.outputs[0]) == argmaxLast(ob[0], a.outputs[0]) {
			agree++
		} else {
			res.Flips = append(res.Flips, flip{Sample: i, FP32Margin: margin(oa[0], a.outputs[0])})
		}
		c := cosine(oa, ob)
		res.CosineMean += c / float64(n)
		res.CosineMin = min(res.CosineMin, c)
	}
	res.Top1Agreement = float64(agree) / float64(n)

	sessions := []*session{a, b}
	if other != "" {
		c, err := open(other, threads)
		if err != nil {
			return err
		}
		sessions = append(sessions, c)
	}
	var ta, tb, tc, ratio, ratioC, bVsC []float64
	time1 := func(s *session) (float64, error) {
		t0 := time.Now()
		_, err := s.run(first)
		return float64(time.Since(t0).Microseconds()) / 1000, err
	}
	for r := range warmup + runs {
		// Each round runs every model once, in an order that rotates (and
		// reverses every other round), so that no model always runs first.
		order := make([]int, len(sessions))
		for i := range order {
			order[i] = (i + r/2) % len(sessions)
		}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		d := make([]float64, len(sessions))
		for _, i := range order {
			ms, err := time1(sessions[i])
			if err != nil {
				return err
			}
			d[i] = ms
		}
		if r >= warmup {
			ta, tb, ratio = append(ta, d[0]), append(tb, d[1]), append(ratio, d[0]/d[1])
			if len(d) == 3 {
				tc, ratioC, bVsC = append(tc, d[2]), append(ratioC, d[0]/d[2]), append(bVsC, d[2]/d[1])
			}
		}
	}
	if other != "" {
		rc := summarize(ratioC)
		res.Other = &otherResult{Model: other, Latency: summarize(tc), Speedup: rc.MedianMS,
			SpeedupSpread: [2]float64{rc.P10MS, rc.P90MS}, INT8VsOther: summarize(bVsC).MedianMS}
	}
	if prof {
		if res.Profile, err = profileBoth(ctx, fp32, int8, first, threads, kernels); err != nil {
			return err
		}
	}
	res.FP32, res.INT8 = summarize(ta), summarize(tb)
	rs := summarize(ratio)
	res.Speedup, res.SpeedupSpread = rs.MedianMS, [2]float64{rs.P10MS, rs.P90MS}
	out, _ := json.MarshalIndent(res, "", "  ")
	fmt.Println(string(out))
	return nil
}

// argmaxLast is the index of the largest value of the first row along the
// last axis (the whole tensor when the shape is unknown); -1 for non-float
// outputs.
func argmaxLast(v []float32, info model.ValueInfo) int {
	if v == nil {
		return -1
	}
	row := v
	if k := len(info.Shape); k > 0 && info.Shape[k-1] > 0 && int(info.Shape[k-1]) <= len(v) {
		row = v[:info.Shape[k-1]]
	}
	best := 0
	for i, x := range row {
		if x > row[best] {
			best = i
		}
	}
	return best
}

// cosine is the cosine similarity of all float outputs taken as one vector.
func cosine(a, b [][]float32) float64 {
	var dot, na, nb float64
	for i := range a {
		for j := range a[i] {
			if j >= len(b[i]) {
				break
			}
			x, y := float64(a[i][j]), float64(b[i][j])
			dot += x * y
			na += x * x
			nb += y * y
		}
	}
	if na == 0 || nb == 0 {
		if na == nb {
			return 1
		}
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

func profileBoth(ctx context.Context, fp32, int8 string, s pipeline.Sample, threads, kernels int) (*profile, error) {
	var out profile
	for i, path := range []string{fp32, int8} {
		p, err := model.LoadFile(path)
		if err != nil {
			return nil, err
		}
		raw, err := model.Marshal(p)
		if err != nil {
			return nil, err
		}
		kp, err := engine.ProfileKernels(ctx, raw, s.Inputs, threads, max(kernels, 5))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if i == 0 {
			out.FP32Ops = kp.OpCounts()
			if kernels > 0 {
				out.FP32Kernels = kp.Kernels
			}
			continue
		}
		out.INT8Ops, out.INT8Micros = kp.OpCounts(), kp.OpMicros()
		if kernels > 0 {
			out.INT8Kernels = kp.Kernels
		}
		out.WeightDQ = kp.DequantizedWeights(p)
		for _, k := range kp.Kernels {
			switch k.Op {
			case "Conv", "FusedConv", "MatMul", "Gemm", "FusedMatMul", "ConvTranspose":
				out.FloatCompute = append(out.FloatCompute, k.Node)
			}
		}
	}
	return &out, nil
}
