package cluster

import (
	"errors"
	"os"
	"path/filepath"
)

// A worker downloads shipped data (RunSpec.ShipData) into one folder of its
// own, "fleetcal-downloads-<random>" in WorkerOptions.TempDir, created on
// first use and removed when Run returns. While the worker lives it holds
// an exclusive lock (flock) on the file downloadLock inside; a folder whose
// lock nobody holds was left by a killed worker, and the next worker that
// starts with the same TempDir removes it. Folders without the lock file
// are never touched.
const (
	downloadPrefix = "fleetcal-downloads-"
	downloadLock   = ".fleetcal-worker.lock"
)

// downloadDir is a worker's download folder and the lock that marks it alive.
type downloadDir struct {
	path string
	lock *os.File
}

// newDownloadDir creates and locks a download folder in tempDir (default
// os.TempDir()).
func newDownloadDir(tempDir string) (*downloadDir, error) {
	path, err := os.MkdirTemp(tempDir, downloadPrefix)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(path, downloadLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		if err = tryLock(f); errors.Is(err, errors.ErrUnsupported) {
			err = nil // no locks here: stale folders stay, live ones are safe
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		_ = os.RemoveAll(path)
		return nil, err
	}
	return &downloadDir{path: path, lock: f}, nil
}

// remove deletes the folder, then releases its lock.
func (d *downloadDir) remove() {
	_ = os.RemoveAll(d.path)
	_ = d.lock.Close()
}

// removeStaleDownloads removes the download folders in tempDir (default
// os.TempDir()) whose worker is gone: their lock file is there and nobody
// holds its lock. It returns the folders removed.
func removeStaleDownloads(tempDir string) []string {
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(tempDir, downloadPrefix+"*"))
	var removed []string
	for _, dir := range dirs {
		f, err := os.Open(filepath.Join(dir, downloadLock))
		if err != nil {
			continue // not a download folder, or one being created
		}
		if tryLock(f) == nil && os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
		f.Close()
	}
	return removed
}
