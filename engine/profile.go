package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// KernelRun is one node of the graph ONNX Runtime ran, after its own graph
// optimizations (QDQ fusion, Conv+activation fusion): its name, the
// operator of the kernel that ran it (QLinearConv, Conv, FusedConv,
// DequantizeLinear, ...) and its mean time per inference.
type KernelRun struct {
	Node   string  `json:"node"`
	Op     string  `json:"op"`
	Micros float64 `json:"us_per_run"`
}

// KernelProfile is ONNX Runtime's own profile of a model: the kernels it
// ran, by node name.
type KernelProfile struct {
	Runs    int         `json:"runs"`
	Kernels []KernelRun `json:"kernels"`
}

// OpCounts counts the kernels by operator.
func (p *KernelProfile) OpCounts() map[string]int {
	out := map[string]int{}
	for _, k := range p.Kernels {
		out[k.Op]++
	}
	return out
}

// OpMicros sums the time per inference by operator.
func (p *KernelProfile) OpMicros() map[string]float64 {
	out := map[string]float64{}
	for _, k := range p.Kernels {
		out[k.Op] += k.Micros
	}
	return out
}

// ProfileKernels runs model (serialized ONNX) runs times on one sample with
// ONNX Runtime's profiler on (default session options but the thread
// count) and returns the kernels it ran. It shows what an INT8 model
// really runs as: a layer fused into QLinearConv, or a float Conv on
// weights dequantized at every inference.
func ProfileKernels(ctx context.Context, model []byte, inputs map[string]pipeline.Tensor, threads, runs int) (*KernelProfile, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	runs = max(runs, 1)
	dir, err := os.MkdirTemp("", "fleetcal-profile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s, err := newProfiledSession(model, inputs, threads, filepath.Join(dir, "profile"))
	if err != nil {
		return nil, err
	}
	for range runs {
		if err := ctx.Err(); err != nil {
			s.close()
			return nil, err
		}
		if err := s.run(); err != nil {
			s.close()
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	s.close() // ONNX Runtime writes the profile when the session ends
	files, err := filepath.Glob(filepath.Join(dir, "profile*.json"))
	if err != nil || len(files) != 1 {
		return nil, fmt.Errorf("profile: ONNX Runtime wrote %d profile files, want 1", len(files))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	return parseProfile(raw, runs)
}

func newProfiledSession(data []byte, inputs map[string]pipeline.Tensor, threads int, prefix string) (*latencySession, error) {
	return newLatencySessionWith(data, inputs, threads, func(o *ort.SessionOptions) error { return o.EnableProfiling(prefix) })
}

// parseProfile reads ONNX Runtime's Chrome-trace profile: the "Node"
// events named "<node>_kernel_time" with args.op_name.
func parseProfile(raw []byte, runs int) (*KernelProfile, error) {
	var events []struct {
		Cat  string  `json:"cat"`
		Name string  `json:"name"`
		Dur  float64 `json:"dur"`
		Args struct {
			OpName string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	byNode := map[string]*KernelRun{}
	for _, e := range events {
		node, ok := strings.CutSuffix(e.Name, "_kernel_time")
		if e.Cat != "Node" || !ok || e.Args.OpName == "" {
			continue
		}
		k := byNode[node]
		if k == nil {
			k = &KernelRun{Node: node, Op: e.Args.OpName}
			byNode[node] = k
		}
		k.Micros += e.Dur / float64(runs)
	}
	p := &KernelProfile{Runs: runs}
	for _, name := range slices.Sorted(maps.Keys(byNode)) {
		p.Kernels = append(p.Kernels, *byNode[name])
	}
	return p, nil
}

// DequantizedWeights names the DequantizeLinear nodes of m (the model
// profiled) whose input is an initializer, a weight, and that ran: each is
// a layer ONNX Runtime did not fuse into an integer kernel, dequantizing
// its weight at every inference.
func (p *KernelProfile) DequantizedWeights(m *onnxpb.ModelProto) []string {
	g := m.GetGraph()
	inits := make(map[string]bool, len(g.GetInitializer()))
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	dq := map[string]bool{}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "DequantizeLinear" && len(n.GetInput()) > 0 && inits[n.GetInput()[0]] {
			dq[n.GetName()] = true
		}
	}
	var out []string
	for _, k := range p.Kernels {
		if k.Op == "DequantizeLinear" && dq[k.Node] {
			out = append(out, k.Node)
		}
	}
	return out
}
