package outputs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree maps the paths under dir (slash-separated, relative) to their
// contents ("/" for a folder).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			got[filepath.ToSlash(rel)] = "/"
			return nil
		}
		b, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// run writes files (name → content; a name ending in "/" is a folder
// holding one file "f") as one set into dir.
func run(t *testing.T, dir string, force bool, files map[string]string) error {
	t.Helper()
	s, err := Begin(dir, Options{Force: force})
	if err != nil {
		return err
	}
	defer s.Abort()
	for name, content := range files {
		p := filepath.Join(s.Dir(), name)
		if strings.HasSuffix(name, "/") {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(p, "f")
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return s.Commit()
}

func names(m map[string]string) []string {
	var n []string
	for k := range m {
		if k != ManifestName {
			n = append(n, k)
		}
	}
	slices.Sort(n)
	return n
}

func TestSetReplacesPreviousRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := run(t, dir, false, map[string]string{"m.onnx": "1", "m.onnx.data": "w1", "report.json": "r1", "report_files/": "p1"}); err != nil {
		t.Fatal(err)
	}
	// The user adds a file of their own; it must survive.
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The second run writes no external data and no pictures.
	if err := run(t, dir, false, map[string]string{"m.onnx": "2", "report.json": "r2"}); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dir)
	want := []string{"m.onnx", "notes.txt", "report.json"}
	if n := names(got); !slices.Equal(n, want) {
		t.Errorf("after the second run: %v, want %v (stale files of the first run gone, the user's kept)", n, want)
	}
	if got["m.onnx"] != "2" || got["report.json"] != "r2" || got["notes.txt"] != "mine" {
		t.Errorf("contents %v", got)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".out.fleetcal-staging-*")); len(left) > 0 {
		t.Errorf("staging folders left: %v", left)
	}
}

func TestSetRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(t, dir, false, map[string]string{"m.onnx": "1"})
	if !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), "thesis.tex") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want ErrForeign naming thesis.tex and --force", err)
	}
	if err := Check(dir, Options{}); !errors.Is(err, ErrForeign) {
		t.Errorf("Check: %v, want ErrForeign", err)
	}
	if n := names(tree(t, dir)); !slices.Equal(n, []string{"thesis.tex"}) {
		t.Errorf("refused folder now holds %v", n)
	}
	if err := run(t, dir, true, map[string]string{"m.onnx": "1"}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if got := tree(t, dir); got["thesis.tex"] != "mine" || got["m.onnx"] != "1" {
		t.Errorf("after --force: %v", got)
	}
	// An entry of the manifest replaced by the user with a folder of
	// another kind is theirs now.
	if err := os.Remove(filepath.Join(dir, "m.onnx")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "m.onnx"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, Options{}); !errors.Is(err, ErrForeign) {
		t.Errorf("manifest entry replaced by a folder: %v, want ErrForeign", err)
	}
}

// TestSetFailedCommitLeavesFolder makes the n-th rename of a commit fail
// (a full disk, a file system gone read-only) for every n: the folder must
// hold the previous run's files, unchanged, and no staging folder.
func TestSetFailedCommitLeavesFolder(t *testing.T) {
	first := map[string]string{"m.onnx": "1", "m.onnx.data": "w1", "report.html": "h1", "report_files/": "p1", "report.json": "r1"}
	second := map[string]string{"m.onnx": "2", "report.json": "r2", "report_files/": "p2"}
	for n := 1; ; n++ {
		dir := filepath.Join(t.TempDir(), "out")
		if err := run(t, dir, false, first); err != nil {
			t.Fatal(err)
		}
		before := tree(t, dir)
		calls := 0
		rename = func(from, to string) error {
			if calls++; calls == n {
				return errors.New("no space left on device (simulated)")
			}
			return os.Rename(from, to)
		}
		err := run(t, dir, false, second)
		rename = os.Rename
		if calls < n {
			if err != nil {
				t.Fatal(err)
			}
			break // every rename of the commit has failed once
		}
		if err == nil || !strings.Contains(err.Error(), "simulated") {
			t.Fatalf("rename %d failing: err = %v", n, err)
		}
		after := tree(t, dir)
		if len(after) != len(before) {
			t.Errorf("rename %d failing: folder %v, want %v", n, names(after), names(before))
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("rename %d failing: %s = %q, want %q", n, k, after[k], v)
			}
		}
	}
}

func TestSetFirstRunIsOneRename(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "out")
	var renames [][2]string
	rename = func(from, to string) error {
		renames = append(renames, [2]string{from, to})
		return os.Rename(from, to)
	}
	defer func() { rename = os.Rename }()
	if err := run(t, dir, false, map[string]string{"m.onnx": "1", "report.json": "r"}); err != nil {
		t.Fatal(err)
	}
	if len(renames) != 1 || renames[0][1] != dir {
		t.Errorf("renames %v, want one: the staging folder to %s", renames, dir)
	}
}

func TestFilesCommitAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := WriteFile(a, []byte("old")); err != nil {
		t.Fatal(err)
	}
	var f Files
	if err := f.Write(a, []byte("new")); err != nil {
		t.Fatal(err)
	}
	// Both targets exist (b/x as a folder); the 4th rename (a aside, a in,
	// b/x aside, b/x in) fails: a must be back.
	if err := os.MkdirAll(filepath.Join(b, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(b+"/x", []byte("y")); err != nil {
		t.Fatal(err)
	}
	calls := 0
	rename = func(from, to string) error {
		if calls++; calls == 4 {
			return errors.New("simulated")
		}
		return os.Rename(from, to)
	}
	defer func() { rename = os.Rename }()
	if err := f.Commit(); err == nil {
		t.Fatal("commit succeeded")
	}
	got := tree(t, dir)
	if got["a"] != "old" || len(got) != 3 {
		t.Errorf("after a failed commit: %v, want a = old, b/x a folder", got)
	}
	if info, err := os.Stat(a); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("mode of a: %v %v", info, err)
	}
}

// TestSetEarlierFleetcalFolder: a folder an earlier fleetcal wrote without
// a manifest is taken as fleetcal's for the entries named in Earlier.
func TestSetEarlierFleetcalFolder(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"m.onnx": "0", "report.html": "h0", "notes.txt": "mine"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := Options{Earlier: []string{"m.onnx", "report.html", "report.json"}}
	if err := Check(dir, o); err != nil {
		t.Fatal(err)
	}
	s, err := Begin(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Abort()
	if err := os.WriteFile(filepath.Join(s.Dir(), "m.onnx"), []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	got := tree(t, dir)
	if n := names(got); !slices.Equal(n, []string{"m.onnx", "notes.txt"}) || got["m.onnx"] != "1" {
		t.Errorf("after the run: %v", got)
	}
}

// TestSetFolderAppearsMeanwhile: the output folder did not exist at Begin
// but does at Commit (another program made it): the set goes in as into
// any existing folder, and a foreign file there is refused.
func TestSetFolderAppearsMeanwhile(t *testing.T) {
	for _, foreign := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "out")
		s, err := Begin(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir(), "m.onnx"), []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if foreign {
			if err := os.WriteFile(filepath.Join(dir, "x"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		err = s.Commit()
		got := tree(t, dir)
		switch {
		case foreign && (!errors.Is(err, ErrForeign) || len(got) != 1):
			t.Errorf("foreign file in the folder: %v, folder %v", err, got)
		case !foreign && (err != nil || got["m.onnx"] != "1"):
			t.Errorf("empty folder: %v, folder %v", err, got)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".out.fleetcal-staging-*")); len(left) > 0 {
			t.Errorf("staging folders left: %v", left)
		}
	}
}
