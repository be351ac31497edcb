package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

// TestForgetWhileInUse: a run that ends while a shard still holds it (the
// shard is being stopped) keeps its downloads until that shard releases
// it, then drops them; a run nobody holds is dropped at once.
func TestForgetWhileInUse(t *testing.T) {
	entry := func(key, dir string, refs int) *runEntry {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		r := &runEntry{flight: newFlight(), key: key, tmpDir: dir, refs: refs,
			loaders: map[string]*loaderEntry{}, engines: map[string]*engineEntry{}}
		close(r.ready)
		return r
	}
	root := t.TempDir()
	held := entry("run-a@1", filepath.Join(root, "a"), 1)
	idle := entry("run-b@1", filepath.Join(root, "b"), 0)
	c := &cache{runs: map[string]*runEntry{held.key: held, idle.key: idle}}

	c.forget("run-a")
	c.forget("run-b")
	if _, err := os.Stat(held.tmpDir); err != nil {
		t.Fatalf("a run in use lost its downloads when it ended: %v", err)
	}
	if _, err := os.Stat(idle.tmpDir); !os.IsNotExist(err) {
		t.Errorf("an idle ended run keeps its downloads: %v", err)
	}
	c.mu.Lock()
	c.release(held)
	c.mu.Unlock()
	if _, err := os.Stat(held.tmpDir); !os.IsNotExist(err) {
		t.Errorf("the ended run keeps its downloads after its last shard released it: %v", err)
	}
	if len(c.runs) != 0 {
		t.Errorf("runs left in the cache: %v", c.runs)
	}
}
