package cluster

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// getObject returns an object's bytes. Unlike ObjectStore.GetBytes it
// returns as soon as ctx ends: nats.go checks ctx only between chunks, and
// a read waits for the next chunk up to its API timeout (5 s), which held
// an interrupted coordinator's local worker that long. The abandoned read
// ends by itself within that timeout.
func getObject(ctx context.Context, store jetstream.ObjectStore, name string) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := store.GetBytes(ctx, name)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		return r.b, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
