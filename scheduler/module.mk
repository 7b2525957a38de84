# scheduler/ - topology, harvest cgroups, dispatch, reclaim, interference watch; libscheduler.a.
LIBS += scheduler
scheduler_SRCS := $(wildcard scheduler/*.c)
# cosched.c is fed by the harvester's loop and asks the sandbox host (the cgroup tree's owner): both
# link after scheduler in the test runner
TEST_LIBS += scheduler harvester sandbox
TEST_LDLIBS += -lhwloc -lpfm -lm

# bench-harvest: every harvesting figure beside its baseline, in one run (experiments/README.md).
# BENCH_HARVEST_SECONDS sets each run's length; 8 finishes in about 4 minutes.
BENCH_HARVEST_SECONDS ?= 8
.PHONY: bench-harvest
bench-harvest: all
	BENCH_HARVEST_SECONDS=$(BENCH_HARVEST_SECONDS) /usr/bin/python3 experiments/bench_harvest.py
