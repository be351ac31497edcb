package outputs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Files is a group of files written as temporaries beside their targets
// and renamed into place together by Commit. The zero value is ready.
type Files struct {
	tmps, finals []string
}

// Write writes data to a temporary file beside final (mode 0644), synced
// and closed; Commit renames it to final.
func (f *Files) Write(final string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	f.Stage(tmp.Name(), final)
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == tmp.Name() {
			err = pe.Err // the temporary's name says nothing more
		}
		return fmt.Errorf("write %s: %w", final, err)
	}
	return nil
}

// Stage adds tmp, a file or folder already written on final's file
// system, to be renamed to final by Commit (removed by Abort).
func (f *Files) Stage(tmp, final string) {
	f.tmps = append(f.tmps, tmp)
	f.finals = append(f.finals, final)
}

// Abort removes the temporaries; the targets are untouched.
func (f *Files) Abort() {
	for _, t := range f.tmps {
		_ = os.RemoveAll(t)
	}
	f.tmps, f.finals = nil, nil
}

// Commit renames every temporary to its target, all or nothing (see the
// package comment), then makes the renames durable.
func (f *Files) Commit() error {
	err := moveAll(f.tmps, f.finals, nil)
	if err != nil {
		f.Abort()
		return err
	}
	dirs := map[string]bool{}
	for _, p := range f.finals {
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		syncDir(d)
	}
	f.tmps, f.finals = nil, nil
	return nil
}

// WriteFile writes data to path atomically: a temporary beside it,
// synced, then renamed.
func WriteFile(path string, data []byte) error {
	var f Files
	if err := f.Write(path, data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// rename is os.Rename; tests replace it to make a rename fail.
var rename = os.Rename

// moveAll renames from[i] to to[i] for every i and removes the paths in
// drop, all or nothing: each existing to[i], and each path of drop, is
// first renamed to a hidden backup beside it; when a rename fails, the
// renames done are undone in reverse order and the error returned. On
// success the backups are removed.
func moveAll(from, to, drop []string) error {
	type step struct{ from, to string }
	var done []step
	undo := func() {
		for i := len(done) - 1; i >= 0; i-- {
			_ = os.Rename(done[i].to, done[i].from)
		}
	}
	var backups []string
	aside := func(p string) error {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		b := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".fleetcal-old-"+randomSuffix())
		if err := rename(p, b); err != nil {
			return fmt.Errorf("move %s aside: %w", p, err)
		}
		done = append(done, step{p, b})
		backups = append(backups, b)
		return nil
	}
	for _, p := range drop {
		if err := aside(p); err != nil {
			undo()
			return err
		}
	}
	for i := range from {
		if err := aside(to[i]); err != nil {
			undo()
			return err
		}
		if err := rename(from[i], to[i]); err != nil {
			undo()
			return fmt.Errorf("write %s: %w", to[i], err)
		}
		done = append(done, step{from[i], to[i]})
	}
	for _, b := range backups {
		_ = os.RemoveAll(b)
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncDir makes renames in dir durable, best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
