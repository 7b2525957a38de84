# packet/ - the function side of packet triggers: libpacket.a (the rings, the consumer host,
# the lease client), nemo-pktfn and the sample packet functions.
LIBS += packet
packet_SRCS := $(filter-out packet/main.c,$(wildcard packet/*.c))
TEST_LIBS += packet
PROGS += nemo-pktfn
nemo-pktfn_SRCS := packet/main.c
nemo-pktfn_LIBS := packet common
nemo-pktfn_LDLIBS := -ldl

# Sample packet functions and the test ones, in build/functions/ beside the others.
PKT_SO_FUNCS := pkt-echo pkt-sensor test-pkt-crash
SOS += $(foreach f,$(PKT_SO_FUNCS),$(BUILD)/functions/$(f).so)

$(BUILD)/functions/pkt-%.so: packet/functions/%.c include/nemo/function.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -o $@ $<

$(BUILD)/functions/test-pkt-%.so: packet/functions/test-%.c include/nemo/function.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -o $@ $<

# packets -> function -> reply, and the NF beside it (experiments/bench_packet.py)
.PHONY: bench-packet
bench-packet: deps
	$(MAKE) all
	/usr/bin/python3 experiments/bench_packet.py $(BENCH_ARGS)

# cycles per packet of the fn module when no rule matches (experiments/bench_packet_cost.c)
PROGS += bench_packet_cost
bench_packet_cost_SRCS := experiments/bench_packet_cost.c
bench_packet_cost_LIBS := nf packet common
bench_packet_cost_CFLAGS = $(DPDK_CFLAGS)
bench_packet_cost_LDLIBS = $(CJSON_LIBS) $(DPDK_LIBS) -lm
