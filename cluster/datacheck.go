package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

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

// runFiles lists the files a run's data source and annotations read (see
// pipeline.DataSource.Files); the annotations file is shipped as
// "annotations/<file>" (annotationsShip).
func runFiles(src pipeline.DataSource, ann *pipeline.Annotations) ([]pipeline.DataFile, error) {
	files, err := src.Files()
	if err != nil {
		return nil, err
	}
	if ann != nil && ann.Path != "" {
		files = append(files, pipeline.DataFile{Path: ann.Path, Ship: annotationsShip(ann)})
	}
	return files, nil
}

// annotationsShip is the name the annotations file is shipped under.
func annotationsShip(ann *pipeline.Annotations) string {
	return "annotations/" + filepath.Base(ann.Path)
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
func newManifest(ctx context.Context, src pipeline.DataSource, ann *pipeline.Annotations) (*dataManifest, error) {
	files, err := runFiles(src, ann)
	if err != nil {
		return nil, fmt.Errorf("data digest: %w", err)
	}
	m := &dataManifest{}
	for _, f := range files {
		size, digest, err := fileDigest(ctx, f.Path)
		if err != nil {
			return nil, fmt.Errorf("data digest: %w", err)
		}
		m.Files = append(m.Files, dataFile{Path: f.Path, Size: size, SHA256: digest})
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

// verifyData checks that the worker sees the files of the manifest want
// (nil: nothing to check), and no other, with the same sizes and SHA-256:
// sizes and the listing first, so that a missing or resized file is named
// without reading anything. src and ann are the run's, decoded here.
// Digests come from cache when a file has not changed since it was hashed
// (cache may be nil).
func verifyData(ctx context.Context, want *dataManifest, src pipeline.DataSource, ann *pipeline.Annotations, cache *digestCache) error {
	if want == nil {
		return nil
	}
	files, err := runFiles(src, ann)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDataMismatch, err)
	}
	have := make(map[string]bool, len(files))
	for _, f := range files {
		have[f.Path] = true
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
// source round-trips through the registry (its type is registered here and
// its JSON decodes as that type), the postprocess is registered, and the
// files they read exist (on this machine: workers read the same paths, or
// copies shipped from here).
func checkSpec(spec RunSpec) error {
	if _, err := encodeSource(spec.DataSource); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSpec, err)
	}
	if _, err := spec.DataSource.Files(); err != nil {
		return fmt.Errorf("%w: data_source: %v", ErrBadSpec, err)
	}
	if a := spec.Annotations; a != nil && a.Path != "" {
		if _, err := os.Stat(a.Path); err != nil {
			return fmt.Errorf("%w: annotations.path %s: %v", ErrBadSpec, a.Path, err)
		}
	}
	if spec.Postprocess != "" {
		if _, err := pipeline.LookupPostprocess(spec.Postprocess); err != nil {
			return fmt.Errorf("%w: postprocess: %v", ErrBadSpec, err)
		}
	}
	return nil
}

// sourceWire is a data source on the wire: its registered type name and its
// JSON, decoded back through the registry (pipeline.DecodeDataSourceType).
type sourceWire struct {
	Type   string          `json:"type"`
	Config json.RawMessage `json:"config"`
}

// encodeSource encodes src for workers and checks that it decodes back
// here, as a worker with the same registered types would decode it.
func encodeSource(src pipeline.DataSource) (sourceWire, error) {
	b, err := json.Marshal(src)
	if err != nil {
		return sourceWire{}, fmt.Errorf("data_source: encode %T: %w", src, err)
	}
	w := sourceWire{Type: src.TypeName(), Config: b}
	if _, err := w.decode(""); err != nil {
		if errors.Is(err, pipeline.ErrUnknownDataSource) {
			err = fmt.Errorf("%w (a type of your own is registered with data.Register or pipeline.RegisterDataSource, in the coordinator and in every worker)", err)
		}
		return sourceWire{}, err
	}
	return w, nil
}

// decode decodes the data source, resolving relative paths against dir.
func (w sourceWire) decode(dir string) (pipeline.DataSource, error) {
	if w.Type == "" { // a source built in Go without a type: guessed
		return pipeline.DecodeDataSource(w.Config, dir)
	}
	return pipeline.DecodeDataSourceType(w.Type, w.Config, dir)
}
