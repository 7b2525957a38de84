# experiments/gen/ - nemo-gen, the DPDK traffic generator over memif: libgen.a and the program.
LIBS += gen
gen_SRCS := $(filter-out experiments/gen/main.c,$(wildcard experiments/gen/*.c))
gen_CFLAGS = $(DPDK_CFLAGS)
TEST_LIBS += gen

PROGS += nemo-gen
nemo-gen_SRCS := experiments/gen/main.c
nemo-gen_LIBS = gen common
nemo-gen_CFLAGS = $(DPDK_CFLAGS)
nemo-gen_LDLIBS = $(CJSON_LIBS) $(DPDK_LIBS) -lm
