package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// idxMaxBytes bounds the data an IDX header may declare (16 GiB).
const idxMaxBytes = 1 << 34

// isIdxImages reports whether name is an IDX images file (*idx3-ubyte[.gz]).
func isIdxImages(name string) bool {
	n := strings.TrimSuffix(strings.ToLower(name), ".gz")
	return strings.HasSuffix(n, "idx3-ubyte")
}

// idxLoader serves the images of an MNIST-format IDX file, decoded at open
// and kept as raw bytes; Item converts one image.
type idxLoader struct {
	file   string // resolved images file
	input  string
	shape  []int64
	per    int // bytes per image
	n      int
	pixels []byte
	labels []byte // from the labels file, or nil
	ann    []any  // from annotations, or nil
	norm   normalizer
	dtype  pipeline.DType
}

// openIdx is the "idx" Factory. cfg.Path names an images file
// (*idx3-ubyte[.gz]) or a folder holding one; when the folder holds several
// (train and t10k), cfg.Subset picks the one whose name starts with it.
// The labels file beside it (images → labels, idx3 → idx1, gzipped or not)
// is optional; its labels become the annotations (int) unless annotations
// are configured, in which case sample i is named "i" in them.
func openIdx(ctx context.Context, cfg Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error) {
	file, display, err := findIdxImages(resolve(baseDir, cfg.Path), cfg.Path, cfg.Subset)
	if err != nil {
		return nil, err
	}
	if len(inputs) != 1 {
		return nil, errorf(ErrMismatch, "data source %s: idx images feed a single-input model; the model has %d inputs (%s)",
			display, len(inputs), inputNames(inputs))
	}
	in := inputs[0]
	dims, pixels, err := readIdx(file, 3)
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", display, err)
	}
	l := &idxLoader{file: file, input: in.Name, n: dims[0], per: dims[1] * dims[2], pixels: pixels}
	if l.shape, err = idxShape(in.Shape, dims[1], dims[2]); err != nil {
		return nil, fmt.Errorf("data source %s: input %q: %w", display, in.Name, err)
	}
	if l.norm, err = newNormalizer(cfg, 1, 255); err != nil {
		return nil, err
	}
	if l.dtype, err = outDType(cfg, in); err != nil {
		return nil, err
	}
	if in.DType != 0 && in.DType != l.dtype {
		return nil, errorf(ErrMismatch, "data source %s: idx images become %s, input %q wants %s", display, l.dtype, in.Name, in.DType)
	}
	if ann != nil {
		names := make([]string, l.n)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		if l.ann, err = labelsFor(ann, names); err != nil {
			return nil, err
		}
		return l, nil
	}
	if lf := idxLabelsFile(file); lf != "" {
		ld, labels, err := readIdx(lf, 1)
		if err != nil {
			return nil, fmt.Errorf("data source %s: %w", filepath.Join(filepath.Dir(display), filepath.Base(lf)), err)
		}
		if ld[0] != l.n {
			return nil, errorf(ErrBadFile, "data source %s: %d labels in %s for %d images", display, ld[0], filepath.Base(lf), l.n)
		}
		l.labels = labels
	}
	return l, nil
}

// findIdxImages resolves path (as configured: display) to one images file.
func findIdxImages(path, display, subset string) (file, shown string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("data source %s: %w", display, err)
	}
	if !st.IsDir() {
		return path, display, nil
	}
	all, err := listFiles(path, display, isIdxImages, "*idx3-ubyte[.gz]")
	if err != nil {
		return "", "", err
	}
	var picked []string
	for _, f := range all {
		if strings.HasPrefix(f, subset) {
			picked = append(picked, f)
		}
	}
	switch {
	case len(picked) == 1:
		return filepath.Join(path, picked[0]), filepath.Join(display, picked[0]), nil
	case len(picked) == 0:
		return "", "", errorf(ErrNoData, "data source %s: no IDX images file starts with subset %q; files: %s", display, subset, strings.Join(all, ", "))
	}
	return "", "", errorf(ErrBadConfig, "data source %s: several IDX images files (%s); set data_source.subset (e.g. \"train\" or \"t10k\") or point path at one file",
		display, strings.Join(picked, ", "))
}

// idxLabelsFile finds the labels file next to an images file, or "".
func idxLabelsFile(images string) string {
	dir, base := filepath.Split(images)
	base = strings.TrimSuffix(base, ".gz")
	if i := strings.LastIndex(base, "idx3"); i >= 0 {
		base = base[:i] + "idx1" + base[i+4:]
	}
	if i := strings.LastIndex(base, "images"); i >= 0 {
		base = base[:i] + "labels" + base[i+6:]
	}
	for _, name := range []string{base, base + ".gz"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && !st.IsDir() {
			return filepath.Join(dir, name)
		}
	}
	return ""
}

// idxShape is the model input shape resolved for rows×cols images: a
// dynamic batch axis becomes 1, one other dynamic axis takes what is left,
// two take rows and cols; the element count must be rows×cols.
func idxShape(want []int64, rows, cols int) ([]int64, error) {
	per := int64(rows) * int64(cols)
	if len(want) == 0 {
		return nil, errorf(ErrMismatch, "scalar input; idx images are %dx%d", rows, cols)
	}
	shape := append([]int64(nil), want...)
	if len(shape) >= 2 && shape[0] < 0 {
		shape[0] = 1
	}
	var dyn []int
	known := int64(1)
	for i, d := range shape {
		if d < 0 {
			dyn = append(dyn, i)
		} else {
			known *= d
		}
	}
	switch {
	case len(dyn) == 1 && known > 0 && per%known == 0:
		shape[dyn[0]] = per / known
	case len(dyn) == 2:
		shape[dyn[0]], shape[dyn[1]] = int64(rows), int64(cols)
	}
	if pipeline.NumElements(shape) != per || len(dyn) > 2 {
		return nil, errorf(ErrMismatch, "shape %s does not hold one %dx%d image (%d values)", pipeline.ShapeString(want), rows, cols, per)
	}
	return shape, nil
}

func (l *idxLoader) Len() int { return l.n }

func (l *idxLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if err := checkIndex(i, l.n); err != nil {
		return pipeline.Sample{}, err
	}
	if err := ctx.Err(); err != nil {
		return pipeline.Sample{}, err
	}
	raw := l.pixels[i*l.per : (i+1)*l.per]
	vals := make([]float32, len(raw))
	for j, p := range raw {
		vals[j] = l.norm.apply(0, float64(p))
	}
	s := pipeline.Sample{
		Inputs:   map[string]pipeline.Tensor{l.input: {Shape: append([]int64(nil), l.shape...), Data: pixelOut(vals, l.dtype)}},
		Metadata: map[string]any{"path": l.file, "index": i},
	}
	switch {
	case l.ann != nil:
		s.Annotation = l.ann[i]
	case l.labels != nil:
		s.Annotation = int(l.labels[i])
	}
	return s, nil
}

// readIdx reads an IDX file of unsigned bytes with ndims dimensions,
// gunzipping it when it starts with the gzip magic. It checks the magic
// number and that the data has exactly the size the header declares;
// memory grows with the data actually read, not with the declared size.
func readIdx(file string, ndims int) ([]int, []byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if head, _ := r.(*bufio.Reader).Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, errorf(ErrBadFile, "gzip: %w", err)
		}
		defer gz.Close()
		r = gz
	}
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, nil, errorf(ErrBadFile, "truncated header: %w", err)
	}
	want := [4]byte{0, 0, 0x08, byte(ndims)}
	if magic != want {
		return nil, nil, errorf(ErrBadFile, "magic number 0x%08x, want 0x%08x (unsigned bytes, %d dimensions)",
			binary.BigEndian.Uint32(magic[:]), binary.BigEndian.Uint32(want[:]), ndims)
	}
	dims := make([]int, ndims)
	total := int64(1)
	for i := range dims {
		var d uint32
		if err := binary.Read(r, binary.BigEndian, &d); err != nil {
			return nil, nil, errorf(ErrBadFile, "truncated header: %w", err)
		}
		dims[i] = int(d)
		total *= int64(d)
		if total > idxMaxBytes {
			return nil, nil, errorf(ErrBadFile, "dimensions %v too large", dims[:i+1])
		}
	}
	if ndims == 3 && (dims[1] == 0 || dims[2] == 0) {
		return nil, nil, errorf(ErrBadFile, "images of %dx%d pixels", dims[1], dims[2])
	}
	data, err := io.ReadAll(io.LimitReader(r, total+1))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, errorf(ErrBadFile, "truncated: compressed stream ends after %d bytes of data; header declares dimensions %v (%d bytes)",
			len(data), dims, total)
	case err != nil:
		return nil, nil, errorf(ErrBadFile, "%w", err)
	case int64(len(data)) < total:
		return nil, nil, errorf(ErrBadFile, "truncated: header declares dimensions %v (%d bytes of data), file has %d", dims, total, len(data))
	case int64(len(data)) > total:
		return nil, nil, errorf(ErrBadFile, "data longer than the %d bytes declared by dimensions %v", total, dims)
	}
	return dims, data, nil
}
