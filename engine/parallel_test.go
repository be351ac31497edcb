package engine

import (
	"errors"
	"testing"
)

// TestCheckParallelism: counts up to the cores pass, up to MaxPerCore per
// core threads are capped and workers kept with a warning, beyond that
// both are errors naming the setting and the limit.
func TestCheckParallelism(t *testing.T) {
	tests := []struct {
		n, cores int
		threads  int // after the check
		warnT    string
		warnW    string
		err      string
	}{
		{n: 0, cores: 2, threads: 0},
		{n: 2, cores: 2, threads: 2},
		{n: 3, cores: 2, threads: 2, warnT: "x 3: capped to 2, the number of CPU cores of this machine",
			warnW: "x 3: more than the 2 CPU cores of this machine; they share the cores"},
		{n: 8, cores: 2, threads: 2, warnT: "x 8: capped to 2", warnW: "x 8: more than the 2 CPU cores"},
		{n: 9, cores: 2, err: "x 9: too many for this machine: at most 8 (4 per CPU core, 2 cores)"},
		{n: 100000, cores: 64, err: "x 100000: too many for this machine: at most 256 (4 per CPU core, 64 cores)"},
	}
	for _, tc := range tests {
		got, warnT, errT := checkThreads("x", tc.n, tc.cores)
		warnW, errW := checkWorkers("x", tc.n, tc.cores)
		if tc.err != "" {
			for _, err := range []error{errT, errW} {
				if err == nil || err.Error() != tc.err || !errors.Is(err, ErrTooParallel) {
					t.Errorf("%d on %d cores: error %v, want %q", tc.n, tc.cores, err, tc.err)
				}
			}
			continue
		}
		if errT != nil || errW != nil || got != tc.threads || !hasPrefix(warnT, tc.warnT) || !hasPrefix(warnW, tc.warnW) {
			t.Errorf("%d on %d cores: threads %d %q %v, workers %q %v; want %d %q, %q", tc.n, tc.cores, got, warnT, errT, warnW, errW, tc.threads, tc.warnT, tc.warnW)
		}
	}
}

// hasPrefix: want "" matches only "".
func hasPrefix(s, want string) bool {
	return (want == "") == (s == "") && len(s) >= len(want) && s[:len(want)] == want
}
