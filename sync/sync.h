/* Replication, as the daemon sees it: started from the [sync] and [peer]
 * sections of the config once the volume is open, before it takes user
 * I/O, and answering "sync ..." requests of the control socket.
 *
 * A volume with `listen` is a replica: it runs the receiver (receiver.h)
 * and is mounted read-only. A volume with peers that have an `address` is
 * a primary: one sender per such peer (sender.h), fed by the journal
 * (journal.h). */
#ifndef SILT_SYNC_H
#define SILT_SYNC_H

#include <stdio.h>

/* The nice value of the sender and receiver threads: replication yields
 * the CPU to the guests' I/O on both hosts (it is not starved: nice 10
 * still gets about a tenth of a busy core, and max_lag makes it ship) */
#define SYNC_NICE 10

struct silt_vol;
struct silt_config;
struct silt_sync;

/* 0 with *out (NULL when the config has no [sync]), or -errno with err
 * naming the config line at fault. */
int sync_start(struct silt_vol *v, const struct silt_config *cfg, struct silt_sync **out, char *err,
	       size_t errlen);
/* A replica must be mounted read-only. */
int sync_is_replica(const struct silt_sync *s);
/* Stop the threads (before vol_close) ... */
void sync_stop(struct silt_sync *s);
/* ... and free the journal (after vol_close: its last commits reach it). */
void sync_free(struct silt_sync *s);
/* The control socket's "sync status" (records, see fs/ctl.c). */
int sync_ctl(void *s, const char *request, FILE *out);

#endif
