/* The client side of a volume's daemon, shared by siltctl and
 * umount.fuse.siltfs: find the siltfs mount that holds a path, send one
 * request to its control socket, learn the daemon's pid and wait for it
 * to exit. */
#ifndef SILT_CLIENT_H
#define SILT_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

struct client_mount {
	char mnt[4096];          /* mount point */
	char source[4096];       /* the config file (the mount's source) */
};

/* The siltfs mount that holds path (by st_dev, or by the longest mount
 * point that is a prefix of path when the daemon is dead and stat fails
 * with ENOTCONN), or with path NULL the only one there is. -ENOENT none,
 * -EEXIST several (path NULL), or stat's error for path. */
int client_find_mount(const char *path, struct client_mount *m);
/* The siltfs mount whose mount point is exactly mnt; -ENOENT if none. */
int client_mount_at(const char *mnt, struct client_mount *m);

/* Send req, read the whole reply (NUL-terminated, malloc'd). pid (may be
 * NULL) gets the pid of the process serving the socket. 0 or -errno. */
int client_request(const char *sock, const char *req, char **reply, pid_t *pid);

/* A pidfd for the daemon serving sock, or -errno (-ECONNREFUSED, -ENOENT:
 * nobody serves it). */
int client_daemon_pidfd(const char *sock, pid_t *pid);
/* Wait until the process of pidfd has exited: 0, or -ETIMEDOUT. */
int client_wait_exit(int pidfd, int timeout_ms);

#endif
