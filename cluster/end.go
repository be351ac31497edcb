package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// End ends the run, whether it finished or was interrupted: workers are
// told on the cancel subject (they stop its shards, drop those still queued
// and release its sessions and downloads), the run's shards are purged from
// the work queue, its spec is deleted from RunsBucket (a worker that missed
// the message, or starts later, finds no spec and drops the shard without
// computing it) and its shipped data is deleted from DataBucket. Call it
// once the run's Predicts have returned; later ones fail with ErrRunEnded.
// End tries every step and returns the first error; it is safe to call
// more than once.
func (e *Engine) End(ctx context.Context) error {
	if e.ended.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout) // and a deadline for Flush
	defer cancel()
	run := e.spec.RunID
	var errs []error
	if err := e.nc.Publish(cancelSubject(run), []byte(cancelRunBody)); err != nil {
		errs = append(errs, fmt.Errorf("tell workers: %w", err))
	}
	if err := e.stream.Purge(ctx, jetstream.WithPurgeSubject(ShardSubjectPrefix+"."+run+".>")); err != nil {
		errs = append(errs, fmt.Errorf("purge shards: %w", err))
	}
	if err := e.res.runs.Delete(ctx, run); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		errs = append(errs, fmt.Errorf("delete run spec: %w", err))
	}
	if e.spec.ShipData {
		if err := e.deleteShipped(ctx); err != nil {
			errs = append(errs, fmt.Errorf("delete shipped data: %w", err))
		}
	}
	if err := e.nc.FlushWithContext(ctx); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster engine: end run %s: %w", run, errs[0])
	}
	return nil
}

// deleteShipped deletes the run's objects from DataBucket.
func (e *Engine) deleteShipped(ctx context.Context) error {
	infos, err := e.res.data.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, info := range infos {
		if strings.HasPrefix(info.Name, e.spec.RunID+"/") {
			if err := e.res.data.Delete(ctx, info.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				return err
			}
		}
	}
	return nil
}
