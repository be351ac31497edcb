#!/usr/bin/env bash
# Fleet scaling benchmark: one calibration statistics pass over 1024 samples of a conv net
# (scripts/gen_scaling_model.py, ~8-12 ms per sample on one thread) run by external worker
# processes against an external nats-server on loopback, with the same coordinator command:
#   A = 1 worker process x 1 thread, B = 2 worker processes x 1 thread each.
# Each repetition runs A then B back to back, then the control: the same quantize in one
# process without NATS (--in-process) with 1 and with 2 ONNX Runtime requests, which shows
# the speed-up the machine itself allowed at that moment (the 2 cores are shared).
# The script prints, per run, the wall time of the coordinator process and of its
# calibration stage (report.json stage_seconds.quantization: model upload, the statistics
# pass, the algorithm), the CPU time (user + sys) of the coordinator and of every worker
# during the run (/proc/PID/stat deltas for the workers, /usr/bin/time for the coordinator),
# its max RSS, and the ratios A/B, in-process 1/2 and coordinator/workers.
#
# Usage: scripts/bench_scaling.sh [WORKDIR] [REPEATS]
#   env SIZE (input side, default 112), SAMPLES (default 1024), SHARD (--shard-size, default
#   the coordinator's 16), WORKERS_B (default 2), REPORT_HTML (default false: the HTML
#   report's histogram pass runs 100 samples of inference in the coordinator process, which
#   is not calibration; REPORT_HTML=true measures it too).
set -euo pipefail
cd "$(dirname "$0")/.."
# The fleet secret the coordinator and its workers share (README: "Credentials").
export FLEETCAL_SECRET=${FLEETCAL_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
root=$(pwd)
work=${1:-$(mktemp -d)}
reps=${2:-3}
size=${SIZE:-112}
samples=${SAMPLES:-1024}
wb=${WORKERS_B:-2}
flags=(--skip-eval "--report-html=${REPORT_HTML:-false}")
[ -n "${SHARD:-}" ] && flags+=(--shard-size "$SHARD")
mkdir -p "$work"
work=$(cd "$work" && pwd)

./scripts/setup.sh >/dev/null
go build -o bin/ ./cmd/...
[ -x "$work/nats-server" ] || go build -o "$work/nats-server" github.com/nats-io/nats-server/v2
if [ ! -f "$work/data/config.json" ] || ! grep -q "\"stat_subset_size\": $samples" "$work/data/config.json" ||
	[ "$(cat "$work/data/.size" 2>/dev/null)" != "$size" ]; then
	rm -rf "$work/data"
	/usr/bin/python3 scripts/gen_scaling_model.py "$work/data" --size "$size" --samples "$samples" >/dev/null
	echo "$size" >"$work/data/.size"
fi

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url="nats://127.0.0.1:$port"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
rm -rf "$work/nats"
"$work/nats-server" -js -sd "$work/nats" -a 127.0.0.1 -p "$port" 2>"$work/nats.log" &
pids+=($!)
for _ in $(seq 100); do
	grep -q "Server is ready" "$work/nats.log" && break
	sleep 0.1
done
grep -q "Server is ready" "$work/nats.log" || { echo "nats-server did not start:" >&2; cat "$work/nats.log" >&2; exit 1; }

# cpu PID: user+sys clock ticks of a process (all its threads).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)

# run NAME K: start K workers, wait until they serve, run the coordinator, stop the workers.
run() {
	local name=$1 k=$2 out="$work/out-$1" wp=() before=() i
	for i in $(seq "$k"); do
		./bin/worker --nats "$url" --threads 1 --concurrency 1 --name "$name-w$i" 2>"$work/$name-w$i.log" &
		wp+=($!)
		pids+=($!)
	done
	for i in $(seq "$k"); do
		for _ in $(seq 300); do
			grep -q -e "serving shards" -e "waiting for a coordinator" "$work/$name-w$i.log" && break
			sleep 0.1
		done
	done
	for p in "${wp[@]}"; do before+=("$(cpu "$p")"); done
	rm -rf "$out"
	/usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" \
		./bin/coordinator quantize -c "$work/data/config.json" -o "$out" --nats "$url" "${flags[@]}" \
		>"$work/$name.out" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
	local wcpu=0 line=""
	for i in "${!wp[@]}"; do
		local d=$(($(cpu "${wp[$i]}") - before[i]))
		wcpu=$((wcpu + d))
		line+=" w$((i + 1))=$(awk -v d="$d" -v t="$tck" 'BEGIN{printf "%.2f", d/t}')s"
	done
	for p in "${wp[@]}"; do kill -TERM "$p"; wait "$p" || true; done
	read -r wall cu cs rss <"$work/$name.time"
	local calib
	calib=$(/usr/bin/python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["stage_seconds"]["quantization"])' "$out/report.json")
	local ccpu wsec
	ccpu=$(awk -v u="$cu" -v s="$cs" 'BEGIN{printf "%.2f", u+s}')
	wsec=$(awk -v d="$wcpu" -v t="$tck" 'BEGIN{printf "%.2f", d/t}')
	printf '%-4s workers=%d wall=%6.2fs calibration=%6.2fs coordinator_cpu=%5.2fs workers_cpu=%6.2fs (%s) coordinator/workers=%5.2f%% coordinator_max_rss=%dMB\n' \
		"$name" "$k" "$wall" "$calib" "$ccpu" "$wsec" "${line# }" "$(awk -v c="$ccpu" -v w="$wsec" 'BEGIN{printf "%.2f", 100*c/w}')" $((rss / 1024))
	eval "${name}_calib=$calib"
}

# inproc NAME N: the control, in one process with N requests.
inproc() {
	local name=$1 n=$2 out="$work/out-$1"
	rm -rf "$out"
	/usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" \
		./bin/coordinator quantize -c "$work/data/config.json" -o "$out" --in-process --workers "$n" "${flags[@]}" \
		>"$work/$name.out" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
	read -r wall cu cs _ <"$work/$name.time"
	local calib
	calib=$(/usr/bin/python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["stage_seconds"]["quantization"])' "$out/report.json")
	printf '%-4s in-process requests=%d wall=%6.2fs calibration=%6.2fs cpu=%5.2fs\n' "$name" "$n" "$wall" "$calib" \
		"$(awk -v u="$cu" -v s="$cs" 'BEGIN{printf "%.2f", u+s}')"
	eval "${name}_calib=$calib"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $samples samples [1,3,$size,$size], nats $url; flags ${flags[*]}"
run warm "$wb" >/dev/null # creates the stream, warms the page cache and the binaries
for r in $(seq "$reps"); do
	run A 1
	run B "$wb"
	cmp -s "$work/out-A/scaling_cnn.onnx" "$work/out-B/scaling_cnn.onnx" || { echo "A and B models differ" >&2; exit 1; }
	inproc I1 1
	inproc I2 2
	cmp -s "$work/out-A/scaling_cnn.onnx" "$work/out-I1/scaling_cnn.onnx" || { echo "fleet and in-process models differ" >&2; exit 1; }
	echo "rep $r: speed-up A/B = $(awk -v a="$A_calib" -v b="$B_calib" 'BEGIN{printf "%.3f", a/b}')x, control in-process 1/2 requests = $(awk -v a="$I1_calib" -v b="$I2_calib" 'BEGIN{printf "%.3f", a/b}')x (calibration stage), load $(cut -d' ' -f1-3 /proc/loadavg)"
done
