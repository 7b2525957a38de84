# tests/ - one CUnit runner, build/bin/nemo-tests; each tests/test_*.c registers its suite.
PROGS += nemo-tests
nemo-tests_SRCS := $(wildcard tests/*.c)
nemo-tests_LIBS = $(TEST_LIBS) common
nemo-tests_CFLAGS = $(DPDK_CFLAGS)
nemo-tests_LDLIBS = $(TEST_LDLIBS) $(CJSON_LIBS) $(CUNIT_LIBS) $(DPDK_LIBS) -lm
