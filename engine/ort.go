package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLibrary is the environment variable that names the ONNX Runtime shared
// library to load, overriding every other location.
const EnvLibrary = "ONNXRUNTIME_LIB"

// depsLibrary is where scripts/setup.sh installs ONNX Runtime, relative to
// the repository root.
const depsLibrary = ".deps/onnxruntime/libonnxruntime.so.1"

// systemLibrary is the name handed to dlopen when nothing else is found, so
// that the system's library path is searched.
const systemLibrary = "libonnxruntime.so.1"

// LibraryPath is the ONNX Runtime shared library Init loads: $ONNXRUNTIME_LIB
// if set; else .deps/onnxruntime/libonnxruntime.so.1 in the working directory
// or one of its parents, then in the executable's directory or one of its
// parents; else "libonnxruntime.so.1", found on the system's library path.
func LibraryPath() string {
	if p := os.Getenv(EnvLibrary); p != "" {
		return p
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		if p, ok := searchUp(dir, depsLibrary); ok {
			return p
		}
	}
	return systemLibrary
}

// searchUp looks for rel in dir and each of its parents.
func searchUp(dir, rel string) (string, bool) {
	for {
		p := filepath.Join(dir, rel)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

var (
	initOnce sync.Once
	initErr  error
	initPath string
)

// Init loads the ONNX Runtime library found by LibraryPath and creates the
// process-wide environment. Only the first call does the work; every call
// returns its result. New and NewSession call Init themselves. ONNX
// Runtime's own log is limited to fatal messages: every error it reports
// comes back as an error value, and a run that fleetcal retries on purpose
// (reused output buffers on a model with data-dependent output shapes,
// such as NonZero's) must not print an error line.
func Init() error {
	initOnce.Do(func() {
		initPath = LibraryPath()
		ort.SetSharedLibraryPath(initPath)
		if err := ort.InitializeEnvironment(ort.WithLogLevelFatal()); err != nil {
			initErr = fmt.Errorf("%w %q (set %s or run scripts/setup.sh): %v",
				ErrLibrary, initPath, EnvLibrary, err)
		}
	})
	return initErr
}

// Version is the version of the loaded ONNX Runtime library, or "" before a
// successful Init.
func Version() string {
	if Init() != nil {
		return ""
	}
	return ort.GetVersion()
}
