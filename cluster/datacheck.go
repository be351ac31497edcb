package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetcal/fleetcal/data"
	"github.com/fleetcal/fleetcal/pipeline"
)

// ErrDataMismatch: a worker's data files differ from the coordinator's.
var ErrDataMismatch = errors.New("the worker's data files differ from the coordinator's")

// dataManifest is what the coordinator's data source reads: every file,
// with its size and SHA-256, by the path a worker opens.
type dataManifest struct {
	Files []dataFile `json:"files"`
}

type dataFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// dataEntry is one file of a run's data: where it is and its name when
// shipped (relative to the worker's download folder).
type dataEntry struct {
	path, ship string
}

// dataFiles lists the files a run's data source and annotations read: the
// data_source folder, recursively, or the files beside a data_source file
// (an IDX images file and its labels), and the annotations file.
func dataFiles(baseDir string, dataSource, annotations json.RawMessage) (files []dataEntry, shipSource, shipAnn string, err error) {
	var dc data.Config
	if err := json.Unmarshal(dataSource, &dc); err != nil {
		return nil, "", "", err
	}
	if dc.Path == "" {
		return nil, "", "", fmt.Errorf("%w: data_source.path is empty", ErrBadSpec)
	}
	src := resolvePath(baseDir, dc.Path)
	st, err := os.Stat(src)
	if err != nil {
		return nil, "", "", fmt.Errorf("data source %s: %w", dc.Path, err)
	}
	root, recursive, shipSource := src, true, "data"
	if !st.IsDir() {
		root, recursive, shipSource = filepath.Dir(src), false, "data/"+filepath.Base(src)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files = append(files, dataEntry{path: p, ship: path.Join("data", filepath.ToSlash(rel))})
		return nil
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("%s: %w", dc.Path, err)
	}
	if a := bytes.TrimSpace(annotations); len(a) > 0 && string(a) != "null" {
		var ann data.Annotations
		if err := json.Unmarshal(a, &ann); err != nil {
			return nil, "", "", err
		}
		if ann.Path != "" {
			shipAnn = "annotations/" + filepath.Base(ann.Path)
			files = append(files, dataEntry{path: resolvePath(baseDir, ann.Path), ship: shipAnn})
		}
	}
	return files, shipSource, shipAnn, nil
}

// fileDigest is the size and hex SHA-256 of the file at p.
func fileDigest(ctx context.Context, p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// newManifest hashes every file of the run's data (coordinator side).
func newManifest(ctx context.Context, baseDir string, dataSource, annotations json.RawMessage) (*dataManifest, error) {
	files, _, _, err := dataFiles(baseDir, dataSource, annotations)
	if err != nil {
		return nil, fmt.Errorf("data digest: %w", err)
	}
	m := &dataManifest{}
	for _, f := range files {
		size, digest, err := fileDigest(ctx, f.path)
		if err != nil {
			return nil, fmt.Errorf("data digest: %w", err)
		}
		m.Files = append(m.Files, dataFile{Path: f.path, Size: size, SHA256: digest})
	}
	return m, nil
}

// digestCache remembers the SHA-256 of files a worker hashed, by path,
// size, modification time and inode, so that a worker serving run after
// run on the same data reads it once.
type digestCache struct {
	mu sync.Mutex
	m  map[string]cachedDigest
}

type cachedDigest struct {
	size  int64
	mtime time.Time
	ino   uint64
	sha   string
}

// maxCachedDigests bounds digestCache (about 200 bytes an entry).
const maxCachedDigests = 1 << 20

func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// digest returns the SHA-256 of the file at p, whose Stat is st.
func (c *digestCache) digest(ctx context.Context, p string, st os.FileInfo) (string, error) {
	if c != nil {
		c.mu.Lock()
		d, ok := c.m[p]
		c.mu.Unlock()
		if ok && d.size == st.Size() && d.mtime.Equal(st.ModTime()) && d.ino == inode(st) {
			return d.sha, nil
		}
	}
	size, sha, err := fileDigest(ctx, p)
	if err != nil || c == nil || size != st.Size() {
		return sha, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedDigests {
		c.m = map[string]cachedDigest{}
	}
	c.m[p] = cachedDigest{size: size, mtime: st.ModTime(), ino: inode(st), sha: sha}
	return sha, nil
}

// verifyData checks that the worker sees the files of the manifest, and
// no other, with the same sizes and SHA-256: sizes and the listing first,
// so that a missing or resized file is named without reading anything.
// Digests come from cache when a file has not changed since it was hashed
// (cache may be nil).
func verifyData(ctx context.Context, spec *runWire, cache *digestCache) error {
	want := spec.Data
	if want == nil {
		return nil
	}
	files, _, _, err := dataFiles(spec.BaseDir, spec.DataSource, spec.Annotations)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDataMismatch, err)
	}
	have := make(map[string]bool, len(files))
	for _, f := range files {
		have[f.path] = true
	}
	stats := make([]os.FileInfo, len(want.Files))
	for i, f := range want.Files {
		if !have[f.Path] {
			return fmt.Errorf("%w: data file %s: missing on this worker", ErrDataMismatch, f.Path)
		}
		delete(have, f.Path)
		st, err := os.Stat(f.Path)
		if err != nil {
			return fmt.Errorf("%w: data file %s: %v", ErrDataMismatch, f.Path, err)
		}
		if st.Size() != f.Size {
			return fmt.Errorf("%w: data file %s: %d bytes, the coordinator's has %d", ErrDataMismatch, f.Path, st.Size(), f.Size)
		}
		stats[i] = st
	}
	if len(have) > 0 {
		extra := slices.Sorted(func(yield func(string) bool) {
			for p := range have {
				if !yield(p) {
					return
				}
			}
		})
		return fmt.Errorf("%w: data file %s: not on the coordinator", ErrDataMismatch, extra[0])
	}
	for i, f := range want.Files {
		digest, err := cache.digest(ctx, f.Path, stats[i])
		if err != nil {
			return fmt.Errorf("%w: data file %s: %v", ErrDataMismatch, f.Path, err)
		}
		if digest != f.SHA256 {
			return fmt.Errorf("%w: data file %s: SHA-256 %s, the coordinator's is %s", ErrDataMismatch, f.Path, digest, f.SHA256)
		}
	}
	return nil
}

// checkSpec checks, when the engine is made, what a worker would otherwise
// find at the first shard and the coordinator can see cheaply: the data
// source and annotations decode, the data source type and the postprocess
// are registered here, and their files exist (on this machine: workers read
// the same paths, or copies shipped from here).
func checkSpec(spec RunSpec) error {
	var dc data.Config
	if err := json.Unmarshal(spec.DataSource, &dc); err != nil {
		return fmt.Errorf("%w: data_source: %v", ErrBadSpec, err)
	}
	if err := dc.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSpec, err)
	}
	if dc.Type != "" && !slices.Contains(data.Names(), dc.Type) {
		return fmt.Errorf("%w: data_source.type: unknown type %q; valid types: %s (a type of your own is registered with data.Register, in the coordinator and in every worker)",
			ErrBadSpec, dc.Type, strings.Join(data.Names(), ", "))
	}
	paths := []string{"data_source.path", dc.Path}
	if a := bytes.TrimSpace(spec.Annotations); len(a) > 0 && string(a) != "null" {
		var ann data.Annotations
		if err := json.Unmarshal(a, &ann); err != nil {
			return fmt.Errorf("%w: annotations: %v", ErrBadSpec, err)
		}
		if ann.Path != "" {
			paths = append(paths, "annotations.path", ann.Path)
		}
	}
	if dc.Path == "" {
		return fmt.Errorf("%w: data_source.path is empty", ErrBadSpec)
	}
	for i := 0; i < len(paths); i += 2 {
		if _, err := os.Stat(resolvePath(spec.BaseDir, paths[i+1])); err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrBadSpec, paths[i], paths[i+1], err)
		}
	}
	if spec.Postprocess != "" {
		if _, err := pipeline.LookupPostprocess(spec.Postprocess); err != nil {
			return fmt.Errorf("%w: postprocess: %v", ErrBadSpec, err)
		}
	}
	return nil
}
