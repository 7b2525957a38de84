/* test_harvester.c - predictors, demand forecast and pre-warm planner on traces with known answers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nemo/harvester.h"
#include "test.h"

#define TRACE_LEN 400

static void fill_constant(double *t, size_t n, double v)
{
	for (size_t i = 0; i < n; i++)
		t[i] = v;
}

/* `on` windows at `hi`, then `off` at `lo`, repeated. */
static void fill_onoff(double *t, size_t n, unsigned int on, unsigned int off, double hi, double lo)
{
	for (size_t i = 0; i < n; i++)
		t[i] = i % (on + off) < on ? hi : lo;
}

static void fill_step(double *t, size_t n, size_t at, double before, double after)
{
	for (size_t i = 0; i < n; i++)
		t[i] = i < at ? before : after;
}

static void score(const char *trace, const double *t, size_t n, unsigned int horizon,
		  struct hv_predictor_error *ewma, struct hv_predictor_error *markov)
{
	CU_ASSERT_EQUAL(hv_predictor_replay(&hv_predictor_ewma, NULL, t, n, horizon, 20, ewma), 0);
	CU_ASSERT_EQUAL(hv_predictor_replay(&hv_predictor_markov, NULL, t, n, horizon, 20, markov),
			0);
	printf("\n    %-22s h=%u  ewma MAE %.4f RMSE %.4f | markov MAE %.4f RMSE %.4f", trace,
	       horizon, ewma->mae, ewma->rmse, markov->mae, markov->rmse);
}

static void test_predict_constant(void)
{
	double t[TRACE_LEN];
	struct hv_predictor_error e, m;

	fill_constant(t, TRACE_LEN, 0.7);
	score("constant 0.7", t, TRACE_LEN, 1, &e, &m);
	/* a steady core is forecast exactly by both */
	CU_ASSERT(e.mae < 1e-12);
	CU_ASSERT(m.mae < 1e-12);
	score("constant 0.7", t, TRACE_LEN, 5, &e, &m);
	CU_ASSERT(e.mae < 1e-12);
	CU_ASSERT(m.mae < 1e-12);
	fill_constant(t, TRACE_LEN, 0.1);
	score("constant 0.1", t, TRACE_LEN, 1, &e, &m);
	CU_ASSERT(m.mae < 1e-12);
}

static void test_predict_alternating(void)
{
	double t[TRACE_LEN];
	struct hv_predictor_error e, m;

	/* idle, busy, idle, busy: the chain learns P(switch) ~ 1, EWMA can only average */
	fill_onoff(t, TRACE_LEN, 1, 1, 0.9, 0.1);
	score("on/off 1:1", t, TRACE_LEN, 1, &e, &m);
	CU_ASSERT(m.mae < 0.02);
	CU_ASSERT(e.mae > 0.3);
	/* over two windows the answer is the mean, 0.5, for both */
	score("on/off 1:1", t, TRACE_LEN, 2, &e, &m);
	CU_ASSERT(m.mae < 0.02);
}

static void test_predict_periodic(void)
{
	double t[TRACE_LEN];
	struct hv_predictor_error e, m;

	/* 8 idle windows then 8 busy: only the edges surprise the chain */
	fill_onoff(t, TRACE_LEN, 8, 8, 0.95, 0.05);
	score("on/off 8:8", t, TRACE_LEN, 1, &e, &m);
	CU_ASSERT(m.mae < e.mae);
	CU_ASSERT(m.mae < 0.25);
	score("on/off 8:8", t, TRACE_LEN, 4, &e, &m);
	CU_ASSERT(m.mae < e.mae);
}

static void test_predict_step(void)
{
	struct hv_predictor_params p = {.alpha = 0.3};
	struct hv_predictor *pr = hv_predictor_ewma.create(&p);
	double t[TRACE_LEN];
	struct hv_predictor_error e, m;

	CU_ASSERT_PTR_NOT_NULL_FATAL(pr);
	CU_ASSERT_DOUBLE_EQUAL(hv_predictor_ewma.predict(pr, 1), 0.0, 1e-12);
	/* after a step of 0.6, EWMA is (1 - alpha)^k * 0.6 short k windows later */
	for (int i = 0; i < 50; i++)
		hv_predictor_ewma.observe(pr, 0.2);
	for (int k = 1; k <= 10; k++) {
		hv_predictor_ewma.observe(pr, 0.8);
		CU_ASSERT_DOUBLE_EQUAL(hv_predictor_ewma.predict(pr, 1), 0.8 - 0.6 * pow(0.7, k),
				       1e-9);
	}
	hv_predictor_ewma.destroy(pr);

	/* the chain: the first idle window ever is its own state, forecast at once */
	pr = hv_predictor_markov.create(NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pr);
	for (int i = 0; i < 50; i++)
		hv_predictor_markov.observe(pr, 0.2);
	CU_ASSERT_DOUBLE_EQUAL(hv_predictor_markov.predict(pr, 1), 0.2, 1e-9);
	for (int i = 0; i < 50; i++)
		hv_predictor_markov.observe(pr, 0.8);
	/* 49 idle->idle and one busy->idle seen: P(stay idle) = 50/51 with the prior */
	CU_ASSERT_DOUBLE_EQUAL(hv_predictor_markov.predict(pr, 1), (50.0 * 0.8 + 0.2) / 51.0, 1e-9);
	hv_predictor_markov.destroy(pr);

	fill_step(t, TRACE_LEN, TRACE_LEN / 2, 0.2, 0.8);
	score("step 0.2->0.8", t, TRACE_LEN, 1, &e, &m);
	CU_ASSERT(e.mae < 0.02 && m.mae < 0.02);
}

static void test_predict_bad_input(void)
{
	struct hv_predictor_params bad = {.alpha = 2.0};
	struct hv_predictor_error e;
	double t[4] = {0.1, 0.2, 0.3, 0.4};

	CU_ASSERT_PTR_NULL(hv_predictor_ewma.create(&bad));
	CU_ASSERT_EQUAL(hv_predictor_replay(&hv_predictor_ewma, NULL, t, 4, 1, 10, &e), -EINVAL);
	CU_ASSERT_EQUAL(hv_predictor_replay(&hv_predictor_ewma, NULL, t, 4, 0, 0, &e), -EINVAL);
	CU_ASSERT_PTR_EQUAL(hv_predictor_find("markov"), &hv_predictor_markov);
	CU_ASSERT_PTR_EQUAL(hv_predictor_find("ewma"), &hv_predictor_ewma);
	CU_ASSERT_PTR_NULL(hv_predictor_find("oracle"));
}

static void test_demand_constant_and_step(void)
{
	struct hv_demand d;

	hv_demand_init(&d, 0.5);
	CU_ASSERT_DOUBLE_EQUAL(hv_demand_forecast(&d), 0.0, 1e-12);
	for (int i = 0; i < 30; i++)
		CU_ASSERT_EQUAL(hv_demand_observe(&d, 10, 0.1), 0);
	CU_ASSERT_DOUBLE_EQUAL(hv_demand_forecast(&d), 100.0, 1e-9);
	CU_ASSERT_EQUAL(hv_demand_observe(&d, 10, 0.0), -EINVAL);

	/* idle, then a step to 500/s: within 5 % ten intervals later */
	hv_demand_init(&d, 0.5);
	for (int i = 0; i < 20; i++)
		hv_demand_observe(&d, 0, 0.1);
	CU_ASSERT_DOUBLE_EQUAL(hv_demand_forecast(&d), 0.0, 1e-12);
	for (int i = 0; i < 10; i++)
		hv_demand_observe(&d, 50, 0.1);
	printf("\n    step 0 -> 500/s: forecast %.1f/s after 10 intervals", hv_demand_forecast(&d));
	CU_ASSERT(fabs(hv_demand_forecast(&d) - 500.0) < 25.0);
}

static void test_demand_alternating(void)
{
	struct hv_demand d;
	double after_burst, after_quiet;

	/* 0, 20, 0, 20 ... per 100 ms: smoothing says ~100/s; the chain knows what comes next */
	hv_demand_init(&d, 0.5);
	for (int i = 0; i < 60; i++)
		hv_demand_observe(&d, i % 2 ? 20 : 0, 0.1);
	after_burst = hv_demand_forecast(&d); /* the last interval had 20 */
	hv_demand_observe(&d, 0, 0.1);
	after_quiet = hv_demand_forecast(&d);
	printf("\n    alternating 0/20 per 100 ms: forecast %.1f/s after a burst, %.1f/s after a "
	       "quiet interval (truth 0 and 200)",
	       after_burst, after_quiet);
	CU_ASSERT(after_burst < 10.0);
	CU_ASSERT(fabs(after_quiet - 200.0) < 10.0);
}

static const struct hv_plan_limits limits = {
	.cycles_hz = 2e9,
	.headroom = 0.8,
	.target_util = 0.5,
	.horizon_s = 1.0,
	.min_demand = 0.01,
};

static const struct hv_plan_target *find_target(const struct hv_plan_target *t, int n, uint32_t fn,
						uint32_t cpu)
{
	for (int i = 0; i < n; i++)
		if (t[i].fn == fn && t[i].cpu == cpu)
			return &t[i];
	return NULL;
}

static void test_plan_known_answers(void)
{
	struct hv_plan_core cores[] = {
		{.cpu = 1, .spare_cps = 1e9, .mem_free = UINT64_MAX},
		{.cpu = 2, .spare_cps = 0.5e9, .mem_free = UINT64_MAX},
		{.cpu = 3, .spare_cps = 0.0, .mem_free = UINT64_MAX},
	};
	/* A: 1e8 cycles/s of load, one instance. B: 6e8, one instance, placed first. */
	struct hv_plan_function fns[] = {
		{.name = "A", .demand = 100, .run_cycles = 1e6, .init_cycles = 1e7},
		{.name = "B", .demand = 600, .run_cycles = 1e6, .init_cycles = 1e7},
		{.name = "idle", .demand = 0.001, .run_cycles = 1e6},
	};
	struct hv_plan_target t[8];
	uint32_t unplaced = 99;
	int n = hv_plan_prewarm(cores, 3, fns, 3, &limits, t, 8, &unplaced);

	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(unplaced, 0);
	/* B takes the core with most spare; A then fits best on cpu 2 (0.4e9 left vs 0.19e9) */
	CU_ASSERT_PTR_NOT_NULL(find_target(t, n, 1, 1));
	CU_ASSERT_PTR_NOT_NULL(find_target(t, n, 0, 2));
	CU_ASSERT_PTR_NULL(find_target(t, n, 2, 1));
	CU_ASSERT_PTR_NULL(find_target(t, n, 2, 2));
}

static void test_plan_spreads_and_limits(void)
{
	struct hv_plan_core cores[] = {
		{.cpu = 1, .spare_cps = 1.5e9, .mem_free = UINT64_MAX},
		{.cpu = 2, .spare_cps = 1.5e9, .mem_free = UINT64_MAX},
	};
	/* C: 2e9 cycles/s at 50 % instance utilisation = 2 instances of 1e9 each, one per core */
	struct hv_plan_function c = {.name = "C", .demand = 2000, .run_cycles = 1e6};
	struct hv_plan_target t[8];
	uint32_t unplaced;
	const struct hv_plan_target *a, *b;
	int n;

	n = hv_plan_prewarm(cores, 2, &c, 1, &limits, t, 8, &unplaced);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	a = find_target(t, n, 0, 1);
	b = find_target(t, n, 0, 2);
	CU_ASSERT(a && b && a->count == 1 && b->count == 1);
	CU_ASSERT_EQUAL(unplaced, 0);

	/* 8 small instances wanted, memory for 3 on each core, instance cap 2 on cpu 2 */
	cores[0].mem_free = 3 * 64ull << 20;
	cores[1].mem_free = 3 * 64ull << 20;
	cores[1].max_instances = 2;
	c = (struct hv_plan_function){
		.name = "D", .demand = 4000, .run_cycles = 2e5, .mem_bytes = 64ull << 20};
	{
		/* at 5 % utilisation, 8e8 cycles/s of load needs 8 instances of 1e8 */
		struct hv_plan_limits low = limits;

		low.target_util = 0.05;
		n = hv_plan_prewarm(cores, 2, &c, 1, &low, t, 8, &unplaced);
	}
	CU_ASSERT_EQUAL_FATAL(n, 2);
	a = find_target(t, n, 0, 1);
	b = find_target(t, n, 0, 2);
	CU_ASSERT(a && a->count == 3);
	CU_ASSERT(b && b->count == 2);
	CU_ASSERT_EQUAL(unplaced, 8 - 5);

	/* too heavy for any core's spare: nothing is warmed, all of it is reported unplaced */
	c = (struct hv_plan_function){
		.name = "E", .demand = 1000, .run_cycles = 2e6, .max_instances = 1};
	n = hv_plan_prewarm(cores, 2, &c, 1, &limits, t, 8, &unplaced);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(unplaced, 1);

	/* bad limits and a too-small target array */
	{
		struct hv_plan_limits bad = limits;

		bad.cycles_hz = 0;
		CU_ASSERT_EQUAL(hv_plan_prewarm(cores, 2, &c, 1, &bad, t, 8, &unplaced), -EINVAL);
		c = (struct hv_plan_function){.name = "C", .demand = 2000, .run_cycles = 1e6};
		cores[0].mem_free = cores[1].mem_free = UINT64_MAX;
		cores[1].max_instances = 0;
		CU_ASSERT_EQUAL(hv_plan_prewarm(cores, 2, &c, 1, &limits, t, 1, &unplaced),
				-ENOSPC);
	}
}

/* The spare forecast and the demand forecast together, as nemod uses them. */
static void test_plan_from_forecasts(void)
{
	struct hv_predictor *p1 = hv_predictor_markov.create(NULL);
	struct hv_predictor *p2 = hv_predictor_markov.create(NULL);
	struct hv_plan_core cores[2] = {{.cpu = 1, .mem_free = UINT64_MAX},
					{.cpu = 2, .mem_free = UINT64_MAX}};
	struct hv_plan_function fn = {.name = "F", .run_cycles = 1e6, .init_cycles = 1e7};
	struct hv_plan_target t[4];
	struct hv_demand d;
	uint32_t unplaced;
	int n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(p1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p2);
	/* cpu 1 is about to go busy (its on/off pattern says so); cpu 2 stays half idle */
	for (int i = 0; i < 64; i++) {
		hv_predictor_markov.observe(p1, i % 8 < 4 ? 0.95 : 0.05);
		hv_predictor_markov.observe(p2, 0.5);
	}
	hv_demand_init(&d, 0.5);
	for (int i = 0; i < 10; i++)
		hv_demand_observe(&d, 5, 0.1);
	/* the last window of p1 was busy, 3 more busy ones are forecast */
	cores[0].spare_cps = hv_predictor_markov.predict(p1, 2) * limits.cycles_hz;
	cores[1].spare_cps = hv_predictor_markov.predict(p2, 2) * limits.cycles_hz;
	fn.demand = hv_demand_forecast(&d);
	CU_ASSERT_DOUBLE_EQUAL(fn.demand, 50.0, 1e-9);
	n = hv_plan_prewarm(cores, 2, &fn, 1, &limits, t, 4, &unplaced);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_EQUAL(t[0].cpu, 2);
	CU_ASSERT_EQUAL(t[0].count, 1);
	hv_predictor_markov.destroy(p1);
	hv_predictor_markov.destroy(p2);
}

static void test_idle_hist_median(void)
{
	uint64_t h[HC_IDLE_BUCKETS] = {0};

	CU_ASSERT_EQUAL(hv_idle_hist_median_us(h), 0);
	h[3] = 10; /* 8-15 us */
	h[10] = 5;
	CU_ASSERT_EQUAL(hv_idle_hist_median_us(h), 8);
	h[10] = 30;
	CU_ASSERT_EQUAL(hv_idle_hist_median_us(h), 1024);
}

NEMO_SUITE(harvester_predict, NULL, NULL, {"predict_constant", test_predict_constant},
	   {"predict_alternating", test_predict_alternating},
	   {"predict_periodic", test_predict_periodic}, {"predict_step", test_predict_step},
	   {"predict_bad_input", test_predict_bad_input},
	   {"demand_constant_and_step", test_demand_constant_and_step},
	   {"demand_alternating", test_demand_alternating},
	   {"plan_known_answers", test_plan_known_answers},
	   {"plan_spreads_and_limits", test_plan_spreads_and_limits},
	   {"plan_from_forecasts", test_plan_from_forecasts},
	   {"idle_hist_median", test_idle_hist_median})
