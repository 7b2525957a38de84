# nf/ - the NF data plane: libnf.a (modules, lcore loop, ports, harvest channel) and nemo-nf.
LIBS += nf
nf_SRCS := $(filter-out nf/main.c,$(wildcard nf/*.c))
nf_CFLAGS = $(DPDK_CFLAGS)
TEST_LIBS += nf
# tests/pcap_malformed.c writes the malformed-packet capture
TEST_LDLIBS += -lpcap
PROGS += nemo-nf
nemo-nf_SRCS := nf/main.c
nemo-nf_LIBS := nf packet common
nemo-nf_CFLAGS = $(DPDK_CFLAGS)
# the memif PMD is a plugin the EAL loads: it must find nf/unmap.c's munmap() before libc's
nemo-nf_LDLIBS = $(CJSON_LIBS) $(DPDK_LIBS) -lm -Wl,--export-dynamic-symbol=munmap
