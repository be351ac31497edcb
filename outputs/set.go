package outputs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// ManifestName is the file in an output folder that lists the entries
// fleetcal wrote there (JSON: {"written_by": "fleetcal", "entries": [...]}).
const ManifestName = ".fleetcal-outputs"

// stagingPrefix starts the name of a staging folder inside an existing
// output folder (beside a new one, it is ".<folder name>" + stagingPrefix).
const stagingPrefix = ".fleetcal-staging-"

type manifest struct {
	WrittenBy string  `json:"written_by"`
	Entries   []entry `json:"entries"`
}

// entry is a file or folder at the top of an output folder.
type entry struct {
	Name string `json:"name"`
	Dir  bool   `json:"dir,omitempty"`
}

// Set is an output folder written as a set. Begin checks the folder and
// creates a staging folder: beside the output folder when it does not
// exist, inside it (hidden) when it does, so that renames never cross a
// file system. The run writes every file into Dir(). Commit then:
//
//   - when the output folder does not exist, renames the staging folder to
//     it: every file appears at once;
//   - otherwise moves the files of the previous run that this one does not
//     write (listed in its manifest) and the ones it replaces to hidden
//     backups, renames the new files in, the manifest last, and removes
//     the backups. If a rename fails, the renames done are undone: the
//     folder is as it was. During these renames (microseconds) a reader
//     may see some files of each run; a crash then (power loss, SIGKILL)
//     leaves the previous files in hidden ".<name>.fleetcal-old-*" entries.
//
// Entries fleetcal did not write (not in the manifest) are never removed.
// Abort, or a failed Commit, removes the staging folder and leaves the
// output folder as it was.
type Set struct {
	dir, stage string
	exists     bool
	opts       Options
	finished   bool
}

// Options say how a Set treats what the output folder holds.
type Options struct {
	// Force writes into a folder holding files fleetcal did not write:
	// entries of the names the run writes are replaced, the others kept.
	Force bool
	// Earlier names the entries of a folder without a manifest that an
	// earlier fleetcal wrote (it wrote no manifest): they count as
	// fleetcal's, and the run replaces or removes them.
	Earlier []string
}

// Check tells whether dir can receive a run's outputs, before the run: it
// does not exist, is empty, or was written by fleetcal (it has a manifest
// whose entries are still what they were, or only o.Earlier entries).
// Otherwise the error wraps ErrForeign, unless o.Force is set.
func Check(dir string, o Options) error {
	if err := writable(dir); err != nil {
		return err
	}
	_, _, err := inspect(dir, o)
	return err
}

// writable checks that dir can be written: it is a folder, or the
// nearest existing folder above it is, and a file can be created there.
// The probe file is removed and no folder is created.
func writable(dir string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("output %s: %s is not a folder", dir, p)
			}
			break
		}
		parent := filepath.Dir(p)
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) || parent == p {
			return fmt.Errorf("output %s: %w", dir, err)
		}
		p = parent
	}
	f, err := os.CreateTemp(p, ".fleetcal-write-check-*")
	if err != nil {
		return fmt.Errorf("output %s: cannot write in %s: %w", dir, p, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// inspect checks dir (see Check) and returns whether it exists and the
// entries of its manifest (or o.Earlier).
func inspect(dir string, o Options) (exists bool, prev []entry, err error) {
	force := o.Force
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil, nil
	}
	if err != nil {
		return false, nil, fmt.Errorf("output folder: %w", err)
	}
	if !st.IsDir() {
		return false, nil, fmt.Errorf("output folder %s: not a folder", dir)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return false, nil, fmt.Errorf("output folder: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	hasManifest := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, nil, fmt.Errorf("output folder %s: %w", dir, err)
	}
	if hasManifest {
		var m manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return false, nil, fmt.Errorf("output folder %s: manifest %s: %w", dir, ManifestName, err)
		}
		prev = m.Entries
	} else if len(o.Earlier) > 0 {
		for _, de := range des {
			if slices.Contains(o.Earlier, de.Name()) {
				prev = append(prev, entry{Name: de.Name(), Dir: de.IsDir()})
			}
		}
		hasManifest = true
	}
	var foreign []string
	for _, de := range des {
		name := de.Name()
		if internal(name) {
			continue
		}
		i := slices.IndexFunc(prev, func(e entry) bool { return e.Name == name })
		if !hasManifest || (i >= 0 && prev[i].Dir != de.IsDir()) {
			foreign = append(foreign, name)
		}
	}
	if len(foreign) > 0 && !force {
		return false, nil, foreignError(dir, foreign)
	}
	return true, prev, nil
}

func foreignError(dir string, names []string) error {
	shown := names
	if len(shown) > 3 {
		shown = append(slices.Clone(shown[:3]), fmt.Sprintf("and %d more", len(names)-3))
	}
	return fmt.Errorf("output folder %s %w (%s): choose a new or empty folder, or pass --force to write there anyway (fleetcal then replaces the files it writes and keeps the others)",
		dir, ErrForeign, strings.Join(shown, ", "))
}

// internal reports whether name is fleetcal's bookkeeping in an output
// folder: the manifest, a staging folder, a backup or a temporary file.
func internal(name string) bool {
	return name == ManifestName || strings.HasPrefix(name, stagingPrefix) ||
		strings.Contains(name, ".fleetcal-old-") || (strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"))
}

// Begin checks dir (see Check) and creates its staging folder.
func Begin(dir string, o Options) (*Set, error) {
	exists, _, err := inspect(dir, o)
	if err != nil {
		return nil, err
	}
	parent, prefix := filepath.Dir(dir), "."+filepath.Base(dir)+stagingPrefix
	if exists {
		parent, prefix = dir, stagingPrefix
	} else if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	stage, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("output folder %s: staging folder: %w", dir, err)
	}
	if err := os.Chmod(stage, 0o755); err != nil {
		_ = os.Remove(stage)
		return nil, fmt.Errorf("output folder %s: staging folder: %w", dir, err)
	}
	return &Set{dir: dir, stage: stage, exists: exists, opts: o}, nil
}

// Dir is the staging folder, where the run writes its files.
func (s *Set) Dir() string { return s.stage }

// Final is where the staged path p (in Dir()) is after Commit.
func (s *Set) Final(p string) string {
	rel, err := filepath.Rel(s.stage, p)
	if err != nil || !filepath.IsLocal(rel) {
		return p
	}
	return filepath.Join(s.dir, rel)
}

// Abort removes the staging folder unless Commit succeeded.
func (s *Set) Abort() {
	if !s.finished {
		_ = os.RemoveAll(s.stage)
		s.finished = true
	}
}

// Commit makes the staged files the output folder's (see Set).
func (s *Set) Commit() error {
	if s.finished {
		return errors.New("output folder: set already committed or aborted")
	}
	err := s.commit()
	s.Abort()
	s.finished = true
	return err
}

func (s *Set) commit() error {
	des, err := os.ReadDir(s.stage)
	if err != nil {
		return fmt.Errorf("output folder %s: %w", s.dir, err)
	}
	m := manifest{WrittenBy: "fleetcal"}
	for _, de := range des {
		m.Entries = append(m.Entries, entry{Name: de.Name(), Dir: de.IsDir()})
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(s.stage, ManifestName), append(b, '\n')); err != nil {
		return fmt.Errorf("output folder %s: %w", s.dir, err)
	}
	if !s.exists {
		err := rename(s.stage, s.dir)
		if err == nil {
			s.finished = true // the staging folder is the output folder now
			syncDir(filepath.Dir(s.dir))
			return nil
		}
		if _, serr := os.Stat(s.dir); serr != nil {
			return fmt.Errorf("output folder %s: %w", s.dir, err)
		}
		// The folder appeared since Begin: write into it as into any.
	}
	// The folder may have changed since Begin: check it again.
	_, prev, err := inspect(s.dir, s.opts)
	if err != nil {
		return err
	}
	var from, to, drop []string
	for _, e := range m.Entries {
		p := filepath.Join(s.dir, e.Name)
		if _, err := os.Lstat(p); err == nil && !s.opts.Force && !slices.ContainsFunc(prev, func(o entry) bool { return o.Name == e.Name }) {
			return foreignError(s.dir, []string{e.Name})
		}
		from, to = append(from, filepath.Join(s.stage, e.Name)), append(to, p)
	}
	from, to = append(from, filepath.Join(s.stage, ManifestName)), append(to, filepath.Join(s.dir, ManifestName))
	for _, o := range prev {
		if !slices.ContainsFunc(m.Entries, func(e entry) bool { return e.Name == o.Name }) && filepath.IsLocal(o.Name) && !internal(o.Name) {
			drop = append(drop, filepath.Join(s.dir, o.Name))
		}
	}
	if err := moveAll(from, to, drop); err != nil {
		return fmt.Errorf("output folder %s: %w", s.dir, err)
	}
	syncDir(s.dir)
	return nil
}

// writeSynced writes a new file and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
