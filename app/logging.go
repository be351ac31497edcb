package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// warnings passes records to the user's handler and keeps the text of
// every warning for report.json.
type warnings struct {
	next  slog.Handler
	mu    *sync.Mutex
	items *[]string
}

func newWarnings(next slog.Handler) *warnings {
	return &warnings{next: next, mu: &sync.Mutex{}, items: new([]string)}
}

func (w *warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || w.next.Enabled(ctx, l)
}

func (w *warnings) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		msg := r.Message
		r.Attrs(func(a slog.Attr) bool { msg += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
		w.mu.Lock()
		*w.items = append(*w.items, msg)
		w.mu.Unlock()
	}
	if w.next.Enabled(ctx, r.Level) {
		return w.next.Handle(ctx, r)
	}
	return nil
}

func (w *warnings) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &warnings{next: w.next.WithAttrs(attrs), mu: w.mu, items: w.items}
}

func (w *warnings) WithGroup(name string) slog.Handler {
	return &warnings{next: w.next.WithGroup(name), mu: w.mu, items: w.items}
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(*w.items)
}

// minLevel drops records below level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}

func (m minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(attrs), m.level}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{m.Handler.WithGroup(name), m.level}
}
