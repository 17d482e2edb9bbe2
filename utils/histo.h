/* Latency histograms that the data path fills without a lock: an
 * observation is two relaxed atomic increments (its bucket and the sum), so
 * any thread may add to a shared histogram at the cost of a cache line
 * bounce, not a wait. Readers (siltctl metrics) take the counters one by
 * one: a snapshot taken while I/O runs may be off by the observations in
 * flight, never by more.
 *
 * Buckets are powers of two, from 16 us to 4.2 s (the upper bounds, as
 * Prometheus's `le`), and one for anything slower. */
#ifndef SILT_HISTO_H
#define SILT_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

#define HISTO_BUCKETS 19          /* bounded ones; n[HISTO_BUCKETS] is +Inf */
#define HISTO_FIRST_US 16u        /* upper bound of bucket 0 */

struct histo {
	_Atomic uint64_t n[HISTO_BUCKETS + 1];
	_Atomic uint64_t sum_ns;
};

/* Upper bound of bucket b (< HISTO_BUCKETS), in microseconds. */
static inline uint64_t histo_bound_us(unsigned b)
{
	return (uint64_t)HISTO_FIRST_US << b;
}

static inline unsigned histo_bucket(uint64_t ns)
{
	uint64_t us = (ns + 999) / 1000; /* a bound is inclusive: round up */
	if (us <= HISTO_FIRST_US)
		return 0;
	unsigned b = 64u - (unsigned)__builtin_clzll((us - 1) / HISTO_FIRST_US);
	return b < HISTO_BUCKETS ? b : HISTO_BUCKETS;
}

static inline void histo_add(struct histo *h, uint64_t ns)
{
	atomic_fetch_add_explicit(&h->n[histo_bucket(ns)], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

#endif
