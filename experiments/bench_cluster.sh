#!/bin/bash
# bench_cluster.sh - start three etcd members on loopback (free ports, data under /tmp, removed
# at exit whatever happens) and run build/bin/bench_cluster against them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ETCD=${ETCD:-/usr/bin/etcd}
SECONDS_PER_ROW=${BENCH_CLUSTER_SECONDS:-3}
[ -x "$ETCD" ] || { echo "bench_cluster: needs $ETCD (Debian etcd-server)" >&2; exit 1; }
DIR=$(mktemp -d /tmp/nemo-bench-cluster-XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	sleep 0.3
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLUSTER="" EPS=""
declare -a CP PP
for k in 0 1 2; do
	CP[$k]=$(free_port); PP[$k]=$(free_port)
	CLUSTER="$CLUSTER${CLUSTER:+,}m$k=http://127.0.0.1:${PP[$k]}"
	EPS="$EPS${EPS:+,}http://127.0.0.1:${CP[$k]}"
done
for k in 0 1 2; do
	"$ETCD" --name "m$k" --data-dir "$DIR/m$k" \
		--listen-client-urls "http://127.0.0.1:${CP[$k]}" --advertise-client-urls "http://127.0.0.1:${CP[$k]}" \
		--listen-peer-urls "http://127.0.0.1:${PP[$k]}" --initial-advertise-peer-urls "http://127.0.0.1:${PP[$k]}" \
		--initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token "bench-$$" \
		--logger zap --log-level error >"$DIR/m$k.log" 2>&1 &
	PIDS+=($!)
done
for k in 0 1 2; do
	for _ in $(seq 1 100); do
		curl -s -m 1 "http://127.0.0.1:${CP[$k]}/health" | grep -q '"true"' && break
		sleep 0.1
	done
done
echo "etcd $("$ETCD" --version | head -1 | awk '{print $3}'), 3 members on loopback (default heartbeat and election), fsync on; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$ROOT/build/bin/bench_cluster" "$EPS" "$SECONDS_PER_ROW"
