/* A sender: one thread per peer that ships the volume's changes to that
 * peer's receiver over the secure channel, and resumes after any cut from
 * the last batch the peer acknowledged. Internal to sync/ (sync.h starts
 * them). */
#ifndef SILT_SYNC_SENDER_H
#define SILT_SYNC_SENDER_H

#include <stdint.h>
#include <stdio.h>

struct silt_vol;
struct sync_journal;
struct sync_sender;

struct sender_conf {
	struct silt_vol *vol;
	struct sync_journal *journal;
	int peer;                  /* index in the journal's peers */
	char name[64], address[256];
	uint8_t sk[32], peer_pk[32];
	uint64_t max_lag_ms, interval_ms, bandwidth;
	int schedule;              /* SCHED_INTERVAL or SCHED_QUIET (schedule.h) */
	uint64_t verify_ms;        /* a verify this often (0: only when asked) */
	uint64_t chunk_size;
};

int sender_start(const struct sender_conf *c, struct sync_sender **out);
void sender_stop(struct sync_sender *s);
/* Verify the peer as soon as the journal is shipped (siltctl sync verify). */
void sender_verify(struct sync_sender *s);
/* One "peer ..." record of `siltctl sync status`. */
void sender_status(struct sync_sender *s, FILE *o);

#endif
