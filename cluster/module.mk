# cluster/ - nemods as one edge cluster on etcd: libcluster.a (the etcd v3 client over its
# HTTP/JSON gateway, node records, the replicated registry, activation records and adoption,
# the offload policy).
LIBS += cluster
cluster_SRCS := $(wildcard cluster/*.c)
CL_LDLIBS = -lcurl -lcrypto

# bench-cluster: the offload decision, activation-record cost against calls per second (with
# and without batching) and failover, on three real etcd members (experiments/bench_cluster.sh);
# then, with three nemods in network namespaces (root), the forward's cost, throughput with 1,
# 2 and 3 nodes, etcd bytes per async call and failover (experiments/bench_cluster_net.sh)
PROGS += bench_cluster
bench_cluster_SRCS := experiments/bench_cluster.c
bench_cluster_LIBS := cluster common
bench_cluster_LDLIBS = $(CL_LDLIBS) $(CJSON_LIBS) -lm
.PHONY: bench-cluster
bench-cluster: all
	experiments/bench_cluster.sh
	experiments/bench_cluster_net.sh

# run-cluster: the demo, three etcd members and three nemods in network namespaces on this
# machine (root): deploy on a, invoke on c, the cluster's view; everything is removed after.
# CLUSTER_NODES sets how many nemods (1..9).
CLUSTER_NODES ?= 3
.PHONY: run-cluster
run-cluster: all
	tests/cluster/cluster.sh demo $(CLUSTER_NODES)
