package app

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress draws a progress bar on a terminal, or a line every 10% (and at
// the end) when the output is not a terminal.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	stage   string
	lastPct int
	start   time.Time
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
		p.stage, p.lastPct, p.start = stage, -1, time.Now()
	}
	pct := done * 100 / total
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
	if pct/10 != p.lastPct/10 || done == total {
		p.lastPct = pct
		fmt.Fprintf(p.w, "%s: %d/%d (%d%%) %s\n", stage, done, total, pct, time.Since(p.start).Round(100*time.Millisecond))
	}
}
