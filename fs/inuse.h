/* Another siltfs using the same volume: report it or wait for it. */
#ifndef SILT_INUSE_H
#define SILT_INUSE_H

#include <stddef.h>

struct silt_meta;

/* Return once no process holds the metadata store at mdir. If the holder
 * serves a mount, fail at once (-EBUSY) naming its mountpoint and pid; if
 * it serves none (a daemon closing after umount), wait for it, up to 10 s.
 * who names the volume in messages ("volume vm (uuid ...)"). */
int vol_store_wait(const char *mdir, const char *who, char *err, size_t errlen);
/* vol_store_wait, then open the store read-write. */
int vol_store_open(const char *mdir, const char *who, struct silt_meta **m, char *err, size_t errlen);

#endif
