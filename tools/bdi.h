/* The dirty-page limits of the mount's backing device info (see
 * tools/bdi.c). */
#ifndef SILT_BDI_H
#define SILT_BDI_H

#include <stddef.h>

/* Give the FUSE mount on mnt a block device's writeback limits. 0 or
 * -errno; *dev gets the bdi's name (major:minor) when found. */
int bdi_relax(const char *mnt, char *dev, size_t devlen);

#endif
