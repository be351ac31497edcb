// Package netns holds no code: its test runs the real fleet on hosts with
// their own addresses, Linux network namespaces joined by veth pairs and a
// bridge, and checks that the quantized model stays byte-identical when the
// network is slow, lossy or cut.
//
// The topology (10.77.0.0/24, every namespace named fc<random>-<role>):
//
//	R  10.77.0.1  the "router": the bridge, the test's latency relay
//	A  10.77.0.2  nats-server (JetStream) and the coordinator
//	B  10.77.0.3  worker B
//	C  10.77.0.4  worker C
//
// TestNetworkFleet builds cmd/coordinator, cmd/worker and the nats-server of
// go.mod, quantizes examples/fashion-mnist with --in-process for the
// reference, then on the fleet: (1) with latency and loss on the workers'
// links (tc netem when the kernel has it; else a relay in R that delays
// every chunk, iptables' statistic match dropping packets, and tbf limiting
// the bandwidth), (2) with worker B's link set down mid-shard for longer
// than the ack wait, (3) undisturbed, after B's link is back, requiring B to
// serve shards again. Every output model must equal the reference byte for
// byte.
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
