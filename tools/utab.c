/* A utab entry for the mount, so that `umount MOUNTPOINT` waits.
 *
 * umount(8) picks its helper by the mount's type. For a FUSE mount without
 * a utab entry, libmount takes the type from statfs(), which says "fuse"
 * (the subtype is not there), and looks for /sbin/umount.fuse; only a
 * mount that has a utab entry is looked up in mountinfo, which says
 * fuse.siltfs. So the daemon records its mount with helper=fuse.siltfs
 * through libmount itself (its lock, its format), and umount then runs
 * /sbin/umount.fuse.siltfs, which waits for the daemon to exit. The entry
 * goes when the mount goes: umount removes it, and so does the daemon on
 * its way out (when a signal, not umount, ended it). */
#include "tools/utab.h"

#include "utils/util.h"

#include <errno.h>
#include <libmount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UTAB "/run/mount/utab"

int utab_add(const char *source, const char *target)
{
	struct libmnt_fs *fs = mnt_new_fs();
	struct libmnt_update *up = mnt_new_update();
	int r = -ENOMEM;

	if (fs && up && !mnt_fs_set_source(fs, source) && !mnt_fs_set_target(fs, target) &&
	    !mnt_fs_set_fstype(fs, "fuse.siltfs") && !mnt_fs_set_options(fs, "helper=fuse.siltfs")) {
		r = mnt_update_set_fs(up, 0, NULL, fs);
		if (r == 0)
			r = mnt_update_table(up, NULL);
		else if (r == 1)
			r = -ENOTSUP; /* libmount keeps no utab here */
	}
	mnt_free_update(up);
	mnt_unref_fs(fs);
	return r < 0 ? r : 0;
}

/* libmount parses utab only inside its own update code: count the lines
 * "SRC=... TARGET=<target> ..." ourselves. */
static int entries_for(const char *target)
{
	FILE *f = fopen(UTAB, "r");
	char line[8192];
	int n = 0;

	while (f && fgets(line, sizeof(line), f)) {
		char *t = strstr(line, " TARGET=");
		if (!t)
			continue;
		t += 8;
		t[strcspn(t, " \n")] = '\0';
		n += !strcmp(silt_mount_unescape(t), target);
	}
	if (f)
		fclose(f);
	return n;
}

void utab_remove(const char *target)
{
	for (int n = entries_for(target); n > 0; n--) {
		struct libmnt_update *up = mnt_new_update();
		if (!up || mnt_update_set_fs(up, 0, target, NULL) || mnt_update_table(up, NULL)) {
			mnt_free_update(up);
			return;
		}
		mnt_free_update(up);
	}
}
