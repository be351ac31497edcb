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

// update reports done of total for stage.
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
		fmt.Fprintf(p.w, "\r%-24s [%s%s] %d/%d %s", stage, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			done, total, time.Since(p.start).Round(100*time.Millisecond))
		if done == total {
			fmt.Fprintln(p.w)
		}
		return
	}
	if done == total || time.Since(p.last) >= 10*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%) %s\n", stage, done, total, done*100/total, time.Since(p.start).Round(100*time.Millisecond))
	}
}
