# harvester/ - reads the NF cores' harvest channels, predicts spare and demand; libharvester.a.
LIBS += harvester
harvester_SRCS := $(wildcard harvester/*.c)
TEST_LIBS += harvester
TEST_LDLIBS += -lrt -lm
