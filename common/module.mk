# common/ - logging and the config key-table parser, shared by every program.
LIBS += common
common_SRCS := $(wildcard common/*.c)
