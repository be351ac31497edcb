package data

import (
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"github.com/fleetcal/fleetcal/pipeline"
)

func TestNpyLoader(t *testing.T) {
	f32 := [1][3][1][2]float32{{{{1, 2}}, {{3, 4}}, {{5, 6}}}}
	tests := []struct {
		name   string
		file   []byte
		cfg    Config
		input  pipeline.TensorInfo
		shape  []int64
		values any
	}{
		{
			name:  "with batch axis",
			file:  npyBytes(t, f32),
			input: in("input", pipeline.Float32, 1, 3, 1, 2),
			shape: []int64{1, 3, 1, 2}, values: []float32{1, 2, 3, 4, 5, 6},
		},
		{
			name:  "without batch axis",
			file:  npyBytes(t, f32[0]),
			input: in("input", pipeline.Float32, 1, 3, 1, 2),
			shape: []int64{1, 3, 1, 2}, values: []float32{1, 2, 3, 4, 5, 6},
		},
		{
			name:  "dynamic dims",
			file:  npyBytes(t, f32[0]),
			input: in("input", pipeline.Float32, -1, 3, -1, -1),
			shape: []int64{1, 3, 1, 2}, values: []float32{1, 2, 3, 4, 5, 6},
		},
		{name: "uint8", file: npyBytes(t, [1][2]uint8{{0, 255}}), input: in("x", pipeline.Uint8, 1, 2), shape: []int64{1, 2}, values: []uint8{0, 255}},
		{name: "int8", file: npyBytes(t, [2]int8{-128, 127}), input: in("x", pipeline.Int8, 1, 2), shape: []int64{1, 2}, values: []int8{-128, 127}},
		{name: "int32", file: npyBytes(t, [2]int32{-7, 1 << 30}), input: in("x", pipeline.Int32, 2), shape: []int64{2}, values: []int32{-7, 1 << 30}},
		{name: "int64", file: npyBytes(t, [2]int64{101, -1 << 40}), input: in("ids", pipeline.Int64, 1, -1), shape: []int64{1, 2}, values: []int64{101, -1 << 40}},
		{name: "float64", file: npyBytes(t, [2]float64{0.1, 1e300}), input: in("x", pipeline.Float64, 1, 2), shape: []int64{1, 2}, values: []float64{0.1, 1e300}},
		{name: "scalar", file: npyBytes(t, float32(2.5)), input: in("t", pipeline.Float32), shape: []int64{}, values: []float32{2.5}},
		{
			name:  "explicit cast with dtype",
			file:  npyBytes(t, [2]uint8{3, 200}),
			cfg:   Config{DType: "float32"},
			input: in("x", pipeline.Float32, 1, 2), shape: []int64{1, 2}, values: []float32{3, 200},
		},
		{
			// column-major [[0 1 2] [3 4 5]] is stored 0 3 1 4 2 5.
			name:  "fortran order",
			file:  rawNpy("<i8", true, "(2, 3)", le64(0, 3, 1, 4, 2, 5)),
			input: in("x", pipeline.Int64, 2, 3), shape: []int64{2, 3}, values: []int64{0, 1, 2, 3, 4, 5},
		},
		{
			// 1.0 = 0x3f800000 and -2.0 = 0xc0000000, big-endian.
			name:  "big endian",
			file:  rawNpy(">f4", false, "(2,)", []byte{0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}),
			input: in("x", pipeline.Float32, 2), shape: []int64{2}, values: []float32{1, -2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			p := writeFile(t, filepath.Join(base, "calib"), "s.npy", tc.file)
			tc.cfg.Type, tc.cfg.Path = "npy", "calib"
			l, err := Open(t.Context(), tc.cfg, nil, base, []pipeline.TensorInfo{tc.input})
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != 1 {
				t.Fatalf("Len() = %d, want 1", l.Len())
			}
			s, err := l.Item(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Inputs[tc.input.Name]
			if !slices.Equal(got.Shape, tc.shape) || !reflect.DeepEqual(got.Data, tc.values) {
				t.Errorf("got shape %v data %v, want %v %v", got.Shape, got.Data, tc.shape, tc.values)
			}
			if s.Metadata["path"] != p || s.Annotation != nil {
				t.Errorf("metadata %v annotation %v, want path %s and no annotation", s.Metadata, s.Annotation, p)
			}
		})
	}
}

func le64(v ...int64) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

// TestNpyOrder checks samples are sorted by file name, and concurrent Item
// calls return the same samples.
func TestNpyOrder(t *testing.T) {
	base := t.TempDir()
	for _, name := range []string{"c", "a", "b"} {
		writeFile(t, base, name+".npy", npyBytes(t, [1]float32{float32(name[0])}))
	}
	l, err := Open(t.Context(), Config{Type: "npy", Path: "."}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i, want := range []float32{'a', 'b', 'c'} {
				s, err := l.Item(t.Context(), i)
				if err != nil {
					t.Error(err)
					return
				}
				if got := s.Inputs["x"].Data.([]float32)[0]; got != want {
					t.Errorf("sample %d = %v, want %v", i, got, want)
				}
			}
		})
	}
	wg.Wait()
}

func TestNpz(t *testing.T) {
	image := [1][2]float32{{0.5, 1.5}}
	mask := [2]int64{1, 0}
	inputs := []pipeline.TensorInfo{in("image", pipeline.Float32, 1, 2), in("mask", pipeline.Int64, 1, 2)}
	tests := []struct {
		name   string
		arrays map[string]any
		err    string
	}{
		// numpy's savez writes "image.npy"; the suffix is optional.
		{name: "by name", arrays: map[string]any{"image.npy": image, "mask": mask}},
		{name: "by position", arrays: map[string]any{"arr_0.npy": image, "arr_1.npy": mask}},
		{name: "missing input", arrays: map[string]any{"image.npy": image},
			err: `sample 0 (calib/s.npz): no array for input "mask"; arrays: image`},
		{name: "extra array", arrays: map[string]any{"image": image, "mask": mask, "maks": mask},
			err: `sample 0 (calib/s.npz): array "maks" is not a model input; inputs: image, mask`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			writeFile(t, filepath.Join(base, "calib"), "keep", nil)
			if err := npz.Write(filepath.Join(base, "calib", "s.npz"), tc.arrays); err != nil {
				t.Fatal(err)
			}
			l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, nil, base, inputs)
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.Item(t.Context(), 0)
			if tc.err != "" {
				wantErr(t, err, tc.err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Inputs["image"]; !slices.Equal(got.Shape, []int64{1, 2}) || !slices.Equal(got.Data.([]float32), []float32{0.5, 1.5}) {
				t.Errorf("image = %+v", got)
			}
			if got := s.Inputs["mask"]; !slices.Equal(got.Shape, []int64{1, 2}) || !slices.Equal(got.Data.([]int64), []int64{1, 0}) {
				t.Errorf("mask = %+v", got)
			}
		})
	}
}

func TestNpyErrors(t *testing.T) {
	one := []pipeline.TensorInfo{in("input", pipeline.Float32, 1, 3, 16, 16)}
	tests := []struct {
		name   string
		files  map[string][]byte
		inputs []pipeline.TensorInfo
		index  int
		openErr,
		itemErr string
		is error
	}{
		{
			name:   "wrong dtype",
			files:  map[string][]byte{"x.npy": npyBytes(t, [1][3][16][16]uint8{})},
			inputs: one,
			itemErr: `sample 0 (calib/x.npy): input "input": dtype uint8, model wants float32 ` +
				`(convert the files, or set data_source.dtype to cast)`,
			is: ErrMismatch,
		},
		{
			name:    "wrong shape",
			files:   map[string][]byte{"a.npy": npyBytes(t, [3][16][16]float32{}), "x.npy": npyBytes(t, [3][8][8]float32{})},
			inputs:  one,
			index:   1,
			itemErr: `sample 1 (calib/x.npy): input "input": shape [1 3 8 8], model wants [1 3 16 16]`,
			is:      ErrMismatch,
		},
		{
			name:    "NaN",
			files:   map[string][]byte{"x.npy": npyBytes(t, [3]float32{1, float32(math.NaN()), 2})},
			inputs:  []pipeline.TensorInfo{in("input", pipeline.Float32, 3)},
			itemErr: `sample 0 (calib/x.npy): input "input": NaN at element 1`,
		},
		{
			name:    "not npy",
			files:   map[string][]byte{"x.npy": []byte("PK\x03\x04 not a numpy file")},
			inputs:  one,
			itemErr: `sample 0 (calib/x.npy): npy: not a .npy file (bad magic)`,
			is:      ErrBadFile,
		},
		{
			name:    "truncated",
			files:   map[string][]byte{"x.npy": truncate(npyBytes(t, [4]float32{}), 6)},
			inputs:  []pipeline.TensorInfo{in("input", pipeline.Float32, 4)},
			itemErr: `sample 0 (calib/x.npy): npy: shape [4] of float32 needs 16 bytes of data, file has 10`,
		},
		{
			name:    "index past end",
			files:   map[string][]byte{"x.npy": npyBytes(t, [1]float32{})},
			inputs:  one,
			index:   1,
			itemErr: "sample 1: sample index out of range [0, 1)",
			is:      pipeline.ErrIndexOutOfRange,
		},
		{
			name:    "negative index",
			files:   map[string][]byte{"x.npy": npyBytes(t, [1]float32{})},
			inputs:  one,
			index:   -1,
			itemErr: "sample -1: sample index out of range [0, 1)",
			is:      pipeline.ErrIndexOutOfRange,
		},
		{name: "empty folder", files: map[string][]byte{"README": nil}, inputs: one,
			openErr: "data source calib: no .npy or .npz files in the folder", is: ErrNoData},
		{
			name:    "mixed npy and npz",
			files:   map[string][]byte{"a.npy": nil, "b.npz": nil},
			inputs:  one,
			openErr: "data source calib: mixes .npy (a.npy) and .npz (b.npz) files; use one kind",
		},
		{
			name:    "npy for two inputs",
			files:   map[string][]byte{"a.npy": nil},
			inputs:  []pipeline.TensorInfo{in("a", 0), in("b", 0)},
			openErr: "data source calib: the model has 2 inputs (a, b) and a .npy file feeds one",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for name, b := range tc.files {
				writeFile(t, filepath.Join(base, "calib"), name, b)
			}
			l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, nil, base, tc.inputs)
			if tc.openErr != "" {
				wantErr(t, err, tc.openErr)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				_, err = l.Item(t.Context(), tc.index)
				wantErr(t, err, tc.itemErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}

// truncate drops the last n bytes of b.
func truncate(b []byte, n int) []byte { return b[:len(b)-n] }
