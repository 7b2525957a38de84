/* hist.c - the log-linear latency histogram: merge, reset and percentiles off the packet path. */
#include <math.h>
#include <string.h>

#include "gen_internal.h"

_Static_assert(GEN_HIST_BUCKETS == (GEN_HIST_MAX_BITS - GEN_HIST_SUB_BITS + 2) * GEN_HIST_HALF,
	       "bucket count");

void gen_hist_reset(struct gen_hist *h)
{
	if (h->count)
		memset(&h->buckets[h->lo], 0, (h->hi - h->lo + 1) * sizeof(h->buckets[0]));
	h->count = 0;
	h->min_ns = 0;
	h->max_ns = 0;
	h->sum_ns = 0;
	h->lo = 0;
	h->hi = 0;
}

void gen_hist_merge(struct gen_hist *dst, const struct gen_hist *src)
{
	if (!src->count)
		return;
	for (uint32_t i = src->lo; i <= src->hi; i++)
		dst->buckets[i] += src->buckets[i];
	if (!dst->count) {
		dst->min_ns = src->min_ns;
		dst->max_ns = src->max_ns;
		dst->lo = src->lo;
		dst->hi = src->hi;
	} else {
		if (src->min_ns < dst->min_ns)
			dst->min_ns = src->min_ns;
		if (src->max_ns > dst->max_ns)
			dst->max_ns = src->max_ns;
		if (src->lo < dst->lo)
			dst->lo = src->lo;
		if (src->hi > dst->hi)
			dst->hi = src->hi;
	}
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
}

void gen_hist_subtract(struct gen_hist *dst, const struct gen_hist *src)
{
	if (!src->count)
		return;
	for (uint32_t i = src->lo; i <= src->hi; i++)
		dst->buckets[i] -= src->buckets[i];
	dst->count -= src->count;
	dst->sum_ns -= src->sum_ns;
}

void gen_hist_bucket_bounds(uint32_t idx, uint64_t *lo_ns, uint64_t *hi_ns)
{
	uint32_t shift, mant;

	if (idx < (1u << GEN_HIST_SUB_BITS)) {
		*lo_ns = *hi_ns = idx;
		return;
	}
	/* inverse of gen_hist_index(): idx = shift * HALF + mantissa, mantissa in [HALF, 2*HALF) */
	shift = idx / GEN_HIST_HALF - 1;
	mant = idx - shift * GEN_HIST_HALF;
	*lo_ns = (uint64_t)mant << shift;
	*hi_ns = (((uint64_t)mant + 1) << shift) - 1;
}

uint64_t gen_hist_percentile(const struct gen_hist *h, double pct)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	if (pct >= 100)
		return h->max_ns;
	/* the nudge keeps 99.9 % of 1000 at rank 999: 99.9 has no exact binary form */
	rank = (uint64_t)ceil(pct / 100.0 * (double)h->count * (1 - 1e-12));
	if (rank < 1)
		rank = 1;
	for (uint32_t i = h->lo; i <= h->hi; i++) {
		uint64_t lo, hi, mid;

		seen += h->buckets[i];
		if (seen < rank)
			continue;
		/* the midpoint halves the bucket's error; the extremes are known exactly */
		gen_hist_bucket_bounds(i, &lo, &hi);
		mid = lo + (hi - lo) / 2;
		if (mid < h->min_ns)
			mid = h->min_ns;
		if (mid > h->max_ns)
			mid = h->max_ns;
		return mid;
	}
	return h->max_ns;
}
