/*
 * heat.h - what the daemon knows about how its chunks are used.
 *
 * Every read and write is recorded (heat_record) into the calling thread's
 * ring, without a lock; a recorder thread ("silt-heat") drains the rings
 * every few milliseconds into
 *   - a decayed access count per chunk (its heat: halves every half-life),
 *   - the placement policy: one of the classical policies of policy.h (the
 *     very code siltfs-sim measures), whose resident set is the set of
 *     chunks that belong on the fast tiers,
 *   - counters per time window (accesses, chunks touched).
 * The migration engine asks it where the policy wants chunks (heat_place)
 * and which chunks are hot (heat_contains); siltctl asks for a file's heat.
 *
 * Keys are PRED_KEY(inode, chunk). Memory: the policy's nodes for at most
 * its capacity of chunks, and one byte of heat per chunk ever touched (in
 * pages of 4096, allocated when first touched).
 */
#ifndef SILTFS_PREDICTOR_HEAT_H
#define SILTFS_PREDICTOR_HEAT_H

#include <stddef.h>
#include <stdint.h>

#include "predictor/policy.h"

struct heat;

struct heat_conf {
	enum policy_kind policy;   /* a classical one */
	uint64_t capacity;         /* chunks the fast tiers hold */
	uint32_t half_life_s;      /* heat halves every this many seconds */
	uint32_t window_ms;        /* length of a time window */
};

struct heat_stats {
	enum policy_kind policy;
	uint64_t capacity, resident;  /* the policy's fast set and its size */
	uint64_t recorded, dropped;   /* accesses (a full ring drops them) */
	uint64_t windows;
	uint64_t last_window_accesses, last_window_chunks;
};

/* Whether the daemon can place by this policy: an online classical one
 * (not Belady, which needs the future, nor the learned ones, which are not
 * wired into the daemon yet); and their names, ", "-separated. */
int heat_policy_ok(enum policy_kind kind);
void heat_policy_names(char *buf, size_t len);

int heat_start(const struct heat_conf *c, struct heat **out);
/* Stops the recorder (it drains what is left first). */
void heat_stop(struct heat *h);

/* Chunks k0..k1 of ino were read or written: any thread, no lock, no
 * allocation but a ring the first time a thread records. */
void heat_record(struct heat *h, uint64_t ino, uint64_t k0, uint64_t k1, int write);
/* Apply everything recorded so far now (tests, and before planning). */
void heat_sync(struct heat *h);

/* Change the policy (or its capacity) live: the new one starts cold. */
int heat_set_policy(struct heat *h, enum policy_kind kind, uint64_t capacity);

/* Heat of one chunk (0 = not touched for many half-lives), and whether the
 * policy has it in its fast set. */
unsigned heat_of(struct heat *h, uint64_t ino, uint64_t k);
int heat_contains(struct heat *h, uint64_t ino, uint64_t k);
/* Where the policy wants its fast set: policy_place() over it. */
long heat_place(struct heat *h, const uint64_t *caps, unsigned ntiers, uint64_t *keys,
		uint8_t *tiers, size_t max);
/* A file's priority weight (1..255, 1 = none; a placement rule's weight):
 * each of its accesses counts weight times in its chunks' heat and up to
 * HEAT_POLICY_REPEAT times in the policy, so that they rank hotter than
 * another file's used the same way. -ENOMEM. */
#define HEAT_POLICY_REPEAT 8
int heat_set_weight(struct heat *h, uint64_t ino, unsigned weight);
unsigned heat_weight(struct heat *h, uint64_t ino);
/* The file is gone: forget its heat (its keys leave the policy as they age). */
void heat_forget_file(struct heat *h, uint64_t ino);

void heat_stats(struct heat *h, struct heat_stats *s);

#endif
