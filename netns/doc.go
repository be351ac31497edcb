// Package netns holds no code: its test runs the real fleet on hosts with
// their own addresses, Linux network namespaces joined by veth pairs and a
// bridge, and checks that the quantized model stays byte-identical when the
// network is slow, lossy or cut.
//
// The topology (10.77.0.0/24, private to the namespaces):
//
//	R  10.77.0.1  the "router": the bridge, the test's latency relay
//	A  10.77.0.2  nats-server (JetStream) and the coordinator
//	B  10.77.0.3  worker B
//	C  10.77.0.4  worker C
//
// TestNetworkFleet builds cmd/coordinator, cmd/worker and the nats-server of
// go.mod, quantizes examples/fashion-mnist with --in-process for the
// reference, then on the fleet: (1) undisturbed, then with latency and loss
// on the workers' links (tc netem when the kernel has it; else a relay in R
// that delays every chunk, iptables' statistic match dropping packets, and
// tbf limiting the bandwidth), logging the second run's time as a ratio of
// the first; (2) with worker B's link set down mid-shard for longer than
// the ack wait, so that its shard is redelivered; (3) once B's link is back
// and its TCP connection has caught up, requiring B to serve shards of
// another run. Every output model must equal the reference byte for byte,
// and every report.json must count all the calibration samples.
//
// Namespaces are named fleetcal-<test pid>-<role>; the test deletes its own
// on every exit path, and those of a test process that no longer exists
// when it starts.
//
// It needs root, iproute2 (ip, tc) and, without netem, iptables (installed
// by scripts/setup.sh --test); without root or namespaces it skips, saying
// why. Run it alone with:
//
//	go test ./netns -run TestNetworkFleet -v
//
// It must never import the product's packages: it runs the binaries users
// run.
package netns
