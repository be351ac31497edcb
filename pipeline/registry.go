package pipeline

import (
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Registry holds values by name, safe for concurrent use: the one registry
// type behind algorithms (RegisterAlgorithm), postprocess functions
// (RegisterPostprocess), data sources (RegisterDataSource, which
// data.Register calls) and metrics (metric.Register). Register panics on an empty or duplicate name, a
// programming error found at init; Names is sorted, for --help and for
// "unknown name; valid: ..." errors.
type Registry[T any] struct {
	what string // "algorithm", ...: named in panics
	mu   sync.RWMutex
	m    map[string]T
}

// NewRegistry returns an empty registry of what ("algorithm", ...).
func NewRegistry[T any](what string) *Registry[T] {
	return &Registry[T]{what: what, m: map[string]T{}}
}

// Register adds v under name; it panics when name is empty or taken.
func (r *Registry[T]) Register(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		panic(fmt.Sprintf("%s registered with an empty name", r.what))
	}
	if _, dup := r.m[name]; dup {
		panic(fmt.Sprintf("%s %q registered twice", r.what, name))
	}
	r.m[name] = v
}

// Get returns the value registered under name.
func (r *Registry[T]) Get(name string) (T, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v, ok
}

// Names lists the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.m))
}
