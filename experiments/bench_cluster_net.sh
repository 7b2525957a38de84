#!/bin/bash
# bench_cluster_net.sh - the cluster's figures with real nemods: three etcd members and three
# nemods in network namespaces (tests/cluster/cluster.sh), all on this machine's cores.
#   1. forward cost: warm echo through a node that runs it (a) and through a node without
#      spare that forwards it (b), p50/p99 with wrk at one connection, through OpenWhisk's
#      route and OpenFaaS's /function;
#   2. throughput of blocking warm echo against 1, 2 and 3 nodes at once (one wrk per node);
#   3. etcd cost of async calls at 1, 4 and 16 connections: writes (requests that go through
#      raft: activation txns, node records, lease grants), record txns and bytes sent, per call,
#      from the three nodes' counters;
#   4. failover: kill -9 of a node with queued async work; adoption time from the records.
# Needs root, etcd, wrk. BENCH_CLUSTER_NET_SECONDS sets each wrk run (5); BENCH_CLUSTER_NET_PARTS
# which parts run ("forward throughput etcd failover").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
H="$ROOT/tests/cluster/cluster.sh"
S=${BENCH_CLUSTER_NET_SECONDS:-5}
PARTS=" ${BENCH_CLUSTER_NET_PARTS:-forward throughput etcd failover} "
part() { [[ "$PARTS" == *" $1 "* ]]; }
TOKEN=nemo-cluster-demo-token-0123456789
LUA="$ROOT/experiments/bench_api.lua"
TAG=
cleanup() {
	trap "" INT TERM
	[ -z "$TAG" ] || "$H" down "$TAG" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
command -v wrk >/dev/null || { echo "bench_cluster_net: needs wrk" >&2; exit 1; }

wrk_on() { # node url_node path conns: one wrk run in node's namespace against url_node
	local node=$1 target=$2 path=$3 conns=$4
	"$H" exec "$TAG" "$node" env NEMO_TOKEN=$TOKEN BENCH_PATH="$path" BENCH_BODY='{"hello":"nemo"}' \
		wrk -t1 -c"$conns" -d"${S}s" -s "$LUA" "http://10.77.0.2$target:8080" | grep '^WRK'
}
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
api() { "$H" api "$TAG" "$@"; }
stats() { api "$1" GET /api/v1/cluster/nodes | python3 -c 'import json,sys; s=json.load(sys.stdin)["stats"]; print(s["record_txns"], s["etcd_writes"], s["etcd_bytes_out"], s["accepted"], s["etcd_renewals"], s["node_records_alone"])'; }
# the three nodes' counters summed: a sends some calls on to b and c (offload), who record them
stats3() { for k in 1 2 3; do stats "$k"; done | awk '{for (i = 1; i <= NF; i++) s[i] += $i} END {print s[1], s[2], s[3], s[4], s[5], s[6]}'; }
deploy_echo() {
	api 1 PUT /api/v1/namespaces/_/actions/echo \
		-d "{\"runtime\":\"c\",\"concurrency\":8,\"code\":{\"base64\":\"$(base64 -w0 "$ROOT/build/functions/echo.so")\"}}" >/dev/null
	for _ in $(seq 1 100); do
		[[ "$(api 3 GET /api/v1/cluster/nodes)" == *'"functions":["echo"]'*'"functions":["echo"]'*'"functions":["echo"]'* ]] && break
		sleep 0.05
	done
}

echo "bench-cluster-net: $(nproc) cores shared by 3 etcd members and 3 nemods, load $(cut -d' ' -f1-3 /proc/loadavg)"

P='/api/v1/namespaces/_/actions/echo?blocking=true&result=true'
# ---- 1. forward cost: b has no spare (harvesting NF cores that do not exist)
if part forward; then
TAG=bn$$
CLUSTER_EXTRA_b='"harvest": {"enabled": true, "channels": ["nemo-cl-none"]},' "$H" up 3 "$TAG" >/dev/null
deploy_echo
wrk_on 1 1 "$P" 1 >/dev/null # warm
wrk_on 2 2 "$P" 1 >/dev/null
L=$(wrk_on 1 1 "$P" 1)
F=$(wrk_on 2 2 "$P" 1)
printf "forward   local on a:        p50 %6s us  p99 %6s us  %8s req/s\n" "$(echo "$L" | field p50_us)" "$(echo "$L" | field p99_us)" "$(echo "$L" | field rps)"
printf "forward   b -> peer (offload): p50 %6s us  p99 %6s us  %8s req/s\n" "$(echo "$F" | field p50_us)" "$(echo "$F" | field p99_us)" "$(echo "$F" | field rps)"
echo "forward   added p50: $(( $(echo "$F" | field p50_us) - $(echo "$L" | field p50_us) )) us (goal: <= 1000 us)"
# the same through OpenFaaS's /function/echo: every header of the call and the answer goes on
FP=/function/echo
wrk_on 1 1 "$FP" 1 >/dev/null
wrk_on 2 2 "$FP" 1 >/dev/null
L=$(wrk_on 1 1 "$FP" 1)
F=$(wrk_on 2 2 "$FP" 1)
printf "forward   OpenFaaS local on a:        p50 %6s us  p99 %6s us  %8s req/s\n" "$(echo "$L" | field p50_us)" "$(echo "$L" | field p99_us)" "$(echo "$L" | field rps)"
printf "forward   OpenFaaS b -> peer (offload): p50 %6s us  p99 %6s us  %8s req/s\n" "$(echo "$F" | field p50_us)" "$(echo "$F" | field p99_us)" "$(echo "$F" | field rps)"
echo "forward   OpenFaaS added p50: $(( $(echo "$F" | field p50_us) - $(echo "$L" | field p50_us) )) us (goal: <= 1000 us)"
api 2 GET /api/v1/cluster/nodes | python3 -c 'import json,sys; s=json.load(sys.stdin)["stats"]; print("forward   b: %d forwarded, %d failed, decision mean %.1f us" % (s["forwarded"], s["forward_failed"], s["decide_ns_mean"]/1e3))'
"$H" down "$TAG" >/dev/null
TAG=
fi

# ---- 2..4 on a cluster of three ordinary nodes
TAG=bt$$
# b keeps its calls for the failover figure (no offload): they are its to lose
CLUSTER_KEYS_b='"offload": false,' "$H" up 3 "$TAG" >/dev/null
deploy_echo
for k in 1 2 3; do wrk_on "$k" "$k" "$P" 1 >/dev/null; done
part throughput && for nodes in 1 2 3; do
	out=$(mktemp)
	for k in $(seq 1 "$nodes"); do wrk_on "$k" "$k" "$P" 4 >"$out.$k" & done
	wait
	total=0
	for k in $(seq 1 "$nodes"); do total=$(python3 -c "print($total + $(field rps <"$out.$k"))"); done
	rm -f "$out" "$out".*
	printf "throughput %d node(s): %8.0f req/s, %6.0f req/s per core of this %d-core host\n" "$nodes" "$total" "$(python3 -c "print($total / $(nproc))")" "$(nproc)"
done

# ---- 3. etcd cost of async calls, at three rates (wrk connections 1, 4 and 16), from the three
# nodes' counters summed (a sends some calls on to b and c, who record them). "steady" is the
# run without its first and last second (amortised: a burst's last call has no next accept for
# its start and end to ride with); "whole" is from before the run to 1 s after it. Writes are
# requests that go through raft; per call, counting every write of every node ("all"), and
# without the node records that went alone ("calls"): an idle node's heartbeat, a cost per node
# per second (shown apart), not per call.
part etcd && for conns in 1 4 16; do
	read -r t0 w0 b0 a0 r0 h0 <<<"$(stats3)"
	out=$(mktemp)
	wrk_on 1 1 /api/v1/namespaces/_/actions/echo "$conns" >"$out" &
	wpid=$!
	sleep 1
	read -r ts0 ws0 bs0 as0 _ hs0 <<<"$(stats3)"
	tt0=$(date +%s%N)
	sleep $((S - 2))
	read -r ts1 ws1 bs1 as1 _ hs1 <<<"$(stats3)"
	tt1=$(date +%s%N)
	wait $wpid
	R=$(cat "$out")
	rm -f "$out"
	sleep 1 # the last ones end, and their end records ride out (end_batch_ms)
	read -r t1 w1 b1 a1 r1 h1 <<<"$(stats3)"
	python3 - <<EOF
n, ns = max($a1 - $a0, 1), max($as1 - $as0, 1)
calls = ($ws1 - $ws0 - ($hs1 - $hs0)) / ns
print("etcd      async, %2d conn: %s calls/s (%s not 202); steady %d calls: %.3f writes/call for "
      "the calls (goal <= 1: %s), %.3f all in, %.1f node records/s alone, %.3f record txns/call, "
      "%.0f bytes/call sent; whole run %d calls: %.3f writes/call all in, %.0f bytes/call; %d "
      "lease renewals (not raft writes); 202 p50 %s us p99 %s us"
      % ($conns, "$(echo "$R" | field rps)", "$(echo "$R" | field non2xx)", ns, calls,
         "met" if calls <= 1.0 else "NOT met", ($ws1 - $ws0) / ns,
         ($hs1 - $hs0) / (($tt1 - $tt0) / 1e9), ($ts1 - $ts0) / ns, ($bs1 - $bs0) / ns, n,
         ($w1 - $w0) / n, ($b1 - $b0) / n, $r1 - $r0, "$(echo "$R" | field p50_us)",
         "$(echo "$R" | field p99_us)"))
EOF
done

# ---- 4. failover: b gets async calls that sleep, then is killed
part failover || exit 0
# first, b's queue of the calls a sent on in part 3 drains (up to 60 s)
for _ in $(seq 1 600); do
	[ "$(api 2 GET /metrics | sed -n 's/^nemo_async_queue_length //p')" = 0 ] && break
	sleep 0.1
done
# 2 s each, 2 at a time on b: most are still queued when b dies, whatever the host's load
api 1 PUT /api/v1/namespaces/_/actions/slow -d '{"exec":{"kind":"python:3","code":"import time\ndef main(a):\n    time.sleep(2)\n    return a\n"},"limits":{"concurrency":2,"timeout":10000}}' >/dev/null
sleep 1
# the 20 calls at once (a loaded host takes seconds for 20 in a row)
acc=$(mktemp -d)
for i in $(seq 1 20); do api 2 POST /api/v1/namespaces/_/actions/slow -d '{}' >"$acc/$i" & done
wait
ids=()
for i in $(seq 1 20); do
	ids+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("activationId",""))' "$acc/$i" 2>/dev/null)")
done
rm -rf "$acc"
kill -9 "$(awk '$2 == "2" {print $1}' /tmp/nemo-clnet-$TAG/pids)"
t_kill=$(date +%s%3N)
# until each has ended (up to 60 s), polled by id on a
python3 - "$t_kill" "${ids[@]}" <<EOF
import json, subprocess, sys, time
t_kill = int(sys.argv[1]); ids = sys.argv[2:]
for _ in range(60):
    adopted = []; states = {}; ends = []
    for i in ids:
        out = subprocess.run(["$H", "api", "$TAG", "1", "GET", "/api/v1/namespaces/_/activations/" + i], capture_output=True, text=True).stdout
        try:
            r = json.loads(out)
        except ValueError:
            r = {}
        st = r.get("status") or r.get("response", {}).get("status") or "missing"
        states[st] = states.get(st, 0) + 1
        if r.get("adopted_ms"):
            adopted.append(r["adopted_ms"] - t_kill)
        if r.get("end"):
            ends.append(r["end"] - t_kill)
    if states.get("success", 0) + states.get("interrupted", 0) == len(ids):
        break
    time.sleep(1)
print("failover  lease ttl 3 s: %d async calls on b (2 s each), killed: %s; %d adopted, %d..%d ms after the kill (goal: <= 4000); all ended %d ms after it"
      % (len(ids), states, len(adopted), min(adopted or [0]), max(adopted or [0]), max(ends or [0])))
EOF
