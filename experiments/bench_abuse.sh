#!/bin/bash
# bench_abuse.sh - nemod under slow and greedy clients: the health check's and a warm echo's
# latency with no attack and while connections trickle their headers (BENCH_ABUSE_ONE from
# 127.0.0.1, BENCH_ABUSE_ADDRS x BENCH_ABUSE_PER from 127.0.0.2..), with nemod's defaults
# (per-IP limit, header deadline) and, for comparison, with the per-IP limit off.
#
# env: BENCH_ABUSE_SECONDS [10] per phase, BENCH_ABUSE_ONE [2000], BENCH_ABUSE_ADDRS [10],
#      BENCH_ABUSE_PER [20]
set -euo pipefail
BENCH_NAME=benchabuse
. "$(dirname "$0")/bench_api_lib.sh"
SECONDS_PER=${BENCH_ABUSE_SECONDS:-10}
ONE=${BENCH_ABUSE_ONE:-2000}
ADDRS=${BENCH_ABUSE_ADDRS:-10}
PER=${BENCH_ABUSE_PER:-20}

TOKEN=bench-abuse-$(rand_hex)
echo "$TOKEN" > "$DIR/token"

run() { # label extra-limits-json
	PORT=$(free_port)
	cat > "$DIR/nemod.json" <<CFG
{"listen": "127.0.0.1:$PORT", "token_file": "$DIR/token", "store_dir": "$DIR/store",
 "code_roots": ["$ROOT/build/functions"], "cgroup_root": "nemo-benchabuse-$$",
 "log_level": "err", "limits": {$2}}
CFG
	nemod_start "$DIR/nemod.log"
	deploy_echo echo ""
	printf "\n%s\n" "$1"
	"$BIN/bench_abuse" --port "$PORT" --token "$TOKEN" --one "$ONE" --addrs "$ADDRS" \
		--per "$PER" --seconds "$SECONDS_PER" --echo /function/echo | sed 's/^/  /'
	nemod_stop
}

echo "bench-abuse: $ONE trickling connections from 127.0.0.1, $ADDRS x $PER from 127.0.0.2..;"
echo "probe from 127.0.0.250, a new connection per request, ${SECONDS_PER}s per phase"
run "nemod defaults (max_connections_per_ip 64, header_timeout_ms 10000)" ''
run "per-IP limit off (max_connections_per_ip 0; the old defaults)" '"max_connections_per_ip": 0'
