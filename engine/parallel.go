package engine

import (
	"errors"
	"fmt"
	"runtime"
)

// MaxPerCore bounds thread and worker counts: more than MaxPerCore per CPU
// core of the machine is refused (engine.threads 200 on 2 cores spins for
// minutes; --workers 100000 runs out of memory, each worker holding an
// ONNX Runtime session of the model).
const MaxPerCore = 4

// ErrTooParallel: a thread or worker count beyond what the machine can run
// (see MaxPerCore).
var ErrTooParallel = errors.New("too many for this machine")

// CheckThreads checks a count of ONNX Runtime intra-op threads (what names
// it: "engine.threads", "--threads") against this machine's cores. Above
// MaxPerCore per core it is an error; above the cores it is capped to the
// cores (threads beyond them only contend) and warning says so; 0 or less
// is left to the caller's default.
func CheckThreads(what string, n int) (use int, warning string, err error) {
	return checkThreads(what, n, runtime.NumCPU())
}

// CheckWorkers checks a count of parallel workers or requests (what names
// it: "--workers", "--concurrency", "engine.requests") against this
// machine's cores. Above MaxPerCore per core it is an error; above the
// cores the count is kept (each runs its own session; the result does not
// depend on how many run) and warning says it oversubscribes the CPU.
func CheckWorkers(what string, n int) (warning string, err error) {
	return checkWorkers(what, n, runtime.NumCPU())
}

func checkThreads(what string, n, cores int) (int, string, error) {
	if err := checkMax(what, n, cores); err != nil || n <= cores {
		return n, "", err
	}
	return cores, fmt.Sprintf("%s %d: capped to %d, the number of CPU cores of this machine", what, n, cores), nil
}

func checkWorkers(what string, n, cores int) (string, error) {
	if err := checkMax(what, n, cores); err != nil || n <= cores {
		return "", err
	}
	return fmt.Sprintf("%s %d: more than the %d CPU cores of this machine; they share the cores", what, n, cores), nil
}

func checkMax(what string, n, cores int) error {
	if n > MaxPerCore*cores {
		return fmt.Errorf("%s %d: %w: at most %d (%d per CPU core, %d cores)", what, n, ErrTooParallel, MaxPerCore*cores, MaxPerCore, cores)
	}
	return nil
}
