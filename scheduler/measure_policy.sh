#!/bin/sh
# measure_policy.sh - compare the harvest-cgroup policies (cpu.idle=1 vs cpu.shares=2) on cpu 1.
#
# For each NF scheduling class (nice -20, SCHED_FIFO) and each harvest policy (none = no hog,
# the baseline; idle; shares), start nemo-nf on cpu 1 (sleep when idle), put a CPU hog in the
# core's harvest cgroup, load the NF with nemo-gen from cpu 0, and report the NF's loss and
# latency (nemo-gen --json) and the hog's share of cpu 1 (cpuacct). Run as root from the repo.
# Usage: scheduler/measure_policy.sh [rate_pps] [seconds]
set -eu
RATE=${1:-2000000}
DUR=${2:-5}
BIN=build/bin
CG=nemo-exp-$$
TMP=/tmp/nemo-exp-$$
mkdir -p "$TMP"

cleanup() {
	[ -n "${HOG:-}" ] && kill -9 "$HOG" 2>/dev/null || true
	[ -n "${NF:-}" ] && kill "$NF" 2>/dev/null && wait "$NF" 2>/dev/null || true
	for c in cpu cpuacct cpuset; do
		rmdir /sys/fs/cgroup/$c/$CG/core1 /sys/fs/cgroup/$c/$CG 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for c in cpu cpuacct cpuset; do mkdir -p /sys/fs/cgroup/$c/$CG/core1; done
cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/$CG/cpuset.mems
echo 1 > /sys/fs/cgroup/cpuset/$CG/cpuset.cpus
echo 1 > /sys/fs/cgroup/cpuset/$CG/core1/cpuset.cpus
cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/$CG/core1/cpuset.mems
CPU=/sys/fs/cgroup/cpu/$CG/core1

usage1() { awk '{print $2}' /sys/fs/cgroup/cpuacct/$CG/core1/cpuacct.usage_percpu; }

printf '%-6s %-7s %10s %10s %8s %9s %9s %9s %8s\n' nf policy sent lost loss% p50_us p99_us \
	p999_us hog_cpu%
for sched in '"policy":"other","nice":-20' '"policy":"fifo","priority":50'; do
	nfname=$(echo "$sched" | grep -q fifo && echo fifo || echo nice-20)
	for policy in none idle shares; do
		case $policy in
		idle) echo 1024 > $CPU/cpu.shares; echo 1 > $CPU/cpu.idle ;;
		shares) echo 0 > $CPU/cpu.idle; echo 2 > $CPU/cpu.shares ;;
		esac
		name=exp$$
		sock=$TMP/nf.memif
		rm -f "$sock"
		cat > "$TMP/nf.json" <<JSON
{"name":"$name","stats_interval_ms":0,"memory_mb":256,
 "ports":[{"vdev":"net_memif0,role=server,socket=$sock,socket-abstract=no","rx_ring":16384,
           "line_rate_pps":25000000}],
 "lcores":[{"lcore":1,"cpu":1,"rx":[{"port":0}],"chain":["fwd"],"idle":"sleep","sched":{$sched}}]}
JSON
		$BIN/nemo-nf --config "$TMP/nf.json" --duration 0 > "$TMP/nf.out" 2>&1 &
		NF=$!
		for i in $(seq 100); do [ -e /dev/shm/nemo-hc-$name ] && break; sleep 0.1; done
		HOG=
		if [ $policy != none ]; then
			sh -c "for c in cpu cpuacct cpuset; do echo \$\$ > /sys/fs/cgroup/\$c/$CG/core1/tasks; done; exec sh -c 'while :; do :; done'" &
			HOG=$!
		fi
		sleep 0.5
		u0=$(usage1)
		$BIN/nemo-gen --socket "$sock" --rate "$RATE" --duration "$DUR" --cpu 0 --quiet \
			--json "$TMP/gen.json" > "$TMP/gen.out" 2>&1 || true
		u1=$(usage1)
		[ -n "$HOG" ] && kill -9 "$HOG" && wait "$HOG" 2>/dev/null || true
		HOG=
		kill "$NF"; wait "$NF" || true
		NF=
		busy=$(grep -o 'busy [0-9]* ([0-9.]*%)' "$TMP/nf.out" | head -1 | grep -o '[0-9.]*%' || echo '?')
		python3 - "$TMP/gen.json" "$nfname" "$policy" "$u0" "$u1" "$DUR" "$busy" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
u0, u1, dur = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
sent, lost = j.get("sent", 0), j.get("lost", 0)
print("%-6s %-7s %10d %10d %8.4f %9.1f %9.1f %9.1f %8.1f  (NF busy %s of its lifetime)" % (
    sys.argv[2][:6], sys.argv[3], sent, lost, 100.0 * lost / max(sent, 1),
    j.get("lat_p50_us", -1), j.get("lat_p99_us", -1), j.get("lat_p999_us", -1),
    100.0 * (u1 - u0) / (dur * 1e9), sys.argv[7]))
PY
	done
done
