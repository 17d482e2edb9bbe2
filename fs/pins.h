/* Pins: an operator's "this file lives on that tier" (siltctl pin).
 *
 * A pin is a record in the store (CF_FACTS "pin/" | ino -> struct pin_rec,
 * fs/meta/records.h), written through the commit point, and a bound in
 * v->bounds (tiers/bounds.h) that the allocator and the migration engine
 * follow: new chunks of the file go to the pinned tier while it has room,
 * and the engine moves the file's other chunks there, epoch after epoch,
 * as room allows. A pin survives a remount (loaded at mount) and goes with
 * its inode (inode_destroy stages its removal in the same batch). */
#ifndef SILT_PINS_H
#define SILT_PINS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct silt_vol;
struct meta_batch;

/* At mount, once the bounds exist: the store's pins into them. */
int pins_load(struct silt_vol *v);
/* Pin inode ino to tier id tid, or unpin it (tid -1). A "pin" record goes
 * to o; why says what is wrong (-ENOENT: no such file, -EISDIR: not a
 * regular file, -EINVAL: the tier takes no chunks now). */
int pins_set(struct silt_vol *v, uint64_t ino, int tid, FILE *o, char *why, size_t len);
/* "pin ino= tier=" records of every pinned file. */
void pins_report(struct silt_vol *v, FILE *o);
/* The inode is being destroyed in batch b: its pin with it; then, once b
 * is committed, its bound. */
void pins_stage_forget(struct silt_vol *v, struct meta_batch *b, uint64_t ino);
void pins_forget_done(struct silt_vol *v, uint64_t ino);
/* The store's pins changed under the bounds (a replica took its
 * primary's, fs/facts.c): the inodes in was (the pins before) lose their
 * pin, the store's pins are loaded again. Caller holds ns_lock. */
int pins_refresh(struct silt_vol *v, const uint64_t *was, size_t n);

#endif
