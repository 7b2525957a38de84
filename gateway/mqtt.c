/* mqtt.c - the MQTT transport and front door: messages invoke functions; replies carry correlation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "nemo/log.h"
#include "nemo/config.h"
#include "gw_internal.h"

#define MAX_SUBS 256

struct gw_mqtt {
	struct gw_daemon *d;
	struct mosquitto *mosq;
	atomic_bool connected;
	pthread_mutex_t lock; /* the subscribed set */
	int n_subs;
	char subs[MAX_SUBS][GW_TOPIC_MAX];
	int sub_qos[MAX_SUBS];
};

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

/*
 * The network thread must not run functions: each message becomes an async activation. An
 * MQTT 5 request's response topic and correlation data route its reply; without them the reply
 * goes to the function's reply_topic as an envelope naming the activation (and echoing a
 * "correlation_id" the request carried in its JSON).
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
		char id[GW_ID_LEN + 1], err[256];

		call.reply_topic = resp_topic && strlen(resp_topic) < GW_TOPIC_MAX ? resp_topic
										   : ma->replies[i];
		if (gw_svc_invoke_async(d, ma->names[i], &call, id, err, sizeof(err))) {
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "mqtt message on %s dropped: %s", msg->topic, err);
			continue;
		}
		NEMO_DEBUG(GW_MOD, "mqtt topic=%s function=%s activation=%s", msg->topic,
			   ma->names[i], id);
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

struct gw_mqtt *gw_mqtt_start(struct gw_daemon *d)
{
	const struct gw_mqtt_config *mc = &d->cfg.mqtt;
	struct gw_mqtt *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return NULL;
	m->d = d;
	pthread_mutex_init(&m->lock, NULL);
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
	mosquitto_reconnect_delay_set(m->mosq, mc->reconnect_min_s, mc->reconnect_max_s, true);
	/* a broker that is down at start is not fatal: the loop keeps trying */
	rc = mosquitto_connect_async(m->mosq, mc->host, (int)mc->port, (int)mc->keepalive_s);
	if (rc != MOSQ_ERR_SUCCESS)
		NEMO_WARN(GW_MOD, "mqtt connect broker=%s:%u: %s (will retry)", mc->host, mc->port,
			  rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
	d->mqtt_sink_state = m;
	d->mqtt_topics_changed = topics_changed;
	d->mqtt_sink = publish_reply;
	rc = mosquitto_loop_start(m->mosq);
	if (rc != MOSQ_ERR_SUCCESS) {
		NEMO_ERR(GW_MOD, "mqtt loop: %s", mosquitto_strerror(rc));
		mosquitto_destroy(m->mosq);
		rc = EIO;
		goto fail;
	}
	return m;
fail:
	mosquitto_lib_cleanup();
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
	mosquitto_disconnect(m->mosq);
	mosquitto_loop_stop(m->mosq, true);
	mosquitto_destroy(m->mosq);
	mosquitto_lib_cleanup();
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void gw_mqtt_resubscribe(struct gw_mqtt *m)
{
	if (atomic_load(&m->connected))
		sync_subs(m, false);
}

bool gw_mqtt_connected(struct gw_mqtt *m)
{
	return atomic_load(&m->connected);
}
