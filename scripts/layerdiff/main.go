// Command layerdiff compares every float32 intermediate tensor of an FP32
// model with the same tensor of its INT8 QDQ model (the DequantizeLinear
// output when the tensor was quantized) on a few samples, and prints, in
// graph order, the cosine similarity and relative error of each: where the
// error jumps is the layer that loses the accuracy.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/engine"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

var (
	raw         *bool
	noise       float64
	opt         int
	outputsOnly bool
)

func floatOut(name string) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
}

func main() {
	fp32 := flag.String("fp32", "", "FP32 model")
	int8 := flag.String("int8", "", "INT8 model")
	dir := flag.String("data", "", "npy samples")
	samples := flag.Int("samples", 4, "samples")
	noiseFlag := flag.Float64("noise", 0, "add uniform noise of this width (a quantization step) to the INT8 model's inputs: with --int8 the FP32 model, the model's own sensitivity")
	optFlag := flag.Int("opt", 99, "ONNX Runtime graph optimization level of the INT8 session: 0 none, 1 basic, 2 extended, 99 all")
	onlyFlag := flag.Bool("outputs-only", false, "compare the model outputs only (the INT8 graph as fused by ONNX Runtime)")
	rawFlag := flag.Bool("raw", false, "also compare a quantized tensor before its QuantizeLinear")
	all := flag.Bool("all", false, "print every tensor (default: only quantized/op outputs with cosine < 0.9999)")
	flag.Parse()
	raw = rawFlag
	noise = *noiseFlag
	opt, outputsOnly = *optFlag, *onlyFlag
	if err := run(*fp32, *int8, *dir, *samples, *all); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type probe struct {
	name, op, node string
	a, b           string // tensor names in fp32 / int8
}

func run(fp32, int8, dir string, n int, all bool) error {
	if err := engine.Init(); err != nil {
		return err
	}
	pa, err := model.LoadFile(fp32)
	if err != nil {
		return err
	}
	pb, err := model.LoadFile(int8)
	if err != nil {
		return err
	}
	ta := model.InferTypes(pa)
	tb := model.InferTypes(pb)
	inB := map[string]bool{}
	for _, nd := range pb.GetGraph().GetNode() {
		for _, o := range nd.GetOutput() {
			inB[o] = true
		}
	}
	var probes []probe
	seen := map[string]bool{}
	for _, o := range model.Outputs(pa) {
		seen[o.Name] = true
	}
	for _, nd := range pb.GetGraph().GetNode() {
		if nd.GetOpType() == "QuantizeLinear" || nd.GetOpType() == "DequantizeLinear" {
			continue
		}
		for _, o := range nd.GetOutput() {
			if o == "" || seen[o] || !tb.IsFloat32(o) {
				continue
			}
			seen[o] = true
			// the fp32 model's tensor of the same name
			if !ta.IsFloat32(o) {
				continue
			}
			b := o
			if inB[o+"_dequantized"] {
				b = o + "_dequantized"
			}
			probes = append(probes, probe{name: o, op: nd.GetOpType(), node: nd.GetName(), a: o, b: b})
			if b != o && *raw {
				probes = append(probes, probe{name: o, op: nd.GetOpType() + "(raw)", node: nd.GetName(), a: o, b: o})
			}
		}
	}
	if outputsOnly {
		probes = nil
	}
	tmp, err := os.MkdirTemp("", "layerdiff")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	origA := model.Outputs(pa)
	for _, p := range probes {
		if !slices.ContainsFunc(pa.Graph.Output, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == p.a }) {
			pa.Graph.Output = append(pa.Graph.Output, floatOut(p.a))
		}
		if !slices.ContainsFunc(pb.Graph.Output, func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == p.b }) {
			pb.Graph.Output = append(pb.Graph.Output, floatOut(p.b))
		}
	}
	save := func(p *onnxpb.ModelProto, name string) (string, error) {
		b, err := model.Marshal(p)
		if err != nil {
			return "", err
		}
		path := filepath.Join(tmp, name)
		return path, os.WriteFile(path, b, 0o644)
	}
	fa, err := save(pa, "a.onnx")
	if err != nil {
		return err
	}
	fb, err := save(pb, "b.onnx")
	if err != nil {
		return err
	}
	// external data next to the originals
	inputs := model.Inputs(pa)
	var in []string
	for _, v := range inputs {
		in = append(in, v.Name)
	}
	outA := []string{}
	outB := []string{}
	for _, o := range origA {
		outA = append(outA, o.Name)
		outB = append(outB, o.Name)
	}
	for _, p := range probes {
		outA = append(outA, p.a)
		outB = append(outB, p.b)
	}
	opts, _ := ort.NewSessionOptions()
	opts.SetIntraOpNumThreads(1)
	sa, err := ort.NewDynamicAdvancedSession(fa, in, outA, opts)
	if err != nil {
		return err
	}
	optsB, _ := ort.NewSessionOptions()
	optsB.SetIntraOpNumThreads(1)
	lv := map[int]ort.GraphOptimizationLevel{0: ort.GraphOptimizationLevelDisableAll, 1: ort.GraphOptimizationLevelEnableBasic, 2: ort.GraphOptimizationLevelEnableExtended, 99: ort.GraphOptimizationLevelEnableAll}[opt]
	if err := optsB.SetGraphOptimizationLevel(lv); err != nil {
		return err
	}
	sb, err := ort.NewDynamicAdvancedSession(fb, in, outB, optsB)
	if err != nil {
		return err
	}
	var infos []pipeline.TensorInfo
	for _, v := range inputs {
		infos = append(infos, pipeline.TensorInfo{Name: v.Name, DType: pipeline.DType(v.ElemType), Shape: v.Shape})
	}
	ctx := context.Background()
	loader, err := data.Open(ctx, data.Config{Type: "npy", Path: dir}, nil, "", infos)
	if err != nil {
		return err
	}
	n = min(n, loader.Len())
	m := len(outA)
	dot, na, nb, d2 := make([]float64, m), make([]float64, m), make([]float64, m), make([]float64, m)
	mina, maxa := make([]float64, m), make([]float64, m)
	for i := range m {
		mina[i], maxa[i] = math.Inf(1), math.Inf(-1)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for s := range n {
		smp, err := loader.Item(ctx, s)
		if err != nil {
			return err
		}
		var vals, valsB []ort.Value
		for _, v := range inputs {
			t := smp.Inputs[v.Name]
			x, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data.([]float32))
			if err != nil {
				return err
			}
			vals = append(vals, x)
			d := slices.Clone(t.Data.([]float32))
			for j := range d {
				d[j] += float32(noise * (rng.Float64() - 0.5))
			}
			y, err := ort.NewTensor(ort.NewShape(t.Shape...), d)
			if err != nil {
				return err
			}
			valsB = append(valsB, y)
		}
		ra := make([]ort.Value, m)
		rb := make([]ort.Value, m)
		if err := sa.Run(vals, ra); err != nil {
			return err
		}
		if err := sb.Run(valsB, rb); err != nil {
			return err
		}
		for i := range len(origA) {
			xa, ok1 := ra[i].(*ort.Tensor[float32])
			xb, ok2 := rb[i].(*ort.Tensor[float32])
			if ok1 && ok2 {
				var d, x2, y2 float64
				for j, x := range xa.GetData() {
					y := float64(xb.GetData()[j])
					d += float64(x) * y
					x2 += float64(x) * float64(x)
					y2 += y * y
				}
				fmt.Fprintf(os.Stderr, "sample %d output %d cosine %.5f |fp32| %.3g |int8| %.3g\n", s, i, d/math.Sqrt(x2*y2), math.Sqrt(x2), math.Sqrt(y2))
			}
		}
		for i := range m {
			xa, ok1 := ra[i].(*ort.Tensor[float32])
			xb, ok2 := rb[i].(*ort.Tensor[float32])
			if ok1 && ok2 {
				a, b := xa.GetData(), xb.GetData()
				for j := range min(len(a), len(b)) {
					x, y := float64(a[j]), float64(b[j])
					dot[i] += x * y
					na[i] += x * x
					nb[i] += y * y
					d2[i] += (x - y) * (x - y)
					mina[i] = min(mina[i], x)
					maxa[i] = max(maxa[i], x)
				}
			}
			ra[i].Destroy()
			rb[i].Destroy()
		}
		for _, v := range append(vals, valsB...) {
			v.Destroy()
		}
	}
	fmt.Printf("%-5s %-22s %-10s %9s %9s  %s\n", "#", "op", "quant", "cosine", "rel_err", "tensor [fp32 min,max]")
	for i := range m {
		name, op, q := outA[i], "output", ""
		if i >= len(origA) {
			p := probes[i-len(origA)]
			op = p.op
			if p.b != p.a {
				q = "Q"
			}
		}
		c := dot[i] / math.Sqrt(na[i]*nb[i])
		rel := math.Sqrt(d2[i] / na[i])
		if all || i < len(origA) || c < 0.9999 {
			fmt.Printf("%-5d %-22s %-10s %9.5f %9.5f  %s [%.3g,%.3g]\n", i, op, q, c, rel, name, mina[i], maxa[i])
		}
	}
	return nil
}
