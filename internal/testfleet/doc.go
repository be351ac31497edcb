// Package testfleet holds what the fleet tests of several packages share:
// building the real binaries (cmd/coordinator, cmd/worker, the nats-server
// go.mod pins) once per test binary, running them as child processes whose
// output is kept for failure messages, polling until a condition holds,
// free loopback addresses and reading a process's HTTP endpoints
// (/metrics, /healthz).
//
// It is for tests only (its functions take a testing.TB); it lives under
// internal/ so that no user of fleetcal imports it.
package testfleet
