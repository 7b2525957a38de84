/* profile.c - target rate as a function of time: constant, on/off, steps and traces. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

void gen_profile_constant(struct gen_profile *p, double pps)
{
	memset(p, 0, sizeof(*p));
	p->kind = GEN_PROFILE_CONSTANT;
	p->rate_pps = pps;
}

void gen_profile_on_off(struct gen_profile *p, double peak_pps, double on_s, double off_s)
{
	memset(p, 0, sizeof(*p));
	p->kind = GEN_PROFILE_ON_OFF;
	p->rate_pps = peak_pps;
	p->on_s = on_s;
	p->off_s = off_s;
}

void gen_profile_free(struct gen_profile *p)
{
	free(p->points);
	free(p->points_pkts);
	p->points = NULL;
	p->points_pkts = NULL;
	p->n_points = 0;
}

/* strtod that must consume the whole (trimmed) token and give a finite number. */
static int parse_double(const char *s, const char *end, double *out)
{
	char buf[64];
	size_t len;
	char *stop;

	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - s);
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtod(buf, &stop);
	if (errno || *stop != '\0' || !isfinite(*out))
		return -EINVAL;
	return 0;
}

int gen_parse_rate(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v *= 1e3, end++;
	else if (*end == 'M')
		v *= 1e6, end++;
	else if (*end == 'G')
		v *= 1e9, end++;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0' || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

static int grow(struct gen_profile *p, size_t *cap)
{
	struct gen_point *pts;
	double *pk;
	size_t n = *cap ? *cap * 2 : 16;

	pts = realloc(p->points, n * sizeof(*pts));
	if (!pts)
		return -ENOMEM;
	p->points = pts;
	pk = realloc(p->points_pkts, n * sizeof(*pk));
	if (!pk)
		return -ENOMEM;
	p->points_pkts = pk;
	*cap = n;
	return 0;
}

int gen_profile_parse_steps(struct gen_profile *p, const char *spec, char *err, size_t errlen)
{
	const char *s = spec;
	size_t cap = 0;
	double t = 0, pkts = 0;
	int idx = 1;

	memset(p, 0, sizeof(*p));
	p->kind = GEN_PROFILE_STEPS;
	if (!spec || !*spec) {
		snprintf(err, errlen, "--steps: empty list, expected PPS:SECONDS,...");
		return -EINVAL;
	}
	for (;;) {
		const char *comma = strchr(s, ',');
		const char *end = comma ? comma : s + strlen(s);
		const char *colon = memchr(s, ':', (size_t)(end - s));
		char rate[64];
		double pps, secs;

		if (colon && (size_t)(colon - s) < sizeof(rate)) {
			memcpy(rate, s, (size_t)(colon - s));
			rate[colon - s] = '\0';
		} else {
			rate[0] = '\0';
		}
		if (!colon || gen_parse_rate(rate, &pps) || parse_double(colon + 1, end, &secs) ||
		    pps < 0 || secs <= 0) {
			snprintf(err, errlen,
				 "--steps: step %d '%.*s': expected PPS:SECONDS with PPS >= 0 and "
				 "SECONDS > 0",
				 idx, (int)(end - s), s);
			gen_profile_free(p);
			return -EINVAL;
		}
		if (p->n_points == cap && grow(p, &cap)) {
			snprintf(err, errlen, "--steps: out of memory");
			gen_profile_free(p);
			return -ENOMEM;
		}
		p->points[p->n_points].t_s = t;
		p->points[p->n_points].pps = pps;
		p->points_pkts[p->n_points] = pkts;
		p->n_points++;
		t += secs;
		pkts += pps * secs;
		if (!comma)
			break;
		s = comma + 1;
		idx++;
	}
	p->cycle_s = t;
	p->cycle_pkts = pkts;
	return 0;
}

static void trim(char *line)
{
	size_t n = strlen(line);

	while (n && isspace((unsigned char)line[n - 1]))
		line[--n] = '\0';
}

int gen_profile_read_trace(struct gen_profile *p, FILE *in, const char *name,
			   enum gen_interp interp, char *err, size_t errlen)
{
	char *line = NULL;
	size_t linecap = 0, cap = 0, lineno = 0;
	bool seen_data = false;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	p->kind = GEN_PROFILE_TRACE;
	p->interp = interp;
	while (getline(&line, &linecap, in) >= 0) {
		const char *s = line, *comma;
		double t, pps;

		lineno++;
		trim(line);
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0' || *s == '#')
			continue;
		if (!seen_data && strcmp(s, "time_s,pps") == 0) {
			seen_data = true;
			continue;
		}
		seen_data = true;
		comma = strchr(s, ',');
		if (!comma || parse_double(s, comma, &t) ||
		    parse_double(comma + 1, s + strlen(s), &pps)) {
			snprintf(err, errlen, "%s:%zu: expected 'time_s,pps', got '%.60s'", name,
				 lineno, s);
			rc = -EINVAL;
			break;
		}
		if (t < 0 || pps < 0) {
			snprintf(err, errlen, "%s:%zu: time and rate must be >= 0, got '%.60s'",
				 name, lineno, s);
			rc = -EINVAL;
			break;
		}
		if (p->n_points && t <= p->points[p->n_points - 1].t_s) {
			snprintf(err, errlen,
				 "%s:%zu: time %g is not after the previous sample's %g", name,
				 lineno, t, p->points[p->n_points - 1].t_s);
			rc = -EINVAL;
			break;
		}
		if (p->n_points == cap && grow(p, &cap)) {
			snprintf(err, errlen, "%s:%zu: out of memory", name, lineno);
			rc = -ENOMEM;
			break;
		}
		p->points[p->n_points].t_s = t;
		p->points[p->n_points].pps = pps;
		p->n_points++;
	}
	free(line);
	if (!rc && ferror(in)) {
		snprintf(err, errlen, "%s: read error: %s", name, strerror(errno));
		rc = -EIO;
	}
	if (!rc && p->n_points == 0) {
		snprintf(err, errlen, "%s: no 'time_s,pps' samples", name);
		rc = -EINVAL;
	}
	if (rc) {
		gen_profile_free(p);
		return rc;
	}
	p->points_pkts[0] = 0;
	for (size_t i = 1; i < p->n_points; i++) {
		double dt = p->points[i].t_s - p->points[i - 1].t_s;
		double r = p->points[i - 1].pps;

		if (interp == GEN_INTERP_LINEAR)
			r = 0.5 * (r + p->points[i].pps);
		p->points_pkts[i] = p->points_pkts[i - 1] + r * dt;
	}
	return 0;
}

int gen_profile_load_trace(struct gen_profile *p, const char *path, enum gen_interp interp,
			   char *err, size_t errlen)
{
	FILE *in = fopen(path, "r");
	int rc;

	if (!in) {
		rc = -errno;
		snprintf(err, errlen, "--trace %s: %s", path, strerror(errno));
		memset(p, 0, sizeof(*p));
		return rc;
	}
	rc = gen_profile_read_trace(p, in, path, interp, err, errlen);
	fclose(in);
	return rc;
}

/* Index of the last point at or before t (points[0].t_s <= t is the caller's to check). */
static size_t find_point(const struct gen_profile *p, double t)
{
	size_t lo = 0, hi = p->n_points - 1;

	while (lo < hi) {
		size_t mid = (lo + hi + 1) / 2;

		if (p->points[mid].t_s <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

void gen_profile_segment(const struct gen_profile *p, double t, struct gen_segment *seg)
{
	memset(seg, 0, sizeof(*seg));
	if (t < 0)
		t = 0;
	switch (p->kind) {
	case GEN_PROFILE_CONSTANT:
		seg->t1_s = INFINITY;
		seg->rate0 = p->rate_pps;
		break;
	case GEN_PROFILE_ON_OFF: {
		double period = p->on_s + p->off_s;
		double k = floor(t / period), base = k * period;

		seg->pkts0 = k * p->rate_pps * p->on_s;
		if (t - base < p->on_s) {
			seg->t0_s = base;
			seg->t1_s = base + p->on_s;
			seg->rate0 = p->rate_pps;
		} else {
			seg->t0_s = base + p->on_s;
			seg->t1_s = base + period;
			seg->pkts0 += p->rate_pps * p->on_s;
		}
		break;
	}
	case GEN_PROFILE_STEPS: {
		double k = floor(t / p->cycle_s), base = k * p->cycle_s;
		size_t i = find_point(p, t - base);

		seg->t0_s = base + p->points[i].t_s;
		seg->t1_s = base + (i + 1 < p->n_points ? p->points[i + 1].t_s : p->cycle_s);
		seg->pkts0 = k * p->cycle_pkts + p->points_pkts[i];
		seg->rate0 = p->points[i].pps;
		break;
	}
	case GEN_PROFILE_TRACE: {
		size_t i;

		if (t < p->points[0].t_s) {
			seg->t1_s = p->points[0].t_s;
			break;
		}
		i = find_point(p, t);
		seg->t0_s = p->points[i].t_s;
		seg->pkts0 = p->points_pkts[i];
		seg->rate0 = p->points[i].pps;
		if (i + 1 == p->n_points) {
			seg->t1_s = INFINITY;
			break;
		}
		seg->t1_s = p->points[i + 1].t_s;
		if (p->interp == GEN_INTERP_LINEAR)
			seg->slope =
				(p->points[i + 1].pps - p->points[i].pps) / (seg->t1_s - seg->t0_s);
		break;
	}
	}
}

double gen_profile_rate(const struct gen_profile *p, double t_s)
{
	struct gen_segment seg;

	gen_profile_segment(p, t_s, &seg);
	return seg.rate0 + seg.slope * (t_s - seg.t0_s);
}

double gen_profile_packets(const struct gen_profile *p, double t_s)
{
	struct gen_segment seg;

	if (t_s <= 0)
		return 0;
	gen_profile_segment(p, t_s, &seg);
	return gen_segment_packets(&seg, t_s);
}

double gen_profile_natural_duration(const struct gen_profile *p)
{
	if (p->kind == GEN_PROFILE_STEPS)
		return p->cycle_s;
	if (p->kind == GEN_PROFILE_TRACE)
		return p->points[p->n_points - 1].t_s;
	return 0;
}

void gen_profile_describe(const struct gen_profile *p, char *buf, size_t len)
{
	switch (p->kind) {
	case GEN_PROFILE_CONSTANT:
		snprintf(buf, len, "constant %.0f pps", p->rate_pps);
		break;
	case GEN_PROFILE_ON_OFF:
		snprintf(buf, len, "on_off %.0f pps, %g ms on / %g ms off", p->rate_pps,
			 p->on_s * 1e3, p->off_s * 1e3);
		break;
	case GEN_PROFILE_STEPS:
		snprintf(buf, len, "steps: %zu steps over %g s, repeating", p->n_points,
			 p->cycle_s);
		break;
	case GEN_PROFILE_TRACE:
		snprintf(buf, len, "trace: %zu samples over %g s, %s interpolation", p->n_points,
			 p->points[p->n_points - 1].t_s,
			 p->interp == GEN_INTERP_LINEAR ? "linear" : "step");
		break;
	}
}
