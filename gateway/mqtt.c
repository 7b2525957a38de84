/* mqtt.c - the MQTT transport and front door: messages invoke functions; replies carry correlation. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "nemo/log.h"
#include "nemo/clock.h"
#include "nemo/config.h"
#include "gw_internal.h"

#define MAX_SUBS  256
#define ROUND_MAX 64 /* activations begun in one round before their fdatasync */

/* One activation of a message read this round: its line written, not yet durable. */
struct round_item {
	struct gw_accept acc;
	struct gw_call call; /* points at the copies below */
	char function[SBX_NAME_MAX];
	void *payload;
	char *reply;
	void *corr;
};

struct gw_mqtt {
	struct gw_daemon *d;
	struct mosquitto *mosq;
	atomic_bool connected;
	atomic_bool stop;
	pthread_t thread; /* the network thread: reads, accepts, writes */
	int wake_fd;	  /* eventfd: a packet is queued (a reply, a subscription), or stop */
	unsigned retries; /* reconnects since the last CONNACK (the backoff) */
	struct round_item round[ROUND_MAX];
	int n_round;
	pthread_mutex_t lock; /* the subscribed set */
	int n_subs;
	char subs[MAX_SUBS][GW_TOPIC_MAX];
	int sub_qos[MAX_SUBS];
};

static void wake(struct gw_mqtt *m)
{
	uint64_t one = 1;

	if (write(m->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5, "mqtt wake: %s",
				     strerror(errno));
}

struct topics_arg {
	char (*out)[GW_TOPIC_MAX];
	int *qos;
	int n;
};

static void add_topics(void *arg, struct gw_function *fn)
{
	struct topics_arg *ta = arg;

	for (int i = 0; i < fn->mqtt.n_topics; i++) {
		int k;

		for (k = 0; k < ta->n; k++)
			if (!strcmp(ta->out[k], fn->mqtt.topics[i]))
				break;
		if (k == ta->n && ta->n < MAX_SUBS) {
			snprintf(ta->out[ta->n], GW_TOPIC_MAX, "%s", fn->mqtt.topics[i]);
			ta->qos[ta->n++] = fn->mqtt.qos;
		} else if (k < ta->n && fn->mqtt.qos > ta->qos[k]) {
			/* a filter shared by functions: the highest qos any of them asks */
			ta->qos[k] = fn->mqtt.qos;
		}
	}
}

/* Every topic filter of every function, deduplicated, with the qos to subscribe at. */
static int wanted_topics(struct gw_daemon *d, char (*out)[GW_TOPIC_MAX], int *qos)
{
	struct topics_arg ta = {out, qos, 0};

	gw_fn_foreach(d, add_topics, &ta);
	return ta.n;
}

static void sync_subs(struct gw_mqtt *m, bool fresh)
{
	static __thread char want[MAX_SUBS][GW_TOPIC_MAX];
	static __thread int want_qos[MAX_SUBS];
	int n = wanted_topics(m->d, want, want_qos);

	pthread_mutex_lock(&m->lock);
	if (fresh)
		m->n_subs = 0; /* a new session has no subscriptions */
	for (int i = 0; i < m->n_subs; i++) {
		bool keep = false;

		for (int k = 0; k < n && !keep; k++)
			keep = !strcmp(m->subs[i], want[k]);
		if (!keep) {
			mosquitto_unsubscribe(m->mosq, NULL, m->subs[i]);
			NEMO_INFO(GW_MOD, "mqtt unsubscribed topic=%s", m->subs[i]);
		}
	}
	for (int k = 0; k < n; k++) {
		bool have = false;

		/* the function's qos, both ways: the broker delivers at most the subscription's */
		for (int i = 0; i < m->n_subs && !have; i++)
			have = !strcmp(m->subs[i], want[k]) && m->sub_qos[i] == want_qos[k];
		if (!have) {
			int rc = mosquitto_subscribe(m->mosq, NULL, want[k], want_qos[k]);

			if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
				NEMO_WARN(GW_MOD, "mqtt subscribe topic=%s: %s", want[k],
					  mosquitto_strerror(rc));
			else if (rc == MOSQ_ERR_SUCCESS)
				NEMO_INFO(GW_MOD, "mqtt subscribed topic=%s qos=%d", want[k],
					  want_qos[k]);
		}
	}
	memcpy(m->subs, want, sizeof(want[0]) * (size_t)n);
	memcpy(m->sub_qos, want_qos, sizeof(want_qos[0]) * (size_t)n);
	m->n_subs = n;
	pthread_mutex_unlock(&m->lock);
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
	struct gw_mqtt *m = obj;

	(void)mosq;
	if (rc) {
		NEMO_WARN(GW_MOD, "mqtt connect refused broker=%s:%u reason=%s",
			  m->d->cfg.mqtt.host, m->d->cfg.mqtt.port, mosquitto_connack_string(rc));
		return;
	}
	atomic_store(&m->connected, true);
	m->retries = 0;
	NEMO_INFO(GW_MOD, "mqtt connected broker=%s:%u", m->d->cfg.mqtt.host, m->d->cfg.mqtt.port);
	sync_subs(m, true);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
	struct gw_mqtt *m = obj;

	(void)mosq;
	atomic_store(&m->connected, false);
	if (rc)
		NEMO_WARN(GW_MOD,
			  "mqtt disconnected broker=%s:%u reason=%s: reconnecting with backoff "
			  "%u..%u s",
			  m->d->cfg.mqtt.host, m->d->cfg.mqtt.port, mosquitto_strerror(rc),
			  m->d->cfg.mqtt.reconnect_min_s, m->d->cfg.mqtt.reconnect_max_s);
	else
		NEMO_INFO(GW_MOD, "mqtt disconnected broker=%s:%u", m->d->cfg.mqtt.host,
			  m->d->cfg.mqtt.port);
}

struct match_arg {
	const char *topic;
	int n;
	char names[32][SBX_NAME_MAX];
	char replies[32][GW_TOPIC_MAX];
	int qos[32];
};

static void match_fn(void *arg, struct gw_function *fn)
{
	struct match_arg *ma = arg;

	for (int i = 0; i < fn->mqtt.n_topics && ma->n < 32; i++) {
		bool match = false;

		mosquitto_topic_matches_sub(fn->mqtt.topics[i], ma->topic, &match);
		if (match) {
			snprintf(ma->names[ma->n], SBX_NAME_MAX, "%s", fn->spec.name);
			snprintf(ma->replies[ma->n], GW_TOPIC_MAX, "%s", fn->mqtt.reply_topic);
			ma->qos[ma->n] = fn->mqtt.qos;
			ma->n++;
			break;
		}
	}
}

static void item_free(struct round_item *it)
{
	free(it->payload);
	free(it->reply);
	free(it->corr);
	memset(it, 0, sizeof(*it));
}

/*
 * Begin one activation of a message: its own copies of what the message carries (freed when
 * the round ends), its accepted line written. Returns false when it was refused.
 */
static bool round_add(struct gw_mqtt *m, const char *topic, const char *function,
		      const struct gw_call *call)
{
	struct round_item *it = &m->round[m->n_round];
	char err[256];
	int rc = -ENOMEM;

	it->payload = malloc(call->len ? call->len : 1);
	it->reply = strdup(call->reply_topic);
	it->corr = call->correlation_len ? malloc(call->correlation_len) : NULL;
	if (it->payload && it->reply && (it->corr || !call->correlation_len)) {
		memcpy(it->payload, call->payload, call->len);
		if (it->corr)
			memcpy(it->corr, call->correlation, call->correlation_len);
		it->call = *call;
		it->call.payload = it->payload;
		it->call.reply_topic = it->reply;
		it->call.correlation = it->corr;
		snprintf(it->function, sizeof(it->function), "%s", function);
		rc = gw_svc_accept_begin(m->d, function, &it->call, &it->acc, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "%s", strerror(ENOMEM));
	}
	if (rc) {
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
				     "mqtt message on %s dropped: %s", topic, err);
		item_free(it);
		return false;
	}
	m->n_round++;
	return true;
}

/*
 * The end of a round: one fdatasync makes every accepted line of the round durable (group
 * commit), then each activation goes to etcd (in a cluster) and the queue. Only after this
 * does the network thread write again, so a QoS 1 message's PUBACK (queued by libmosquitto
 * before on_message) leaves after its record is on disk.
 */
static void round_end(struct gw_mqtt *m)
{
	int sync_rc = 0;
	bool any = false;

	for (int i = 0; i < m->n_round && !any; i++)
		any = !m->round[i].acc.rc;
	if (any)
		sync_rc = gw_journal_sync(&m->d->acts);
	for (int i = 0; i < m->n_round; i++) {
		struct round_item *it = &m->round[i];
		char err[256];

		if (gw_svc_accept_end(m->d, &it->acc, &it->call, sync_rc, err, sizeof(err)))
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "mqtt message for %s dropped: %s", it->function, err);
		else
			NEMO_DEBUG(GW_MOD, "mqtt function=%s activation=%s", it->function,
				   it->acc.id);
		item_free(it);
	}
	m->n_round = 0;
}

/*
 * The network thread must not run functions, nor wait for the disk per message: each message
 * becomes an async activation, begun here and made durable with the rest of its round
 * (round_end). An MQTT 5 request's response topic and correlation data route its reply;
 * without them the reply goes to the function's reply_topic as an envelope naming the
 * activation (and echoing a "correlation_id" the request carried in its JSON).
 */
static void on_message_v5(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
			  const mosquitto_property *props)
{
	struct gw_mqtt *m = obj;
	struct gw_daemon *d = m->d;
	struct match_arg *ma = calloc(1, sizeof(*ma));
	char *resp_topic = NULL;
	void *corr = NULL;
	uint16_t corr_len = 0;
	bool v5;

	(void)mosq;
	if (!ma)
		return;
	ma->topic = msg->topic;
	gw_fn_foreach(d, match_fn, ma);
	if (props) {
		mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &resp_topic, false);
		mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len,
					       false);
	}
	if (resp_topic) {
		/* a topic to publish to: no wildcards; no control characters (it is a field of
		 * the journal's line too). mosquitto refuses both already; a broker that does
		 * not must not bend the journal */
		bool ok = resp_topic[0] != '\0';

		for (const char *c = resp_topic; ok && *c; c++)
			ok = (unsigned char)*c >= ' ' && *c != 0x7f && *c != '+' && *c != '#';
		if (!ok) {
			NEMO_LOG_RATELIMITED(
				NEMO_LOG_WARN, GW_MOD, 1000, 5,
				"mqtt message on %s dropped: its response topic is not "
				"a topic to publish to (wildcard or control character)",
				msg->topic);
			free(resp_topic);
			free(corr);
			free(ma);
			return;
		}
	}
	v5 = corr || resp_topic;
	if (!corr && !resp_topic) {
		/* MQTT 3: a JSON request may carry its own correlation_id, echoed in the envelope */
		cJSON *req = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
		struct cfg_ctx cc = {.file = "mqtt message", .quiet = true};
		const char *cid;

		if (req && cfg_check_unique_keys(&cc, "", req)) {
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "mqtt message on %s dropped: %s", msg->topic, cc.err);
			cJSON_Delete(req);
			free(resp_topic);
			free(ma);
			return;
		}
		cid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "correlation_id"));

		if (cid && strlen(cid) < 128) {
			corr = strdup(cid);
			corr_len = corr ? (uint16_t)strlen(cid) : 0;
		}
		cJSON_Delete(req);
	}
	for (int i = 0; i < ma->n; i++) {
		struct gw_call call = {.payload = msg->payload,
				       .len = (size_t)msg->payloadlen,
				       .trigger = GW_TRIGGER_MQTT,
				       .qos = ma->qos[i],
				       .mqtt5 = v5,
				       .correlation = corr,
				       .correlation_len = corr_len};

		call.reply_topic = resp_topic && strlen(resp_topic) < GW_TOPIC_MAX ? resp_topic
										   : ma->replies[i];
		/* a full round: make it durable first (a message may match many functions) */
		if (m->n_round == ROUND_MAX)
			round_end(m);
		round_add(m, msg->topic, ma->names[i], &call);
	}
	free(resp_topic);
	free(corr);
	free(ma);
}

/* The reply of an activation: raw with MQTT 5 correlation, else an envelope. */
static void publish_reply(void *state, const char *topic, int qos, bool mqtt5, const void *corr,
			  size_t corr_len, const char *id, const void *data, size_t len)
{
	struct gw_mqtt *m = state;
	mosquitto_property *props = NULL;
	char *text = NULL;
	int rc;

	if (mqtt5) {
		if (corr_len)
			mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr,
						      (uint16_t)corr_len);
	} else {
		cJSON *env = cJSON_CreateObject();
		cJSON *res = gw_json_parse("result", data, len, NULL, 0);

		cJSON_AddStringToObject(env, "activationId", id);
		if (corr_len) {
			char *c = strndup(corr, corr_len);

			cJSON_AddStringToObject(env, "correlation_id", c ? c : "");
			free(c);
		}
		if (!res) {
			char *s = strndup(data, len);

			res = cJSON_CreateString(s ? s : "");
			free(s);
		}
		cJSON_AddItemToObject(env, "result", res);
		text = cJSON_PrintUnformatted(env);
		cJSON_Delete(env);
		if (text) {
			data = text;
			len = strlen(text);
		}
	}
	/* MQTT's own limit (256 MiB), checked before the length becomes an int */
	if (len > 268435455u) {
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
				     "mqtt publish topic=%s: a reply of %zu bytes is over MQTT's "
				     "limit of 268435455",
				     topic, len);
		rc = MOSQ_ERR_PAYLOAD_SIZE;
	} else {
		rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)len, data, qos, false, props);
		if (rc == MOSQ_ERR_SUCCESS)
			wake(m); /* queued: the network thread writes it */
	}
	if (rc != MOSQ_ERR_SUCCESS)
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5, "mqtt publish topic=%s: %s",
				     topic, mosquitto_strerror(rc));
	mosquitto_property_free_all(&props);
	free(text);
}

static void topics_changed(void *state)
{
	gw_mqtt_resubscribe(state);
}

static bool readable(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLIN};

	return poll(&pf, 1, 0) > 0;
}

/*
 * One round of the network thread: wait for the broker or a wake-up; read every message
 * waiting (up to ROUND_MAX activations), beginning their activations; make them durable
 * together and queue them (round_end); then write what is queued: PUBACKs, replies,
 * subscriptions. Returns a MOSQ_ERR_* (not success: the connection is gone).
 */
static int round_run(struct gw_mqtt *m)
{
	int sock = mosquitto_socket(m->mosq), rc = MOSQ_ERR_SUCCESS;
	struct pollfd pf[2] = {
		{.fd = sock, .events = POLLIN | (mosquitto_want_write(m->mosq) ? POLLOUT : 0)},
		{.fd = m->wake_fd, .events = POLLIN}};
	uint64_t n;

	if (sock < 0)
		return MOSQ_ERR_NO_CONN;
	/* a second at most: keepalive pings (mosquitto_loop_misc) */
	if (poll(pf, 2, 1000) < 0 && errno != EINTR)
		return MOSQ_ERR_ERRNO;
	if ((pf[1].revents & POLLIN) && read(m->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5, "mqtt wake: %s",
				     strerror(errno));
	if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
		/* libmosquitto reads no further than the packets it handles: poll tells whether
		 * another message is waiting */
		do
			rc = mosquitto_loop_read(m->mosq, 1);
		while (rc == MOSQ_ERR_SUCCESS && m->n_round < ROUND_MAX && readable(sock));
	}
	round_end(m); /* even when the connection broke: what was begun is accepted or not */
	if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(m->mosq))
		rc = mosquitto_loop_write(m->mosq, 1);
	if (rc == MOSQ_ERR_SUCCESS)
		rc = mosquitto_loop_misc(m->mosq);
	return rc;
}

/* Sleep `s` seconds unless stopped meanwhile; true if stopped. */
static bool nap(struct gw_mqtt *m, unsigned s)
{
	uint64_t end = nemo_now_ns() + (uint64_t)s * 1000000000ull, now, n;

	while (!atomic_load(&m->stop) && (now = nemo_now_ns()) < end) {
		struct pollfd pf = {.fd = m->wake_fd, .events = POLLIN};

		if (poll(&pf, 1, (int)((end - now) / 1000000ull) + 1) > 0 &&
		    read(m->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
			break;
	}
	return atomic_load(&m->stop);
}

/*
 * The network thread. nemod runs its own loop rather than mosquitto_loop_start's: that one
 * writes the PUBACK of a QoS 1 message as soon as on_message returns, so on_message had to
 * fdatasync each message's record alone while every other message, and every reply, waited
 * behind it. Here a round's records share one fdatasync and nothing is written before it.
 * Reconnects back off as libmosquitto's own loop does: reconnect_min_s * (n + 1)^2, at most
 * reconnect_max_s.
 */
static void *net_thread(void *arg)
{
	struct gw_mqtt *m = arg;
	const struct gw_mqtt_config *mc = &m->d->cfg.mqtt;

	while (!atomic_load(&m->stop)) {
		unsigned delay;
		int rc;

		if (round_run(m) == MOSQ_ERR_SUCCESS)
			continue;
		delay = mc->reconnect_min_s * (m->retries + 1) * (m->retries + 1);
		if (delay >= mc->reconnect_max_s)
			delay = mc->reconnect_max_s;
		else
			m->retries++;
		if (nap(m, delay))
			break;
		rc = mosquitto_reconnect(m->mosq);
		if (rc != MOSQ_ERR_SUCCESS)
			NEMO_DEBUG(GW_MOD, "mqtt reconnect broker=%s:%u: %s", mc->host, mc->port,
				   rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	}
	/* say goodbye: the DISCONNECT, and whatever replies are still queued (a while) */
	if (mosquitto_disconnect(m->mosq) == MOSQ_ERR_SUCCESS) {
		for (int i = 0; i < 20 && mosquitto_want_write(m->mosq); i++) {
			struct pollfd pf = {.fd = mosquitto_socket(m->mosq), .events = POLLOUT};

			if (pf.fd < 0 || poll(&pf, 1, 100) < 0 ||
			    mosquitto_loop_write(m->mosq, 1) != MOSQ_ERR_SUCCESS)
				break;
		}
	}
	return NULL;
}

struct gw_mqtt *gw_mqtt_start(struct gw_daemon *d)
{
	const struct gw_mqtt_config *mc = &d->cfg.mqtt;
	struct gw_mqtt *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return NULL;
	m->d = d;
	pthread_mutex_init(&m->lock, NULL);
	m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->wake_fd < 0) {
		rc = errno;
		NEMO_ERR(GW_MOD, "mqtt: eventfd: %s", strerror(errno));
		pthread_mutex_destroy(&m->lock);
		free(m);
		errno = rc;
		return NULL;
	}
	mosquitto_lib_init();
	m->mosq = mosquitto_new(mc->client_id, true, m);
	if (!m->mosq) {
		rc = errno;
		NEMO_ERR(GW_MOD, "mqtt: mosquitto_new: %s", strerror(errno));
		goto fail;
	}
	mosquitto_connect_callback_set(m->mosq, on_connect);
	mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
	mosquitto_message_v5_callback_set(m->mosq, on_message_v5);
	/* MQTT 5 for response topics and correlation data; no Nagle: replies are small */
	mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
	/* other threads (workers' replies, subscriptions) only queue packets: the network
	 * thread alone writes, so no PUBACK leaves before its round is durable */
	mosquitto_threaded_set(m->mosq, true);
	/* a broker that is down at start is not fatal: the loop keeps trying */
	rc = mosquitto_connect_async(m->mosq, mc->host, (int)mc->port, (int)mc->keepalive_s);
	if (rc != MOSQ_ERR_SUCCESS)
		NEMO_WARN(GW_MOD, "mqtt connect broker=%s:%u: %s (will retry)", mc->host, mc->port,
			  rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	d->mqtt_sink_state = m;
	d->mqtt_topics_changed = topics_changed;
	d->mqtt_sink = publish_reply;
	rc = pthread_create(&m->thread, NULL, net_thread, m);
	if (rc) {
		NEMO_ERR(GW_MOD, "mqtt loop: %s", strerror(rc));
		d->mqtt_sink = NULL;
		d->mqtt_topics_changed = NULL;
		mosquitto_destroy(m->mosq);
		goto fail;
	}
	return m;
fail:
	mosquitto_lib_cleanup();
	close(m->wake_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
	errno = rc;
	return NULL;
}

void gw_mqtt_stop(struct gw_mqtt *m)
{
	if (!m)
		return;
	m->d->mqtt_sink = NULL;
	m->d->mqtt_topics_changed = NULL;
	atomic_store(&m->stop, true);
	wake(m);
	pthread_join(m->thread, NULL);
	mosquitto_destroy(m->mosq);
	mosquitto_lib_cleanup();
	close(m->wake_fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void gw_mqtt_resubscribe(struct gw_mqtt *m)
{
	if (atomic_load(&m->connected)) {
		sync_subs(m, false);
		wake(m);
	}
}

bool gw_mqtt_connected(struct gw_mqtt *m)
{
	return atomic_load(&m->connected);
}
