#!/usr/bin/env bash
# Runs the commands of README.md's "Run on a fleet" section as written (same ports, same
# store folder), in the background where the README says "in its own terminal", and checks
# what the README promises:
#   - the coordinator calibrates on the two workers and the model is byte-identical to the
#     in-process one (--in-process);
#   - the workers' /metrics count the shards they served;
#   - the coordinator's embedded server with --listen and credentials takes a worker that
#     gives them (--ship-data: the worker downloads the data), and refuses one that does not.
# Needs the ports 4222, 4223, 9100, 9101 and 9102 of 127.0.0.1 free. Usage: scripts/fleet_demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# The fleet secret the coordinator and its workers share (README: "Credentials").
export FLEETCAL_SECRET=${FLEETCAL_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
for port in 4222 4223 9100 9101 9102; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "fleet_demo: 127.0.0.1:$port is taken; the README's commands need it" >&2
		exit 1
	fi
done
logs=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		pkill -TERM -P "$p" 2>/dev/null || true # go run's child
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$logs"
}
trap cleanup EXIT
# wait_for WHAT CMD...: polls CMD for up to 120 s.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 1200); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "fleet_demo: timed out waiting for $what" >&2
	for f in "$logs"/*; do echo "== $f" >&2; cat "$f" >&2; done
	exit 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

make build
rm -rf out/fleet out/fleet-inproc out/fleet-listen

# 1. a NATS server with JetStream and a store folder
go run github.com/nats-io/nats-server/v2@v2.15.2 -js -sd /tmp/nats -a 127.0.0.1 -p 4222 >"$logs/nats" 2>&1 &
pids+=($!)
wait_for "nats-server on 4222" listening 4222

# 2. two workers
./bin/worker --nats nats://127.0.0.1:4222 --threads 1 --metrics-addr 127.0.0.1:9101 2>"$logs/worker1" &
pids+=($!)
./bin/worker --nats nats://127.0.0.1:4222 --threads 1 --metrics-addr 127.0.0.1:9102 2>"$logs/worker2" &
pids+=($!)
wait_for "worker metrics" curl -sf 127.0.0.1:9101/metrics
wait_for "worker metrics" curl -sf 127.0.0.1:9102/metrics

# 3. the coordinator
./bin/coordinator quantize -c examples/fashion-mnist/config.json -o out/fleet --nats nats://127.0.0.1:4222 | tee "$logs/coordinator"
grep -q "calibrated by the fleet at nats://127.0.0.1:4222" "$logs/coordinator"
./bin/coordinator quantize -c examples/fashion-mnist/config.json -o out/fleet-inproc --in-process >/dev/null 2>&1
cmp out/fleet/fashion_cnn.onnx out/fleet-inproc/fashion_cnn.onnx
echo "fleet_demo: the fleet's model is byte-identical to the in-process one"

# Metrics: shards served by each worker, and the coordinator's while it runs
total=0
for port in 9101 9102; do
	n=$(curl -s 127.0.0.1:$port/metrics | grep ^fleetcal_worker_shards_done_total | awk '{print $2}')
	echo "fleet_demo: worker on :$port served $n shards"
	total=$((total + ${n%.*}))
done
[ "$total" -gt 0 ]
rm -rf out/fleet
./bin/coordinator quantize -c examples/fashion-mnist/config.json -o out/fleet --nats nats://127.0.0.1:4222 --metrics-addr 127.0.0.1:9100 \
	>"$logs/coordinator-metrics" 2>&1 &
coord=$!
pids+=($coord)
wait_for "the coordinator's metrics" curl -sf 127.0.0.1:9100/metrics
curl -s 127.0.0.1:9100/metrics | grep ^fleetcal_coordinator_ | head -3
wait "$coord"
cmp out/fleet/fashion_cnn.onnx out/fleet-inproc/fashion_cnn.onnx

# Remote workers through the coordinator's embedded server (--listen, credentials, --ship-data)
./bin/coordinator quantize -c examples/fashion-mnist/config.json -o out/fleet-listen \
	--listen 127.0.0.1:4223 --user fleet --password s3cret --ship-data --workers 1 \
	>"$logs/listen" 2>&1 &
coord=$!
pids+=($coord)
wait_for "the embedded server on 4223" listening 4223
if ./bin/worker --nats nats://127.0.0.1:4223 --threads 1 2>"$logs/refused"; then
	echo "fleet_demo: a worker without credentials was let in" >&2
	exit 1
fi
grep -q "authorization refused" "$logs/refused"
./bin/worker --nats nats://127.0.0.1:4223 --user fleet --password s3cret --threads 1 2>"$logs/remote" &
pids+=($!)
wait "$coord"
cat "$logs/listen"
grep -q "calibrated by 1 local workers over embedded NATS at nats://127.0.0.1:4223" "$logs/listen"
cmp out/fleet-listen/fashion_cnn.onnx out/fleet-inproc/fashion_cnn.onnx
# The run may end before the remote worker has bound to the work queue; it was let in.
grep -q -e "serving shards" -e "waiting for a coordinator" "$logs/remote"
echo "fleet_demo: --listen with credentials and --ship-data: same model; a worker with the credentials joined, one without was refused"
