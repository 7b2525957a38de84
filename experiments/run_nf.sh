#!/bin/bash
# run_nf.sh - the main job for now: nemo-nf on memif, driven by nemo-gen through a varying load.
#
# Usage: experiments/run_nf.sh [--config FILE] [--duration SECONDS]
# nemo-nf prints one line per lcore per second (busy, idle_poll, sleep, spare); at the end
# both programs print their summaries. Everything they create is removed on exit, also on
# Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFIG=configs/nf-default.json
DURATION=20
while [ $# -gt 0 ]; do
	case "$1" in
	--config) CONFIG=$2; shift 2 ;;
	--duration) DURATION=$2; shift 2 ;;
	-h|--help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "run_nf.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
[ -r "$CONFIG" ] || { echo "run_nf.sh: cannot read config $CONFIG" >&2; exit 2; }
NAME=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("name","default"))' "$CONFIG")
SOCK=$(/usr/bin/python3 -c '
import json,sys,re
c=json.load(open(sys.argv[1]))
m=re.search(r"socket=([^,]+)", c["ports"][0].get("vdev",""))
print(m.group(1) if m else "")' "$CONFIG")
[ -n "$SOCK" ] || { echo "run_nf.sh: port 0 of $CONFIG is not a memif port" >&2; exit 2; }

NF_PID=
cleanup() {
	if [ -n "$NF_PID" ] && kill -0 "$NF_PID" 2>/dev/null; then
		kill -INT "$NF_PID"; wait "$NF_PID" || true
	fi
}
trap cleanup EXIT INT TERM

build/bin/nemo-nf --config "$CONFIG" &
NF_PID=$!
for _ in $(seq 200); do
	[ -S "$SOCK" ] && [ -e "/dev/shm/nemo-hc-$NAME" ] && break
	kill -0 "$NF_PID" 2>/dev/null || { echo "run_nf.sh: nemo-nf exited" >&2; exit 1; }
	sleep 0.05
done

# A load that varies: idle, light, heavy, a burst, light again; each step a share of DURATION.
S=$(awk -v d="$DURATION" 'BEGIN { printf "%.2f", d / 6 }')
STEPS="0:$S,200000:$S,1000000:$S,4000000:$S,500000:$S,0:$S"
echo "run_nf.sh: nemo-gen steps (pps:seconds) $STEPS"
build/bin/nemo-gen --socket "$SOCK" --profile steps --steps "$STEPS" --cpu 0 --flows 64 \
	--duration "$DURATION" --interval-ms 1000 || echo "run_nf.sh: nemo-gen failed" >&2
cleanup
NF_PID=
