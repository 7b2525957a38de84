/* delay.c - the NF's own delay histograms: bucket bounds and percentiles, off the packet path. */
#include <math.h>

#include "nemo/nf.h"

_Static_assert(NF_DELAY_BUCKETS == (1u << NF_DELAY_SUB_BITS) + 14 * (1u << (NF_DELAY_SUB_BITS - 1)),
	       "64 linear buckets, then 14 powers of two of 32 buckets: up to 2^25 ns");

void nf_delay_bucket_bounds(uint32_t idx, uint64_t *lo_ns, uint64_t *hi_ns)
{
	const uint32_t half = 1u << (NF_DELAY_SUB_BITS - 1);
	uint64_t lo, hi;

	if (idx < (1u << NF_DELAY_SUB_BITS)) {
		lo = idx;
		hi = idx;
	} else {
		/* the inverse of nf_delay_index(): idx = shift * half + mantissa in [half, 2 half) */
		uint32_t shift = idx / half - 1, mant = idx - shift * half;

		lo = (uint64_t)mant << shift;
		hi = (((uint64_t)mant + 1) << shift) - 1;
	}
	*lo_ns = lo << NF_DELAY_UNIT_SHIFT;
	*hi_ns = ((hi + 1) << NF_DELAY_UNIT_SHIFT) - 1;
}

uint64_t nf_delay_percentile(const struct nf_delay_hist *h, double pct)
{
	uint64_t count = 0, rank, seen = 0, max_ns = h->max_ns;

	/* the sum of the buckets, not h->count: the lcore may be between its two stores */
	for (uint32_t i = 0; i < NF_DELAY_BUCKETS; i++)
		count += h->buckets[i];
	if (!count)
		return 0;
	if (pct >= 100)
		return max_ns;
	/* the nudge keeps 99.9 % of 1000 at rank 999: 99.9 has no exact binary form */
	rank = (uint64_t)ceil(pct / 100.0 * (double)count * (1 - 1e-12));
	if (rank < 1)
		rank = 1;
	for (uint32_t i = 0; i < NF_DELAY_BUCKETS; i++) {
		uint64_t lo, hi, mid;

		seen += h->buckets[i];
		if (seen < rank)
			continue;
		nf_delay_bucket_bounds(i, &lo, &hi);
		mid = lo + (hi - lo) / 2;
		return mid < max_ns ? mid : max_ns;
	}
	return max_ns;
}
