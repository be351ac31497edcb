package app

import (
	"context"
	"log/slog"
	"testing"
)

// runFleet starts j's fleet (j.Close releases it) and runs its actors
// until stop, which ends the run on the fleet and fails the test if an
// actor failed.
func runFleet(tb testing.TB, j *job, fo FleetOptions, log *slog.Logger) (fl *fleet, stop func()) {
	tb.Helper()
	fl, err := startFleet(tb.Context(), j, fo, j.requests, log)
	if err != nil {
		tb.Fatal(err)
	}
	j.fleet = fl
	ctx, cancel := context.WithCancel(tb.Context())
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	return fl, func() {
		fl.end()
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("fleet: %v", err)
		}
	}
}
