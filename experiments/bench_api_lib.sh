#!/bin/bash
# bench_api_lib.sh - the set-up bench_api.sh and bench_abuse.sh share: a work folder that is
# removed at exit with the nemod it ran, a free port, nemod started on a config and waited
# for, an echo function deployed. Source it after `set -euo pipefail`; BENCH_NAME names the
# run (its folder and the cgroup root).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BIN=$ROOT/build/bin

[ "$(id -u)" = 0 ] || { echo "$BENCH_NAME: run as root (sandboxes need cgroups)" >&2; exit 1; }

# not under /tmp: sandboxes see a private /tmp and must read the store
DIR=$(mktemp -d "/var/tmp/nemo-$BENCH_NAME-XXXXXX")
chmod 755 "$DIR"
NEMOD_PID=
OTHER_NEMODS=() # nemods a run keeps beside the current one (their pids)
cleanup() {
	[ -n "$NEMOD_PID" ] && kill "$NEMOD_PID" 2>/dev/null && wait "$NEMOD_PID" 2>/dev/null
	for p in "${OTHER_NEMODS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "${MQ_PID:-}" ] && kill "$MQ_PID" 2>/dev/null && wait "$MQ_PID" 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT

rand_hex() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Start nemod on its config [$DIR/nemod.json] (written by the caller for port $PORT), its log
# in $1; URL is set once /healthz answers.
nemod_start() { # log [config]
	"$BIN/nemod" --config "${2:-$DIR/nemod.json}" > "$1" 2>&1 &
	NEMOD_PID=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
		sleep 0.05
	done
	URL=http://127.0.0.1:$PORT
}

nemod_stop() {
	kill "$NEMOD_PID"; wait "$NEMOD_PID" || true; NEMOD_PID=
}

# Deploy build/functions/echo.so as NAME with more spec keys (JSON members, or "").
deploy_echo() { # name extra
	curl -sf -X PUT -H "Authorization: Bearer $TOKEN" \
		"$URL/api/v1/namespaces/_/actions/$1?overwrite=true" \
		-d "{\"runtime\":\"c\",${2:+$2,}\"code\":{\"path\":\"$ROOT/build/functions/echo.so\"}}" >/dev/null
}
