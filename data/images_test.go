package data

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

// quad is a 2x2 image: red, green on the first row; blue, (10, 20, 30) on
// the second.
func quad() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
	img.Set(1, 0, color.NRGBA{0, 255, 0, 255})
	img.Set(0, 1, color.NRGBA{0, 0, 255, 255})
	img.Set(1, 1, color.NRGBA{10, 20, 30, 255})
	return img
}

func uniform(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	return img
}

// f32 applies f to each value, rounding once to float32 as the loader does.
func f32(f func(float64) float64, v ...float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(f(x))
	}
	return out
}

func id(x float64) float64 { return x }

// luma is ITU-R BT.601, the weights the loader uses.
func luma(r, g, b float64) float64 { return 0.299*r + 0.587*g + 0.114*b }

func TestImages(t *testing.T) {
	rgb := []float64{255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30} // quad, NCHW, RGB
	tests := []struct {
		name  string
		img   image.Image
		cfg   Config
		input pipeline.TensorInfo
		shape []int64
		want  any
	}{
		{name: "NCHW RGB raw pixels", img: quad(), input: in("x", pipeline.Float32, 1, 3, 2, 2),
			shape: []int64{1, 3, 2, 2}, want: f32(id, rgb...)},
		{name: "scale 255", img: quad(), cfg: Config{Scale: 255}, input: in("x", pipeline.Float32, 1, 3, 2, 2),
			shape: []int64{1, 3, 2, 2}, want: f32(func(x float64) float64 { return x / 255 }, rgb...)},
		{name: "BGR", img: quad(), cfg: Config{ChannelOrder: "BGR"}, input: in("x", pipeline.Float32, 1, 3, 2, 2),
			shape: []int64{1, 3, 2, 2}, want: f32(id, 0, 0, 255, 30, 0, 255, 0, 20, 255, 0, 0, 10)},
		{name: "NHWC", img: quad(), cfg: Config{Layout: "NHWC"}, input: in("x", pipeline.Float32, 1, 2, 2, 3),
			shape: []int64{1, 2, 2, 3}, want: f32(id, 255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30)},
		{
			// (x - mean[c]) / 5 by hand: R (255-10)/5 = 49, (0-10)/5 = -2; G (255-20)/5 = 47, -4; B (255-30)/5 = 45, -6.
			name: "mean and std per channel", img: quad(), cfg: Config{Mean: []float64{10, 20, 30}, Std: []float64{5}},
			input: in("x", pipeline.Float32, 1, 3, 2, 2), shape: []int64{1, 3, 2, 2},
			want: []float32{49, -2, -2, 0, -4, 47, -4, 0, -6, -6, 45, 0},
		},
		{name: "grayscale for a one-channel model", img: quad(), input: in("x", pipeline.Float32, 1, 1, 2, 2), shape: []int64{1, 1, 2, 2},
			want: f32(id, luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255), luma(10, 20, 30))},
		{name: "grayscale replicated", img: quad(), cfg: Config{Grayscale: true}, input: in("x", pipeline.Float32, 1, 3, 1, 1), shape: []int64{1, 3, 1, 1},
			// 2x2 → 1x1 samples the centre: every pixel weighs 1/4, rounded to 8 bits per channel:
			// R (255+10)/4 = 66.25 → 66, G (255+20)/4 = 68.75 → 69, B (255+30)/4 = 71.25 → 71.
			want: f32(id, luma(66, 69, 71), luma(66, 69, 71), luma(66, 69, 71))},
		{name: "uint8 model", img: quad(), input: in("x", pipeline.Uint8, 1, 3, 2, 2), shape: []int64{1, 3, 2, 2},
			want: []uint8{255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 255, 30}},
		{name: "rank 3", img: quad(), input: in("x", 0, 3, 2, 2), shape: []int64{3, 2, 2}, want: f32(id, rgb...)},
		{name: "size for dynamic dims", img: quad(), cfg: Config{Size: []int{2, 2}}, input: in("x", pipeline.Float32, -1, 3, -1, -1),
			shape: []int64{1, 3, 2, 2}, want: f32(id, rgb...)},
		{name: "resize keeps a uniform colour", img: uniform(5, 3, color.NRGBA{100, 150, 200, 255}), input: in("x", pipeline.Float32, 1, 3, 2, 2),
			shape: []int64{1, 3, 2, 2}, want: f32(id, 100, 100, 100, 100, 150, 150, 150, 150, 200, 200, 200, 200)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			p := writeFile(t, filepath.Join(base, "img"), "a.png", pngBytes(t, tc.img))
			tc.cfg.Type, tc.cfg.Path = "images", "img"
			l, err := Open(t.Context(), tc.cfg, nil, base, []pipeline.TensorInfo{tc.input})
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.Item(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Inputs["x"]
			if !slices.Equal(got.Shape, tc.shape) || !reflect.DeepEqual(got.Data, tc.want) {
				t.Errorf("got %v %v\nwant %v %v", got.Shape, got.Data, tc.shape, tc.want)
			}
			b := tc.img.Bounds()
			if s.Metadata["path"] != p || !slices.Equal(s.Metadata["original_size"].([]int), []int{b.Dy(), b.Dx()}) {
				t.Errorf("metadata %v", s.Metadata)
			}
		})
	}
}

func TestImagesJPEG(t *testing.T) {
	base := t.TempDir()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, uniform(8, 8, color.NRGBA{128, 128, 128, 255}), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, base, "a.JPG", buf.Bytes())
	l, err := Open(t.Context(), Config{Type: "images", Path: ".", Scale: 255}, nil, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 3, 8, 8)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Item(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// JPEG is lossy: a uniform grey decodes within a couple of levels of 128.
	for i, v := range s.Inputs["x"].Data.([]float32) {
		if math.Abs(float64(v)-128.0/255) > 2.0/255 {
			t.Fatalf("element %d = %v, want 128/255 ± 2/255", i, v*255)
		}
	}
}

func TestImagesErrors(t *testing.T) {
	good := pngBytes(t, quad())
	model := []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 3, 2, 2)}
	tests := []struct {
		name    string
		files   map[string][]byte
		cfg     Config
		inputs  []pipeline.TensorInfo
		openErr string
		itemErr string // for sample 1
		is      error
	}{
		{name: "corrupt PNG", files: map[string][]byte{"a.png": good, "b.png": good[:len(good)/2]}, inputs: model,
			itemErr: "sample 1 (img/b.png): decode image: unexpected EOF", is: ErrBadFile},
		{name: "not an image", files: map[string][]byte{"a.png": good, "b.jpeg": []byte("hello")}, inputs: model,
			itemErr: "sample 1 (img/b.jpeg): decode image: image: unknown format", is: ErrBadFile},
		{name: "empty folder", files: map[string][]byte{"a.npy": nil}, inputs: model,
			openErr: "data source img: no .png, .jpg or .jpeg files in the folder", is: ErrNoData},
		{name: "dynamic size", files: map[string][]byte{"a.png": good}, inputs: []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 3, -1, -1)},
			openErr: `data source img: input "x" has shape [1 3 -1 -1] with a dynamic height or width (NCHW); set data_source.size`},
		{name: "size differs from model", files: map[string][]byte{"a.png": good}, cfg: Config{Size: []int{4, 4}}, inputs: model,
			openErr: `data_source.size: [4 4], but input "x" of shape [1 3 2 2] wants 2x2 (NCHW)`, is: ErrMismatch},
		{name: "wrong layout", files: map[string][]byte{"a.png": good}, inputs: []pipeline.TensorInfo{in("x", pipeline.Float32, 1, 8, 8, 3)},
			openErr: `data source img: input "x" has shape [1 8 8 3]: 8 channels (NCHW); images give 1 or 3 (is data_source.layout right?)`},
		{name: "model dtype", files: map[string][]byte{"a.png": good}, inputs: []pipeline.TensorInfo{in("x", pipeline.Int64, 1, 3, 2, 2)},
			openErr: `data source img: images become float32, input "x" wants int64`},
		{name: "two inputs", files: map[string][]byte{"a.png": good}, inputs: append(model, in("y", 0)),
			openErr: "data source img: images feed a single-input model; the model has 2 inputs (x, y)"},
		{name: "mean per channel", files: map[string][]byte{"a.png": good}, cfg: Config{Mean: []float64{1, 2}}, inputs: model,
			openErr: "data_source.mean: 2 values for 3 channels; want 1 or 3", is: ErrBadConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for name, b := range tc.files {
				writeFile(t, filepath.Join(base, "img"), name, b)
			}
			tc.cfg.Type, tc.cfg.Path = "images", "img"
			l, err := Open(t.Context(), tc.cfg, nil, base, tc.inputs)
			if tc.openErr != "" {
				wantErr(t, err, tc.openErr)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := l.Item(t.Context(), 0); err != nil {
					t.Fatalf("sample 0: %v", err)
				}
				_, err = l.Item(t.Context(), 1)
				wantErr(t, err, tc.itemErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}
