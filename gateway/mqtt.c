/* mqtt.c - the MQTT trigger: messages on a function's topics invoke it; results go to a reply topic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "nemo/log.h"
#include "gw_internal.h"

#define MAX_SUBS 256

struct gw_mqtt {
	struct gw_daemon *d;
	struct mosquitto *mosq;
	atomic_bool connected;
	pthread_mutex_t lock; /* the subscribed set */
	int n_subs;
	char subs[MAX_SUBS][GW_TOPIC_MAX];
};

/* Every topic filter of every function, deduplicated. */
static int wanted_topics(struct gw_daemon *d, char (*out)[GW_TOPIC_MAX])
{
	struct gw_function *fn;
	int n = 0;

	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn; fn = fn->next)
		for (int i = 0; i < fn->mqtt.n_topics; i++) {
			bool dup = false;

			for (int k = 0; k < n && !dup; k++)
				dup = !strcmp(out[k], fn->mqtt.topics[i]);
			if (!dup && n < MAX_SUBS)
				snprintf(out[n++], GW_TOPIC_MAX, "%s", fn->mqtt.topics[i]);
		}
	pthread_rwlock_unlock(&d->fn_lock);
	return n;
}

static void sync_subs(struct gw_mqtt *m, bool fresh)
{
	static __thread char want[MAX_SUBS][GW_TOPIC_MAX];
	int n = wanted_topics(m->d, want);

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

		for (int i = 0; i < m->n_subs && !have; i++)
			have = !strcmp(m->subs[i], want[k]);
		if (!have) {
			int rc = mosquitto_subscribe(m->mosq, NULL, want[k], 1);

			if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
				NEMO_WARN(GW_MOD, "mqtt subscribe topic=%s: %s", want[k],
					  mosquitto_strerror(rc));
			else if (rc == MOSQ_ERR_SUCCESS)
				NEMO_INFO(GW_MOD, "mqtt subscribed topic=%s", want[k]);
		}
	}
	memcpy(m->subs, want, sizeof(want[0]) * (size_t)n);
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

/* The network thread must not run functions: each message becomes an async activation. */
static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	struct gw_mqtt *m = obj;
	struct gw_daemon *d = m->d;
	struct gw_function *fn;
	char names[32][SBX_NAME_MAX], replies[32][GW_TOPIC_MAX];
	int n = 0;

	(void)mosq;
	pthread_rwlock_rdlock(&d->fn_lock);
	for (fn = d->functions; fn && n < 32; fn = fn->next)
		for (int i = 0; i < fn->mqtt.n_topics; i++) {
			bool match = false;

			mosquitto_topic_matches_sub(fn->mqtt.topics[i], msg->topic, &match);
			if (match) {
				snprintf(names[n], SBX_NAME_MAX, "%s", fn->spec.name);
				snprintf(replies[n], GW_TOPIC_MAX, "%s", fn->mqtt.reply_topic);
				n++;
				break;
			}
		}
	pthread_rwlock_unlock(&d->fn_lock);
	for (int i = 0; i < n; i++) {
		char id[GW_ID_LEN + 1];
		uint64_t seq;

		if (gw_act_new(&d->acts, names[i], GW_TRIGGER_MQTT, false, id, &seq)) {
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "mqtt message on %s dropped: activation table full",
					     msg->topic);
			continue;
		}
		if (gw_act_set_work(&d->acts, seq, msg->payload, (size_t)msg->payloadlen,
				    replies[i]) ||
		    gw_enqueue(d, seq)) {
			gw_act_finish(&d->acts, seq, GW_ACT_REJECTED, NULL, "async queue full");
			NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5,
					     "mqtt message on %s dropped: async queue full",
					     msg->topic);
			continue;
		}
		NEMO_DEBUG(GW_MOD, "mqtt topic=%s function=%s activation=%s", msg->topic, names[i],
			   id);
	}
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
	mosquitto_message_callback_set(m->mosq, on_message);
	mosquitto_reconnect_delay_set(m->mosq, mc->reconnect_min_s, mc->reconnect_max_s, true);
	/* a broker that is down at start is not fatal: the loop keeps trying */
	rc = mosquitto_connect_async(m->mosq, mc->host, (int)mc->port, (int)mc->keepalive_s);
	if (rc != MOSQ_ERR_SUCCESS)
		NEMO_WARN(GW_MOD, "mqtt connect broker=%s:%u: %s (will retry)", mc->host, mc->port,
			  rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
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

void gw_mqtt_reply(struct gw_mqtt *m, const char *topic, const void *data, size_t len)
{
	int rc = mosquitto_publish(m->mosq, NULL, topic, (int)len, data, 1, false);

	if (rc != MOSQ_ERR_SUCCESS)
		NEMO_LOG_RATELIMITED(NEMO_LOG_WARN, GW_MOD, 1000, 5, "mqtt publish topic=%s: %s",
				     topic, mosquitto_strerror(rc));
}
