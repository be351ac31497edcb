package data

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"os"
	"path/filepath"

	"golang.org/x/image/draw"

	"github.com/fleetcal/fleetcal/pipeline"
)

// maxPixels bounds the size of a decoded image (a 16-bit PNG header can
// declare 4 billion pixels in a few bytes).
const maxPixels = 1 << 27

// imageLoader reads one sample per PNG or JPEG file of a folder.
type imageLoader struct {
	dir, display string
	files        []string
	input        string
	labels       []any

	h, w, c int
	nhwc    bool
	batch   bool // rank-4 model input: add the batch axis of 1
	gray    bool
	bgr     bool
	norm    normalizer
	dtype   pipeline.DType
}

// openImages is the "images" Factory: a folder of PNG/JPEG files feeding a
// single image input of rank 4 (NCHW or NHWC) or rank 3 (CHW or HWC).
func openImages(ctx context.Context, cfg Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error) {
	l := &imageLoader{dir: resolve(baseDir, cfg.Path), display: cfg.Path}
	if len(inputs) != 1 {
		return nil, errorf(ErrMismatch, "data source %s: images feed a single-input model; the model has %d inputs (%s)",
			l.display, len(inputs), inputNames(inputs))
	}
	in := inputs[0]
	l.input = in.Name
	l.nhwc = cfg.layout() == "NHWC"
	shape := in.Shape
	switch len(shape) {
	case 4:
		l.batch = true
		shape = shape[1:]
	case 3:
	default:
		return nil, errorf(ErrMismatch, "data source %s: input %q has shape %s; images need rank 4 (%s) or 3",
			l.display, in.Name, pipeline.ShapeString(in.Shape), cfg.layout())
	}
	hAx, wAx, cAx := 1, 2, 0 // CHW
	if l.nhwc {
		hAx, wAx, cAx = 0, 1, 2
	}
	mh, mw, mc := shape[hAx], shape[wAx], shape[cAx]
	switch {
	case cfg.Size != nil:
		l.h, l.w = cfg.Size[0], cfg.Size[1]
		if (mh >= 0 && int64(l.h) != mh) || (mw >= 0 && int64(l.w) != mw) {
			return nil, errorf(ErrMismatch, "data_source.size: %v, but input %q of shape %s wants %dx%d (%s)",
				cfg.Size, in.Name, pipeline.ShapeString(in.Shape), mh, mw, cfg.layout())
		}
	case mh > 0 && mw > 0:
		l.h, l.w = int(mh), int(mw)
	default:
		return nil, errorf(ErrBadConfig, "data source %s: input %q has shape %s with a dynamic height or width (%s); set data_source.size",
			l.display, in.Name, pipeline.ShapeString(in.Shape), cfg.layout())
	}
	switch {
	case mc == 1 || mc == 3:
		l.c = int(mc)
	case mc < 0 && cfg.Grayscale:
		l.c = 1
	case mc < 0:
		l.c = 3
	default:
		return nil, errorf(ErrMismatch, "data source %s: input %q has shape %s: %d channels (%s); images give 1 or 3 (is data_source.layout right?)",
			l.display, in.Name, pipeline.ShapeString(in.Shape), mc, cfg.layout())
	}
	l.gray = cfg.Grayscale || l.c == 1
	l.bgr = cfg.bgr()
	var err error
	if l.norm, err = newNormalizer(cfg, l.c, 1); err != nil {
		return nil, err
	}
	if l.dtype, err = outDType(cfg, in); err != nil {
		return nil, err
	}
	if in.DType != 0 && in.DType != l.dtype {
		return nil, errorf(ErrMismatch, "data source %s: images become %s, input %q wants %s", l.display, l.dtype, in.Name, in.DType)
	}
	if l.files, err = listFiles(l.dir, l.display, isImage, ".png, .jpg or .jpeg"); err != nil {
		return nil, err
	}
	if l.labels, err = labelsFor(ann, l.files); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *imageLoader) Len() int { return len(l.files) }

func (l *imageLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if err := checkIndex(i, len(l.files)); err != nil {
		return pipeline.Sample{}, err
	}
	if err := ctx.Err(); err != nil {
		return pipeline.Sample{}, err
	}
	file := filepath.Join(l.dir, l.files[i])
	b, err := os.ReadFile(file)
	if err == nil {
		var t pipeline.Tensor
		var size []int
		if t, size, err = l.decode(b); err == nil {
			s := pipeline.Sample{
				Inputs:   map[string]pipeline.Tensor{l.input: t},
				Metadata: map[string]any{"path": file, "original_size": size},
			}
			if l.labels != nil {
				s.Annotation = l.labels[i]
			}
			return s, nil
		}
	}
	return pipeline.Sample{}, fmt.Errorf("sample %d (%s): %w", i, filepath.Join(l.display, l.files[i]), err)
}

// decode turns an encoded image into the model's tensor; size is the
// image's original [height, width].
func (l *imageLoader) decode(b []byte) (pipeline.Tensor, []int, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return pipeline.Tensor{}, nil, errorf(ErrBadFile, "decode image: %w", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return pipeline.Tensor{}, nil, errorf(ErrBadFile, "image of %dx%d pixels is too large", cfg.Width, cfg.Height)
	}
	src, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return pipeline.Tensor{}, nil, errorf(ErrBadFile, "decode image: %w", err)
	}
	sb := src.Bounds()
	size := []int{sb.Dy(), sb.Dx()}
	if sb.Empty() {
		return pipeline.Tensor{}, nil, errorf(ErrBadFile, "empty %s image", format)
	}
	dst := image.NewNRGBA(image.Rect(0, 0, l.w, l.h))
	if sb.Dx() == l.w && sb.Dy() == l.h {
		draw.Draw(dst, dst.Bounds(), src, sb.Min, draw.Src)
	} else {
		draw.BiLinear.Scale(dst, dst.Bounds(), src, sb, draw.Src, nil)
	}
	h, w, c := l.h, l.w, l.c
	vals := make([]float32, h*w*c)
	var px [3]float64
	for y := range h {
		for x := range w {
			p := dst.Pix[y*dst.Stride+4*x:]
			r, g, bl := float64(p[0]), float64(p[1]), float64(p[2])
			switch {
			case l.gray:
				luma := r
				if r != g || g != bl {
					luma = 0.299*r + 0.587*g + 0.114*bl // ITU-R BT.601, as PIL's convert("L")
				}
				px = [3]float64{luma, luma, luma}
			case l.bgr:
				px = [3]float64{bl, g, r}
			default:
				px = [3]float64{r, g, bl}
			}
			for ch := range c {
				v := l.norm.apply(ch, px[ch])
				if l.nhwc {
					vals[(y*w+x)*c+ch] = v
				} else {
					vals[ch*h*w+y*w+x] = v
				}
			}
		}
	}
	shape := []int64{int64(c), int64(h), int64(w)}
	if l.nhwc {
		shape = []int64{int64(h), int64(w), int64(c)}
	}
	if l.batch {
		shape = append([]int64{1}, shape...)
	}
	return pipeline.Tensor{Shape: shape, Data: pixelOut(vals, l.dtype)}, size, nil
}
