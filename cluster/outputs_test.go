package cluster

import (
	"encoding/gob"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func TestOutputsRoundTrip(t *testing.T) {
	samples := []sampleOutputs{
		{index: 3, annotation: 7, outputs: map[string]pipeline.Tensor{
			"logits": {Shape: []int64{1, 3}, Data: []float32{1.5, float32(math.Inf(-1)), -0}},
			"ids":    {Shape: []int64{2}, Data: []int64{-1, math.MaxInt64}},
		}},
		{index: 0, annotation: "cat", outputs: map[string]pipeline.Tensor{
			"u8":  {Shape: []int64{2, 2}, Data: []uint8{0, 1, 254, 255}},
			"i8":  {Shape: []int64{1}, Data: []int8{-128}},
			"i32": {Shape: []int64{}, Data: []int32{-7}},
			"f64": {Shape: []int64{1, 0}, Data: []float64{}},
		}},
		{index: 1 << 20, annotation: nil, outputs: map[string]pipeline.Tensor{}},
	}
	var enc outputsEncoder
	for _, s := range samples {
		if err := enc.add(s.index, s.outputs, s.annotation); err != nil {
			t.Fatal(err)
		}
	}
	got, err := decodeOutputs(enc.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, samples) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got, samples)
	}
	// int32 annotations travel as int.
	var e2 outputsEncoder
	if err := e2.add(0, nil, int32(4)); err != nil {
		t.Fatal(err)
	}
	if got, _ := decodeOutputs(e2.bytes()); got[0].annotation != 4 {
		t.Errorf("int32 annotation came back as %#v", got[0].annotation)
	}
	if err := e2.add(1, nil, unregistered{1}); err == nil || !strings.Contains(err.Error(), "sample 1: annotation of type cluster.unregistered cannot be sent to the coordinator: gob: type not registered for interface: cluster.unregistered (register a type of your own with gob.Register") {
		t.Errorf("an unregistered annotation type: err = %v", err)
	}
	if err := e2.add(1, nil, make(chan int)); err == nil {
		t.Error("a channel annotation was accepted")
	}
	if err := e2.add(1, map[string]pipeline.Tensor{"x": {Shape: []int64{3}, Data: []float32{1}}}, nil); err == nil {
		t.Error("a tensor with a wrong element count was accepted")
	}
}

type unregistered struct{ X float32 }

// registeredBox is a user's annotation type, registered with gob.
type registeredBox struct {
	Label int
	Box   [4]float32
}

func init() {
	gob.Register(registeredBox{})
	gob.Register([]registeredBox(nil)) // a slice is a type of its own for gob
}

// Annotations of other types than integers and strings keep their Go type.
func TestOutputsAnyAnnotation(t *testing.T) {
	for _, a := range []any{
		[]float32{0.1, 0.2, 0.5, 0.75},
		[][]float32{{0, 0, 1, 1}, {0.5, 0.5, 1, 1}},
		2.5,
		map[string]any{"boxes": []any{1.5, "x"}, "n": 2},
		registeredBox{Label: 3, Box: [4]float32{1, 2, 3, 4}},
		[]registeredBox{{Label: 1}},
	} {
		var enc outputsEncoder
		out := map[string]pipeline.Tensor{"y": {Shape: []int64{1}, Data: []float32{1}}}
		if err := enc.add(5, out, a); err != nil {
			t.Fatalf("%T: %v", a, err)
		}
		got, err := decodeOutputs(enc.bytes())
		if err != nil {
			t.Fatalf("%T: %v", a, err)
		}
		if want := []sampleOutputs{{index: 5, annotation: a, outputs: out}}; !reflect.DeepEqual(got, want) {
			t.Errorf("round trip of %T:\ngot  %#v\nwant %#v", a, got, want)
		}
	}
	// Garbage where the gob should be names the sample.
	if _, err := decodeOutputs([]byte("FCOU\x01\x01\x0a\x03\x02\xff\xff\x00")); err == nil || !strings.Contains(err.Error(), "sample 5: annotation") {
		t.Errorf("bad gob: err = %v", err)
	}
}

func TestDecodeOutputsRejects(t *testing.T) {
	for name, b := range map[string]string{
		"empty":          "",
		"magic":          "XXXX\x01\x00",
		"version":        "FCOU\x02\x00",
		"huge count":     "FCOU\x01\xff\xff\xff\xff\x0f",
		"trailing":       "FCOU\x01\x00\x00",
		"bad tag":        "FCOU\x01\x01\x00\x07\x00",
		"unknown dtype":  "FCOU\x01\x01\x00\x00\x01\x01x\x63\x00",
		"huge dimension": "FCOU\x01\x01\x00\x00\x01\x01x\x01\x02\xff\xff\xff\xff\x0f\xff\xff\xff\xff\x0f",
		"truncated data": "FCOU\x01\x01\x00\x00\x01\x01x\x01\x01\x02\x00\x00\x00",
	} {
		if _, err := decodeOutputs([]byte(b)); !errors.Is(err, errOutputs) {
			t.Errorf("%s: got %v, want errOutputs", name, err)
		}
	}
}

// FuzzDecodeOutputs: the decoder never panics, and what it accepts
// re-encodes to bytes it decodes to the same samples (the same bytes again).
func FuzzDecodeOutputs(f *testing.F) {
	var enc outputsEncoder
	_ = enc.add(2, map[string]pipeline.Tensor{"logits": {Shape: []int64{1, 2}, Data: []float32{1, 2}}}, 1)
	_ = enc.add(5, map[string]pipeline.Tensor{"a": {Shape: []int64{1}, Data: []int64{9}}, "b": {Shape: []int64{1}, Data: []uint8{3}}}, "x")
	f.Add(enc.bytes())
	f.Add([]byte("FCOU\x01\x00"))
	reencode := func(t *testing.T, samples []sampleOutputs) []byte {
		var e outputsEncoder
		for _, s := range samples {
			if err := e.add(s.index, s.outputs, s.annotation); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
		return e.bytes()
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeOutputs(b)
		if err != nil {
			return
		}
		once := reencode(t, got)
		again, err := decodeOutputs(once)
		if err != nil {
			t.Fatalf("decode of a re-encoding: %v", err)
		}
		if string(reencode(t, again)) != string(once) {
			t.Fatalf("re-encodings differ")
		}
	})
}

// BenchmarkOutputsAnnotation encodes and decodes one sample's outputs (10
// logits) with an integer label and with a box ([]float32, through gob).
func BenchmarkOutputsAnnotation(b *testing.B) {
	out := map[string]pipeline.Tensor{"logits": {Shape: []int64{1, 10}, Data: make([]float32, 10)}}
	for _, bc := range []struct {
		name string
		a    any
	}{{"Label", 7}, {"Box", []float32{0.1, 0.2, 0.5, 0.75}}} {
		b.Run(bc.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				var enc outputsEncoder
				if err := enc.add(3, out, bc.a); err != nil {
					b.Fatal(err)
				}
				raw := enc.bytes()
				if _, err := decodeOutputs(raw); err != nil {
					b.Fatal(err)
				}
				size = len(raw)
			}
			b.ReportMetric(float64(size), "bytes/sample")
		})
	}
}
