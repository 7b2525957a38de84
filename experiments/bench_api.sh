#!/bin/bash
# bench_api.sh - warm echo through nemod's HTTP API with wrk, beside the sandbox-level warm
# round trip, in one run; then a sustained run that checks no request is lost or answered twice.
#
# env: BENCH_API_SECONDS [60] sustained run, BENCH_API_SHORT [10] latency/capacity runs,
#      BENCH_API_CONNS [8] connections for capacity, BENCH_API_MODES
#      ["thread_per_connection pool"] HTTP server modes compared in the latency run,
#      BENCH_API_SYNC [true] nemod's journal_sync in the latency and sustained runs (the lone
#      call and journal rows run both anyway), BENCH_API_JOURNAL_CONNS [64] connections of the
#      journal's throughput rows, BENCH_API_ROUNDS [5] and BENCH_API_JOURNAL_ROUNDS [3] rounds of
#      the lone-call and journal rows, BENCH_API_PARTS ["capacity lone journal sustained mqtt"].
set -euo pipefail
BENCH_NAME=benchapi
. "$(dirname "$0")/bench_api_lib.sh"
SUSTAIN=${BENCH_API_SECONDS:-60}
SHORT=${BENCH_API_SHORT:-10}
CONNS=${BENCH_API_CONNS:-8}
MODES=${BENCH_API_MODES:-"thread_per_connection pool"}
JCONNS=${BENCH_API_JOURNAL_CONNS:-64}
PARTS=${BENCH_API_PARTS:-capacity lone journal sustained mqtt}
want() { [[ " $PARTS " == *" $1 "* ]]; }
NCPU=$(nproc)
# where wrk runs [every cpu]; 0 puts it beside nemod and leaves the sandbox core alone, which
# measured slower here (wrk and nemod then share one core)
WRK_CPUS=${BENCH_API_WRK_CPUS:-0-$((NCPU - 1))}
BODY='{"hello":"nemo"}'
SBX_CORE=$(( NCPU > 1 ? 1 : 0 ))

command -v wrk >/dev/null || { echo "bench-api: wrk is missing (make deps)" >&2; exit 1; }
# a uuid:key credential, sent as Basic (as OpenWhisk and OpenFaaS clients do); the function
# route checks it (openfaas.function_auth), so the figures include the auth
TOKEN=bench-$(rand_hex):$(rand_hex)
echo "$TOKEN" > "$DIR/token"
export NEMO_TOKEN=$TOKEN NEMO_BASIC=$(printf %s "$TOKEN" | base64 -w0) BENCH_BODY=$BODY BENCH_PATH=/function/echo

start_nemod() { # mode [journal_sync, default BENCH_API_SYNC] [tag: its own store and cgroups]
	local tag=${3:-main}
	PORT=$(free_port)
	cat > "$DIR/nemod-$tag.json" <<CFG
{"listen": "127.0.0.1:$PORT", "token_file": "$DIR/token", "store_dir": "$DIR/store-$tag",
 "code_roots": ["$ROOT/build/functions"], "cores": {"housekeeping": [0], "sandbox": [$SBX_CORE]},
 "http_mode": "$1", "http_threads": $NCPU, "cgroup_root": "nemo-benchapi-$$-$tag", "log_level": "warn",
 "limits": {"max_inflight_per_function": 4096, "max_connections": 4096,
            "max_connections_per_ip": 4096}, "journal_sync": ${2:-${BENCH_API_SYNC:-true}},
 "openfaas": {"function_auth": true}}
CFG
	nemod_start "$DIR/nemod-$1-$tag.log" "$DIR/nemod-$tag.json"
	# echo with enough instances for the connections, all warm before measuring
	deploy_echo echo "\"concurrency\":$(( CONNS > JCONNS ? CONNS : JCONNS ))"
	taskset -c "$WRK_CPUS" wrk -t1 -c"$CONNS" -d2s -s experiments/bench_api.lua "$URL" >/dev/null
}

stop_nemod() { nemod_stop; }

metric() { # name-and-labels
	curl -sf -H "Authorization: Bearer $TOKEN" "$URL/metrics" | awk -v k="$1" '$1 == k {print $2}'
}

field() { # line key
	sed -n "s/.* $2=\([0-9.-]*\).*/\1/p" <<<" $1"
}

# The host may be shared: say how busy it is, and whether a real-time task (a busy-polling NF
# at SCHED_FIFO) holds a core, which starves the sandboxes there and makes every figure moot.
host_state() {
	local rt
	rt=$(ps -eLo cls=,pcpu=,psr=,comm= | awk '($1 == "FF" || $1 == "RR") && $2 > 5 {printf " %s(cpu%s,%s%%)", $4, $3, $2}')
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg)${rt:+; real-time tasks busy:$rt (figures not meaningful)}"
}
echo "bench-api: $NCPU cores, nemod housekeeping core 0, wrk on cpus $WRK_CPUS, sandboxes on core $SBX_CORE, payload $BODY"
echo "host at start: $(host_state)"
# the caller on the housekeeping core, where nemod's threads run: the same cross-core wake-ups
# as nemod's own call into the sandbox (unpinned, the scheduler moved it beside the sandbox
# or not from run to run: p50 15-20 us there, 60-70 us from core 0 on a VM)
SBX=$(taskset -c 0 "$BIN/bench_api_sbx" "$ROOT/build/functions/echo.so" "$SBX_CORE" 20000 "$BODY")
SBX_P50=$(field "$SBX" sbx_warm_p50_us)
SBX_P99=$(field "$SBX" sbx_warm_p99_us)
printf "\nsandbox-level warm round trip (sbx_pool_invoke from core 0, no HTTP): p50 %s us  p99 %s us\n" \
	"$SBX_P50" "$SBX_P99"

# one wrk row: run_wrk CONNS THREADS [path [method]] -> WRK line (uses URL)
run_wrk() {
	BENCH_PATH=${3:-/function/echo} BENCH_METHOD=${4:-POST} taskset -c "$WRK_CPUS" \
		wrk -t"$2" -c"$1" -d"${SHORT}s" --timeout 5s -s experiments/bench_api.lua "$URL" | grep '^WRK'
}

if want capacity; then
	printf "\nwarm echo through HTTP on loopback (wrk, %ss per row, journal_sync=%s)\n" "$SHORT" "${BENCH_API_SYNC:-true}"
	printf "  %-22s %5s %10s %9s %9s %14s %14s\n" mode conns req/s p50_us p99_us "overhead p50" "overhead p99"
	for mode in $MODES; do
		start_nemod "$mode"
		for c in 1 "$CONNS"; do
			OUT=$(run_wrk "$c" 1)
			P50=$(field "$OUT" p50_us); P99=$(field "$OUT" p99_us); RPS=$(field "$OUT" rps)
			printf "  %-22s %5s %10.0f %9s %9s %11.0f us %11.0f us\n" "$mode" "$c" "$RPS" "$P50" "$P99" \
				"$(echo "$P50 - $SBX_P50" | bc)" "$(echo "$P99 - $SBX_P99" | bc)"
			[ "$mode" = thread_per_connection ] && [ "$c" = "$CONNS" ] && CAP_RPS=$RPS
		done
		stop_nemod
	done
fi

if want lone; then
	# A lone call and its journal. Result-only routes (OpenFaaS /function, OpenWhisk result=true)
	# write their record and answer without waiting for its fdatasync; a call answered with its
	# record (OpenWhisk blocking=true) waits for it (gateway/README.md, "Accepted means on disk").
	# journal_sync=false is the old page-cache journal: no record line for blocking calls at all.
	# /healthz is the HTTP round trip alone (no function, no journal).
	#
	# The overhead is measured on the calls themselves: nemod answers each with X-Duration-Seconds,
	# the function's run as it timed it (request written to the sandbox, response read back: the
	# sandbox round trip), and wrk collects them (BENCH_RUN). A round's overhead is its HTTP p50
	# minus the p50 of those runs. The host's speed drifts minute to minute (a round trip
	# measured by another process beside it moved between 49 and 80 us within one run), so a row
	# is ROUNDS short rounds, with the median of their figures and the range of the overhead.
	# GET /healthz, the HTTP round trip with nothing behind it, is printed for scale; it is no
	# floor to subtract: on this VM its p50 (two wake-ups of idle threads) came out above the
	# whole overhead of a call.
	RECORD_PATH=/api/v1/namespaces/_/actions/echo?blocking=true
	ROUNDS=${BENCH_API_ROUNDS:-5}
	ROUND_S=$(( SHORT / ROUNDS > 2 ? SHORT / ROUNDS : 2 ))

	median() { # numbers on stdin -> their median
		sort -g | awk '{a[NR] = $1} END {if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'
	}
	med_of() { printf '%s\n' "$@" | median; }

	printf "\na lone call (1 connection, thread_per_connection; %s rounds of %ss per row, medians): overhead = HTTP p50\n" "$ROUNDS" "$ROUND_S"
	printf -- "- p50 of the same calls' sandbox round trips (X-Duration-Seconds), median [min..max]\n"
	printf "  %-32s %-13s %7s %7s %8s %20s %10s\n" route journal p50_us p99_us run_p50 "overhead p50" syncs/call
	for sync in true false; do
		start_nemod thread_per_connection "$sync"
		[ "$sync" = true ] && J=durable || J="off (no sync)"
		for route in function record; do
			[ "$route" = function ] && P=/function/echo R="POST /function/echo (result)" ||
				P=$RECORD_PATH R="POST ...?blocking=true (record)"
			P50S=() P99S=() RUNS=() OVS=() REQS=0 SYNCS=0
			for _ in $(seq "$ROUNDS"); do
				S0=$(metric nemo_journal_syncs_total)
				OUT=$(SHORT=$ROUND_S BENCH_RUN=1 run_wrk 1 1 "$P")
				S1=$(metric nemo_journal_syncs_total)
				P50=$(field "$OUT" p50_us) RUN=$(field "$OUT" run_p50_us)
				P50S+=("$P50") P99S+=("$(field "$OUT" p99_us)") RUNS+=("$RUN")
				OVS+=("$(echo "$P50 - $RUN" | bc)")
				REQS=$(( REQS + $(field "$OUT" requests) )) SYNCS=$(( SYNCS + ${S1:-0} - ${S0:-0} ))
			done
			printf "  %-32s %-13s %7s %7s %8s %20s %10.2f\n" "$R" "$J" "$(med_of "${P50S[@]}")" \
				"$(med_of "${P99S[@]}")" "$(med_of "${RUNS[@]}")" \
				"$(printf '%.0f us [%.0f..%.0f]' "$(med_of "${OVS[@]}")" \
					"$(printf '%s\n' "${OVS[@]}" | sort -g | head -1)" \
					"$(printf '%s\n' "${OVS[@]}" | sort -g | tail -1)")" \
				"$(echo "$SYNCS / $REQS" | bc -l)"
		done
		if [ "$sync" = true ]; then
			OUT=$(run_wrk 1 1 /healthz GET)
			printf "  %-32s %-13s %7s %7s %8s %20s %10s\n" "GET /healthz (HTTP alone)" - \
				"$(field "$OUT" p50_us)" "$(field "$OUT" p99_us)" - - -
		fi
		stop_nemod
	done
fi

if want journal; then
	# the journal's cost in throughput: every call of the record route waits for its record's
	# fdatasync (one for all the calls that finish meanwhile: group commit); the result route
	# writes its record and does not wait. Both against journal_sync=false. Two nemods run side
	# by side (their own stores and cgroups, the same sandbox core), durable and off, both warm;
	# the rows alternate between them JROUNDS times so that each durable row has an "off" row of
	# the same minute, and the ratio is the median of the rounds' ratios.
	JROUNDS=${BENCH_API_JOURNAL_ROUNDS:-3}
	JROUND_S=$(( SHORT / JROUNDS > 3 ? SHORT / JROUNDS : 3 ))
	printf "\njournal: warm echo at %s connections, thread_per_connection; %s rounds of %ss per row, durable and off alternating\n" \
		"$JCONNS" "$JROUNDS" "$JROUND_S"
	printf "  %-5s %-34s %10s %10s %6s %12s %12s\n" round route "off req/s" "dur. req/s" ratio "dur. p99_us" fdatasyncs
	for sync in false true; do
		start_nemod thread_per_connection "$sync" "journal-$sync"
		# every instance the connections need is warm before measuring
		taskset -c "$WRK_CPUS" wrk -t2 -c"$JCONNS" -d2s -s experiments/bench_api.lua "$URL" >/dev/null
		eval "URL_$sync=\$URL"
		OTHER_NEMODS+=("$NEMOD_PID"); NEMOD_PID=
	done
	RATIOS_record=() RATIOS_function=()
	for round in $(seq "$JROUNDS"); do
		for route in record function; do
			[ "$route" = record ] && P=$RECORD_PATH R="POST ...?blocking=true (record)" ||
				P=/function/echo R="POST /function/echo (result)"
			# which goes first alternates too: neither gets the warmer or quieter half
			for sync in $([ $((round % 2)) = 1 ] && echo false true || echo true false); do
				URL=$(eval echo "\$URL_$sync")
				[ "$sync" = true ] && S0=$(metric nemo_journal_syncs_total)
				OUT=$(SHORT=$JROUND_S run_wrk "$JCONNS" 2 "$P")
				[ "$sync" = true ] && DUR=$OUT S1=$(metric nemo_journal_syncs_total) || OFF=$OUT
			done
			RATIO=$(echo "$(field "$DUR" rps) / $(field "$OFF" rps)" | bc -l)
			eval "RATIOS_$route+=(\$RATIO)"
			printf "  %-5s %-34s %10.0f %10.0f %6.2f %12s %12s\n" "$round" "$R" "$(field "$OFF" rps)" \
				"$(field "$DUR" rps)" "$RATIO" "$(field "$DUR" p99_us)" "$(( ${S1:-0} - ${S0:-0} ))"
		done
	done
	for p in "${OTHER_NEMODS[@]}"; do kill "$p"; wait "$p" || true; done
	OTHER_NEMODS=()
	printf "  durable/off throughput, median of the rounds: record route %.2f (target >= 0.80); result route %.2f\n" \
		"$(med_of "${RATIOS_record[@]}")" "$(med_of "${RATIOS_function[@]}")"
fi

if want sustained; then
	# sustained: the same connections for $SUSTAIN s at the capacity just measured (wrk is a
	# closed loop: it runs at whatever rate nemod sustains), then count every request three ways.
	printf "\nsustained %ss at capacity (%s connections, thread_per_connection; capacity %.0f req/s)\n" \
		"$SUSTAIN" "$CONNS" "${CAP_RPS:-0}"
	start_nemod thread_per_connection
	K='nemo_invocations_total{namespace="guest",function="echo",status="success"}'
	B0=$(metric "$K"); H0=$(metric 'nemo_http_responses_total{code="200"}')
	OUT=$(taskset -c "$WRK_CPUS" wrk -t2 -c"$CONNS" -d"${SUSTAIN}s" --timeout 5s -s experiments/bench_api.lua "$URL" | grep '^WRK')
	sleep 0.5
	B1=$(metric "$K"); H1=$(metric 'nemo_http_responses_total{code="200"}')
	ERR=$(metric 'nemo_invocations_total{namespace="guest",function="echo",status="internal_error"}')
	stop_nemod
	REQ=$(field "$OUT" requests)
	NON2XX=$(field "$OUT" non2xx)
	SOCKERR=$(( $(field "$OUT" connect_err) + $(field "$OUT" read_err) + $(field "$OUT" write_err) + $(field "$OUT" timeout) ))
	INV=$(( B1 - B0 )); HTTP2XX=$(( H1 - H0 - 2 ))   # two of the /metrics scrapes are 200 responses too
	printf "  wrk: %s responses, %.0f req/s, p50 %s us, p99 %s us, non-2xx %s, socket errors/timeouts %s\n" \
		"$REQ" "$(field "$OUT" rps)" "$(field "$OUT" p50_us)" "$(field "$OUT" p99_us)" "$NON2XX" "$SOCKERR"
	printf "  nemod: %s successful echo invocations, %s 2xx responses, %s internal errors\n" \
		"$INV" "$HTTP2XX" "${ERR:-0}"
	# wrk stops with up to CONNS requests in flight: nemod may have run those, wrk never saw them
	DIFF=$(( INV - REQ ))
	if [ "$NON2XX" = 0 ] && [ "$SOCKERR" = 0 ] && [ "$DIFF" -ge 0 ] && [ "$DIFF" -le "$CONNS" ]; then
		echo "  result: no request lost or answered twice ($DIFF in flight when wrk stopped)"
	else
		echo "  result: MISMATCH: invocations - responses = $DIFF (allowed 0..$CONNS), non-2xx $NON2XX, socket errors $SOCKERR"
		exit 1
	fi
fi

# MQTT: the round trip through nemod (an echo function, MQTT 5 response topic and correlation)
# beside the broker alone (publish and receive one topic), one request in flight, QoS 0 and 1
if want mqtt && command -v mosquitto >/dev/null; then
	MQ_PORT=$(free_port)
	MQ_WINDOW=${BENCH_MQTT_WINDOW:-16}
	MQ_SECONDS=${BENCH_MQTT_SECONDS:-5}
	# the broker without Nagle too: its PUBACK and the reply to one client are two small
	# writes, and the second waits ~40 ms for a delayed ACK otherwise (broker alone included)
	printf "listener %s 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n" "$MQ_PORT" \
		> "$DIR/mosquitto.conf"
	mosquitto -c "$DIR/mosquitto.conf" > "$DIR/mosquitto.log" 2>&1 &
	MQ_PID=$!
	sleep 0.3
	PORT=$(free_port)
	cat > "$DIR/nemod.json" <<CFG
{"listen": "127.0.0.1:$PORT", "token_file": "$DIR/token", "store_dir": "$DIR/store-mqtt",
 "code_roots": ["$ROOT/build/functions"],
 "cores": {"housekeeping": [0], "sandbox": [$SBX_CORE]}, "cgroup_root": "nemo-benchapi-$$",
 "log_level": "warn", "mqtt": {"enabled": true, "port": $MQ_PORT, "client_id": "nemod-bench-$$"}}
CFG
	"$BIN/nemod" --config "$DIR/nemod.json" > "$DIR/nemod-mqtt.log" 2>&1 &
	NEMOD_PID=$!
	for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
	for q in 0 1; do
		curl -sf -X PUT -H "Authorization: Bearer $TOKEN" \
			"http://127.0.0.1:$PORT/api/v1/namespaces/_/actions/mq$q?overwrite=true" \
			-d "{\"runtime\":\"c\",\"concurrency\":$MQ_WINDOW,\"code\":{\"path\":\"$ROOT/build/functions/echo.so\"},\"mqtt\":{\"topics\":[\"bench/in$q/+\"],\"qos\":$q}}" >/dev/null
	done
	sleep 0.3
	printf "\nMQTT round trip, one request in flight (%s per row)\n" "${BENCH_MQTT_N:-2000}"
	"$BIN/bench_api_mqtt" "$MQ_PORT" bench "${BENCH_MQTT_N:-2000}" | \
		awk '{printf "  %-30s %s %s %s\n", $2 " " $3, $4, $5, $6}'
	# calls/s with 1 and MQ_WINDOW requests in flight (a closed loop, MQTT 5 response topic
	# and correlation), beside the broker alone under the same load (requests straight to
	# the response topic). nemod accepts each round of messages with one fdatasync, so
	# requests in flight together share it.
	printf "\nMQTT load, %ss per row, caller on cpu 0 (%s)\n" "$MQ_SECONDS" "$(host_state)"
	printf "  %-24s %10s %9s %9s %10s\n" path calls/s "p50 us" "p99 us" unanswered
	for q in 0 1; do
		taskset -c 0 "$BIN/bench_api_mqtt" --load "$MQ_PORT" "bench/in$q/x" 0.5 "$MQ_WINDOW" $q "$BODY" >/dev/null
		for who in broker nemod; do
			for w in 1 "$MQ_WINDOW"; do
				OUT=$(taskset -c 0 "$BIN/bench_api_mqtt" --load "$MQ_PORT" "bench/in$q/x" \
					"$MQ_SECONDS" "$w" $q "$BODY" ${who/nemod/} | grep '^MQTTLOAD')
				printf "  %-24s %10.0f %9s %9s %10s\n" "$who QoS $q, $w in flight" \
					"$(field "$OUT" rps)" "$(field "$OUT" p50_us)" "$(field "$OUT" p99_us)" \
					"$(field "$OUT" unanswered)"
				eval "MQ_${who}_${q}_${w}=$(field "$OUT" rps) MQP_${who}_${q}_${w}=$(field "$OUT" p50_us)"
			done
		done
		eval "r1=\$MQ_nemod_${q}_1 rw=\$MQ_nemod_${q}_${MQ_WINDOW} p1=\$MQP_nemod_${q}_1 pb=\$MQP_broker_${q}_1"
		printf "  QoS %s: nemod %s in flight / 1 in flight: %.1f x calls/s (target >= 4); p50 at 1 in flight over the broker alone: %.0f us (target <= 1000)\n" \
			$q "$MQ_WINDOW" "$(echo "$rw / $r1" | bc -l)" "$(echo "$p1 - $pb" | bc -l)"
	done
	stop_nemod
	kill "$MQ_PID"; wait "$MQ_PID" 2>/dev/null || true; MQ_PID=
fi

echo
echo "host at end: $(host_state)"
printf "figures: HTTP warm p50 overhead over the sandbox round trip: see 'overhead p50'; the journal's\n"
printf "durable/off throughput ratio (record route) above. Compare rows of one run only.\n"
