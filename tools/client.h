/* The client side of a volume's daemon, shared by siltctl and
 * umount.fuse.siltfs: find the siltfs mount that holds a path, send one
 * request to its control socket. */
#ifndef SILT_CLIENT_H
#define SILT_CLIENT_H

#include <stddef.h>

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

/* Send req, read the whole reply (NUL-terminated, malloc'd). 0 or -errno. */
int client_request(const char *sock, const char *req, char **reply);

#endif
