package cluster

import (
	"errors"
	"math"
	"reflect"
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
	if err := e2.add(1, nil, 2.5); err == nil {
		t.Error("a float annotation was accepted")
	}
	if err := e2.add(1, map[string]pipeline.Tensor{"x": {Shape: []int64{3}, Data: []float32{1}}}, nil); err == nil {
		t.Error("a tensor with a wrong element count was accepted")
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
