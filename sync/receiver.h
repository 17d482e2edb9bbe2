/* The receiver of a replica: accepts authenticated connections from the
 * configured primaries, applies what they ship to its own volume through
 * the engine (fs/vol.h) and acknowledges each batch once it is durable.
 * Internal to sync/ (sync.h starts it). */
#ifndef SILT_SYNC_RECEIVER_H
#define SILT_SYNC_RECEIVER_H

#include <stdint.h>
#include <stdio.h>

struct silt_vol;
struct sync_receiver;

struct receiver_conf {
	struct silt_vol *vol;
	char listen[256];
	char state[4096];        /* directory: state file and the spool of a batch */
	uint8_t sk[32];
	int npeers;
	uint8_t peer_pk[8][32];
	char peer_name[8][64];
};

/* Listens (an error names the address), finishes a batch that a crash left
 * spooled, then serves in its own thread. */
int receiver_start(const struct receiver_conf *c, struct sync_receiver **out, char *err, size_t errlen);
void receiver_stop(struct sync_receiver *r);
void receiver_status(struct sync_receiver *r, FILE *o);
/* An operator's decision, carried out by the receiver's thread:
 *   promote        stop receiving; the volume's lineage closes at the last
 *                  batch applied and a new epoch begins: mount it read-write
 *                  as a primary next
 *   discard-local  after a split brain: forget this volume's own changes
 *                  since the split (its lineage and journal); the next
 *                  connection brings a full sync from the peer
 *   keep-separate  after a split brain: keep this volume as it is and
 *                  refuse the peer from now on
 * Writes one record to o; -EINVAL for anything else. */
int receiver_command(struct sync_receiver *r, const char *cmd, FILE *o);

#endif
