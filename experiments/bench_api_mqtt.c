/* bench_api_mqtt.c - MQTT round trip through nemod beside the broker alone, at QoS 0 and 1.
 *
 * usage: bench_api_mqtt PORT TOPIC_PREFIX N
 *   broker alone: publish on <prefix>/loop and wait for it on the same topic;
 *   through nemod: publish on <prefix>/in<qos>/x (echo functions deployed with that qos) with an MQTT 5 response
 *   topic and correlation data, and wait for the reply. One request in flight at a time.
 * Prints one line per (path, qos): p50/p99 in microseconds, and the requests answered.
 *
 * usage: bench_api_mqtt --load PORT TOPIC SECONDS WINDOW QOS PAYLOAD
 *   calls per second through nemod's MQTT trigger: publish PAYLOAD on TOPIC (a function's
 *   trigger topic) with response topic TOPIC/resp and correlation data, keeping WINDOW
 *   requests in flight for SECONDS (after 0.5 s of the same, not counted). Prints
 *   "MQTTLOAD sent=.. answered=.. late=.. unanswered=.. duration_s=.. rps=.. p50_us=..
 *   p99_us=..": answered within the SECONDS (their rate, and latency from publish to reply),
 *   answered in the 2 s after, never answered. With a last argument `broker`: the broker alone
 *   under the same load, the baseline: each request goes straight to TOPIC/resp (one hop
 *   through the broker, no nemod).
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

/* ---- --load: calls per second with WINDOW requests in flight ---- */

#define LOAD_MAX (1u << 22) /* requests a run may send */

struct load {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char resp[160];
	uint64_t *sent;	 /* publish time of request i, 0 once answered */
	uint64_t *lat;	 /* latencies of the counted replies */
	unsigned issued; /* requests published */
	unsigned inflight;
	unsigned answered; /* counted replies (while counting) */
	unsigned late;	   /* replies after the counted time, to requests sent in it */
	bool counting;
	bool broker_only; /* requests go straight to resp: the broker alone */
};

static void on_load_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
			    const mosquitto_property *props)
{
	struct load *l = obj;
	void *corr = NULL;
	uint16_t len = 0;
	char buf[16];
	unsigned long i;

	(void)m;
	if (strcmp(msg->topic, l->resp) ||
	    !mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &len, false))
		return;
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1),
		 (const char *)corr);
	free(corr);
	i = strtoul(buf, NULL, 10);
	pthread_mutex_lock(&l->lock);
	if (i < l->issued && l->sent[i]) {
		if (l->counting)
			l->lat[l->answered++] = nemo_now_ns() - l->sent[i];
		else
			l->late++;
		l->sent[i] = 0;
		l->inflight--;
		pthread_cond_signal(&l->cond);
	}
	pthread_mutex_unlock(&l->lock);
}

/* Keep `window` requests in flight for `ns`; then wait up to 2 s for the stragglers. */
static void load_phase(struct mosquitto *mosq, struct load *l, const char *topic, int qos,
		       const char *payload, unsigned window, uint64_t ns)
{
	uint64_t end = nemo_now_ns() + ns;

	for (;;) {
		mosquitto_property *props = NULL;
		char corr[16];
		unsigned i;

		pthread_mutex_lock(&l->lock);
		while (l->inflight >= window && nemo_now_ns() < end) {
			struct timespec dl;

			clock_gettime(CLOCK_REALTIME, &dl);
			nemo_timespec_add_ns(&dl, 10000000);
			pthread_cond_timedwait(&l->cond, &l->lock, &dl);
		}
		if (nemo_now_ns() >= end || l->issued >= LOAD_MAX) {
			l->counting = false;
			pthread_mutex_unlock(&l->lock);
			break;
		}
		i = l->issued++;
		l->sent[i] = nemo_now_ns();
		l->inflight++;
		pthread_mutex_unlock(&l->lock);
		snprintf(corr, sizeof(corr), "%u", i);
		mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, l->resp);
		mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
					      (uint16_t)strlen(corr));
		mosquitto_publish_v5(mosq, NULL, l->broker_only ? l->resp : topic,
				     (int)strlen(payload), payload, qos, false, props);
		mosquitto_property_free_all(&props);
	}
	for (int k = 0; k < 200; k++) {
		struct timespec ten_ms = {0, 10000000};
		bool idle;

		pthread_mutex_lock(&l->lock);
		idle = !l->inflight;
		pthread_mutex_unlock(&l->lock);
		if (idle)
			break;
		nanosleep(&ten_ms, NULL);
	}
}

static int load_main(char **argv)
{
	struct load l = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct mosquitto *mosq;
	double seconds = atof(argv[3]);
	unsigned window = (unsigned)atoi(argv[4]), sent, answered, late;
	int port = atoi(argv[1]), qos = atoi(argv[5]);

	if (seconds <= 0 || window < 1 || qos < 0 || qos > 2) {
		fprintf(stderr, "bench_api_mqtt --load: SECONDS > 0, WINDOW >= 1, QOS 0..2\n");
		return 2;
	}
	snprintf(l.resp, sizeof(l.resp), "%s/resp", argv[2]);
	l.broker_only = argv[7] && !strcmp(argv[7], "broker");
	l.sent = calloc(LOAD_MAX, sizeof(*l.sent));
	l.lat = calloc(LOAD_MAX, sizeof(*l.lat));
	if (!l.sent || !l.lat) {
		free(l.sent);
		free(l.lat);
		return 1;
	}
	mosquitto_lib_init();
	mosq = mosquitto_new(NULL, true, &l);
	mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(mosq, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_max_inflight_messages_set(mosq, 0); /* the window is ours */
	mosquitto_message_v5_callback_set(mosq, on_load_message);
	if (mosquitto_connect(mosq, "127.0.0.1", port, 30) ||
	    mosquitto_subscribe(mosq, NULL, l.resp, qos) || mosquitto_loop_start(mosq)) {
		fprintf(stderr, "bench_api_mqtt: cannot reach the broker on port %d\n", port);
		mosquitto_destroy(mosq);
		free(l.sent);
		free(l.lat);
		return 1;
	}
	nanosleep(&(struct timespec){0, 200000000}, NULL); /* the subscription is in place */
	load_phase(mosq, &l, argv[2], qos, argv[6], window, 500000000ull);
	pthread_mutex_lock(&l.lock);
	sent = l.issued;
	l.counting = true;
	l.late = 0;
	pthread_mutex_unlock(&l.lock);
	load_phase(mosq, &l, argv[2], qos, argv[6], window, (uint64_t)(seconds * 1e9));
	pthread_mutex_lock(&l.lock);
	sent = l.issued - sent;
	answered = l.answered;
	late = l.late;
	pthread_mutex_unlock(&l.lock);
	qsort(l.lat, answered, sizeof(*l.lat), cmp_u64);
	printf("MQTTLOAD sent=%u answered=%u late=%u unanswered=%u duration_s=%.3f rps=%.1f "
	       "p50_us=%.1f p99_us=%.1f\n",
	       sent, answered, late, sent - answered - late, seconds, answered / seconds,
	       answered ? l.lat[answered / 2] / 1e3 : 0.0,
	       answered ? l.lat[(size_t)(answered * 0.99)] / 1e3 : 0.0);
	mosquitto_disconnect(mosq);
	mosquitto_loop_stop(mosq, true);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	free(l.sent);
	free(l.lat);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	char loop[128], in[128], resp[128];
	int port, n;

	if ((argc == 8 || argc == 9) && !strcmp(argv[1], "--load"))
		return load_main(argv + 1);
	if (argc != 4) {
		fprintf(stderr,
			"usage: bench_api_mqtt PORT TOPIC_PREFIX N\n"
			"       bench_api_mqtt --load PORT TOPIC SECONDS WINDOW QOS PAYLOAD [broker]\n");
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
