package data

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func TestConfigUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    Config
		wantErr []string
	}{
		{
			name: "object",
			json: `{"type": "images", "path": "calib/", "size": [224, 200], "layout": "NHWC", "channel_order": "BGR",
			        "grayscale": true, "mean": [1, 2, 3], "std": [4, 5, 6], "scale": 255, "dtype": "float32", "subset": "t10k"}`,
			want: Config{Type: "images", Path: "calib/", Size: []int{224, 200}, Layout: "NHWC", ChannelOrder: "BGR",
				Grayscale: true, Mean: []float64{1, 2, 3}, Std: []float64{4, 5, 6}, Scale: 255, DType: "float32", Subset: "t10k"},
		},
		{name: "POT string form", json: `"calib/"`, want: Config{Path: "calib/"}},
		{
			name:    "unknown key",
			json:    `{"type": "images", "path": "x", "chanel_order": "BGR"}`,
			wantErr: []string{`data_source`, `unknown key "chanel_order"`, "valid keys: base_dir, channel_order, dtype, grayscale, layout, max_decoded_bytes, mean, path, scale, size, std, subset, type"},
		},
		{name: "wrong JSON type", json: `{"size": "224"}`, wantErr: []string{"data_source.size", "want []int"}},
		{name: "not an object", json: `[1]`, wantErr: []string{"data_source: want an object or a path string"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			err := json.Unmarshal([]byte(tc.json), &c)
			if tc.wantErr != nil {
				wantErr(t, err, tc.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tc.want) {
				t.Errorf("decoded %s\n got %+v\nwant %+v", tc.json, c, tc.want)
			}
		})
	}
}

func TestAnnotationsUnmarshal(t *testing.T) {
	var a Annotations
	if err := json.Unmarshal([]byte(`{"path": "labels.json"}`), &a); err != nil || a.Path != "labels.json" {
		t.Errorf("object: %+v, %v", a, err)
	}
	if err := json.Unmarshal([]byte(`"labels.csv"`), &a); err != nil || a.Path != "labels.csv" {
		t.Errorf("string: %+v, %v", a, err)
	}
	err := json.Unmarshal([]byte(`{"file": "labels.csv"}`), &a)
	wantErr(t, err, `annotations`, `unknown key "file"`, "valid keys: path")
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Layout: "CHWN"}, "data_source.layout"},
		{Config{ChannelOrder: "RGBA"}, "data_source.channel_order"},
		{Config{Size: []int{224}}, "data_source.size"},
		{Config{Size: []int{0, 3}}, "data_source.size"},
		{Config{Std: []float64{1, 0, 1}}, "data_source.std"},
		{Config{Scale: -1}, "data_source.scale"},
		{Config{DType: "float16"}, `data_source.dtype: unknown dtype "float16"; valid: float32, float64, int32, int64, int8, uint8`},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		wantErr(t, err, tc.want)
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v does not wrap ErrBadConfig", tc.cfg, err)
		}
	}
	if err := (Config{Layout: "nhwc", ChannelOrder: "bgr", Size: []int{2, 3}, Std: []float64{2}, DType: "uint8"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	if got, want := Names(), []string{"idx", "images", "npy"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering npy twice did not panic")
		}
	}()
	Register("npy", openNpy)
}

func TestOpenUnknownType(t *testing.T) {
	_, err := Open(t.Context(), Config{Type: "csv", Path: "x"}, nil, t.TempDir(), []pipeline.TensorInfo{in("x", 0, 1)})
	wantErr(t, err, `data_source.type: unknown type "csv"; valid types: idx, images, npy`)
	if !errors.Is(err, ErrUnknownType) {
		t.Errorf("%v does not wrap ErrUnknownType", err)
	}
}

func TestGuessType(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "npy"), "a.npy", nil)
	writeFile(t, filepath.Join(dir, "npy"), "notes.txt", nil)
	writeFile(t, filepath.Join(dir, "img"), "a.JPG", nil)
	writeFile(t, filepath.Join(dir, "img"), "b.png", nil)
	idxFile := writeFile(t, filepath.Join(dir, "mnist"), "train-images-idx3-ubyte.gz", nil)
	writeFile(t, filepath.Join(dir, "mixed"), "a.npz", nil)
	writeFile(t, filepath.Join(dir, "mixed"), "b.png", nil)
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want, err string
	}{
		{path: "npy", want: "npy"},
		{path: "img", want: "images"},
		{path: "mnist", want: "idx"},
		{path: idxFile, want: "idx"},
		{path: "mixed", err: "mixes several kinds of data: images (b.png), npy (a.npz); set data_source.type"},
		{path: "empty", err: "folder " + filepath.Join(dir, "empty") + " has no .npy"},
	}
	for _, tc := range tests {
		got, err := GuessType(resolve(dir, tc.path))
		if tc.err != "" {
			wantErr(t, err, tc.err)
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("GuessType(%s) = %q, %v; want %q", tc.path, got, err, tc.want)
		}
	}
}

func TestOpenStringForm(t *testing.T) {
	base := t.TempDir()
	writeFile(t, filepath.Join(base, "calib"), "x.npy", npyBytes(t, [2]float32{1.5, -2}))
	var cfg Config
	if err := json.Unmarshal([]byte(`"calib"`), &cfg); err != nil {
		t.Fatal(err)
	}
	l, err := Open(t.Context(), cfg, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Item(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Inputs["x"]; !slices.Equal(got.Shape, []int64{1, 2}) || !slices.Equal(got.Data.([]float32), []float32{1.5, -2}) {
		t.Errorf("sample 0: %+v, want shape [1 2] data [1.5 -2]", got)
	}
}
