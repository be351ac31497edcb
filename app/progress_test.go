package app

import (
	"testing"
	"time"
)

func TestETA(t *testing.T) {
	for _, tc := range []struct {
		elapsed     time.Duration
		done, total int
		want        string
	}{
		{10 * time.Second, 0, 100, ""},             // no pace yet
		{10 * time.Second, 25, 100, " ETA 30s"},    // 75 left at 0.4 s each
		{90 * time.Second, 150, 300, " ETA 1m30s"}, // half done
		{10 * time.Second, 100, 100, ""},           // finished
	} {
		if got := eta(tc.elapsed, tc.done, tc.total); got != tc.want {
			t.Errorf("eta(%v, %d, %d) = %q, want %q", tc.elapsed, tc.done, tc.total, got, tc.want)
		}
	}
}
