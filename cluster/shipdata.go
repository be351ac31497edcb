package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fleetcal/fleetcal/pipeline"
)

// shipData puts the run's data files (runFiles) in DataBucket and
// rewrites w so that workers read their downloaded copy: the data source is
// rebased (pipeline.DataSource.Rebase) to paths relative to the worker's
// download folder, and the annotations become "annotations/<file>".
func (e *Engine) shipData(ctx context.Context, w *runWire) error {
	files, err := runFiles(e.spec.DataSource, e.spec.Annotations)
	if err != nil {
		return fmt.Errorf("ship data: %w", err)
	}
	for _, f := range files {
		if err := e.shipFile(ctx, w, f.Path, f.Ship); err != nil {
			return fmt.Errorf("ship data: %s: %w", f.Path, err)
		}
	}
	if w.DataSource, err = encodeSource(e.spec.DataSource.Rebase("")); err != nil {
		return fmt.Errorf("ship data: %w", err)
	}
	if a := e.spec.Annotations; a != nil && a.Path != "" {
		w.Annotations = &pipeline.Annotations{Path: annotationsShip(a)}
	}
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
