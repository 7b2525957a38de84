/* predictor.c - spare-capacity predictors (EWMA, busy/idle Markov chain) and their scoring. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/harvester.h"

#define DEFAULT_ALPHA	       0.3
#define DEFAULT_IDLE_THRESHOLD 0.5

static int params_valid(const struct hv_predictor_params *p)
{
	if (!p)
		return 1;
	return p->alpha >= 0.0 && p->alpha <= 1.0 && p->idle_threshold >= 0.0 &&
	       p->idle_threshold <= 1.0;
}

static double param_alpha(const struct hv_predictor_params *p)
{
	return p && p->alpha > 0.0 ? p->alpha : DEFAULT_ALPHA;
}

/* ---- EWMA ---------------------------------------------------------------------------------- */

struct ewma {
	double alpha;
	double value;
	bool seen;
};

static struct hv_predictor *ewma_create(const struct hv_predictor_params *p)
{
	struct ewma *e;

	if (!params_valid(p)) {
		errno = EINVAL;
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->alpha = param_alpha(p);
	return (struct hv_predictor *)e;
}

static void ewma_observe(struct hv_predictor *p, double x)
{
	struct ewma *e = (struct ewma *)p;

	/* the first window is the best estimate there is: do not drag it from 0 */
	e->value = e->seen ? e->alpha * x + (1.0 - e->alpha) * e->value : x;
	e->seen = true;
}

static double ewma_predict(const struct hv_predictor *p, unsigned int horizon)
{
	(void)horizon; /* a level model forecasts the same level at every horizon */
	return ((const struct ewma *)p)->value;
}

static void ewma_destroy(struct hv_predictor *p)
{
	free(p);
}

const struct hv_predictor_ops hv_predictor_ewma = {
	.name = "ewma",
	.create = ewma_create,
	.observe = ewma_observe,
	.predict = ewma_predict,
	.destroy = ewma_destroy,
};

/* ---- two-state Markov chain ---------------------------------------------------------------- */

enum {
	MK_BUSY = 0,
	MK_IDLE = 1
};

/*
 * Windows are classed busy or idle by their spare_ratio. Transition counts give P(next |
 * current) with a Laplace prior (so an unseen transition is unlikely, not impossible), and
 * each state keeps the mean spare_ratio of its windows. The forecast for step h is the
 * state distribution e_s * P^h weighed by those means: on/off traffic whose idle periods
 * last a few windows is predicted through its transitions, not smeared into an average.
 */
struct markov {
	double threshold;
	double trans[2][2];
	double sum[2];
	double n[2];
	int state; /* -1 before the first window */
};

static struct hv_predictor *markov_create(const struct hv_predictor_params *p)
{
	struct markov *m;

	if (!params_valid(p)) {
		errno = EINVAL;
		return NULL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->threshold = p && p->idle_threshold > 0.0 ? p->idle_threshold : DEFAULT_IDLE_THRESHOLD;
	m->state = -1;
	return (struct hv_predictor *)m;
}

static void markov_observe(struct hv_predictor *p, double x)
{
	struct markov *m = (struct markov *)p;
	int s = x >= m->threshold ? MK_IDLE : MK_BUSY;

	if (m->state >= 0)
		m->trans[m->state][s] += 1.0;
	m->sum[s] += x;
	m->n[s] += 1.0;
	m->state = s;
}

static double markov_mean(const struct markov *m, int s)
{
	if (m->n[s] > 0)
		return m->sum[s] / m->n[s];
	/*
	 * A state never seen: nothing says it would look different from the one that was, so a
	 * steady core is forecast exactly instead of being pulled toward an invented figure.
	 */
	if (m->n[!s] > 0)
		return m->sum[!s] / m->n[!s];
	return 0.0;
}

static double markov_predict(const struct hv_predictor *p, unsigned int horizon)
{
	const struct markov *m = (const struct markov *)p;
	double prob[2][2], pi[2] = {0, 0}, mean[2], acc = 0.0;

	if (m->state < 0)
		return 0.0;
	if (horizon == 0)
		horizon = 1;
	for (int i = 0; i < 2; i++) {
		double row = m->trans[i][0] + m->trans[i][1] + 2.0;

		prob[i][0] = (m->trans[i][0] + 1.0) / row;
		prob[i][1] = (m->trans[i][1] + 1.0) / row;
		mean[i] = markov_mean(m, i);
	}
	pi[m->state] = 1.0;
	for (unsigned int h = 0; h < horizon; h++) {
		double next0 = pi[0] * prob[0][0] + pi[1] * prob[1][0];
		double next1 = pi[0] * prob[0][1] + pi[1] * prob[1][1];

		pi[0] = next0;
		pi[1] = next1;
		acc += pi[0] * mean[0] + pi[1] * mean[1];
	}
	return acc / horizon;
}

static void markov_destroy(struct hv_predictor *p)
{
	free(p);
}

const struct hv_predictor_ops hv_predictor_markov = {
	.name = "markov",
	.create = markov_create,
	.observe = markov_observe,
	.predict = markov_predict,
	.destroy = markov_destroy,
};

const struct hv_predictor_ops *hv_predictor_find(const char *name)
{
	static const struct hv_predictor_ops *const all[] = {&hv_predictor_ewma,
							     &hv_predictor_markov};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (name && strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

int hv_predictor_replay(const struct hv_predictor_ops *ops, const struct hv_predictor_params *p,
			const double *trace, size_t n, unsigned int horizon, unsigned int warmup,
			struct hv_predictor_error *err)
{
	struct hv_predictor *pred;
	double abs_sum = 0.0, sq_sum = 0.0;
	uint32_t scored = 0;

	if (!ops || !trace || !err || horizon == 0)
		return -EINVAL;
	pred = ops->create(p);
	if (!pred)
		return -errno;
	for (size_t t = 0; t < n; t++) {
		if (t >= warmup && t + horizon <= n) {
			double actual = 0.0, e;

			for (unsigned int h = 0; h < horizon; h++)
				actual += trace[t + h];
			actual /= horizon;
			e = ops->predict(pred, horizon) - actual;
			abs_sum += fabs(e);
			sq_sum += e * e;
			scored++;
		}
		ops->observe(pred, trace[t]);
	}
	ops->destroy(pred);
	if (!scored)
		return -EINVAL;
	err->n = scored;
	err->mae = abs_sum / scored;
	err->rmse = sqrt(sq_sum / scored);
	return 0;
}
