package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Three 2x2 images and their labels.
var (
	idxPixels = []byte{0, 51, 102, 153, 204, 255, 0, 0, 1, 2, 3, 4}
	idxLabels = []byte{7, 0, 3}
)

// writeMNIST writes <prefix>-images-idx3-ubyte[.gz] and, when labels is
// set, the labels file beside it; it returns the images file.
func writeMNIST(t *testing.T, dir, prefix string, gz, labels bool) string {
	t.Helper()
	ext := ""
	if gz {
		ext = ".gz"
	}
	if labels {
		writeFile(t, dir, prefix+"-labels-idx1-ubyte"+ext, idxBytes(t, []uint32{3}, idxLabels, gz))
	}
	return writeFile(t, dir, prefix+"-images-idx3-ubyte"+ext, idxBytes(t, []uint32{3, 2, 2}, idxPixels, gz))
}

func TestIdx(t *testing.T) {
	by255 := func(x float64) float64 { return x / 255 } // the default scale
	tests := []struct {
		name   string
		gz     bool
		noLab  bool
		path   string // relative to the base folder; default "mnist"
		cfg    Config
		input  pipeline.TensorInfo
		shape  []int64
		want   any // sample 1
		label  any // sample 1
		labels map[string]any
	}{
		{name: "raw NCHW", input: in("x", pipeline.Float32, 1, 1, 2, 2), shape: []int64{1, 1, 2, 2},
			want: f32(by255, 204, 255, 0, 0), label: 0},
		{name: "gzipped, flat model", gz: true, input: in("x", pipeline.Float32, 1, 4), shape: []int64{1, 4},
			want: f32(by255, 204, 255, 0, 0), label: 0},
		{name: "dynamic dims", input: in("x", 0, -1, 1, -1, -1), shape: []int64{1, 1, 2, 2}, want: f32(by255, 204, 255, 0, 0), label: 0},
		{name: "dynamic flat", input: in("x", 0, -1, -1), shape: []int64{1, 4}, want: f32(by255, 204, 255, 0, 0), label: 0},
		{name: "path names the file", gz: true, path: "mnist/train-images-idx3-ubyte.gz", input: in("x", 0, 1, 1, 2, 2),
			shape: []int64{1, 1, 2, 2}, want: f32(by255, 204, 255, 0, 0), label: 0},
		{name: "no labels file", noLab: true, input: in("x", 0, 1, 2, 2), shape: []int64{1, 2, 2}, want: f32(by255, 204, 255, 0, 0)},
		{name: "mean and std", cfg: Config{Mean: []float64{0.5}, Std: []float64{0.5}}, input: in("x", 0, 1, 4), shape: []int64{1, 4},
			want: f32(func(x float64) float64 { return (x/255 - 0.5) / 0.5 }, 204, 255, 0, 0), label: 0},
		{name: "raw uint8", cfg: Config{DType: "uint8", Scale: 1}, input: in("x", 0, 1, 4), shape: []int64{1, 4},
			want: []uint8{204, 255, 0, 0}, label: 0},
		{name: "annotations override labels", input: in("x", 0, 1, 4), shape: []int64{1, 4}, want: f32(by255, 204, 255, 0, 0),
			labels: map[string]any{"0": "a", "1": "b", "2": "c"}, label: "b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			writeMNIST(t, filepath.Join(base, "mnist"), "train", tc.gz, !tc.noLab)
			tc.cfg.Type, tc.cfg.Path = "idx", "mnist"
			if tc.path != "" {
				tc.cfg.Path = tc.path
			}
			var ann *Annotations
			if tc.labels != nil {
				ann = &Annotations{Path: "labels.json"}
				writeFile(t, base, "labels.json", []byte(`{"0": "a", "1": "b", "2": "c"}`))
			}
			l, err := Open(t.Context(), tc.cfg, ann, base, []pipeline.TensorInfo{tc.input})
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != 3 {
				t.Fatalf("Len() = %d, want 3", l.Len())
			}
			s, err := l.Item(t.Context(), 1)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Inputs["x"]
			if !slices.Equal(got.Shape, tc.shape) || !reflect.DeepEqual(got.Data, tc.want) || s.Annotation != tc.label {
				t.Errorf("sample 1: %v %v label %v\nwant %v %v label %v", got.Shape, got.Data, s.Annotation, tc.shape, tc.want, tc.label)
			}
			if s.Metadata["index"] != 1 {
				t.Errorf("metadata %v", s.Metadata)
			}
		})
	}
}

func TestIdxSubset(t *testing.T) {
	base := t.TempDir()
	writeMNIST(t, base, "train", true, true)
	writeFile(t, base, "t10k-images-idx3-ubyte.gz", idxBytes(t, []uint32{1, 2, 2}, []byte{9, 9, 9, 9}, true))
	writeFile(t, base, "t10k-labels-idx1-ubyte.gz", idxBytes(t, []uint32{1}, []byte{5}, true))
	model := []pipeline.TensorInfo{in("x", 0, 1, 4)}

	_, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, model)
	wantErr(t, err, `data source .: several IDX images files (t10k-images-idx3-ubyte.gz, train-images-idx3-ubyte.gz); set data_source.subset`)

	l, err := Open(t.Context(), Config{Type: "idx", Path: ".", Subset: "t10k", Scale: 9}, nil, base, model)
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Item(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 1 || !slices.Equal(s.Inputs["x"].Data.([]float32), []float32{1, 1, 1, 1}) || s.Annotation != 5 {
		t.Errorf("t10k: Len %d, sample 0 %v label %v; want 1, 9/9 = 1, label 5", l.Len(), s.Inputs["x"].Data, s.Annotation)
	}

	_, err = Open(t.Context(), Config{Type: "idx", Path: ".", Subset: "val"}, nil, base, model)
	wantErr(t, err, `no IDX images file starts with subset "val"`)
}

func TestIdxErrors(t *testing.T) {
	model := []pipeline.TensorInfo{in("x", 0, 1, 1, 2, 2)}
	tests := []struct {
		name   string
		images []byte
		labels []byte
		input  pipeline.TensorInfo
		err    string
		is     error
	}{
		{
			name:   "truncated",
			images: idxBytes(t, []uint32{3, 2, 2}, idxPixels[:10], false),
			err:    "data source d/train-images-idx3-ubyte: truncated: header declares dimensions [3 2 2] (12 bytes of data), file has 10",
			is:     ErrBadFile,
		},
		{
			name:   "truncated gzip",
			images: truncate(idxBytes(t, []uint32{3, 2, 2}, idxPixels, true), 12),
			err:    "data source d/train-images-idx3-ubyte: truncated: compressed stream ends after 12 bytes of data; header declares dimensions [3 2 2] (12 bytes)",
			is:     ErrBadFile,
		},
		{
			name:   "truncated header",
			images: idxBytes(t, []uint32{3, 2, 2}, nil, false)[:9],
			err:    "data source d/train-images-idx3-ubyte: truncated header",
			is:     ErrBadFile,
		},
		{
			name:   "labels for images",
			images: idxBytes(t, []uint32{3}, idxLabels, false),
			err:    "data source d/train-images-idx3-ubyte: magic number 0x00000801, want 0x00000803 (unsigned bytes, 3 dimensions)",
			is:     ErrBadFile,
		},
		{
			name:   "bad magic",
			images: append([]byte{0x1f, 0x00, 0x08, 0x03}, idxBytes(t, []uint32{3, 2, 2}, idxPixels, false)[4:]...),
			err:    "magic number 0x1f000803, want 0x00000803",
		},
		{
			name:   "extra data",
			images: idxBytes(t, []uint32{2, 2, 2}, idxPixels, false),
			err:    "data longer than the 8 bytes declared by dimensions [2 2 2]",
		},
		{
			name:   "label count",
			images: idxBytes(t, []uint32{3, 2, 2}, idxPixels, false),
			labels: idxBytes(t, []uint32{2}, idxLabels[:2], false),
			err:    "data source d/train-images-idx3-ubyte: 2 labels in train-labels-idx1-ubyte for 3 images",
		},
		{
			name:   "bad labels magic",
			images: idxBytes(t, []uint32{3, 2, 2}, idxPixels, false),
			labels: idxBytes(t, []uint32{3, 1, 1}, idxLabels, false),
			err:    "data source d/train-labels-idx1-ubyte: magic number 0x00000803, want 0x00000801",
		},
		{
			name:   "model shape",
			images: idxBytes(t, []uint32{3, 2, 2}, idxPixels, false),
			input:  in("x", 0, 1, 3, 2, 2),
			err:    `data source d/train-images-idx3-ubyte: input "x": shape [1 3 2 2] does not hold one 2x2 image (4 values)`,
			is:     ErrMismatch,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			writeFile(t, filepath.Join(base, "d"), "train-images-idx3-ubyte", tc.images)
			if tc.labels != nil {
				writeFile(t, filepath.Join(base, "d"), "train-labels-idx1-ubyte", tc.labels)
			}
			inputs := model
			if tc.input.Name != "" {
				inputs = []pipeline.TensorInfo{tc.input}
			}
			_, err := Open(t.Context(), Config{Type: "idx", Path: "d"}, nil, base, inputs)
			wantErr(t, err, tc.err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}

func TestIdxIndexPastEnd(t *testing.T) {
	base := t.TempDir()
	writeMNIST(t, base, "train", false, true)
	l, err := Open(t.Context(), Config{Type: "idx", Path: "."}, nil, base, []pipeline.TensorInfo{in("x", 0, 1, 4)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Item(t.Context(), 3)
	wantErr(t, err, "sample 3: sample index out of range [0, 3)")
	if !errors.Is(err, pipeline.ErrIndexOutOfRange) {
		t.Errorf("%v does not wrap pipeline.ErrIndexOutOfRange", err)
	}
}

// TestFashionMNIST reads Debian's dataset-fashion-mnist when installed.
func TestFashionMNIST(t *testing.T) {
	const dir = "/usr/share/datasets/fashion-mnist"
	if _, err := os.Stat(filepath.Join(dir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Debian package dataset-fashion-mnist not installed (%v)", err)
	}
	l, err := Open(t.Context(), Config{Type: "idx", Path: dir, Subset: "t10k"}, nil, "", []pipeline.TensorInfo{in("input", pipeline.Float32, -1, 1, 28, 28)})
	if err != nil {
		t.Fatal(err)
	}
	// The test set has 10000 images; its first label is 9 (ankle boot), its
	// second 2 (pullover): bytes 8 and 9 of t10k-labels-idx1-ubyte.
	if l.Len() != 10000 {
		t.Errorf("Len() = %d, want 10000", l.Len())
	}
	for i, want := range []int{9, 2} {
		s, err := l.Item(t.Context(), i)
		if err != nil {
			t.Fatal(err)
		}
		x := s.Inputs["input"]
		if !slices.Equal(x.Shape, []int64{1, 1, 28, 28}) || s.Annotation != want {
			t.Errorf("sample %d: shape %v label %v, want [1 1 28 28] label %d", i, x.Shape, s.Annotation, want)
		}
		for _, v := range x.Data.([]float32) {
			if v < 0 || v > 1 {
				t.Fatalf("sample %d: value %v outside [0, 1]", i, v)
			}
		}
	}
}
