/*
 * bench_abuse.c - slow and greedy clients against a running nemod: the health check's and a
 * warm echo's latency without an attack, then while connections trickle their headers a line
 * at a time (slowloris) from one loopback address and from several others.
 *
 *   bench_abuse --port P --token T [--one 2000] [--addrs 10 --per 20] [--seconds 10]
 *               [--echo /function/echo] [--trickle-ms 1000] [--reconnect-ms 1000]
 *
 * Attackers use 127.0.0.1 (--one) and 127.0.0.2.. (--addrs x --per); the probe comes from
 * 127.0.0.250 with a new connection per request, as a load balancer's health check does.
 * A connection the server closes is opened again a second later (--reconnect-ms), so the
 * attack keeps its size for as long as it lasts without turning into a connection flood. Prints one line per phase:
 *   phase=... open=N healthz_n= healthz_p50_ms= healthz_p99_ms= healthz_max_ms= healthz_fail=
 *   echo_n= echo_p50_ms= echo_p99_ms= echo_max_ms= echo_fail=
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct opts {
	uint16_t port;
	const char *token;
	const char *echo;
	int one, addrs, per, seconds, trickle_ms, reconnect_ms;
};

struct attacker {
	int fd;
	uint32_t src; /* host order */
	uint64_t next_ns;
	bool started; /* the request line is sent */
};

static struct opts o = {.one = 2000,
			.addrs = 10,
			.per = 20,
			.seconds = 10,
			.trickle_ms = 1000,
			.reconnect_ms = 1000};
static atomic_bool stop_attack;
static atomic_int open_now;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int dial(uint32_t src, bool nonblock)
{
	struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons(o.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	int one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0 ||
	    (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One thread keeps every attacker's connection open and trickles a header line on each. */
static void *attack(void *arg)
{
	int n = o.one + o.addrs * o.per;
	struct attacker *a = calloc((size_t)n, sizeof(*a));
	struct pollfd *p = calloc((size_t)n, sizeof(*p));
	uint64_t beat = (uint64_t)o.trickle_ms * 1000000ull;

	(void)arg;
	if (!a || !p)
		return NULL;
	for (int i = 0; i < n; i++) {
		a[i].fd = -1;
		a[i].src = i < o.one ? 0x7f000001u : 0x7f000002u + (uint32_t)((i - o.one) / o.per);
	}
	while (!atomic_load(&stop_attack)) {
		uint64_t t = now_ns();
		int live = 0;

		for (int i = 0; i < n; i++) {
			if (a[i].fd < 0 && t >= a[i].next_ns) {
				a[i].fd = dial(a[i].src, true);
				a[i].started = false;
				a[i].next_ns = t + 100000000ull; /* first line after 100 ms */
			} else if (a[i].fd >= 0 && t >= a[i].next_ns) {
				static const char first[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
				static const char more[] = "X-Slow: 1\r\n";
				bool started = a[i].started;
				const char *s = started ? more : first;
				size_t len = started ? sizeof(more) - 1 : sizeof(first) - 1;

				if (send(a[i].fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
				    errno != EAGAIN && errno != ENOTCONN) {
					close(a[i].fd);
					a[i].fd = -1;
					a[i].next_ns = t + (uint64_t)o.reconnect_ms * 1000000ull;
					continue;
				}
				a[i].started = true;
				a[i].next_ns = t + beat;
			}
			p[i].fd = a[i].fd;
			p[i].events = POLLIN;
			p[i].revents = 0;
			live += a[i].fd >= 0;
		}
		atomic_store(&open_now, live);
		if (poll(p, (nfds_t)n, 20) > 0) {
			for (int i = 0; i < n; i++) {
				char buf[512];

				if (a[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				if (recv(a[i].fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
					continue;
				/* closed by the server: come back, as an attacker would */
				close(a[i].fd);
				a[i].fd = -1;
				a[i].next_ns = now_ns() + (uint64_t)o.reconnect_ms * 1000000ull;
			}
		}
	}
	for (int i = 0; i < n; i++)
		if (a[i].fd >= 0)
			close(a[i].fd);
	free(a);
	free(p);
	return NULL;
}

/* One request on a new connection from 127.0.0.250; returns the status or -1; ms: latency. */
static int probe(const char *method, const char *path, const char *body, double *ms)
{
	char req[1024], resp[4096];
	uint64_t t0 = now_ns();
	size_t used = 0;
	int fd, n, status = -1;

	fd = dial(0x7f0000fau, false);
	if (fd < 0)
		return -1;
	{
		struct timeval tv = {.tv_sec = 5};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
		     "Authorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
		     method, path, o.token ? o.token : "", body ? strlen(body) : 0,
		     body ? body : "");
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
		for (;;) {
			ssize_t got = recv(fd, resp + used, sizeof(resp) - 1 - used, 0);

			if (got <= 0)
				break;
			used += (size_t)got;
			if (used == sizeof(resp) - 1)
				break;
		}
		resp[used] = '\0';
		if (used > 12 && !strncmp(resp, "HTTP/1.1 ", 9))
			status = atoi(resp + 9);
	}
	close(fd);
	*ms = (double)(now_ns() - t0) / 1e6;
	return status;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

struct series {
	double *v;
	int n, cap, fail;
};

static void add(struct series *s, double v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, sizeof(*s->v) * (size_t)s->cap);
	}
	s->v[s->n++] = v;
}

static double pct(struct series *s, double q)
{
	if (!s->n)
		return -1;
	qsort(s->v, (size_t)s->n, sizeof(*s->v), cmp_double);
	return s->v[(int)(q * (s->n - 1) + 0.5)];
}

static void measure(const char *phase)
{
	struct series hz = {0}, echo = {0};
	uint64_t end = now_ns() + (uint64_t)o.seconds * 1000000000ull;

	while (now_ns() < end) {
		double ms;

		if (probe("GET", "/healthz", NULL, &ms) == 200)
			add(&hz, ms);
		else
			hz.fail++;
		if (o.echo) {
			if (probe("POST", o.echo, "ping", &ms) == 200)
				add(&echo, ms);
			else
				echo.fail++;
		}
		usleep(10000);
	}
	printf("phase=%s open=%d healthz_n=%d healthz_p50_ms=%.2f healthz_p99_ms=%.2f "
	       "healthz_max_ms=%.2f healthz_fail=%d",
	       phase, atomic_load(&open_now), hz.n, pct(&hz, 0.5), pct(&hz, 0.99), pct(&hz, 1.0),
	       hz.fail);
	if (o.echo)
		printf(" echo_n=%d echo_p50_ms=%.2f echo_p99_ms=%.2f echo_max_ms=%.2f echo_fail=%d",
		       echo.n, pct(&echo, 0.5), pct(&echo, 0.99), pct(&echo, 1.0), echo.fail);
	printf("\n");
	fflush(stdout);
	free(hz.v);
	free(echo.v);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"port", 1, NULL, 'p'},		{"token", 1, NULL, 't'},
		{"one", 1, NULL, '1'},		{"addrs", 1, NULL, 'a'},
		{"per", 1, NULL, 'n'},		{"seconds", 1, NULL, 's'},
		{"echo", 1, NULL, 'e'},		{"trickle-ms", 1, NULL, 'k'},
		{"reconnect-ms", 1, NULL, 'r'}, {NULL, 0, NULL, 0},
	};
	struct rlimit rl;
	pthread_t th;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.port = (uint16_t)atoi(optarg);
			break;
		case 't':
			o.token = optarg;
			break;
		case '1':
			o.one = atoi(optarg);
			break;
		case 'a':
			o.addrs = atoi(optarg);
			break;
		case 'n':
			o.per = atoi(optarg);
			break;
		case 's':
			o.seconds = atoi(optarg);
			break;
		case 'e':
			o.echo = optarg;
			break;
		case 'k':
			o.trickle_ms = atoi(optarg);
			break;
		case 'r':
			o.reconnect_ms = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: see the top of experiments/bench_abuse.c\n");
			return 2;
		}
	}
	if (!o.port || o.one < 0 || o.addrs < 0 || o.addrs > 200 || o.per < 0 || o.seconds < 1 ||
	    o.trickle_ms < 10) {
		fprintf(stderr, "bench_abuse: --port is required; sizes must be >= 0\n");
		return 2;
	}
	/* the attack's sockets, and a margin */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)(o.one + o.addrs * o.per + 256)) {
		rl.rlim_cur = (rlim_t)(o.one + o.addrs * o.per + 256);
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			fprintf(stderr, "bench_abuse: RLIMIT_NOFILE %llu: %s\n",
				(unsigned long long)rl.rlim_cur, strerror(errno));
			return 1;
		}
	}
	measure("baseline");
	if (pthread_create(&th, NULL, attack, NULL)) {
		fprintf(stderr, "bench_abuse: thread: %s\n", strerror(errno));
		return 1;
	}
	sleep(2); /* let it reach its size */
	measure("attack");
	atomic_store(&stop_attack, true);
	pthread_join(th, NULL);
	return 0;
}
