/* Is the volume already in use by another siltfs?
 *
 * RocksDB holds <meta>/LOCK (a POSIX record lock) while a store is open,
 * so the kernel names the holder (meta_lock_holder). That holder is either
 * serving a mount of the volume, which must be reported at once with its
 * pid and mountpoint, or it has no mount: a daemon that was just unmounted
 * and is still closing the store (`umount && mount`), or one still starting
 * up. Those are waited for, a little.
 *
 * Which mount a holder serves: every siltfs mount has a control socket at
 * the default path of its mountpoint (a symlink when ctl= put it
 * elsewhere), and the kernel tells the pid at the other end of a UNIX
 * socket (SO_PEERCRED). Connecting is all it takes; nothing is sent. */
#include "fs/inuse.h"
#include "fs/meta/meta.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define WAIT_NS (10ull * 1000000000ull) /* for a holder without a mount */

/* The pid behind the control socket of the mount at mnt, 0 if none. */
static pid_t ctl_pid(const char *mnt)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pid_t pid = 0;
	/* non-blocking: the connect of a daemon that hangs with a full
	 * backlog fails (EAGAIN) instead of hanging this one */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return 0;
	silt_ctl_default_path(mnt, sa.sun_path, sizeof(sa.sun_path));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		pid = cred.pid;
	close(fd);
	return pid;
}

/* The mountpoint of a siltfs mount served by pid: 1 if found. */
static int mount_of(pid_t pid, char *mnt, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], path[4096], type[64];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", type) != 1 || strcmp(type, "fuse.siltfs") ||
		    sscanf(line, "%*s %*s %*s %*s %4095s", path) != 1)
			continue;
		silt_mount_unescape(path);
		if (ctl_pid(path) == pid) {
			snprintf(mnt, len, "%s", path);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

static void proc_name(pid_t pid, char *out, size_t len)
{
	char p[64];
	FILE *f;

	snprintf(out, len, "?");
	snprintf(p, sizeof(p), "/proc/%d/comm", (int)pid);
	if ((f = fopen(p, "r"))) {
		if (fgets(out, (int)len, f))
			out[strcspn(out, "\n")] = '\0';
		fclose(f);
	}
}

int vol_store_wait(const char *mdir, const char *who, char *err, size_t errlen)
{
	uint64_t start = silt_now_ns();
	int said = 0;

	for (;;) {
		char mnt[4096], comm[64];
		pid_t pid = meta_lock_holder(mdir);

		if (pid <= 0)
			return 0; /* free (or unreadable: meta_open will say) */
		if (mount_of(pid, mnt, sizeof(mnt))) {
			snprintf(err, errlen, "%s is already mounted on %s (siltfs, pid %d): unmount it first, "
				 "or use that mount", who, mnt, (int)pid);
			return -EBUSY;
		}
		proc_name(pid, comm, sizeof(comm));
		if (silt_now_ns() - start > WAIT_NS) {
			snprintf(err, errlen,
				 "%s: its metadata store %s is held by process %d (%s), which serves no "
				 "mount that this host can see, and it did not let go in 10 s: a daemon that "
				 "hangs while shutting down, or a mount in another mount namespace?",
				 who, mdir, (int)pid, comm);
			return -EBUSY;
		}
		if (!said++)
			log_info("%s: waiting for process %d (%s) to close the metadata store "
				 "(just unmounted?)", who, (int)pid, comm);
		usleep(100 * 1000);
	}
}

int vol_store_open(const char *mdir, const char *who, struct silt_meta **m, char *err, size_t errlen)
{
	int r;

	/* A daemon starting at the same moment may take the lock between our
	 * look and our open: then look again (it may have mounted by now). */
	for (int tries = 0; tries < 3; tries++) {
		if ((r = vol_store_wait(mdir, who, err, errlen)))
			return r;
		r = meta_open(mdir, META_OPEN, m, err, errlen);
		if (r != -EBUSY)
			return r;
	}
	return r;
}
