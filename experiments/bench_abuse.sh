#!/bin/bash
# bench_abuse.sh - nemod under slow and greedy clients: the health check's and a warm echo's
# latency with no attack and while connections trickle their headers (BENCH_ABUSE_ONE from
# 127.0.0.1, BENCH_ABUSE_ADDRS x BENCH_ABUSE_PER from 127.0.0.2..), with nemod's defaults
# (per-IP limit, header deadline) and, for comparison, with the per-IP limit off.
#
# env: BENCH_ABUSE_SECONDS [10] per phase, BENCH_ABUSE_ONE [2000], BENCH_ABUSE_ADDRS [10],
#      BENCH_ABUSE_PER [20]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/build/bin
SECONDS_PER=${BENCH_ABUSE_SECONDS:-10}
ONE=${BENCH_ABUSE_ONE:-2000}
ADDRS=${BENCH_ABUSE_ADDRS:-10}
PER=${BENCH_ABUSE_PER:-20}

[ "$(id -u)" = 0 ] || { echo "bench-abuse: run as root (sandboxes need cgroups)" >&2; exit 1; }
DIR=$(mktemp -d /var/tmp/nemo-benchabuse-XXXXXX)
chmod 755 "$DIR"
NEMOD_PID=
cleanup() {
	[ -n "$NEMOD_PID" ] && kill "$NEMOD_PID" 2>/dev/null && wait "$NEMOD_PID" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
TOKEN=bench-abuse-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$TOKEN" > "$DIR/token"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # label extra-limits-json
	PORT=$(free_port)
	cat > "$DIR/nemod.json" <<CFG
{"listen": "127.0.0.1:$PORT", "token_file": "$DIR/token", "store_dir": "$DIR/store",
 "code_roots": ["$ROOT/build/functions"], "cgroup_root": "nemo-benchabuse-$$",
 "log_level": "err", "limits": {$2}}
CFG
	"$BIN/nemod" --config "$DIR/nemod.json" > "$DIR/nemod.log" 2>&1 &
	NEMOD_PID=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
	curl -sf -X PUT -H "Authorization: Bearer $TOKEN" \
		"http://127.0.0.1:$PORT/api/v1/namespaces/_/actions/echo?overwrite=true" \
		-d "{\"runtime\":\"c\",\"code\":{\"path\":\"$ROOT/build/functions/echo.so\"}}" >/dev/null
	printf "\n%s\n" "$1"
	"$BIN/bench_abuse" --port "$PORT" --token "$TOKEN" --one "$ONE" --addrs "$ADDRS" \
		--per "$PER" --seconds "$SECONDS_PER" --echo /function/echo | sed 's/^/  /'
	kill "$NEMOD_PID"; wait "$NEMOD_PID" || true; NEMOD_PID=
}

echo "bench-abuse: $ONE trickling connections from 127.0.0.1, $ADDRS x $PER from 127.0.0.2..;"
echo "probe from 127.0.0.250, a new connection per request, ${SECONDS_PER}s per phase"
run "nemod defaults (max_connections_per_ip 64, header_timeout_ms 10000)" ''
run "per-IP limit off (max_connections_per_ip 0; the old defaults)" '"max_connections_per_ip": 0'
