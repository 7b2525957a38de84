/* bench_api_mqtt.c - MQTT round trip through nemod beside the broker alone, at QoS 0 and 1.
 *
 * usage: bench_api_mqtt PORT TOPIC_PREFIX N
 *   broker alone: publish on <prefix>/loop and wait for it on the same topic;
 *   through nemod: publish on <prefix>/in<qos>/x (echo functions deployed with that qos) with an MQTT 5 response
 *   topic and correlation data, and wait for the reply. One request in flight at a time.
 * Prints one line per (path, qos): p50/p99 in microseconds, and the requests answered.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "nemo/clock.h"

struct bench {
	struct mosquitto *mosq;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char want_topic[128];
	char want_corr[32];
	bool got;
};

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct bench *b = obj;
	void *corr = NULL;
	uint16_t len = 0;

	(void)m;
	pthread_mutex_lock(&b->lock);
	if (!strcmp(msg->topic, b->want_topic)) {
		bool match = !b->want_corr[0];

		if (!match && mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA,
							     &corr, &len, false))
			match = len == strlen(b->want_corr) && !memcmp(corr, b->want_corr, len);
		free(corr);
		if (match) {
			b->got = true;
			pthread_cond_signal(&b->cond);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* One round trip; returns its time in ns, or 0 after a 2 s timeout. */
static uint64_t round_trip(struct bench *b, const char *topic, int qos, const char *resp, int i)
{
	mosquitto_property *props = NULL;
	struct timespec dl;
	uint64_t t0;

	pthread_mutex_lock(&b->lock);
	b->got = false;
	snprintf(b->want_topic, sizeof(b->want_topic), "%s", resp ? resp : topic);
	if (resp)
		snprintf(b->want_corr, sizeof(b->want_corr), "c%d", i);
	else
		b->want_corr[0] = '\0';
	pthread_mutex_unlock(&b->lock);
	if (resp) {
		mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, resp);
		mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, b->want_corr,
					      (uint16_t)strlen(b->want_corr));
	}
	t0 = nemo_now_ns();
	mosquitto_publish_v5(b->mosq, NULL, topic, 16, "{\"hello\":\"mqtt\"}", qos, false, props);
	mosquitto_property_free_all(&props);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 2;
	pthread_mutex_lock(&b->lock);
	while (!b->got)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &dl))
			break;
	t0 = b->got ? nemo_now_ns() - t0 : 0;
	pthread_mutex_unlock(&b->lock);
	return t0;
}

static void run(struct bench *b, const char *label, const char *topic, const char *resp, int qos,
		int n)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t));
	int ok = 0;

	for (int i = 0; i < 20; i++) /* warm the path (and nemod's instance) */
		round_trip(b, topic, qos, resp, i);
	for (int i = 0; i < n; i++) {
		uint64_t ns = round_trip(b, topic, qos, resp, i);

		if (ns)
			t[ok++] = ns;
	}
	qsort(t, (size_t)ok, sizeof(*t), cmp_u64);
	printf("MQTT path=%s qos=%d answered=%d/%d p50_us=%.1f p99_us=%.1f\n", label, qos, ok, n,
	       ok ? t[ok / 2] / 1e3 : 0.0, ok ? t[(size_t)(ok * 0.99)] / 1e3 : 0.0);
	free(t);
}

int main(int argc, char **argv)
{
	struct bench b = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	char loop[128], in[128], resp[128];
	int port, n;

	if (argc != 4) {
		fprintf(stderr, "usage: bench_api_mqtt PORT TOPIC_PREFIX N\n");
		return 2;
	}
	port = atoi(argv[1]);
	n = atoi(argv[3]);
	snprintf(loop, sizeof(loop), "%s/loop", argv[2]);
	snprintf(resp, sizeof(resp), "%s/resp", argv[2]);
	mosquitto_lib_init();
	b.mosq = mosquitto_new(NULL, true, &b);
	mosquitto_int_option(b.mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(b.mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_message_v5_callback_set(b.mosq, on_message);
	if (mosquitto_connect(b.mosq, "127.0.0.1", port, 30) ||
	    /* not the request topics: a client does not hear its own requests */
	    mosquitto_subscribe(b.mosq, NULL, loop, 1) ||
	    mosquitto_subscribe(b.mosq, NULL, resp, 1) || mosquitto_loop_start(b.mosq)) {
		fprintf(stderr, "bench_api_mqtt: cannot reach the broker on port %d\n", port);
		return 1;
	}
	for (int qos = 0; qos <= 1; qos++) {
		snprintf(in, sizeof(in), "%s/in%d/x", argv[2], qos);
		run(&b, "broker", loop, NULL, qos, n);
		run(&b, "nemod", in, resp, qos, n);
	}
	mosquitto_disconnect(b.mosq);
	mosquitto_loop_stop(b.mosq, true);
	mosquitto_destroy(b.mosq);
	mosquitto_lib_cleanup();
	return 0;
}
