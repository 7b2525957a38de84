# Makefile - builds nemo into build/, installs its Debian packages, runs tests, lint and benchmarks.
#
# Each folder describes itself in a module.mk: the static library it builds (LIBS), the
# programs (PROGS) and the flags it needs. This file only wires them together.

BUILD    := build
OBJ      := $(BUILD)/obj
BIN      := $(BUILD)/bin
LIBDIR   := $(BUILD)/lib
CC       ?= gcc

# Debian packages nemo needs (make deps). The pkg-config names are in PKGS.
DEB_PKGS := build-essential pkg-config dpdk dpdk-dev libdpdk-dev libcgroup-dev libhwloc-dev \
	    libpfm4-dev libcjson-dev libcunit1-dev libmicrohttpd-dev libmosquitto-dev mosquitto \
	    mosquitto-clients libseccomp-dev libcap-dev libpcap-dev wrk gnuplot-nox python3 \
	    clang-format cppcheck curl iproute2 procps nodejs prometheus libcurl4-openssl-dev \
	    libsystemd-dev libzip-dev clang libclang-rt-14-dev help2man \
	    etcd-server etcd-client libssl-dev
PKGS     := libdpdk libcjson cunit hwloc libseccomp libcgroup libmicrohttpd libmosquitto

# Lazily expanded: pkg-config is asked only once deps has run.
DPDK_CFLAGS = $(shell pkg-config --cflags libdpdk)
DPDK_LIBS   = $(shell pkg-config --libs libdpdk)
CJSON_LIBS  = $(shell pkg-config --libs libcjson)
CUNIT_LIBS  = $(shell pkg-config --libs cunit)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -MMD -MP -Iinclude -D_GNU_SOURCE \
	    -fno-strict-aliasing -fPIC
LDFLAGS  += -pthread

# `make` alone builds; the module.mk files below also define targets (run, bench-*).
.DEFAULT_GOAL := all

LIBS  :=
PROGS :=
SOS   :=
include $(wildcard */module.mk experiments/*/module.mk tests/*/module.mk)

.PHONY: all deps print-deb-pkgs check test lint format run bench-nf clean help
all: $(foreach p,$(PROGS),$(BIN)/$(p)) $(SOS)

# One static library per folder: lib<name>.a from <name>_SRCS, compiled with <name>_CFLAGS.
define lib_template
$(1)_OBJS := $$(patsubst %.c,$(OBJ)/%.o,$$($(1)_SRCS))
$(LIBDIR)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(@D)
	$$(AR) rcs $$@ $$^
$$($(1)_OBJS): EXTRA_CFLAGS = $$($(1)_CFLAGS)
-include $$($(1)_OBJS:.o=.d)
endef

# A program: <prog>_SRCS, linked against the static libraries <prog>_LIBS and <prog>_LDLIBS.
define prog_template
$(1)_OBJS := $$(patsubst %.c,$(OBJ)/%.o,$$($(1)_SRCS))
$(BIN)/$(1): $$($(1)_OBJS) $$(foreach l,$$($(1)_LIBS),$(LIBDIR)/lib$$(l).a)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$($(1)_OBJS) \
		$$(foreach l,$$($(1)_LIBS),$(LIBDIR)/lib$$(l).a) $$($(1)_LDLIBS)
$$($(1)_OBJS): EXTRA_CFLAGS = $$($(1)_CFLAGS)
-include $$($(1)_OBJS:.o=.d)
endef

$(foreach l,$(LIBS),$(eval $(call lib_template,$(l))))
$(foreach p,$(PROGS),$(eval $(call prog_template,$(p))))

$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(EXTRA_CFLAGS) -c -o $@ $<

# deps: install what is missing, and run apt-get update only if something is. One dpkg-query
# for all: quick also where every process start is slow (the emulated guest of check-vm).
deps:
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(DEB_PKGS) 2>/dev/null | \
		awk '/ install ok installed$$/ { ok[$$1] = 1 } \
		END { n = split("$(DEB_PKGS)", want, " "); \
		      for (i = 1; i <= n; i++) if (!(want[i] in ok)) print want[i] }'); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "deps: run as root to install packages" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi
	@# npm: Debian's package, unless the installed nodejs brings its own (and conflicts with it)
	@command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm
	@# the npm openwhisk client the compatibility tests run, at the version the lock file pins
	cd tests/openwhisk && npm ci --no-audit --no-fund --loglevel=error

# the package list, for tests/vm/image (the guest gets every one of them)
print-deb-pkgs:
	@echo $(DEB_PKGS)

# check: the one test command. Builds, then runs every CUnit suite (unit and integration),
# then each fuzzer over its corpus for a few seconds (tests/fuzz/module.mk).
check: deps
	$(MAKE) all
	$(MAKE) test
	$(MAKE) fuzz-check

test: all
	$(BIN)/nemo-tests

LINT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
lint:
	clang-format --dry-run --Werror $(LINT_SRCS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem --std=c11 -Iinclude \
		-D__GNUC__ -D_GNU_SOURCE $(LINT_SRCS)

format:
	clang-format -i $(LINT_SRCS)

clean:
	rm -rf $(BUILD) build-fuzz build-asan

help:
	@echo "make run | check | check-vm | vm-shell | check-asan | fuzz | deps | all | install |" \
		"uninstall | lint | bench-nf | bench-sandbox | clean"
