# gateway/ - nemod: libgateway.a (the function service, its front doors: native, OpenWhisk,
# OpenFaaS, MQTT, metrics; the store, the dispatcher seam), nemod and nemoctl.
LIBS += gateway
gateway_SRCS := $(filter-out gateway/nemod.c gateway/nemoctl.c,$(wildcard gateway/*.c))
# paths are built from parts the config and name checks bound (store_dir < 256, names < 64),
# which gcc cannot see; gw_store_* check snprintf results where a cut path would matter.
gateway_CFLAGS := -Wno-format-truncation
GW_LDLIBS = -lmicrohttpd -lmosquitto -lzip -lcurl -lcrypto $(CJSON_LIBS)
TEST_LIBS += gateway cluster
TEST_LDLIBS += -lmicrohttpd -lmosquitto -lzip -lcurl -lcrypto

PROGS += nemod
nemod_SRCS := gateway/nemod.c
nemod_LIBS := gateway cluster packet scheduler harvester sandbox common
nemod_LDLIBS = $(GW_LDLIBS) $(shell pkg-config --libs libsystemd) -lseccomp -lhwloc -lpfm -lrt -lm

# nemoctl links only the small client library (libcurl) and cJSON
LIBS += nemoclient
nemoclient_SRCS := $(wildcard gateway/client/*.c)

PROGS += nemoctl
nemoctl_SRCS := gateway/nemoctl.c
nemoctl_LIBS := nemoclient common
nemoctl_LDLIBS = -lcurl $(CJSON_LIBS) -lm

# bench-api: warm echo through HTTP with wrk, beside the sandbox-level warm round trip.
# BENCH_API_SECONDS sets the sustained run (the issue asks for 60).
BENCH_API_SECONDS ?= 60
.PHONY: bench-api
bench-api: all
	BENCH_API_SECONDS=$(BENCH_API_SECONDS) experiments/bench_api.sh

# the sandbox-level warm round trip that bench-api prints beside the HTTP figures
PROGS += bench_api_sbx
bench_api_sbx_SRCS := experiments/bench_api_sbx.c
bench_api_sbx_LIBS := sandbox common
bench_api_sbx_LDLIBS = -lseccomp $(CJSON_LIBS) -lm

# bench-api's MQTT part: the round trip through nemod beside the broker alone, QoS 0 and 1
PROGS += bench_api_mqtt
bench_api_mqtt_SRCS := experiments/bench_api_mqtt.c
bench_api_mqtt_LIBS := common
bench_api_mqtt_LDLIBS = -lmosquitto

# bench-abuse: health check and echo latency without and during a slowloris attack
PROGS += bench_abuse
bench_abuse_SRCS := experiments/bench_abuse.c
bench_abuse_LIBS :=
bench_abuse_LDLIBS =
.PHONY: bench-abuse
bench-abuse: all
	experiments/bench_abuse.sh
