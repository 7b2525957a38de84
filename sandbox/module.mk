# sandbox/ - isolated function instances: libsandbox.a, the in-sandbox runtime, sample functions.
LIBS += sandbox
sandbox_SRCS := $(wildcard sandbox/*.c)
# cgroup paths are built from parts whose lengths sbx_host_new() bounds (mount points,
# a root name under 64 characters, numeric ids), which gcc cannot see.
sandbox_CFLAGS := -Wno-format-truncation
TEST_LIBS += sandbox
TEST_LDLIBS += -lseccomp

# nemo-sbx-runtime: PID 1 of every sandbox (confines itself, loads code, serves frames), and
# on cgroup v1 each host's watchdog (--watchdog).
PROGS += nemo-sbx-runtime
nemo-sbx-runtime_SRCS := sandbox/runtime/runtime.c sandbox/runtime/zygote.c \
			 sandbox/runtime/watchdog.c sandbox/runtime/pktlib.c sandbox/runtime/call.c \
			 sandbox/codecheck.c
# packet mode runs packet/'s consumer host (fn_ring.c, host.c) inside the sandbox
nemo-sbx-runtime_LIBS := packet common
# a C function's nemo_call binds to the runtime's own, when dlopen() loads it
nemo-sbx-runtime_LDLIBS := -ldl -Wl,--export-dynamic-symbol=nemo_call \
			   -Wl,--export-dynamic-symbol=nemo_call_error

# Sample functions (sandbox/functions/) and the hostile test functions, in build/functions/.
FN_DIR := $(BUILD)/functions
SBX_SO_FUNCS := echo sha256 relay test-hostile test-probe test-badload test-pkt-probe
SBX_EXEC_FUNCS := exec-upper
SBX_COPIED := wordstats.py pyrelay.py sort.sh test-tenant.py heavyimport.py test-stderr.sh test-pkt.py
SOS += $(foreach f,$(SBX_SO_FUNCS),$(FN_DIR)/$(f).so) \
       $(foreach f,$(SBX_EXEC_FUNCS),$(FN_DIR)/$(f)) \
       $(foreach f,$(SBX_COPIED),$(FN_DIR)/$(f)) \
       $(BIN)/nemo-sbx-shim.py $(BIN)/nemo-sbx-zygote.so $(BIN)/nemo-sbx-pkt.so

$(FN_DIR)/%.so: sandbox/functions/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -o $@ $<

$(FN_DIR)/exec-upper: sandbox/functions/exec-upper.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $<

$(FN_DIR)/%.py: sandbox/functions/%.py
	@mkdir -p $(@D)
	cp $< $@

$(FN_DIR)/%.sh: sandbox/functions/%.sh
	@mkdir -p $(@D)
	cp $< $@ && chmod 755 $@

# what a python zygote's fork calls (through ctypes) to become an instance; never sanitized
# (make check-asan): the interpreter that loads it is not
$(BIN)/nemo-sbx-zygote.so: sandbox/runtime/zygote.c sandbox/runtime/zygote.h
	@mkdir -p $(@D)
	$(CC) $(filter-out -fsanitize=%,$(CFLAGS)) -fPIC -shared -o $@ $<

# the python shim's C side (ctypes): packet mode, the same loop as the C runtime's with
# packet/'s host; and nemo_call, the C runtime's own (call.c)
SBX_PKT_LIB_SRCS := sandbox/runtime/pktlib.c sandbox/runtime/call.c packet/fn_ring.c \
		    packet/host.c common/log.c
$(BIN)/nemo-sbx-pkt.so: $(SBX_PKT_LIB_SRCS) sandbox/runtime/pktlib.h sandbox/runtime/packet.h \
			sandbox/runtime/call.h include/nemo/fn_ring.h include/nemo/chain.h
	@mkdir -p $(@D)
	$(CC) $(filter-out -fsanitize=%,$(CFLAGS)) -fPIC -shared -o $@ $(SBX_PKT_LIB_SRCS)

$(BIN)/nemo-sbx-shim.py: sandbox/runtime/shim.py
	@mkdir -p $(@D)
	cp $< $@

-include $(wildcard $(FN_DIR)/*.d)

# bench-sandbox: cold, warm and pre-warmed starts against plain fork+exec and namespaced
# clones measured in the same run (experiments/bench_sandbox.c).
PROGS += bench_sandbox
bench_sandbox_SRCS := experiments/bench_sandbox.c
bench_sandbox_LIBS := sandbox common
bench_sandbox_LDLIBS := -lseccomp $(CJSON_LIBS) -lm
bench_sandbox_CFLAGS := -Wno-format-truncation

.PHONY: bench-sandbox
bench-sandbox: all
	$(BIN)/bench_sandbox
