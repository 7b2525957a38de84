#!/bin/bash
# cluster.sh - three etcd members and N nemods, each in its own network namespace, joined by
# veth links to a bridge that lives in a namespace of its own (nothing is added to the host's
# network). Everything it makes carries one tag, and `down` removes it all: processes,
# namespaces (their veths go with them), cgroups roots and data dirs.
#
#   tests/cluster/cluster.sh up [N] [TAG]    start; prints the state dir (default N=3)
#   tests/cluster/cluster.sh down TAG        stop and remove everything of TAG
#   tests/cluster/cluster.sh demo [N]        up, deploy on node 1, invoke on node N, show nodes, down
#   tests/cluster/cluster.sh exec TAG NODE CMD...   run CMD in node NODE's namespace (1..N, e1..e3)
#   tests/cluster/cluster.sh partition TAG NODE on|off   cut NODE's link (and mend it)
#   tests/cluster/cluster.sh api TAG NODE METHOD PATH [curl args]   call nemod NODE (1..N)
#
# CLUSTER_EXTRA_<name> (a, b, ...) adds JSON members, each ending in a comma, to that node's
# nemod.json, CLUSTER_KEYS_<name> to its "cluster" object; CLUSTER_LEASE_TTL_S sets the lease
# TTL (3). CLUSTER_BROKER=1 starts an MQTT broker (mosquitto) in a namespace "mq" of its own
# at 10.77.0.30:1883, before the nemods (a node's "mqtt" key says which use it).
#
# Addresses: 10.77.0.1k for etcd member k, 10.77.0.2k for nemod k (k = 1..9), 10.77.0.30 for
# the broker. Each run's bridge is its own, so two runs with the same addresses never meet.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${NEMO_BIN:-$ROOT/build/bin}
ETCD=${ETCD:-/usr/bin/etcd}
TOKEN=nemo-cluster-demo-token-0123456789
TENANT="tenant:tenant-key-0123456789 tenant"
SUBNET=10.77.0

die() { echo "cluster.sh: $*" >&2; exit 1; }
state_dir() { echo "/tmp/nemo-clnet-$1"; }
ns() { echo "ncl-$1-$2"; } # tag, name

need_root() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, cgroups)"
	command -v ip >/dev/null || die "needs ip (iproute2)"
	[ -x "$ETCD" ] || die "needs $ETCD (Debian etcd-server)"
	[ -x "$BIN/nemod" ] || die "needs $BIN/nemod: run make all"
}

# add_ns TAG NAME IP: a namespace with lo up and a veth to the bridge
add_ns() {
	local tag=$1 name=$2 ip=$3 n sw
	n=$(ns "$tag" "$name")
	sw=$(ns "$tag" sw)
	ip netns add "$n"
	ip -n "$n" link set lo up
	# the veth is made in the switch namespace, one end moved into the node's
	ip -n "$sw" link add "v$name" type veth peer name eth0 netns "$n"
	ip -n "$sw" link set "v$name" master br0 up
	ip -n "$n" addr add "$ip/24" dev eth0
	ip -n "$n" link set eth0 up
	echo "$n" >>"$(state_dir "$tag")/netns"
}

# in_ns NAME CMD...: CMD in network namespace NAME only. Not `ip netns exec`: that mounts a
# sysfs of its own over /sys, and nemod would find no cgroup hierarchy there.
in_ns() {
	local n=$1
	shift
	nsenter --net="/run/netns/$n" "$@"
}

# start_bg TAG NAME LOG CMD...: run CMD in namespace NAME, remember its pid
start_bg() {
	local tag=$1 name=$2 log=$3
	shift 3
	# nsenter execs the command: $! is its pid (a function here would leave a subshell's)
	nsenter --net="/run/netns/$(ns "$tag" "$name")" "$@" >"$log" 2>&1 &
	echo "$! $name" >>"$(state_dir "$tag")/pids"
	disown $! # down kills it by pid; no job notice then
}

wait_http() { # tag name url ms
	local tag=$1 name=$2 url=$3 ms=$4 t=0
	while ! in_ns "$(ns "$tag" "$name")" curl -s -m 1 -o /dev/null "$url"; do
		t=$((t + 100))
		[ $t -lt "$ms" ] || return 1
		sleep 0.1
	done
}

up() {
	local n=${1:-3} tag=${2:-$$} dir cluster="" eps=""
	need_root
	[ "$n" -ge 0 ] && [ "$n" -le 9 ] || die "N must be 0..9"
	dir=$(state_dir "$tag")
	[ ! -e "$dir" ] || die "$dir exists: run '$0 down $tag' first"
	UP_TAG=$tag # a failure from here on removes what was made
	mkdir -p "$dir"
	echo "$n" >"$dir/n"
	: >"$dir/netns"
	: >"$dir/pids"
	ip netns add "$(ns "$tag" sw)"
	echo "$(ns "$tag" sw)" >>"$dir/netns"
	ip -n "$(ns "$tag" sw)" link add br0 type bridge
	ip -n "$(ns "$tag" sw)" link set br0 up
	for k in 1 2 3; do
		add_ns "$tag" "e$k" "$SUBNET.1$k"
		cluster="$cluster${cluster:+,}m$k=http://$SUBNET.1$k:2380"
		eps="$eps${eps:+,}\"http://$SUBNET.1$k:2379\""
	done
	for k in 1 2 3; do
		mkdir -p "$dir/etcd$k"
		start_bg "$tag" "e$k" "$dir/etcd$k.log" "$ETCD" --name "m$k" \
			--data-dir "$dir/etcd$k/data" \
			--listen-client-urls "http://$SUBNET.1$k:2379" \
			--advertise-client-urls "http://$SUBNET.1$k:2379" \
			--listen-peer-urls "http://$SUBNET.1$k:2380" \
			--initial-advertise-peer-urls "http://$SUBNET.1$k:2380" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "nemo-$tag" \
			--heartbeat-interval 50 --election-timeout 500 --logger zap --log-level warn
	done
	for k in 1 2 3; do
		wait_http "$tag" "e$k" "http://$SUBNET.1$k:2379/health" 20000 ||
			die "etcd member $k did not start: $(tail -n 5 "$dir/etcd$k.log")"
	done
	if [ "${CLUSTER_BROKER:-0}" = 1 ]; then
		[ -x /usr/sbin/mosquitto ] || die "CLUSTER_BROKER=1 needs /usr/sbin/mosquitto"
		add_ns "$tag" mq "$SUBNET.30"
		printf 'listener 1883 %s\nallow_anonymous true\n' "$SUBNET.30" >"$dir/mosquitto.conf"
		chmod 0644 "$dir/mosquitto.conf"
		start_bg "$tag" mq "$dir/mosquitto.log" /usr/sbin/mosquitto -c "$dir/mosquitto.conf"
		local t=0
		until in_ns "$(ns "$tag" mq)" bash -c "echo >/dev/tcp/$SUBNET.30/1883" 2>/dev/null; do
			t=$((t + 100))
			[ $t -lt 5000 ] || die "mosquitto did not start: $(tail -n 5 "$dir/mosquitto.log")"
			sleep 0.1
		done
	fi
	for k in $(seq 1 "$n"); do
		local name ndir
		name=$(printf "\\x$(printf %x $((96 + k)))") # a, b, c...
		ndir=/var/tmp/nemo-clnet-$tag-$name
		mkdir -p "$ndir/code"
		chmod 0755 "$ndir" "$ndir/code"
		echo "$ndir" >>"$dir/nodedirs"
		# the nodes' credential first (peers send it to each other), then a tenant's
		printf '%s\n%s\n' "$TOKEN" "$TENANT" >"$ndir/token"
		chmod 600 "$ndir/token"
		add_ns "$tag" "$k" "$SUBNET.2$k"
		# per node: CLUSTER_EXTRA_<name> (JSON members ending in a comma) joins the config
		local extra_var="CLUSTER_EXTRA_$name" keys_var="CLUSTER_KEYS_$name"
		local CLUSTER_EXTRA_CONFIG=${!extra_var:-} CLUSTER_EXTRA_KEYS=${!keys_var:-}
		cat >"$ndir/nemod.json" <<EOF
{
	"listen": "$SUBNET.2$k:8080",
	"token_file": "$ndir/token",
	"store_dir": "$ndir/store",
	"code_roots": ["$ndir/code"],
	"cgroup_root": "nemo-clnet-$tag-$name",
	"async_workers": 2,
	"drain_timeout_ms": 2000,
	${CLUSTER_EXTRA_CONFIG:-}
	"cluster": {
		${CLUSTER_EXTRA_KEYS}
		"enabled": true,
		"endpoints": [$eps],
		"node": "$name",
		"address": "$SUBNET.2$k:8080",
		"lease_ttl_s": ${CLUSTER_LEASE_TTL_S:-3}
	}
}
EOF
		start_bg "$tag" "$k" "$dir/nemod-$name.log" "$BIN/nemod" --config "$ndir/nemod.json"
	done
	for k in $(seq 1 "$n"); do
		wait_http "$tag" "$k" "http://$SUBNET.2$k:8080/healthz" 20000 ||
			die "nemod $k did not start: $(tail -n 5 "$dir"/nemod-*.log)"
	done
	UP_TAG=
	echo "$dir"
}

down() {
	local tag=${1:?tag} dir
	dir=$(state_dir "$tag")
	if [ -f "$dir/pids" ]; then
		# stop what this run started, by pid; nemod gets its drain, then SIGKILL
		while read -r pid _; do kill -TERM "$pid" 2>/dev/null || true; done <"$dir/pids"
		for _ in $(seq 1 30); do
			alive=0
			while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$dir/pids"
			[ $alive = 0 ] && break
			sleep 0.1
		done
		while read -r pid _; do kill -KILL "$pid" 2>/dev/null || true; done <"$dir/pids"
	fi
	# the namespaces of this tag, also ones a failed run did not get to write down
	for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^ncl-$tag-" || true); do
		# anything still inside (a sandbox of a nemod) is killed with it
		for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		ip netns del "$n" 2>/dev/null || true
	done
	if [ -f "$dir/nodedirs" ]; then
		while read -r d; do
			case "$d" in /var/tmp/nemo-clnet-"$tag"-*) rm -rf "$d" ;; esac
		done <"$dir/nodedirs"
	fi
	# cgroups of this tag's nemods (their sandboxes are dead with the namespaces), leaves first
	for d in $(find /sys/fs/cgroup -maxdepth 3 -type d -name "nemo-clnet-$tag-*" 2>/dev/null); do
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	rm -f /run/nemo/cgroup-nemo-clnet-"$tag"-*.lock
	rm -rf "$dir"
}

nexec() { # tag node cmd...
	local tag=$1 node=$2
	shift 2
	in_ns "$(ns "$tag" "$node")" "$@"
}

partition() { # tag node on|off
	local tag=$1 node=$2 what=$3
	if [ "$what" = on ]; then
		ip -n "$(ns "$tag" sw)" link set "v$node" down
	else
		ip -n "$(ns "$tag" sw)" link set "v$node" up
	fi
}

api() { # tag node method path [curl args...]
	local tag=$1 node=$2 method=$3 path=$4
	shift 4
	nexec "$tag" "$node" curl -s -m 10 -X "$method" -H "Authorization: Bearer $TOKEN" \
		"http://$SUBNET.2$node:8080$path" "$@"
}

demo() {
	local n=${1:-3} t0 t1
	DEMO_TAG=demo$$
	local tag=$DEMO_TAG
	[ -x "$ROOT/build/functions/echo.so" ] || [ -f "$ROOT/build/functions/echo.so" ] ||
		die "needs build/functions/echo.so: run make all"
	# a second signal (timeout signals the whole group) must not cut the teardown short
	trap 'trap "" INT TERM; down "$DEMO_TAG"' EXIT
	trap 'exit 130' INT TERM
	up "$n" "$tag" >/dev/null
	echo "== $n nemods (a..) and 3 etcd members, each in its own network namespace (tag $tag)"
	echo "== deploy echo on node a"
	api "$tag" 1 PUT /api/v1/namespaces/_/actions/echo \
		-d "{\"runtime\":\"c\",\"code\":{\"base64\":\"$(base64 -w0 "$ROOT/build/functions/echo.so")\"}}"
	echo
	t0=$(date +%s%N)
	# (not `api | grep -q`: under pipefail, grep's early exit fails the pipeline)
	until [[ "$(api "$tag" "$n" GET /api/v1/namespaces/_/actions/echo)" == *'"name"'* ]]; do
		t1=$(date +%s%N)
		[ $(((t1 - t0) / 1000000)) -lt 5000 ] || die "node $n never served echo"
		sleep 0.02
	done
	t1=$(date +%s%N)
	echo "== node $n serves it after $(((t1 - t0) / 1000000)) ms; invoke it there"
	api "$tag" "$n" POST "/api/v1/namespaces/_/actions/echo?blocking=true&result=true" -d '{"hello":"cluster"}'
	echo
	sleep 0.5 # the next record of c (publish_ms) shows its warm instance
	echo "== the cluster as node a sees it (nemoctl nodes: GET /api/v1/cluster/nodes)"
	nexec "$tag" 1 env NEMO_URL="http://$SUBNET.21:8080" NEMO_TOKEN="$TOKEN" "$BIN/nemoctl" nodes
}

UP_TAG=
trap 'rc=$?; trap "" INT TERM; if [ $rc != 0 ] && [ -n "$UP_TAG" ]; then down "$UP_TAG"; fi' EXIT
trap 'exit 130' INT TERM
cmd=${1:-demo}
shift || true
case "$cmd" in
up) up "$@" ;;
down) down "$@" ;;
demo) demo "$@" ;;
exec) nexec "$@" ;;
partition) partition "$@" ;;
api) api "$@" ;;
*) die "unknown command '$cmd' (up, down, demo, exec, partition, api)" ;;
esac
