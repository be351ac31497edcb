package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func fixture(name string) string { return filepath.Join("..", "..", "testdata", "models", name) }

// runCmd runs the coordinator in-process.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInspectText(t *testing.T) {
	tests := []struct {
		model string
		want  []string // lines or fragments the output must contain
	}{
		{"convnet_op13.onnx", []string{"ai.onnx 13", "input  FLOAT  [1 3 16 16]", "logits  FLOAT  [1 10]", "BatchNormalization  1", "quantizable nodes (6):", "  gemm_0\n"}},
		{"convnet_op11.onnx", []string{"ai.onnx 11", "Clip", "Unsqueeze", "[1 3 16 16]"}},
		{"convnet_op9_const.onnx", []string{"ai.onnx 9", "Constant", "initializers:  0", "  conv_0\n"}},
		{"convnet_dynamic.onnx", []string{"input  FLOAT  [N 3 16 16]", "logits  FLOAT  [N 10]"}},
		{"convnet_extdata.onnx", []string{"initializers:  12 (2178 parameters)"}},
		{"two_inputs.onnx", []string{"a     FLOAT  [1 4]", "b     FLOAT  [1 4]", "matmul_0"}},
		{"bad_domain.onnx", []string{"com.example.unknown 1", "com.example.unknown.Frobnicate  1"}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			code, out, errOut := runCmd(t, "inspect", fixture(tc.model))
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestInspectGolden compares the whole text output for convnet_op13.onnx
// with testdata/inspect_convnet_op13.golden (go test -update rewrites it).
func TestInspectGolden(t *testing.T) {
	code, out, errOut := runCmd(t, "inspect", fixture("convnet_op13.onnx"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The file path depends on the working directory; the golden file has it relative to the repo root.
	out = strings.Replace(out, fixture("convnet_op13.onnx"), "testdata/models/convnet_op13.onnx", 1)
	golden := filepath.Join("testdata", "inspect_convnet_op13.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("inspect output differs from %s:\ngot:\n%s\nwant:\n%s", golden, out, want)
	}
}

func TestInspectJSON(t *testing.T) {
	type vi struct {
		Name     string   `json:"name"`
		Type     string   `json:"type"`
		Shape    []int64  `json:"shape"`
		DimNames []string `json:"dim_names"`
	}
	var r struct {
		File      string `json:"file"`
		IRVersion int64  `json:"ir_version"`
		Opsets    []struct {
			Domain  string `json:"domain"`
			Version int64  `json:"version"`
		} `json:"opsets"`
		Inputs  []vi `json:"inputs"`
		Outputs []vi `json:"outputs"`
		Nodes   int  `json:"nodes"`
		Ops     []struct {
			Op    string `json:"op"`
			Count int    `json:"count"`
		} `json:"ops"`
		Quantizable []string `json:"quantizable"`
	}
	tests := []struct {
		model    string
		opset    int64
		dimNames []string
		shape    []int64
	}{
		{"convnet_op13.onnx", 13, nil, []int64{1, 3, 16, 16}},
		{"convnet_op11.onnx", 11, nil, []int64{1, 3, 16, 16}},
		{"convnet_op9_const.onnx", 9, nil, []int64{1, 3, 16, 16}},
		{"convnet_dynamic.onnx", 13, []string{"N", "", "", ""}, []int64{-1, 3, 16, 16}},
	}
	for _, tc := range tests {
		t.Run(tc.model, func(t *testing.T) {
			code, out, errOut := runCmd(t, "inspect", "--json", fixture(tc.model))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			r.Inputs = nil
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if r.IRVersion != 7 || len(r.Opsets) != 1 || r.Opsets[0].Domain != "ai.onnx" || r.Opsets[0].Version != tc.opset {
				t.Errorf("ir %d opsets %+v", r.IRVersion, r.Opsets)
			}
			if len(r.Inputs) != 1 || r.Inputs[0].Name != "input" || r.Inputs[0].Type != "FLOAT" {
				t.Fatalf("inputs %+v", r.Inputs)
			}
			if got := r.Inputs[0]; !slices.Equal(got.Shape, tc.shape) || !slices.Equal(got.DimNames, tc.dimNames) {
				t.Errorf("input shape %v dims %q, want %v %q", got.Shape, got.DimNames, tc.shape, tc.dimNames)
			}
			if len(r.Quantizable) != 6 || r.Quantizable[0] != "conv_0" || r.Nodes == 0 || len(r.Ops) == 0 {
				t.Errorf("quantizable %v nodes %d ops %v", r.Quantizable, r.Nodes, r.Ops)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		mention string
	}{
		{"truncated", []string{"inspect", fixture("truncated.onnx")}, "truncated.onnx: truncated ONNX file"},
		{"not onnx", []string{"inspect", fixture("not_onnx.onnx")}, "not_onnx.onnx: not an ONNX model"},
		{"missing weights", []string{"inspect", fixture("missing_weights.onnx")}, `missing weights file "` + fixture("missing_weights.onnx.data")},
		{"no such file", []string{"inspect", "nope.onnx"}, `"nope.onnx" does not exist`},
		{"no argument", []string{"inspect"}, "accepts 1 arg"},
		{"unknown flag", []string{"inspect", "--bogus", fixture("convnet_op13.onnx")}, "unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.args...)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.HasPrefix(errOut, "coordinator: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.mention) {
				t.Errorf("stderr %q, want one line 'coordinator: ...' mentioning %q", errOut, tc.mention)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "coordinator ") || errOut != "" {
		t.Errorf("version: exit %d stdout %q stderr %q", code, out, errOut)
	}
	old := version
	version = "v9.9.9"
	defer func() { version = old }()
	if _, out, _ := runCmd(t, "version"); !strings.HasPrefix(out, "coordinator v9.9.9 ") {
		t.Errorf("version with ldflags: %q", out)
	}
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runCmd(t, "--help")
	if code != 0 || !strings.Contains(out, "inspect") || !strings.Contains(out, "version") {
		t.Errorf("help (exit %d):\n%s", code, out)
	}
}

// TestInspectTensors: --tensors lists every tensor with its inferred type
// (gen_types.py: an int64 shape path, a boolean mask, a float Conv).
func TestInspectTensors(t *testing.T) {
	code, out, errOut := runCmd(t, "inspect", "--tensors", fixture("shape_arith_op13.onnx"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"tensors (", "conv2  ", "FLOAT    [1 4 8 8]", "s2  ", "INT64", "is_one", "BOOL"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --tensors output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCmd(t, "inspect", "--json", "--tensors", fixture("shape_arith_op13.onnx"))
	if code != 0 || !strings.Contains(out, `"tensors": [`) || !strings.Contains(out, `"type": "INT64"`) {
		t.Errorf("inspect --json --tensors: exit %d, %s\n%s", code, errOut, out)
	}
	// Without the flag the output is unchanged (the golden test holds it).
	if _, out, _ := runCmd(t, "inspect", fixture("shape_arith_op13.onnx")); strings.Contains(out, "tensors (") {
		t.Errorf("inspect without --tensors lists tensors")
	}
}

// TestQuantizeFleetFlags: the fleet secret and credential flags are
// checked before anything runs, each with one clear line.
func TestQuantizeFleetFlags(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--nats", "nats://127.0.0.1:1"}, "--nats needs the fleet secret its workers hold: --secret-file FILE or $FLEETCAL_SECRET"},
		{[]string{"--nats", "nats://127.0.0.1:1", "--secret-file", short}, "secret in " + short + ": 4 bytes, want at least 16"},
		{[]string{"--secret-file", "/nonexistent"}, "--secret-file: open /nonexistent: no such file or directory"},
		{[]string{"--token", "t"}, "--token and --creds are for an external server (--nats)"},
		{[]string{"--listen", "127.0.0.1:0", "--creds", "x.creds"}, "--token and --creds are for an external server (--nats)"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("FLEETCAL_SECRET", "")
			args := append([]string{"quantize", "-c", "config.json", "-o", t.TempDir()}, tc.args...)
			code, _, stderr := runCmd(t, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want 1 and one line containing %q", code, stderr, tc.want)
			}
		})
	}
	_, out, _ := runCmd(t, "quantize", "--help")
	for _, flag := range []string{"--secret-file", "--listen", "--nkey"} {
		if !strings.Contains(out, flag) {
			t.Errorf("quantize --help lacks %s", flag)
		}
	}
}
