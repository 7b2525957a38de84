#!/bin/bash
# bench_chain.sh - a chain of three functions a -> b -> c called with nemo_call (leased
# shared-memory boxes) against the same chain called over HTTP (the client calls a, b and c in
# turn), in one run: chains per second, latency, and nemo's CPU per chain (nemod and the
# sandboxes, the client's excluded). Rows alternate within each round; each figure is the
# median of the rounds, [min..max], and the ratio is taken round by round.
#
# env: BENCH_CHAIN_ROUNDS [5], BENCH_CHAIN_SECONDS [5] per row and round,
#      BENCH_CHAIN_RUNTIMES ["c python"] (relay.so / pyrelay.py deployed as the three links)
set -euo pipefail
BENCH_NAME=benchchain
. "$(dirname "$0")/bench_api_lib.sh"
ROUNDS=${BENCH_CHAIN_ROUNDS:-5}
SECONDS_ROW=${BENCH_CHAIN_SECONDS:-5}
RUNTIMES=${BENCH_CHAIN_RUNTIMES:-c python}
NCPU=$(nproc)
SBX_CORE=$(( NCPU > 1 ? 1 : 0 ))
CGROOT=nemo-benchchain-$$

command -v wrk >/dev/null || { echo "bench-chain: wrk is missing (make deps)" >&2; exit 1; }
TOKEN=bench-$(rand_hex):$(rand_hex)
echo "$TOKEN" > "$DIR/token"
export NEMO_BASIC
NEMO_BASIC=$(printf %s "$TOKEN" | base64 -w0)

PORT=$(free_port)
cat > "$DIR/nemod.json" <<CFG
{"listen": "127.0.0.1:$PORT", "token_file": "$DIR/token", "store_dir": "$DIR/store",
 "code_roots": ["$ROOT/build/functions"], "cores": {"housekeeping": [0], "sandbox": [$SBX_CORE]},
 "cgroup_root": "$CGROOT", "log_level": "warn", "openfaas": {"function_auth": true}}
CFG
nemod_start "$DIR/nemod.log"

deploy() { # name file runtime handler
	curl -sf -X PUT -H "Authorization: Basic $NEMO_BASIC" \
		"$URL/api/v1/namespaces/_/actions/$1?overwrite=true" \
		-d "{\"runtime\":\"$3\",\"handler\":\"$4\",\"timeout_ms\":5000,\"code\":{\"path\":\"$ROOT/build/functions/$2\"}}" >/dev/null
}

# nemo's CPU so far, in microseconds: nemod's own (user + system) and its sandboxes' cgroups
cpu_us() {
	local tck nemod sbx=0 f
	tck=$(getconf CLK_TCK)
	nemod=$(awk -v t="$tck" '{print int(($14 + $15) * 1e6 / t)}' "/proc/$NEMOD_PID/stat")
	if [ -r "/sys/fs/cgroup/cpuacct/$CGROOT/cpuacct.usage" ]; then
		sbx=$(( $(cat "/sys/fs/cgroup/cpuacct/$CGROOT/cpuacct.usage") / 1000 ))
	else
		f=$(find /sys/fs/cgroup -maxdepth 4 -path "*/$CGROOT/cpu.stat" 2>/dev/null | head -1)
		[ -n "$f" ] && sbx=$(awk '$1 == "usage_usec" {print $2}' "$f")
	fi
	echo $(( nemod + sbx ))
}

field() { sed -n "s/.* $2=\([0-9.-]*\).*/\1/p" <<<" $1"; }

# one row: wrk on one connection; prints "chains/s p50_us cpu_us_per_chain"
row() { # paths body want links-per-chain
	local c0 c1 out rps
	c0=$(cpu_us)
	out=$(BENCH_PATHS=$1 BENCH_BODY=$2 BENCH_WANT=$3 \
		taskset -c 0 wrk -t1 -c1 -d"${SECONDS_ROW}s" -s experiments/bench_chain.lua "$URL")
	c1=$(cpu_us)
	out=$(grep '^WRK' <<<"$out")
	if [ "$(field "$out" wrong)" != 0 ] || [ "$(field "$out" errors)" != 0 ]; then
		echo "bench-chain: $1 '$2': $out" >&2
		exit 1
	fi
	rps=$(field "$out" rps)
	awk -v r="$rps" -v n="$4" -v p="$(field "$out" p50_us)" -v c=$(( c1 - c0 )) \
		-v s="$(field "$out" duration_s)" \
		'BEGIN {printf "%.1f %.1f %.1f\n", r / n, p * n, c / (r * s / n)}'
}

stats() { # values...: "median [min..max]"
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f [%.1f..%.1f]", m, v[1], v[NR]}'
}

declare -A LINK_HTTP
echo "bench-chain: $ROUNDS rounds of ${SECONDS_ROW}s per row, one connection, wrk on cpu 0," \
	"sandboxes on cpu $SBX_CORE; $(date -u +%H:%M) UTC, load $(cut -d' ' -f1 /proc/loadavg)"
for rt in $RUNTIMES; do
	if [ "$rt" = c ]; then file=relay.so handler=handle; else file=pyrelay.py handler=main; fi
	for f in a b c; do deploy "$rt-$f" "$file" "$rt" "$handler"; done
	A=/function/$rt-a B=/function/$rt-b C=/function/$rt-c
	want=x
	# warm: every instance and lease made before measuring
	curl -sf -X POST -H "Authorization: Basic $NEMO_BASIC" "$URL$A" -d "$rt-b,$rt-c|x" >/dev/null
	for p in $A $B $C; do curl -sf -X POST -H "Authorization: Basic $NEMO_BASIC" "$URL$p" -d '|x' >/dev/null; done
	S_TP=() S_P50=() S_CPU=() H_TP=() H_P50=() H_CPU=() O_P50=() RATIO=() CPU_RATIO=()
	for r in $(seq "$ROUNDS"); do
		read -r tp p50 cpu < <(row "$A" "$rt-b,$rt-c|x" "$want" 1)
		read -r htp hp50 hcpu < <(row "$A $B $C" '|x' "$want" 3)
		read -r _ op50 _ < <(row "$C" '|x' "$want" 1)
		S_TP+=("$tp") S_P50+=("$p50") S_CPU+=("$cpu") H_TP+=("$htp") H_P50+=("$hp50")
		H_CPU+=("$hcpu") O_P50+=("$op50")
		RATIO+=("$(awk -v a="$tp" -v b="$htp" 'BEGIN {printf "%.2f", a / b}')")
		CPU_RATIO+=("$(awk -v a="$cpu" -v b="$hcpu" 'BEGIN {printf "%.2f", b / a}')")
	done
	echo
	echo "runtime $rt: a -> b -> c, the answer checked on every call"
	printf '%-34s %-26s %-28s %s\n' "" "chains/s" "latency p50 (us)" "nemo CPU per chain (us)"
	printf '%-34s %-26s %-28s %s\n' "nemo_call (one HTTP call to a)" "$(stats "${S_TP[@]}")" \
		"$(stats "${S_P50[@]}")" "$(stats "${S_CPU[@]}")"
	printf '%-34s %-26s %-28s %s\n' "over HTTP (a, b, c in turn)" "$(stats "${H_TP[@]}")" \
		"$(stats "${H_P50[@]}")" "$(stats "${H_CPU[@]}")"
	printf '%-34s %-26s %-28s\n' "one link over HTTP (a call of c)" "" "$(stats "${O_P50[@]}")"
	echo "nemo_call / HTTP, round by round: chains/s $(stats "${RATIO[@]}")x," \
		"CPU $(stats "${CPU_RATIO[@]}")x less"
	LINK_HTTP[$rt]=$(stats "${O_P50[@]}" | cut -d' ' -f1)
done

# the links themselves, as nemod recorded them: every call an activation caused by its caller
echo
for rt in $RUNTIMES; do
	# a last second of calls through the chain alone: the newest records are its links
	SECONDS_ROW=1 row "/function/$rt-a" "$rt-b,$rt-c|x" x 1 >/dev/null
	for f in b c; do
		curl -sf -H "Authorization: Basic $NEMO_BASIC" \
			"$URL/api/v1/namespaces/_/activations?name=$rt-$f&limit=1000" |
			python3 -c '
import json, sys
name, http = sys.argv[1], float(sys.argv[2])
recs = [a for a in json.load(sys.stdin) if a.get("trigger") == "call"]
if recs:
    hop = sorted(a["phases"]["queue_us"] for a in recs)
    run = sorted(a["phases"]["run_us"] for a in recs)
    wait = sorted(a["phases"]["queue_us"] + a["phases"]["run_us"] for a in recs)
    caused = sum(1 for a in recs if a.get("cause"))
    print("%s called by nemo_call, the last %d records (%d with a cause): the hop alone p50 "
          "%.1f us (p99 %.1f), the callee run p50 %.1f us, the caller waited p50 %.1f us"
          % (name, len(recs), caused, hop[len(hop) // 2], hop[int(len(hop) * 0.99)],
             run[len(run) // 2], wait[len(wait) // 2]))
    if name.endswith("-c"):
        print("  one link (the caller waits for the answer of c): nemo_call %.1f us, HTTP %.1f us"
              " (one call of c, the client'"'"'s p50): %.1fx faster"
              % (wait[len(wait) // 2], http, http / wait[len(wait) // 2]))
' "$rt-$f" "${LINK_HTTP[$rt]}"
	done
done
