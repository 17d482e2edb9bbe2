/* umount.fuse.siltfs: umount(8)'s helper for fuse.siltfs mounts.
 *
 *   umount.fuse.siltfs MOUNTPOINT [-flnrv] [-t TYPE] [-N NAMESPACE]
 *
 * A FUSE unmount returns as soon as the kernel has let go of the mount,
 * while the daemon is still flushing and closing its tier files and its
 * metadata; whoever unmounts the tier filesystems next would find them
 * busy. umount(8) runs this helper for fuse.siltfs mounts (libmount looks
 * for /sbin/umount.<type>), and it makes umount return only once the
 * daemon has exited:
 *   1. find the daemon through its control socket (SO_PEERCRED) and hold
 *      a pidfd on it, before anything changes;
 *   2. run `umount -i` (no helper: the real unmount, with umount's own
 *      messages and exit status);
 *   3. wait for the pidfd, at most WAIT_SECONDS.
 * A lazy unmount (-l) does not wait: the daemon serves open files until
 * they are closed. A dead daemon's mount is just unmounted. It can be run
 * by hand too, where it is not installed in /sbin. */
#include "tools/client.h"
#include "utils/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SECONDS 120

/* umount -i with the flags we were given; its exit status. */
static int run_umount(char *const argv[])
{
	static const char *const paths[] = { "/bin/umount", "/usr/bin/umount", "/sbin/umount" };
	int st;
	pid_t pid = fork();

	if (pid < 0) {
		perror("umount.fuse.siltfs: fork");
		return 32;
	}
	if (pid == 0) {
		for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
			execv(paths[i], argv);
		perror("umount.fuse.siltfs: umount");
		_exit(32);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 32;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 32;
}

int main(int argc, char **argv)
{
	char *uargv[16], sock[108];
	const char *mnt = NULL;
	int n = 0, lazy = 0, verbose = 0, pidfd, r;
	pid_t pid = 0;

	uargv[n++] = "umount";
	uargv[n++] = "-i";
	for (int i = 1; i < argc && n < 12; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-t") || !strcmp(a, "-N")) && i + 1 < argc) {
			if (a[1] == 'N') { /* -t is ours; the namespace is umount's */
				uargv[n++] = argv[i];
				uargv[n++] = argv[i + 1];
			}
			i++;
		} else if (a[0] == '-' && a[1]) {
			lazy |= strchr(a, 'l') != NULL;
			verbose |= strchr(a, 'v') != NULL;
			uargv[n++] = argv[i];
		} else if (!mnt) {
			mnt = a;
		}
	}
	if (!mnt) {
		fprintf(stderr, "usage: umount.fuse.siltfs MOUNTPOINT [-flnrv] [-t TYPE] [-N NAMESPACE]\n");
		return 1;
	}
	uargv[n++] = (char *)mnt;
	uargv[n] = NULL;

	silt_ctl_default_path(mnt, sock, sizeof(sock));
	pidfd = lazy ? -1 : client_daemon_pidfd(sock, &pid);
	if ((r = run_umount(uargv)))
		return r;
	if (pidfd < 0)
		return 0;
	uint64_t t0 = silt_now_ns();
	if (client_wait_exit(pidfd, WAIT_SECONDS * 1000)) {
		fprintf(stderr, "umount.fuse.siltfs: %s is unmounted, but its daemon (pid %d) is still running "
			"after %d s: the volume's tier files are not released yet\n", mnt, (int)pid, WAIT_SECONDS);
		return 32;
	}
	if (verbose)
		printf("umount.fuse.siltfs: the daemon of %s (pid %d) exited %.0f ms after the unmount\n", mnt,
		       (int)pid, (double)(silt_now_ns() - t0) / 1e6);
	return 0;
}
