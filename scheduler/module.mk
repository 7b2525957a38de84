# scheduler/ - topology, harvest cgroups, dispatch, reclaim, interference watch; libscheduler.a.
LIBS += scheduler
scheduler_SRCS := $(wildcard scheduler/*.c)
# cosched.c drives the harvester, which links before scheduler in the test runner
TEST_LIBS += scheduler harvester
TEST_LDLIBS += -lhwloc -lpfm -lm
