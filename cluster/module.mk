# cluster/ - nemods as one edge cluster on etcd: libcluster.a (the etcd v3 client over its
# HTTP/JSON gateway, node records, the replicated registry, activation records and adoption,
# the offload policy).
LIBS += cluster
cluster_SRCS := $(wildcard cluster/*.c)
CL_LDLIBS = -lcurl -lcrypto
TEST_LIBS += cluster
TEST_LDLIBS += -lcurl -lcrypto
