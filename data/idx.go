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
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fleetcal/fleetcal/pipeline"
)

// idxMaxBytes bounds the data an IDX header may declare (16 GiB).
const idxMaxBytes = 1 << 34

// idxWindowBytes bounds the images an IDX file read as a stream keeps
// decoded (the last ones read), so that requests running in parallel,
// slightly out of order, do not restart the stream. A variable for tests.
var idxWindowBytes = 16 << 20

// isIdxImages reports whether name is an IDX images file (*idx3-ubyte[.gz]).
func isIdxImages(name string) bool {
	n := strings.TrimSuffix(strings.ToLower(name), ".gz")
	return strings.HasSuffix(n, "idx3-ubyte")
}

// idxLoader serves the images of an MNIST-format IDX file; Item converts
// one image. A file whose data fits data_source.max_decoded_bytes is
// decoded at open and kept as raw bytes; a larger one is read as a stream
// (idxStream) that decodes only up to the images asked for.
type idxLoader struct {
	file    string // resolved images file
	display string // images file as configured, for messages
	input   string
	shape   []int64
	per     int // bytes per image
	n       int
	pixels  *idxRecords
	labels  *idxRecords // from the labels file, or nil
	ann     []any       // from annotations, or nil
	norm    normalizer
	dtype   pipeline.DType
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
	dims, pixels, err := openIdxRecords(file, 3, cfg.maxDecoded())
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", display, err)
	}
	l := &idxLoader{file: file, display: display, input: in.Name, n: dims[0], per: dims[1] * dims[2], pixels: pixels}
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
		ld, labels, err := openIdxRecords(lf, 1, cfg.maxDecoded())
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
	raw, err := l.pixels.record(i)
	if err != nil {
		return pipeline.Sample{}, fmt.Errorf("sample %d (%s): %w", i, l.display, err)
	}
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
		lab, err := l.labels.record(i)
		if err != nil {
			return pipeline.Sample{}, fmt.Errorf("sample %d (%s): labels: %w", i, l.display, err)
		}
		s.Annotation = int(lab[0])
	}
	return s, nil
}

// idxFile is an open IDX file of unsigned bytes, gunzipped when it starts
// with the gzip magic, positioned after its header.
type idxFile struct {
	f     *os.File
	r     io.Reader
	dims  []int
	total int64 // bytes of data the header declares
}

func (x *idxFile) Close() error { return x.f.Close() }

// openIdxFile opens an IDX file with ndims dimensions and checks its magic
// number and header, and that the file can hold the data the header
// declares: an uncompressed file has exactly that size, a gzipped one is
// not smaller than deflate's ratio allows. Nothing is allocated beyond
// the header.
func openIdxFile(file string, ndims int) (_ *idxFile, err error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	x := &idxFile{f: f, r: bufio.NewReader(f)}
	gzipped := false
	if head, _ := x.r.(*bufio.Reader).Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(x.r)
		if err != nil {
			return nil, errorf(ErrBadFile, "gzip: %w", err)
		}
		x.r, gzipped = gz, true
	}
	var magic [4]byte
	if _, err := io.ReadFull(x.r, magic[:]); err != nil {
		return nil, errorf(ErrBadFile, "truncated header: %w", err)
	}
	want := [4]byte{0, 0, 0x08, byte(ndims)}
	if magic != want {
		return nil, errorf(ErrBadFile, "magic number 0x%08x, want 0x%08x (unsigned bytes, %d dimensions)",
			binary.BigEndian.Uint32(magic[:]), binary.BigEndian.Uint32(want[:]), ndims)
	}
	x.dims = make([]int, ndims)
	x.total = 1
	for i := range x.dims {
		var d uint32
		if err := binary.Read(x.r, binary.BigEndian, &d); err != nil {
			return nil, errorf(ErrBadFile, "truncated header: %w", err)
		}
		x.dims[i] = int(d)
		x.total *= int64(d)
		if x.total > idxMaxBytes {
			return nil, errorf(ErrBadFile, "dimensions %v too large", x.dims[:i+1])
		}
	}
	if ndims == 3 && (x.dims[1] == 0 || x.dims[2] == 0) {
		return nil, errorf(ErrBadFile, "images of %dx%d pixels", x.dims[1], x.dims[2])
	}
	head := int64(4 + 4*ndims)
	switch have := st.Size() - head; {
	case gzipped && beyondDeflate(uint64(x.total+head), uint64(st.Size())):
		return nil, errorf(ErrBadFile, "header declares dimensions %v (%d bytes of data) in %d gzipped bytes, more than deflate's %d:1 (a corrupt or crafted file)",
			x.dims, x.total, st.Size(), maxDeflateRatio)
	case gzipped:
	case have < x.total:
		return nil, errorf(ErrBadFile, "truncated: header declares dimensions %v (%d bytes of data), file has %d", x.dims, x.total, have)
	case have > x.total:
		return nil, errorf(ErrBadFile, "data longer than the %d bytes declared by dimensions %v", x.total, x.dims)
	}
	return x, nil
}

// readData reads the whole data, which must have exactly the declared size.
func (x *idxFile) readData() ([]byte, error) {
	data := make([]byte, x.total)
	n, err := io.ReadFull(x.r, data)
	if err == nil { // the data must end here (a gzip stream with its trailer)
		var m int
		if m, err = io.ReadFull(x.r, make([]byte, 1)); m > 0 {
			return nil, errorf(ErrBadFile, "data longer than the %d bytes declared by dimensions %v", x.total, x.dims)
		}
		if err == io.EOF {
			return data, nil
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return nil, errorf(ErrBadFile, "truncated: compressed stream ends after %d bytes of data; header declares dimensions %v (%d bytes)",
			n, x.dims, x.total)
	}
	return nil, errorf(ErrBadFile, "%w", err)
}

// idxRecords serves the records (images, or labels) of an IDX file: from
// memory, or from a stream when the file decodes to more than the limit.
type idxRecords struct {
	per  int    // bytes per record
	data []byte // every record, or nil: streamed
	s    *idxStream
}

// openIdxRecords checks the IDX file with ndims dimensions (see
// openIdxFile) and reads its data whole when it is at most limit bytes;
// a larger file is left to be streamed.
func openIdxRecords(file string, ndims int, limit int64) ([]int, *idxRecords, error) {
	x, err := openIdxFile(file, ndims)
	if err != nil {
		return nil, nil, err
	}
	defer x.Close()
	per := 1
	for _, d := range x.dims[1:] {
		per *= d
	}
	recs := &idxRecords{per: per}
	if x.total > limit {
		recs.s = &idxStream{file: file, ndims: ndims, per: per, n: x.dims[0], window: max(1, idxWindowBytes/per)}
		return x.dims, recs, nil
	}
	if recs.data, err = x.readData(); err != nil {
		return nil, nil, err
	}
	return x.dims, recs, nil
}

// record returns record i (0 <= i < the first dimension); the caller must
// not modify it.
func (r *idxRecords) record(i int) ([]byte, error) {
	if r.data != nil {
		return r.data[i*r.per : (i+1)*r.per], nil
	}
	return r.s.record(i)
}

// idxStream reads the records of an IDX file in order, decoding only up to
// the record asked for and keeping the last ones in a window; a record
// before the window reopens the file. It is safe for concurrent use.
type idxStream struct {
	file   string
	ndims  int
	per    int // bytes per record
	n      int // records
	window int // records kept

	mu     sync.Mutex
	x      *idxFile // positioned at record hi; nil: closed
	lo, hi int      // buf holds records [lo, hi)
	buf    []byte
}

func (s *idxStream) record(i int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= s.lo && i < s.hi {
		return slices.Clone(s.buf[(i-s.lo)*s.per : (i-s.lo+1)*s.per]), nil
	}
	if s.x == nil || i < s.lo {
		if s.x != nil {
			s.x.Close()
		}
		x, err := openIdxFile(s.file, s.ndims)
		if err != nil {
			s.x = nil
			return nil, err
		}
		s.x, s.lo, s.hi, s.buf = x, 0, 0, s.buf[:0]
	}
	if skip := i - s.hi - (s.window - 1); skip > 0 { // records no window would keep
		if _, err := io.CopyN(io.Discard, s.x.r, int64(skip)*int64(s.per)); err != nil {
			return nil, s.broken(err, i)
		}
		s.hi += skip
		s.lo, s.buf = s.hi, s.buf[:0]
	}
	for s.hi <= i {
		if s.hi-s.lo == s.window { // drop the older half
			drop := max(1, s.window/2)
			s.buf = s.buf[:copy(s.buf, s.buf[drop*s.per:])]
			s.lo += drop
		}
		n := min(i+1-s.hi, s.window-(s.hi-s.lo))
		old := len(s.buf)
		s.buf = slices.Grow(s.buf, n*s.per)[:old+n*s.per]
		if _, err := io.ReadFull(s.x.r, s.buf[old:]); err != nil {
			s.buf = s.buf[:old]
			return nil, s.broken(err, i)
		}
		s.hi += n
	}
	return slices.Clone(s.buf[(i-s.lo)*s.per : (i-s.lo+1)*s.per]), nil
}

// broken closes the stream after a read error and describes it.
func (s *idxStream) broken(err error, i int) error {
	s.x.Close()
	s.x = nil
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errorf(ErrBadFile, "truncated: the data ends before record %d of the %d the header declares", i, s.n)
	}
	return errorf(ErrBadFile, "%w", err)
}
