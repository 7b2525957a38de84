# scheduler/ - topology, harvest cgroups, dispatch, reclaim, interference watch; libscheduler.a.
LIBS += scheduler
scheduler_SRCS := $(wildcard scheduler/*.c)
TEST_LIBS += scheduler
TEST_LDLIBS += -lhwloc -lpfm -lm
