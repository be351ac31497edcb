package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/data"
)

// shipData puts the run's data files (dataFiles) in DataBucket and
// rewrites w so that workers read their downloaded copy: the data source
// becomes "data" (or "data/<file>") and the annotations
// "annotations/<file>", relative to the worker's download folder.
func (e *Engine) shipData(ctx context.Context, w *runWire) error {
	files, shipSource, shipAnn, err := dataFiles(e.spec.BaseDir, e.spec.DataSource, e.spec.Annotations)
	if err != nil {
		return fmt.Errorf("ship data: %w", err)
	}
	for _, f := range files {
		if err := e.shipFile(ctx, w, f.path, f.ship); err != nil {
			return fmt.Errorf("ship data: %s: %w", f.path, err)
		}
	}
	var dc data.Config
	if err := json.Unmarshal(e.spec.DataSource, &dc); err != nil {
		return fmt.Errorf("ship data: %w", err)
	}
	dc.Path = shipSource
	if w.DataSource, err = json.Marshal(dc); err != nil {
		return fmt.Errorf("ship data: %w", err)
	}
	if shipAnn != "" {
		var ann data.Annotations
		if err := json.Unmarshal(e.spec.Annotations, &ann); err != nil {
			return fmt.Errorf("ship data: %w", err)
		}
		ann.Path = shipAnn
		if w.Annotations, err = json.Marshal(ann); err != nil {
			return fmt.Errorf("ship data: %w", err)
		}
	}
	w.BaseDir = ""
	return nil
}

// shipFile puts the file at p in DataBucket and lists it in w.Files under rel.
func (e *Engine) shipFile(ctx context.Context, w *runWire, p, rel string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	name := e.spec.RunID + "/" + rel
	info, err := e.res.data.Put(ctx, jetstream.ObjectMeta{Name: name}, io.TeeReader(f, h))
	if err != nil {
		return fmt.Errorf("object store %s: put %s: %w", DataBucket, name, err)
	}
	w.Files = append(w.Files, shippedFile{Object: name, Path: rel, SHA256: hex.EncodeToString(h.Sum(nil)), Size: int64(info.Size)})
	return nil
}

// resolvePath joins a relative p to base.
func resolvePath(base, p string) string {
	if filepath.IsAbs(p) || base == "" {
		return p
	}
	return filepath.Join(base, p)
}

// download fetches the shipped files into dir, verifying each one's size
// and SHA-256.
func download(ctx context.Context, store jetstream.ObjectStore, files []shippedFile, dir string) error {
	for _, f := range files {
		local := filepath.FromSlash(f.Path)
		if !filepath.IsLocal(local) {
			return fmt.Errorf("shipped file %q: not a relative path inside the run", f.Path)
		}
		if err := downloadOne(ctx, store, f, filepath.Join(dir, local)); err != nil {
			return fmt.Errorf("shipped file %s: %w", f.Path, err)
		}
	}
	return nil
}

func downloadOne(ctx context.Context, store jetstream.ObjectStore, f shippedFile, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	obj, err := store.Get(ctx, f.Object)
	if err != nil {
		return fmt.Errorf("object store %s: get %s: %w", DataBucket, f.Object, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		obj.Close()
		return err
	}
	// Copied aside so that ctx ends the wait at once (see getObject).
	h := sha256.New()
	var n int64
	done := make(chan error, 1)
	go func() {
		defer obj.Close()
		var err error
		n, err = io.Copy(io.MultiWriter(out, h), obj)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.SHA256 {
		return fmt.Errorf("%w: %d bytes with SHA-256 %s, want %d bytes with %s", ErrBadResult, n, got, f.Size, f.SHA256)
	}
	return nil
}
