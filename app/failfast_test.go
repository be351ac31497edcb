package app

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/internal/testfleet"
	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
)

// rejectedModelConfig is fixtureRun's config on convnet_op13 plus an Add of
// its float input and the int64 output of a Shape node: the model decodes,
// but ONNX Runtime's type check refuses it ("Type Error: Type parameter
// (T) of Optype (Add) bound to different types").
func rejectedModelConfig(t *testing.T, n int) string {
	t.Helper()
	p, err := model.LoadBytes("net", mustRead(t, "../testdata/models/convnet_op13.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	g := p.GetGraph()
	g.Node = append(g.Node,
		&onnxpb.NodeProto{Name: proto.String("shape"), OpType: proto.String("Shape"), Input: []string{"input"}, Output: []string{"input_shape"}},
		&onnxpb.NodeProto{Name: proto.String("mixed"), OpType: proto.String("Add"), Input: []string{"input", "input_shape"}, Output: []string{"mixed"}},
	)
	g.Output = append(g.Output, proto.Clone(g.Input[0]).(*onnxpb.ValueInfoProto))
	g.Output[len(g.Output)-1].Name = proto.String("mixed")
	b, err := model.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return fixtureRun(t, "convnet_op13.onnx", n, fmt.Sprintf(`{"stat_subset_size": %d}`, n), func(dir string) {
		path := filepath.Join(dir, "rejected.onnx")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, "config.json")
		text := string(mustRead(t, cfg))
		abs, _ := filepath.Abs("../testdata/models/convnet_op13.onnx")
		if err := os.WriteFile(cfg, []byte(strings.Replace(text, abs, path, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQuantizeRejectedModelFailsAtOnce: a model ONNX Runtime refuses fails
// a fleet run of 2 local workers in under 5 s with the message of an
// in-process run, wrapped once with the shard and worker, and without a
// warning in the log.
func TestQuantizeRejectedModelFailsAtOnce(t *testing.T) {
	cfg := rejectedModelConfig(t, 64)
	_, inproc := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}})
	if inproc == nil || !strings.Contains(inproc.Error(), "Type Error") {
		t.Fatalf("in process: got %v, want ONNX Runtime's type error", inproc)
	}
	var logs testfleet.Buffer
	start := time.Now()
	_, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{ShardSize: 4}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	took := time.Since(start)
	t.Logf("fleet run failed after %s: %v", took, err)
	if err == nil {
		t.Fatal("the fleet run succeeded")
	}
	if took > 5*time.Second {
		t.Errorf("took %s, want under 5s", took)
	}
	// In process, SetModel fails; on the fleet, the workers' engines fail
	// the first pass: "DefaultQuantization: statistics: shard 1 (worker
	// local-0): " and the same message from the engine.
	_, engineMsg, _ := strings.Cut(inproc.Error(), "set model: ")
	if !strings.HasPrefix(engineMsg, `stage "net" (`) || !strings.HasSuffix(err.Error(), "): "+engineMsg) ||
		!strings.Contains(err.Error(), "(worker local-") || strings.Count(err.Error(), "Type Error") != 1 {
		t.Errorf("fleet error\n%q\nwant \"shard N (worker local-W): \" and the in-process engine's\n%q", err, engineMsg)
	}
	if s := logs.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Errorf("warnings or errors logged, want none (the returned error says it all):\n%s", s)
	}
}

// TestQuantizeBadSampleFailsAtOnce: a sample of the wrong shape fails a
// fleet run at once with the in-process message, naming the sample, its
// file and the input, wrapped with the shard and worker.
func TestQuantizeBadSampleFailsAtOnce(t *testing.T) {
	cfg := fixtureRun(t, "convnet_op13.onnx", 32, `{"stat_subset_size": 32}`, func(dir string) {
		writeNpy(t, filepath.Join(dir, "calib", "005.npy"), []int{1, 3, 8, 8}, make([]float32, 3*8*8))
	})
	_, inproc := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{InProcess: true}})
	want := `sample 5 (calib/005.npy): input "input": shape [1 3 8 8], model wants [1 3 16 16]`
	if inproc == nil || !strings.HasSuffix(inproc.Error(), want) {
		t.Fatalf("in process: got %v, want it to end with %q", inproc, want)
	}
	var logs testfleet.Buffer
	start := time.Now()
	_, err := Quantize(t.Context(), QuantizeOptions{Config: cfg, OutputDir: t.TempDir(), Workers: 2, SkipEvaluation: true,
		Fleet: FleetOptions{ShardSize: 4}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Logf("fleet run failed after %s: %v\nin process: %v", time.Since(start), err, inproc)
	if err == nil || !strings.HasSuffix(err.Error(), "(worker local-0): "+want) && !strings.HasSuffix(err.Error(), "(worker local-1): "+want) {
		t.Errorf("fleet error\n%v\nwant \"shard 1 (worker local-W): %s\"", err, want)
	}
	if s := logs.String(); strings.Contains(s, "level=WARN") || strings.Contains(s, "level=ERROR") {
		t.Errorf("warnings or errors logged, want none:\n%s", s)
	}
}
