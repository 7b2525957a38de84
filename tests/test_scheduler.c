/* test_scheduler.c - dispatch, reclaim, deadline queue, throttle and metrics on known inputs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nemo/scheduler.h"
#include "test.h"

static const struct sched_dispatch_config hk_cfg = {
	.min_spare = 0.05,
	.overflow = SCHED_OVERFLOW_HOUSEKEEPING,
	.hk_cpu = 0,
};

static struct sched_placement place(const struct sched_dispatch_config *cfg,
				    const struct sched_core_view *v, int n)
{
	struct sched_placement p;

	CU_ASSERT_EQUAL(sched_dispatch_most_spare.place(cfg, v, n, 1000, &p), 0);
	return p;
}

static void test_dispatch_choices(void)
{
	struct sched_core_view v[3] = {
		{.cpu = 1, .spare_pred = 0.3, .warm_idle = 1, .thread_cap = 4},
		{.cpu = 2, .spare_pred = 0.8, .warm_idle = 0, .thread_cap = 4},
		{.cpu = 3, .spare_pred = 0.6, .warm_idle = 2, .thread_cap = 4},
	};
	struct sched_placement p;

	/* a warm instance on the core with most spare among those that have one */
	p = place(&hk_cfg, v, 3);
	CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_WARM);
	CU_ASSERT_EQUAL(p.cpu, 3);
	CU_ASSERT_EQUAL(p.core_idx, 2);
	/* cpu 3 at its thread cap: the warm one on cpu 1 */
	v[2].runnable = 4;
	p = place(&hk_cfg, v, 3);
	CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_WARM);
	CU_ASSERT_EQUAL(p.cpu, 1);
	/* no warm instance left anywhere usable: cold where the spare is */
	v[0].reclaimed = true;
	p = place(&hk_cfg, v, 3);
	CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_COLD);
	CU_ASSERT_EQUAL(p.cpu, 2);
	/* no spare anywhere: housekeeping, or a queue with a deadline */
	v[1].spare_pred = 0.01;
	p = place(&hk_cfg, v, 3);
	CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_HOUSEKEEPING);
	CU_ASSERT_EQUAL(p.cpu, 0);
	CU_ASSERT_EQUAL(p.core_idx, -1);
	{
		struct sched_dispatch_config q = {.overflow = SCHED_OVERFLOW_QUEUE,
						  .deadline_ns = 50000000};

		p = place(&q, v, 3);
		CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_QUEUE);
		CU_ASSERT_EQUAL(p.cpu, -1);
		CU_ASSERT_EQUAL(p.deadline_ns, 1000 + 50000000);
	}
	/* no NF core at all is overflow too, and a bad overflow config is an error */
	p = place(&hk_cfg, NULL, 0);
	CU_ASSERT_EQUAL(p.kind, SCHED_PLACE_HOUSEKEEPING);
	{
		struct sched_dispatch_config bad = {.overflow = 7};

		CU_ASSERT_EQUAL(sched_dispatch_most_spare.place(&bad, v, 3, 0, &p), -EINVAL);
	}
	CU_ASSERT(sched_thread_cap_allows(0, 100, 1));
	CU_ASSERT(sched_thread_cap_allows(4, 3, 1));
	CU_ASSERT_FALSE(sched_thread_cap_allows(4, 4, 1));
}

static const struct sched_reclaim_config rc_freeze = {
	.threshold = 0.2,
	.k_windows = 3,
	.release = 0.5,
	.release_windows = 4,
	.prefer = SCHED_RECLAIM_FREEZE,
	.move_min_spare = 0.5,
};

/* Feed core 0 a sequence; return the window index of each non-NONE action, in order. */
static int run_seq(const struct sched_reclaim_config *cfg, struct sched_reclaim_core *cores,
		   const double *seq, int n, const struct sched_core_view *views, int nv, int *at,
		   int *actions, int *targets)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		struct sched_reclaim_decision d =
			sched_reclaim_step(cfg, cores, 0, seq[i], views, nv);

		if (d.action != SCHED_RECLAIM_NONE) {
			at[k] = i;
			actions[k] = d.action;
			targets[k] = d.target_cpu;
			k++;
		}
	}
	return k;
}

static void test_reclaim_freeze_hysteresis(void)
{
	/*
	 * Two low windows (no action), a high one resets, three low: freeze at index 5. Then
	 * spare between threshold and release, one spike of 0.7 among it, does not thaw. Spare
	 * that swings 0.35 / 0.8 (mean 0.575) does, at 15, though no two windows in a row reach
	 * release: a streak rule would keep the core from its sandboxes as long as that lasts.
	 * One low window after it reclaims nothing.
	 */
	const double seq[] = {0.1, 0.1, 0.9, 0.1,  0.15, 0.05, 0.3, 0.4,  0.3, 0.4, 0.3,
			      0.7, 0.3, 0.4, 0.35, 0.8,	 0.35, 0.8, 0.35, 0.8, 0.1};
	/* spare back at once: held for release_windows (4) all the same, then thawed */
	const double back[] = {0.0, 0.0, 0.0, 0.9, 0.9, 0.9, 0.9, 0.9};
	struct sched_reclaim_core cores[2];
	int at[8], act[8], tgt[8], n;

	CU_ASSERT_EQUAL(sched_reclaim_config_check(&rc_freeze), 0);
	memset(cores, 0, sizeof(cores));
	n = run_seq(&rc_freeze, cores, seq, (int)(sizeof(seq) / sizeof(seq[0])), NULL, 0, at, act,
		    tgt);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(at[0], 5);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_FREEZE);
	CU_ASSERT_EQUAL(at[1], 15);
	CU_ASSERT_EQUAL(act[1], SCHED_RECLAIM_THAW);
	CU_ASSERT_FALSE(cores[0].reclaimed);
	CU_ASSERT_EQUAL(cores[0].reclaims, 1);

	memset(cores, 0, sizeof(cores));
	n = run_seq(&rc_freeze, cores, back, (int)(sizeof(back) / sizeof(back[0])), NULL, 0, at,
		    act, tgt);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(at[0], 2);
	CU_ASSERT_EQUAL(at[1], 6); /* the average passed 0.5 at 4; held 4 windows at 6 */
	CU_ASSERT_EQUAL(act[1], SCHED_RECLAIM_THAW);
}

/*
 * What reclaim judges a core by: spare, plus the NF's cycles on packets for functions while a
 * packet instance lives there. Known answers on 1000-cycle windows, then the state machine
 * fed both readings of one trace: NF busy 850, 650 of it on the instance's packets.
 */
static void test_reclaim_owed_spare(void)
{
	struct sched_reclaim_core cores[2];
	double owed[20], plain[20];
	int at[4], act[4], tgt[4];

	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 850, 650, true), 0.80, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 850, 650, false), 0.15, 1e-9);
	/* a writer that does not count them, or no packets for functions: the spare_ratio */
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 850, 0, true), 0.15, 1e-9);
	/* never more owed than busy, never more busy than total; an empty window has none */
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 300, 5000, true), 1.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 2000, 100, true), 0.10, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(0, 0, 0, true), 0.0, 1e-9);
	/* the NF's own load up to 0.85 with 0.10 for the instance: under the threshold */
	CU_ASSERT_DOUBLE_EQUAL(sched_reclaim_spare_ratio(1000, 950, 100, true), 0.15, 1e-9);

	for (int i = 0; i < 20; i++) {
		owed[i] = sched_reclaim_spare_ratio(1000, 850, 650, true);
		plain[i] = sched_reclaim_spare_ratio(1000, 850, 650, false);
	}
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL(run_seq(&rc_freeze, cores, owed, 20, NULL, 0, at, act, tgt), 0);
	CU_ASSERT_EQUAL(cores[0].reclaims, 0);
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL_FATAL(run_seq(&rc_freeze, cores, plain, 20, NULL, 0, at, act, tgt), 1);
	CU_ASSERT_EQUAL(at[0], 2);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_FREEZE);
}

/*
 * Preferring moves, with nowhere to move to: a 90 % burst (spare 0.10-0.15, under the 0.2
 * threshold) leaves the sandboxes where they are, on the NF's scraps; only a spare under
 * freeze_below for k windows freezes them. A core that can take them, seen later in the same
 * low streak, gets them at once.
 */
static void test_reclaim_freeze_band(void)
{
	struct sched_reclaim_config cfg = rc_freeze;
	struct sched_reclaim_core cores[2];
	struct sched_core_view views[2] = {{.cpu = 1}, {.cpu = 2, .spare_pred = 0.1}};
	const double burst[] = {0.12, 0.10, 0.15, 0.11, 0.13, 0.10, 0.14, 0.12, 0.10, 0.15};
	const double full[] = {0.12, 0.03, 0.02, 0.04, 0.5};
	int at[4], act[4], tgt[4];

	cfg.prefer = SCHED_RECLAIM_MOVE;
	cfg.freeze_below = 0.05;
	CU_ASSERT_EQUAL_FATAL(sched_reclaim_config_check(&cfg), 0);
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL(run_seq(&cfg, cores, burst, 10, views, 2, at, act, tgt), 0);
	CU_ASSERT_FALSE(cores[0].reclaimed);
	CU_ASSERT_EQUAL(cores[0].reclaims, 0);
	CU_ASSERT_EQUAL(cores[0].below, 10); /* still low, and counted */

	/* the NF takes the whole core: frozen on the third window under 0.05 */
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL_FATAL(run_seq(&cfg, cores, full, 5, views, 2, at, act, tgt), 1);
	CU_ASSERT_EQUAL(at[0], 3);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_FREEZE);
	CU_ASSERT_EQUAL(tgt[0], -1);

	/* the other core frees up during the burst: the sandboxes go there */
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL(run_seq(&cfg, cores, burst, 5, views, 2, at, act, tgt), 0);
	views[1].spare_pred = 0.8;
	CU_ASSERT_EQUAL_FATAL(run_seq(&cfg, cores, burst, 1, views, 2, at, act, tgt), 1);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_MOVE);
	CU_ASSERT_EQUAL(tgt[0], 2);

	/* preferring freezes, the threshold freezes as before */
	cfg.prefer = SCHED_RECLAIM_FREEZE;
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL_FATAL(run_seq(&cfg, cores, burst, 10, NULL, 0, at, act, tgt), 1);
	CU_ASSERT_EQUAL(at[0], 2);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_FREEZE);
}

static void test_reclaim_move(void)
{
	struct sched_reclaim_config cfg = rc_freeze;
	struct sched_reclaim_core cores[3];
	struct sched_core_view views[3] = {
		{.cpu = 1, .spare_pred = 0.0},
		{.cpu = 2, .spare_pred = 0.6},
		{.cpu = 3, .spare_pred = 0.9},
	};
	const double low[] = {0.0, 0.0, 0.0};
	const double back[] = {0.9, 0.9, 0.9, 0.9};
	int at[4], act[4], tgt[4];

	cfg.prefer = SCHED_RECLAIM_MOVE;
	cfg.freeze_below = 0.05;
	memset(cores, 0, sizeof(cores));
	CU_ASSERT_EQUAL_FATAL(run_seq(&cfg, cores, low, 3, views, 3, at, act, tgt), 1);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_MOVE);
	CU_ASSERT_EQUAL(tgt[0], 3);
	/* a core whose sandboxes moved away is released without a thaw */
	CU_ASSERT_EQUAL(run_seq(&cfg, cores, back, 4, views, 3, at, act, tgt), 0);
	CU_ASSERT_FALSE(cores[0].reclaimed);

	/* no core with enough spare to take them: freeze instead */
	views[1].spare_pred = 0.3;
	views[2].reclaimed = true;
	CU_ASSERT_EQUAL_FATAL(run_seq(&cfg, cores, low, 3, views, 3, at, act, tgt), 1);
	CU_ASSERT_EQUAL(act[0], SCHED_RECLAIM_FREEZE);
	CU_ASSERT_EQUAL(tgt[0], -1);

	cfg.release = 0.1; /* below threshold: no hysteresis, refused */
	CU_ASSERT_EQUAL(sched_reclaim_config_check(&cfg), -EINVAL);
	cfg.release = 0.5;
	cfg.freeze_below = 0.3; /* a freeze band above the move threshold, refused */
	CU_ASSERT_EQUAL(sched_reclaim_config_check(&cfg), -EINVAL);
	cfg.freeze_below = 0.0; /* never freeze: allowed */
	CU_ASSERT_EQUAL(sched_reclaim_config_check(&cfg), 0);
	cfg = rc_freeze;
	cfg.k_windows = 0;
	CU_ASSERT_EQUAL(sched_reclaim_config_check(&cfg), -EINVAL);
}

static void test_iwatch_throttle(void)
{
	struct sched_iwatch_config cfg = {.bound = 0.10,
					  .alpha = 1.0,
					  .calm_windows = 5,
					  .settle_windows = 2,
					  .period_us = 10000,
					  .min_quota_us = 1000,
					  .min_pkts = 10};
	struct sched_iwatch *w = sched_iwatch_new(0, &cfg);
	struct sched_iwatch_report r;
	int n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	/* no perf counters asked for (tid 0): none reported, and none as a value */
	sched_iwatch_counters(w, &n);
	CU_ASSERT_EQUAL(n, 0);
	/* baseline 100 cycles per packet without sandboxes */
	sched_iwatch_step(w, 100000, 1000, false, &r);
	CU_ASSERT_DOUBLE_EQUAL(r.cpp_baseline, 100.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(r.ratio, 0.0, 1e-9);
	/* with sandboxes, 105: within the bound */
	sched_iwatch_step(w, 105000, 1000, true, &r);
	CU_ASSERT_DOUBLE_EQUAL(r.ratio, 1.05, 1e-9);
	CU_ASSERT_FALSE(r.throttled);
	/* 130: throttle to half a period, then wait settle_windows before halving again */
	sched_iwatch_step(w, 130000, 1000, true, &r);
	CU_ASSERT_TRUE(r.throttled && r.changed);
	CU_ASSERT_EQUAL(r.quota_us, 5000);
	sched_iwatch_step(w, 130000, 1000, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 5000);
	CU_ASSERT_FALSE(r.changed);
	sched_iwatch_step(w, 130000, 1000, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 2500);
	for (int i = 0; i < 10; i++)
		sched_iwatch_step(w, 130000, 1000, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 1000); /* floored at min_quota_us */
	/* a window with too few packets says nothing */
	sched_iwatch_step(w, 999999, 5, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 1000);
	/* back under the bound: doubles every calm_windows until lifted */
	for (int i = 0; i < 5; i++)
		sched_iwatch_step(w, 102000, 1000, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 2000);
	for (int i = 0; i < 15; i++)
		sched_iwatch_step(w, 102000, 1000, true, &r);
	CU_ASSERT_EQUAL(r.quota_us, 0);
	CU_ASSERT_FALSE(r.throttled);
	sched_iwatch_destroy(w);
}

static void test_metrics(void)
{
	struct sched_core_stats s[2] = {
		{.cpu = 1,
		 .spare_cycles = 2000000,
		 .total_cycles = 4000000,
		 .spare_pred = 0.5,
		 .harvested_ns = 500000,
		 .warm = 3,
		 .frozen = 1,
		 .moved = 2,
		 .throttled = 7,
		 .runnable = 1,
		 .thread_cap = 4,
		 .sleep_floor_us = 365},
		{.cpu = 2},
	};
	char buf[8192], tiny[64];
	int n;

	/* 2e6 spare cycles at 2 GHz are 1 ms; 0.5 ms harvested is half of it */
	s[0].harvest_ratio = sched_harvest_ratio(s[0].harvested_ns, s[0].spare_cycles, 2000000000);
	CU_ASSERT_DOUBLE_EQUAL(s[0].harvest_ratio, 0.5, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(sched_harvest_ratio(1, 0, 2000000000), 0.0, 1e-12);
	n = sched_metrics_format(s, 2, buf, sizeof(buf));
	CU_ASSERT(n > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_harvest_ratio{cpu=\"1\"} 0.5000\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_warm_instances{cpu=\"1\"} 3\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_frozen_instances{cpu=\"1\"} 1\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_moved_total{cpu=\"1\"} 2\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_throttled_windows_total{cpu=\"1\"} 7\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_spare_cycles{cpu=\"2\"} 0\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "nemo_core_thread_cap{cpu=\"1\"} 4\n"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(buf, "nemo_core_nf_sleep_floor_seconds{cpu=\"1\"} 0.000365\n"));
	CU_ASSERT_EQUAL(sched_metrics_format(s, 2, tiny, sizeof(tiny)), -ENOSPC);
}

static void test_topology(void)
{
	struct sched_topology t;
	int nf[] = {1}, bad[] = {4096}, dup[] = {1, 1};
	char buf[1024];
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	CU_ASSERT_EQUAL_FATAL(sched_topology_discover(&t, nf, 1, NULL, 0), 0);
	CU_ASSERT_EQUAL(t.n_cpus, online);
	CU_ASSERT_EQUAL(sched_topology_cpu(&t, 1)->role, SCHED_CPU_NF);
	CU_ASSERT_EQUAL(sched_topology_cpu(&t, 0)->role, SCHED_CPU_HOUSEKEEPING);
	CU_ASSERT_PTR_NULL(sched_topology_cpu(&t, 4096));
	sched_topology_format(&t, buf, sizeof(buf));
	printf("\n%s", buf);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "cpu 1: "));
	/* a CPU shares every cache with itself; two CPUs do as hwloc says */
	CU_ASSERT_TRUE(sched_topology_share_cache(&t, 1, 1, 3) ||
		       sched_topology_cpu(&t, 1)->l3 < 0);
	printf("    cpu 0 and cpu 1 share L2: %s, L3: %s\n",
	       sched_topology_share_cache(&t, 0, 1, 2) ? "yes" : "no",
	       sched_topology_share_cache(&t, 0, 1, 3) ? "yes" : "no");
	/* a core in the config that does not exist, or one named twice: a clear error */
	CU_ASSERT_EQUAL(sched_topology_discover(&t, bad, 1, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(sched_topology_discover(&t, dup, 2, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(sched_topology_discover(&t, nf, 1, bad, 1), -EINVAL);
	CU_ASSERT_EQUAL(sched_topology_discover(&t, nf, 1, nf, 1), -EINVAL);
}

static void test_policy_names(void)
{
	CU_ASSERT_EQUAL(sched_harvest_policy_parse("idle"), SCHED_HARVEST_IDLE);
	CU_ASSERT_EQUAL(sched_harvest_policy_parse("shares"), SCHED_HARVEST_SHARES);
	CU_ASSERT_EQUAL(sched_harvest_policy_parse("fifo"), -EINVAL);
	CU_ASSERT_STRING_EQUAL(sched_harvest_policy_name(SCHED_HARVEST_DEFAULT), "idle");
}

static void test_sleep_floor(void)
{
	/* light load: the configured floor; the budget only ever lowers it */
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(400, 500, 0.95), 400000);
	/* 30 % load (spare 0.73): budget x spare; dearer packets (spare 0.5): half the budget */
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(400, 500, 0.73), 365000);
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(400, 500, 0.5), 250000);
	/* so the delay it adds, floor / spare, stays at the budget across loads */
	for (double sp = 0.2; sp <= 0.8; sp += 0.1)
		CU_ASSERT_DOUBLE_EQUAL(sched_sleep_floor_ns(1000, 500, sp) / 1e3 / sp, 500.0, 0.01);
	/* no spare: no floor; no budget: the floor is fixed */
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(400, 500, 0.0), 0);
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(400, 0, 0.1), 400000);
	CU_ASSERT_EQUAL(sched_sleep_floor_ns(0, 500, 0.9), 0);
}

NEMO_SUITE(scheduler_policy, NULL, NULL, {"dispatch_choices", test_dispatch_choices},
	   {"reclaim_freeze_hysteresis", test_reclaim_freeze_hysteresis},
	   {"reclaim_move", test_reclaim_move},
	   {"reclaim_freeze_band: with nowhere to move, a burst leaves the sandboxes on the core",
	    test_reclaim_freeze_band},
	   {"reclaim_owed_spare", test_reclaim_owed_spare},
	   {"iwatch_throttle", test_iwatch_throttle}, {"metrics", test_metrics},
	   {"topology", test_topology}, {"policy_names", test_policy_names},
	   {"sleep_floor", test_sleep_floor})
