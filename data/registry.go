package data

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Factory builds a loader from its config. cfg.Path is as the user wrote it
// (for messages); resolve it against baseDir (cfg.BaseDir, when opened
// through Config.Open) to read files. inputs are the
// model's inputs; ann maps sample names to labels, nil without annotations.
// A Factory must list its samples and check what it can without reading
// every sample; the loader it returns must be safe for concurrent Item calls.
type Factory func(ctx context.Context, cfg Config, baseDir string, inputs []pipeline.TensorInfo, ann map[string]any) (pipeline.DataLoader, error)

var registry = pipeline.NewRegistry[Factory]("data: loader")

// Register makes a loader available under name (the data_source type): a
// data_source {"type": name, ...} decodes to a Config (through
// pipeline.RegisterDataSource, so that a fleet's workers decode it too)
// whose Open calls f. It panics when name is empty, f is nil or name is
// already registered: these are programming errors, found at init.
func Register(name string, f Factory) {
	if f == nil {
		panic("data: Register with a nil factory")
	}
	registry.Register(name, f)
	pipeline.RegisterDataSource(name, decoder(name))
}

// Names lists the registered loader types, sorted.
func Names() []string { return registry.Names() }

func lookup(name string) (Factory, bool) { return registry.Get(name) }

func init() {
	Register("npy", openNpy)
	Register("images", openImages)
	Register("idx", openIdx)
	pipeline.RegisterUntypedDataSource(decodeUntyped)
}

// Open validates cfg, guesses its type when empty, loads the annotations
// (ann may be nil or have an empty Path) and builds the loader. Relative
// paths in cfg and ann resolve against baseDir; inputs describe the model's
// inputs, which the loader's tensors must fit.
func Open(ctx context.Context, cfg Config, ann *Annotations, baseDir string, inputs []pipeline.TensorInfo) (pipeline.DataLoader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, errorf(ErrBadConfig, "data_source.path: empty")
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("data source %s: the model has no inputs", cfg.Path)
	}
	if cfg.Type == "" {
		t, err := GuessType(resolve(baseDir, cfg.Path))
		if err != nil {
			return nil, fmt.Errorf("data source %s: %w", cfg.Path, err)
		}
		cfg.Type = t
	}
	f, ok := lookup(cfg.Type)
	if !ok {
		return nil, errorf(ErrUnknownType, "data_source.type: unknown type %q; valid types: %s", cfg.Type, strings.Join(Names(), ", "))
	}
	var labels map[string]any
	if ann != nil && ann.Path != "" {
		var err error
		if labels, err = LoadAnnotations(resolve(baseDir, ann.Path)); err != nil {
			return nil, err
		}
	}
	l, err := f(ctx, cfg, baseDir, inputs, labels)
	if err != nil {
		if errors.Is(err, ErrMissingAnnotation) && ann != nil {
			return nil, fmt.Errorf("annotations %s: %w", ann.Path, err)
		}
		return nil, err
	}
	return l, nil
}

// resolve joins a relative path to baseDir.
func resolve(baseDir, p string) string {
	if filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// GuessType names the loader for the files at path: "npy" for .npy/.npz
// files, "images" for PNG/JPEG files, "idx" for *idx3-ubyte[.gz] files (or
// path naming such a file). A folder holding several kinds is an error.
func GuessType(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		if isIdxImages(filepath.Base(path)) {
			return "idx", nil
		}
		return "", errorf(ErrNoData, "%s is a file; want a folder of .npy/.npz, PNG/JPEG or IDX files", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", err
	}
	found := map[string]string{} // type → an example file
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		n := e.Name()
		var t string
		switch {
		case isNpy(n):
			t = "npy"
		case isImage(n):
			t = "images"
		case isIdxImages(n):
			t = "idx"
		default:
			continue
		}
		if _, ok := found[t]; !ok {
			found[t] = n
		}
	}
	switch len(found) {
	case 0:
		return "", errorf(ErrNoData, "folder %s has no .npy, .npz, .png, .jpg, .jpeg or *-images-idx3-ubyte files", path)
	case 1:
		for t := range found {
			return t, nil
		}
	}
	var kinds []string
	for _, t := range slices.Sorted(maps.Keys(found)) {
		kinds = append(kinds, fmt.Sprintf("%s (%s)", t, found[t]))
	}
	return "", errorf(ErrBadConfig, "folder %s mixes several kinds of data: %s; set data_source.type", path, strings.Join(kinds, ", "))
}

func hasExt(name string, exts ...string) bool {
	e := strings.ToLower(filepath.Ext(name))
	return slices.Contains(exts, e)
}

func isNpy(name string) bool   { return hasExt(name, ".npy", ".npz") }
func isImage(name string) bool { return hasExt(name, ".png", ".jpg", ".jpeg") }

// listFiles returns the names of the regular files in dir accepted by keep,
// sorted; an unreadable folder or none accepted is an error naming dir
// (shown as display).
func listFiles(dir, display string, keep func(string) bool, want string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", display, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !keep(e.Name()) {
			continue
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, errorf(ErrNoData, "data source %s: no %s files in the folder", display, want)
	}
	slices.Sort(names)
	return names, nil
}

// stem is a file name without its extension.
func stem(name string) string { return strings.TrimSuffix(name, filepath.Ext(name)) }

// checkIndex returns an error wrapping pipeline.ErrIndexOutOfRange for i
// outside [0, n).
func checkIndex(i, n int) error {
	if i < 0 || i >= n {
		return fmt.Errorf("sample %d: %w [0, %d)", i, pipeline.ErrIndexOutOfRange, n)
	}
	return nil
}
