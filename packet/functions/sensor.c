/* sensor.c - packet function: aggregate sensor readings per source, answer with the summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <nemo/function.h>

/*
 * Each datagram holds one reading as ASCII ("21.5", or "temp 21.5": the last number counts).
 * The function keeps count, mean, min and max per source address and port, and answers
 * each reading with that source's summary:
 *   "10.0.0.7:5683 n=12 mean=21.42 min=20.90 max=22.10"
 * A datagram without a number is answered with "bad reading" and not counted.
 *
 * handle() is the same aggregation called per request (HTTP, MQTT): a request carries no
 * source address, so every caller's readings share one entry, answered as "request n=...".
 */

#define SENSOR_SLOTS 4096 /* sources tracked; a full table answers "table full" */

struct sensor {
	uint32_t ip;
	uint16_t port;
	uint16_t used;
	uint64_t n;
	double sum, min, max;
};

static struct sensor table[SENSOR_SLOTS];

static struct sensor *sensor_find(uint32_t ip, uint16_t port)
{
	uint32_t h = (ip * 2654435761u) ^ ((uint32_t)port * 40503u);

	for (uint32_t k = 0; k < SENSOR_SLOTS; k++) {
		struct sensor *s = &table[(h + k) % SENSOR_SLOTS];

		if (!s->used) {
			*s = (struct sensor){.ip = ip, .port = port, .used = 1};
			return s;
		}
		if (s->ip == ip && s->port == port)
			return s;
	}
	return NULL;
}

/* The last number in the datagram, or -1 when there is none. */
static int reading(const void *data, size_t size, double *out)
{
	char buf[64], *end, *last = NULL;
	size_t len = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;

	memcpy(buf, data, len);
	buf[len] = '\0';
	for (char *s = buf; *s; s++) {
		double v = strtod(s, &end);

		if (end != s) {
			*out = v;
			last = end;
			s = end - 1;
		}
	}
	return last ? 0 : -1;
}

static void sensor_add(struct sensor *s, double v)
{
	s->min = s->n && s->min < v ? s->min : v;
	s->max = s->n && s->max > v ? s->max : v;
	s->sum += v;
	s->n++;
}

int handle_batch(const struct nemo_packet *pkts, struct nemo_reply *replies, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		const struct nemo_packet *p = &pkts[i];
		struct sensor *s = NULL;
		char addr[INET_ADDRSTRLEN];
		double v;
		int len;

		if (reading(p->data, p->len, &v) == 0) {
			s = sensor_find(p->src_ip, p->src_port);
			if (s)
				sensor_add(s, v);
		}
		if (!replies[i].cap)
			continue;
		inet_ntop(AF_INET, &p->src_ip, addr, sizeof(addr));
		if (s)
			len = snprintf(replies[i].data, replies[i].cap,
				       "%s:%u n=%llu mean=%.2f min=%.2f max=%.2f", addr,
				       ntohs(p->src_port), (unsigned long long)s->n,
				       s->sum / (double)s->n, s->min, s->max);
		else
			len = snprintf(replies[i].data, replies[i].cap, "%s:%u bad reading", addr,
				       ntohs(p->src_port));
		if (len > 0 && (uint32_t)len < replies[i].cap)
			replies[i].len = (uint32_t)len;
	}
	return 0;
}

int handle(const struct nemo_request *req, struct nemo_response *resp)
{
	struct sensor *s = NULL;
	double v;
	int len;

	if (reading(req->data, req->len, &v) == 0) {
		s = sensor_find(0, 0);
		if (s)
			sensor_add(s, v);
	}
	if (s)
		len = snprintf(resp->data, resp->cap, "request n=%llu mean=%.2f min=%.2f max=%.2f",
			       (unsigned long long)s->n, s->sum / (double)s->n, s->min, s->max);
	else
		len = snprintf(resp->data, resp->cap, "request bad reading");
	if (len < 0 || (size_t)len >= resp->cap)
		return 1;
	resp->len = (size_t)len;
	return 0;
}
