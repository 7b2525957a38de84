# nf/ - the NF data plane: libnf.a (modules, lcore loop, ports, harvest channel) and nemo-nf.
LIBS += nf
nf_SRCS := $(filter-out nf/main.c,$(wildcard nf/*.c))
nf_CFLAGS = $(DPDK_CFLAGS)
TEST_LIBS += nf
