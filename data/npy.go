package data

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// npyLoader reads one sample per .npy or .npz file of a folder.
type npyLoader struct {
	dir, display string // resolved folder; folder as configured, for messages
	files        []string
	npz          bool
	inputs       []pipeline.TensorInfo
	labels       []any
	cast         pipeline.DType // 0: no conversion
	maxBytes     int64          // data_source.max_decoded_bytes in effect
}

// openNpy is the "npy" Factory: a folder of .npy files (single-input models)
// or of .npz files whose array names are the model's input names.
func openNpy(ctx context.Context, cfg Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error) {
	l := &npyLoader{dir: resolve(baseDir, cfg.Path), display: cfg.Path, inputs: inputs, maxBytes: cfg.maxDecoded()}
	files, err := listFiles(l.dir, l.display, isNpy, ".npy or .npz")
	if err != nil {
		return nil, err
	}
	l.files = files
	var npys, npzs []string
	for _, f := range files {
		if hasExt(f, ".npz") {
			npzs = append(npzs, f)
		} else {
			npys = append(npys, f)
		}
	}
	if len(npys) > 0 && len(npzs) > 0 {
		return nil, errorf(ErrBadConfig, "data source %s: mixes .npy (%s) and .npz (%s) files; use one kind", l.display, npys[0], npzs[0])
	}
	l.npz = len(npzs) > 0
	if !l.npz && len(inputs) > 1 {
		return nil, errorf(ErrMismatch, "data source %s: the model has %d inputs (%s) and a .npy file feeds one; store each sample as a .npz file with one array per input name",
			l.display, len(inputs), inputNames(inputs))
	}
	if cfg.DType != "" {
		if l.cast, err = parseDType(cfg.DType); err != nil {
			return nil, err
		}
	}
	if l.labels, err = labelsFor(ann, files); err != nil {
		return nil, err
	}
	return l, nil
}

func inputNames(inputs []pipeline.TensorInfo) string {
	n := make([]string, len(inputs))
	for i, in := range inputs {
		n[i] = in.Name
	}
	return strings.Join(n, ", ")
}

func (l *npyLoader) Len() int { return len(l.files) }

func (l *npyLoader) Item(ctx context.Context, i int) (pipeline.Sample, error) {
	if err := checkIndex(i, len(l.files)); err != nil {
		return pipeline.Sample{}, err
	}
	if err := ctx.Err(); err != nil {
		return pipeline.Sample{}, err
	}
	file := filepath.Join(l.dir, l.files[i])
	fail := func(err error) (pipeline.Sample, error) {
		return pipeline.Sample{}, fmt.Errorf("sample %d (%s): %w", i, filepath.Join(l.display, l.files[i]), err)
	}
	var arrays map[string]pipeline.Tensor
	if l.npz {
		var err error
		if arrays, err = l.readNpz(file); err != nil {
			return fail(err)
		}
	} else {
		b, err := l.readNpyFile(file)
		if err != nil {
			return fail(err)
		}
		t, err := readNpy(b)
		if err != nil {
			return fail(err)
		}
		arrays = map[string]pipeline.Tensor{l.inputs[0].Name: t}
	}
	for _, in := range l.inputs {
		t := arrays[in.Name]
		if l.cast != 0 {
			d, err := castData(t.Data, l.cast)
			if err != nil {
				return fail(fmt.Errorf("input %q: %w", in.Name, err))
			}
			t.Data = d
		}
		shape, err := fitShape(t.Shape, in.Shape)
		if err != nil {
			return fail(fmt.Errorf("input %q: %w", in.Name, err))
		}
		t.Shape = shape
		if in.DType != 0 && t.DType() != in.DType {
			return fail(errorf(ErrMismatch, "input %q: dtype %s, model wants %s (convert the files, or set data_source.dtype to cast)",
				in.Name, t.DType(), in.DType))
		}
		if err := checkFinite(t.Data); err != nil {
			return fail(fmt.Errorf("input %q: %w", in.Name, err))
		}
		arrays[in.Name] = t
	}
	s := pipeline.Sample{Inputs: arrays, Metadata: map[string]any{"path": file}}
	if l.labels != nil {
		s.Annotation = l.labels[i]
	}
	return s, nil
}

// readNpyFile reads a .npy file whose size is within the limit.
func (l *npyLoader) readNpyFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > l.maxBytes {
		return nil, tooLarge("npy", uint64(st.Size()), l.maxBytes)
	}
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readNpz reads the arrays of a .npz file that feed the model's inputs,
// named after them: by array name (with or without ".npy"), by position
// when the arrays are numpy's default arr_0, arr_1, ..., or the only array
// of the file for a single-input model. Arrays are matched by the names in
// the zip directory and only those matched are decoded, each after its
// declared size is checked (see checkZipMember).
func (l *npyLoader) readNpz(file string) (map[string]pipeline.Tensor, error) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return nil, errorf(ErrBadFile, "npz: %w", err)
	}
	defer zr.Close()
	byKey := map[string]*zip.File{}
	for _, f := range zr.File {
		key := strings.TrimSuffix(f.Name, ".npy")
		if _, dup := byKey[key]; dup {
			return nil, errorf(ErrBadFile, "npz: array %q twice", key)
		}
		byKey[key] = f
	}
	keys := slices.Sorted(maps.Keys(byKey))
	pick := map[string]string{} // input → array
	switch {
	case len(l.inputs) == 1 && len(byKey) == 1:
		pick[l.inputs[0].Name] = keys[0]
	case positional(keys, len(l.inputs)) && !anyInput(keys, l.inputs):
		for i, in := range l.inputs {
			pick[in.Name] = "arr_" + strconv.Itoa(i)
		}
	default:
		for _, in := range l.inputs {
			if _, ok := byKey[in.Name]; !ok {
				return nil, errorf(ErrMismatch, "no array for input %q; arrays: %s", in.Name, strings.Join(keys, ", "))
			}
			pick[in.Name] = in.Name
		}
		for _, k := range keys {
			if _, ok := pick[k]; !ok {
				return nil, errorf(ErrMismatch, "array %q is not a model input; inputs: %s", k, inputNames(l.inputs))
			}
		}
	}
	out := map[string]pipeline.Tensor{}
	for _, in := range l.inputs {
		key := pick[in.Name]
		t, err := l.readNpzArray(byKey[key], key)
		if err != nil {
			return nil, err
		}
		out[in.Name] = t
	}
	return out, nil
}

// readNpzArray decodes one array of a .npz file.
func (l *npyLoader) readNpzArray(f *zip.File, key string) (pipeline.Tensor, error) {
	what := fmt.Sprintf("npz: array %q", key)
	if err := checkZipMember(f, what, l.maxBytes); err != nil {
		return pipeline.Tensor{}, err
	}
	rc, err := f.Open()
	if err != nil {
		return pipeline.Tensor{}, errorf(ErrBadFile, "%s: %w", what, err)
	}
	defer rc.Close()
	b := make([]byte, f.UncompressedSize64)
	if n, err := io.ReadFull(rc, b); err != nil {
		return pipeline.Tensor{}, errorf(ErrBadFile, "%s: size %d, zip directory says %d: %w", what, n, len(b), err)
	}
	if n, _ := rc.Read(make([]byte, 1)); n > 0 {
		return pipeline.Tensor{}, errLonger(what, f.UncompressedSize64)
	}
	t, err := readNpy(b)
	if err != nil {
		return pipeline.Tensor{}, fmt.Errorf("array %q: %w", key, err)
	}
	return t, nil
}

// positional reports whether keys are exactly arr_0 ... arr_{n-1}.
func positional(keys []string, n int) bool {
	if len(keys) != n {
		return false
	}
	for i := range n {
		if !slices.Contains(keys, "arr_"+strconv.Itoa(i)) {
			return false
		}
	}
	return true
}

func anyInput(keys []string, inputs []pipeline.TensorInfo) bool {
	for _, in := range inputs {
		if slices.Contains(keys, in.Name) {
			return true
		}
	}
	return false
}
