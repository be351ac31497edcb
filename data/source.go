package data

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/fleetcal/fleetcal/pipeline"
)

// Config is the pipeline.DataSource of every type this package registers:
// Open opens it with the factory of its Type, Files lists what it reads
// and Rebase points it at a copy of those files.
var _ pipeline.DataSource = Config{}

// TypeName is the registered type (Type); "" for a Config built in Go
// without one, whose type Open guesses.
func (c Config) TypeName() string { return c.Type }

// Open opens the loader (see the package function Open), reading relative
// paths under c.BaseDir.
func (c Config) Open(ctx context.Context, inputs []pipeline.TensorInfo, ann *pipeline.Annotations) (pipeline.DataLoader, error) {
	return Open(ctx, c, ann, c.BaseDir, inputs)
}

// Files lists the files the data source reads: the Path folder,
// recursively, or, when Path names a file (an IDX images file), the files
// beside it (its labels). Each is shipped as "data/<path in the folder>".
func (c Config) Files() ([]pipeline.DataFile, error) {
	if c.Path == "" {
		return nil, errorf(ErrBadConfig, "data_source.path: empty")
	}
	src := resolve(c.BaseDir, c.Path)
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", c.Path, err)
	}
	root, recursive := src, true
	if !st.IsDir() {
		root, recursive = filepath.Dir(src), false
	}
	var files []pipeline.DataFile
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
		files = append(files, pipeline.DataFile{Path: p, Ship: path.Join("data", filepath.ToSlash(rel))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", c.Path, err)
	}
	return files, nil
}

// Rebase returns c reading the files of Files from under dir: Path becomes
// "data" (a folder) or "data/<file>" (a file) and BaseDir dir. With dir
// "", the paths are left relative, for a decoder to resolve against the
// folder it is given (a worker's download folder).
func (c Config) Rebase(dir string) pipeline.DataSource {
	if c.Type == "" {
		// Typed here, from the files where they are: at the new root the
		// guess would read a folder that is not there yet.
		if t, err := GuessType(resolve(c.BaseDir, c.Path)); err == nil {
			c.Type = t
		}
	}
	p := "data"
	if st, err := os.Stat(resolve(c.BaseDir, c.Path)); err == nil && !st.IsDir() {
		p = filepath.Join("data", filepath.Base(c.Path))
	}
	c.Path, c.BaseDir = p, dir
	return c
}

// decoder decodes a data_source of the registered type name.
func decoder(name string) pipeline.DataSourceDecoder {
	return func(raw json.RawMessage, dir string) (pipeline.DataSource, error) {
		var c Config
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		if c.Type == "" {
			c.Type = name
		}
		if c.Type != name {
			return nil, errorf(ErrBadConfig, "data_source.type: %q, decoded as %q", c.Type, name)
		}
		return c, c.resolveDirs(dir)
	}
}

// decodeUntyped decodes a data_source without a type (POT's string form)
// and guesses its type from the files (GuessType).
func decodeUntyped(raw json.RawMessage, dir string) (pipeline.DataSource, error) {
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	if err := c.resolveDirs(dir); err != nil {
		return nil, err
	}
	t, err := GuessType(resolve(c.BaseDir, c.Path))
	if err != nil {
		return nil, fmt.Errorf("data source %s: %w", c.Path, err)
	}
	c.Type = t
	return c, nil
}

// resolveDirs validates c and sets BaseDir: base_dir resolved against dir,
// or dir.
func (c *Config) resolveDirs(dir string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Path == "" {
		return errorf(ErrBadConfig, "data_source.path: empty")
	}
	if c.BaseDir == "" {
		c.BaseDir = dir
	} else {
		c.BaseDir = pipeline.ResolvePath(dir, c.BaseDir)
	}
	return nil
}
