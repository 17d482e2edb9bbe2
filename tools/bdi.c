/* The writeback limits of the mount's bdi, for the kernel's writeback cache.
 *
 * The kernel gives every FUSE mount a backing device info with strict_limit
 * on and max_ratio 1: its dirty pages may be at most 1% of the machine's
 * dirty allowance (49 MB on a 24 GiB machine), enforced per bdi, so that an
 * unprivileged FUSE server cannot pin the page cache. Under buffered random
 * writes that limit forces writeback while the dirty pages are still
 * sparse, one 4 KiB request each: 0.48 of ext4 over the same disk. siltfs
 * runs as root and writes back at its tier's speed, so with -o
 * cache=writeback its bdi gets what a block device has (strict_limit 0,
 * max_ratio 100): the machine-wide dirty limits then apply to it as to the
 * disk below. Write-through mounts have no dirty pages to speak of and keep
 * the kernel's limits.
 *
 * The bdi is named by the mount's device number, read from
 * /proc/self/mountinfo: a stat() of our own mountpoint would wait for the
 * daemon, which is not serving yet. */
#include "tools/bdi.h"

#include "utils/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The device (major:minor) of the last mount on mnt. */
static int mount_dev(const char *mnt, char *dev, size_t devlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], path[4096], d[32];
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*s %*s %31s %*s %4095s", d, path) == 2 &&
		    !strcmp(silt_mount_unescape(path), mnt)) {
			snprintf(dev, devlen, "%s", d);
			found = 1;
		}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static int put(const char *dev, const char *knob, const char *val)
{
	char p[128];
	FILE *f;
	int r = 0;

	snprintf(p, sizeof(p), "/sys/class/bdi/%s/%s", dev, knob);
	if (!(f = fopen(p, "w")))
		return -errno;
	if (fputs(val, f) < 0)
		r = -EIO;
	if (fclose(f) != 0 && !r)
		r = -errno;
	return r;
}

int bdi_relax(const char *mnt, char *dev, size_t devlen)
{
	int r = mount_dev(mnt, dev, devlen);

	if (!r)
		r = put(dev, "max_ratio", "100");
	if (!r)
		r = put(dev, "strict_limit", "0");
	return r;
}
