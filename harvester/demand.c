/* demand.c - per-function demand forecast: exponential smoothing corrected by a Markov chain. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "nemo/harvester.h"

#define DEFAULT_ALPHA 0.5
/* how fast each model's error score forgets: a few intervals, so a pattern wins quickly */
#define ERR_ALPHA 0.3

/* Bucket of a count: 0, 1, 2-3, 4-7, ..., the last one open-ended. */
static int bucket_of(uint64_t arrivals)
{
	int b = 0;

	if (arrivals == 0)
		return 0;
	while (arrivals > 1 && b < HV_DEMAND_STATES - 2) {
		arrivals >>= 1;
		b++;
	}
	return b + 1;
}

void hv_demand_init(struct hv_demand *d, double alpha)
{
	memset(d, 0, sizeof(*d));
	d->alpha = alpha > 0.0 && alpha <= 1.0 ? alpha : DEFAULT_ALPHA;
	d->last_state = -1;
}

static double bucket_mean(const struct hv_demand *d, int b)
{
	if (d->bucket_n[b])
		return d->bucket_sum[b] / d->bucket_n[b];
	return b == 0 ? 0.0 : (double)(1ull << (b - 1)) * 1.5;
}

/* The Markov model's expected arrivals next interval; -1 if the current state has no history. */
static double markov_expect(const struct hv_demand *d)
{
	uint32_t row = 0;
	double acc = 0.0;

	if (d->last_state < 0)
		return -1.0;
	for (int j = 0; j < HV_DEMAND_STATES; j++)
		row += d->trans[d->last_state][j];
	if (!row)
		return -1.0;
	for (int j = 0; j < HV_DEMAND_STATES; j++)
		acc += (double)d->trans[d->last_state][j] / row * bucket_mean(d, j);
	return acc;
}

int hv_demand_observe(struct hv_demand *d, uint64_t arrivals, double interval_s)
{
	double x = (double)arrivals, mk;
	int b = bucket_of(arrivals);

	if (!(interval_s > 0.0))
		return -EINVAL;
	d->interval_s = interval_s;
	/* score both models on this interval before they learn from it */
	mk = markov_expect(d);
	if (d->intervals) {
		d->err_es = ERR_ALPHA * fabs(d->es - x) + (1.0 - ERR_ALPHA) * d->err_es;
		if (mk >= 0.0)
			d->err_mk = ERR_ALPHA * fabs(mk - x) + (1.0 - ERR_ALPHA) * d->err_mk;
		else
			d->err_mk = ERR_ALPHA * fabs(d->es - x) + (1.0 - ERR_ALPHA) * d->err_mk;
	}
	d->es = d->intervals ? d->alpha * x + (1.0 - d->alpha) * d->es : x;
	if (d->last_state >= 0)
		d->trans[d->last_state][b]++;
	d->bucket_sum[b] += x;
	d->bucket_n[b]++;
	d->last_state = b;
	d->intervals++;
	return 0;
}

double hv_demand_forecast(const struct hv_demand *d)
{
	double mk, w_es, w_mk, per_interval;

	if (!d->intervals || !(d->interval_s > 0.0))
		return 0.0;
	mk = markov_expect(d);
	if (mk < 0.0) {
		per_interval = d->es;
	} else if (d->err_es + d->err_mk < 1e-12) {
		per_interval = (d->es + mk) / 2.0;
	} else {
		/* inverse-error weights: the model that has been right lately counts more */
		w_es = d->err_mk / (d->err_es + d->err_mk);
		w_mk = d->err_es / (d->err_es + d->err_mk);
		per_interval = w_es * d->es + w_mk * mk;
	}
	return per_interval / d->interval_s;
}
