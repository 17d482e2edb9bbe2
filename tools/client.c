/* Client side of the control socket (see fs/ctl.c for the protocol) and of
 * the daemon's lifetime: which mount, which socket, which process.
 *
 * The daemon's pid comes from SO_PEERCRED on its own socket, not from a
 * pid file or a process-name search, and is turned into a pidfd before
 * anything else happens, so that waiting for "this daemon" cannot be
 * fooled by a reused pid. */
#include "tools/client.h"
#include "utils/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Calls fn for every fuse.siltfs mount until it returns non-zero. */
static int each_mount(int (*fn)(const char *src, const char *mnt, void *arg), void *arg)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[8192];
	int r = 0;

	if (!f)
		return -errno;
	while (!r && fgets(line, sizeof(line), f)) {
		char *save = NULL;
		char *src = strtok_r(line, " ", &save);
		char *mnt = strtok_r(NULL, " ", &save), *type = strtok_r(NULL, " ", &save);
		if (src && mnt && type && !strcmp(type, "fuse.siltfs"))
			r = fn(silt_mount_unescape(src), silt_mount_unescape(mnt), arg);
	}
	fclose(f);
	return r;
}

struct search {
	const char *path;        /* absolute, for prefix matches; NULL = any */
	const struct stat *want; /* st_dev to match, or NULL */
	size_t best;             /* length of the best mount point so far */
	int found;
	struct client_mount *m;
};

static void take(struct search *s, const char *src, const char *mnt)
{
	snprintf(s->m->mnt, sizeof(s->m->mnt), "%s", mnt);
	snprintf(s->m->source, sizeof(s->m->source), "%s", src);
	s->found++;
}

static int match(const char *src, const char *mnt, void *arg)
{
	struct search *s = arg;
	size_t n = strlen(mnt);
	struct stat st;

	if (s->want) {
		if (stat(mnt, &st) == 0 && st.st_dev == s->want->st_dev) {
			take(s, src, mnt);
			return 1;
		}
	} else if (s->path) {
		int under = !strncmp(s->path, mnt, n) && (s->path[n] == '/' || s->path[n] == '\0' || n == 1);
		if (under && (n > s->best || !s->found)) {
			s->found = 0;
			s->best = n;
			take(s, src, mnt);
		}
	} else {
		take(s, src, mnt);
	}
	return 0;
}

int client_find_mount(const char *path, struct client_mount *m)
{
	struct search s = { .m = m };
	char abs[4096];
	struct stat want;
	int r;

	if (path && stat(path, &want) == 0) {
		s.want = &want;
	} else if (path) {
		if (errno != ENOTCONN)
			return -errno;
		/* a dead daemon's mount: find it by name */
		if (path[0] != '/') {
			char cwd[2048];
			if (!getcwd(cwd, sizeof(cwd)))
				return -errno;
			snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
			path = abs;
		}
		s.path = path;
	}
	if ((r = each_mount(match, &s)) < 0)
		return r;
	if (s.found == 1)
		return 0;
	return s.found ? -EEXIST : -ENOENT;
}

static int exact(const char *src, const char *mnt, void *arg)
{
	struct search *s = arg;
	if (strcmp(mnt, s->path))
		return 0;
	take(s, src, mnt);
	return 1;
}

int client_mount_at(const char *mnt, struct client_mount *m)
{
	struct search s = { .path = mnt, .m = m };
	int r = each_mount(exact, &s);
	return r < 0 ? r : s.found ? 0 : -ENOENT;
}

static int connect_to(const char *sock, pid_t *pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (pid && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (pid)
		*pid = cred.pid;
	return fd;
}

int client_request(const char *sock, const char *req, char **reply, pid_t *pid)
{
	size_t cap = 65536, n = 0;
	ssize_t r;
	int fd = connect_to(sock, pid);

	if (fd < 0)
		return fd;
	if (write(fd, req, strlen(req)) < 0 || write(fd, "\n", 1) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*reply = malloc(cap);
	while (*reply && (r = read(fd, *reply + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap) {
			char *bigger = realloc(*reply, cap *= 2);
			if (!bigger)
				free(*reply);
			*reply = bigger;
		}
	}
	close(fd);
	if (!*reply)
		return -ENOMEM;
	(*reply)[n] = '\0';
	return 0;
}

int client_daemon_pidfd(const char *sock, pid_t *pid)
{
	char *reply = NULL;
	/* a real request, so that the daemon's side sees an ordinary client */
	int r = client_request(sock, "status", &reply, pid), fd;

	free(reply);
	if (r)
		return r;
	fd = pidfd_open(*pid, 0);
	return fd < 0 ? -errno : fd;
}

int client_wait_exit(int pidfd, int timeout_ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	for (;;) {
		int r = poll(&p, 1, timeout_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}
