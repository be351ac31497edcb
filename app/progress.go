package app

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a progress bar on a terminal; elsewhere (a log file, CI)
// it prints a line when a stage ends and, for long stages, every 10 seconds.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	stage string
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		return nil
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progress{w: w, tty: tty}
}

// eta is the time left at the pace so far ("" before the first sample).
func eta(elapsed time.Duration, done, total int) string {
	if done <= 0 || done >= total {
		return ""
	}
	left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
	return " ETA " + left.Round(time.Second).String()
}

// update reports done of total for stage: one bar per data pass.
func (p *progress) update(stage string, done, total int) {
	if p == nil || total <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if stage != p.stage {
		p.stage, p.start, p.last = stage, time.Now(), time.Now()
	}
	if p.tty {
		const width = 30
		filled := width * done / total
		el := time.Since(p.start)
		fmt.Fprintf(p.w, "\r%-24s [%s%s] %d/%d %s%s\x1b[K", stage, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			done, total, el.Round(100*time.Millisecond), eta(el, done, total))
		if done == total {
			fmt.Fprintln(p.w)
		}
		return
	}
	if done == total || time.Since(p.last) >= 10*time.Second {
		p.last = time.Now()
		el := time.Since(p.start)
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%) %s%s\n", stage, done, total, done*100/total, el.Round(100*time.Millisecond), eta(el, done, total))
	}
}
