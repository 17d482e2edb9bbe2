/* The daemon's entry in libmount's table of userspace mount options
 * (/run/mount/utab), which makes umount(8) run umount.fuse.siltfs for this
 * mount (see tools/utab.c). */
#ifndef SILT_UTAB_H
#define SILT_UTAB_H

/* 0 or -errno. */
int utab_add(const char *source, const char *target);
/* Drop every entry for target (ours, and one mount(8) may have added). */
void utab_remove(const char *target);

#endif
