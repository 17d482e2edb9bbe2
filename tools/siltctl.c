/* siltctl: the operator's view of a mounted siltfs volume.
 *
 *   siltctl [-m MOUNTPOINT | -s SOCKET] status [--json]
 *   siltctl [-m MOUNTPOINT | -s SOCKET] where [--json] FILE
 *   siltctl [-m MOUNTPOINT | -s SOCKET] sync status|verify [--json]
 *   siltctl sync keygen
 *
 * It talks to the daemon's control socket (root only) and renders the
 * daemon's records (see fs/ctl.c) as tables or JSON. Without -m/-s the
 * volume is found in /proc/self/mounts: the one that holds FILE, or the only
 * siltfs mount there is. */
#include "sync/chan.h"
#include "utils/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_RECS 64
#define MAX_KV 32

struct rec {
	char kind[16];
	int n;
	char *key[MAX_KV], *val[MAX_KV];
};

static const char *get(const struct rec *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->key[i], key))
			return r->val[i];
	return "";
}

static unsigned long long getu(const struct rec *r, const char *key)
{
	return strtoull(get(r, key), NULL, 10);
}

static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '%' && s[1] && s[2]) {
			char hex[3] = { s[1], s[2], 0 };
			*o++ = (char)strtol(hex, NULL, 16);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Split the reply (modified in place) into records. */
static int parse(char *text, struct rec *recs, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
		struct rec *r = &recs[n++];
		char *s2 = NULL, *tok = strtok_r(line, " ", &s2);
		memset(r, 0, sizeof(*r));
		snprintf(r->kind, sizeof(r->kind), "%s", tok ? tok : "");
		while ((tok = strtok_r(NULL, " ", &s2)) && r->n < MAX_KV) {
			char *eq = strchr(tok, '=');
			if (!eq)
				continue;
			*eq = '\0';
			unescape(eq + 1);
			r->key[r->n] = tok;
			r->val[r->n++] = eq + 1;
		}
	}
	return n;
}

/* Find the siltfs mount that holds path (st_dev match), or the only one. */
static int find_mount(const char *path, char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char line[8192];
	struct stat want;
	int found = 0;

	if (!f)
		return -errno;
	if (path && stat(path, &want) < 0) {
		int e = -errno;
		fclose(f);
		return e;
	}
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL;
		strtok_r(line, " ", &save);
		char *mnt = strtok_r(NULL, " ", &save), *type = strtok_r(NULL, " ", &save);
		if (!mnt || !type || strcmp(type, "fuse.siltfs"))
			continue;
		silt_mount_unescape(mnt);
		if (path) {
			struct stat st;
			if (stat(mnt, &st) == 0 && st.st_dev == want.st_dev) {
				snprintf(out, len, "%s", mnt);
				found = 1;
				break;
			}
		} else {
			snprintf(out, len, "%s", mnt);
			found++;
		}
	}
	fclose(f);
	if (found == 1)
		return 0;
	return found ? -EEXIST : -ENOENT;
}

static int request(const char *sock, const char *req, char **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t cap = 65536, n = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t r;

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (write(fd, req, strlen(req)) < 0 || write(fd, "\n", 1) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	*reply = malloc(cap);
	while (*reply && (r = read(fd, *reply + n, cap - n - 1)) > 0) {
		n += (size_t)r;
		if (n + 1 == cap)
			*reply = realloc(*reply, cap *= 2);
	}
	close(fd);
	if (!*reply)
		return -ENOMEM;
	(*reply)[n] = '\0';
	return 0;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static const char *human(unsigned long long v, char *buf, size_t len)
{
	return silt_fmt_size(v, buf, len);
}

static int check_error(struct rec *recs, int n)
{
	for (int i = 0; i < n; i++) {
		if (!strcmp(recs[i].kind, "error")) {
			fprintf(stderr, "siltctl: daemon says: %s\n", get(&recs[i], "message"));
			return 1;
		}
	}
	return 0;
}

static int cmd_status(const char *sock, const char *mnt, int json)
{
	struct rec recs[MAX_RECS];
	char *reply, a[32], b[32];
	int r = request(sock, "status", &reply), n;

	if (r) {
		fprintf(stderr, "siltctl: %s: %s\n", sock, strerror(-r));
		return 1;
	}
	n = parse(reply, recs, MAX_RECS);
	if (check_error(recs, n)) {
		free(reply);
		return 1;
	}
	if (json) {
		int first = 1;
		printf("{");
		for (int i = 0; i < n; i++) {
			struct rec *rc = &recs[i];
			if (!strcmp(rc->kind, "volume")) {
				printf("\"volume\": {\"name\": ");
				json_str(get(rc, "name"));
				printf(", \"uuid\": ");
				json_str(get(rc, "uuid"));
				printf(", \"chunk_size\": %llu, \"mountpoint\": ", getu(rc, "chunk_size"));
				json_str(get(rc, "mountpoint"));
				printf(", \"reads\": %llu, \"writes\": %llu, \"read_bytes\": %llu, "
				       "\"write_bytes\": %llu, \"namespace_ops\": %llu}, ",
				       getu(rc, "reads"), getu(rc, "writes"), getu(rc, "read_bytes"),
				       getu(rc, "write_bytes"), getu(rc, "ns_ops"));
			} else if (!strcmp(rc->kind, "ram")) {
				printf("\"ram\": {\"size\": %llu, \"used\": %llu}, \"tiers\": [",
				       getu(rc, "size"), getu(rc, "used"));
			} else if (!strcmp(rc->kind, "tier")) {
				printf("%s{\"name\": ", first ? "" : ", ");
				first = 0;
				json_str(get(rc, "name"));
				printf(", \"class\": ");
				json_str(get(rc, "class"));
				printf(", \"path\": ");
				json_str(get(rc, "path"));
				printf(", \"capacity\": %llu, \"used\": %llu, \"chunks\": %llu, "
				       "\"high_watermark\": %llu, \"low_watermark\": %llu, \"compression\": ",
				       getu(rc, "capacity"), getu(rc, "used"), getu(rc, "chunks"),
				       getu(rc, "high_watermark"), getu(rc, "low_watermark"));
				json_str(get(rc, "compression"));
				printf(", \"state\": ");
				json_str(get(rc, "state"));
				printf(", \"reason\": ");
				json_str(get(rc, "reason"));
				printf("}");
			}
		}
		printf("]}\n");
	} else {
		for (int i = 0; i < n; i++) {
			struct rec *rc = &recs[i];
			if (!strcmp(rc->kind, "volume")) {
				printf("volume %s  uuid %s  mounted on %s\n", get(rc, "name"), get(rc, "uuid"),
				       mnt ? mnt : get(rc, "mountpoint"));
				char c[32];
				printf("chunk size %s  reads %llu (%s)  writes %llu (%s)\n\n",
				       human(getu(rc, "chunk_size"), a, sizeof(a)), getu(rc, "reads"),
				       human(getu(rc, "read_bytes"), b, sizeof(b)), getu(rc, "writes"),
				       human(getu(rc, "write_bytes"), c, sizeof(c)));
				printf("%-12s %-5s %12s %12s %6s %10s %-8s %-7s %s\n", "TIER", "CLASS", "CAPACITY",
				       "USED", "USE%", "CHUNKS", "COMPRESS", "STATE", "PATH");
			} else if (!strcmp(rc->kind, "tier")) {
				unsigned long long cap = getu(rc, "capacity"), used = getu(rc, "used");
				char c1[32], c2[32];
				printf("%-12s %-5s %12s %12s %5.1f%% %10llu %-8s %-7s %s\n", get(rc, "name"),
				       get(rc, "class"), human(cap, c1, sizeof(c1)), human(used, c2, sizeof(c2)),
				       cap ? 100.0 * (double)used / (double)cap : 0.0, getu(rc, "chunks"),
				       get(rc, "compression"), get(rc, "state"), get(rc, "path"));
				if (strcmp(get(rc, "state"), "active"))
					printf("%-12s %s\n", "", get(rc, "reason"));
			}
		}
	}
	free(reply);
	return 0;
}

static int cmd_where(const char *sock, const char *file, int json)
{
	struct rec recs[MAX_RECS];
	struct stat st;
	char req[64], *reply, a[32], b[32];
	int r, n;

	if (stat(file, &st) < 0) {
		fprintf(stderr, "siltctl: %s: %s\n", file, strerror(errno));
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "siltctl: %s: not a regular file\n", file);
		return 1;
	}
	snprintf(req, sizeof(req), "where %llu", (unsigned long long)st.st_ino);
	if ((r = request(sock, req, &reply))) {
		fprintf(stderr, "siltctl: %s: %s\n", sock, strerror(-r));
		return 1;
	}
	n = parse(reply, recs, MAX_RECS);
	if (check_error(recs, n)) {
		free(reply);
		return 1;
	}
	unsigned long long total = 0;
	for (int i = 0; i < n; i++)
		if (!strcmp(recs[i].kind, "file"))
			total = getu(&recs[i], "chunks");
	if (json) {
		int first = 1;
		for (int i = 0; i < n; i++) {
			struct rec *rc = &recs[i];
			if (!strcmp(rc->kind, "file")) {
				printf("{\"file\": ");
				json_str(file);
				printf(", \"ino\": %llu, \"size\": %llu, \"chunk_size\": %llu, \"chunks\": %llu, \"tiers\": [",
				       getu(rc, "ino"), getu(rc, "size"), getu(rc, "chunk_size"), total);
			} else if (!strcmp(rc->kind, "tier")) {
				printf("%s{\"name\": ", first ? "" : ", ");
				first = 0;
				json_str(get(rc, "name"));
				printf(", \"class\": ");
				json_str(get(rc, "class"));
				printf(", \"chunks\": %llu, \"runs\": [", getu(rc, "chunks"));
				char *runs = strdup(get(rc, "runs")), *save = NULL;
				int rf = 1;
				for (char *t = strtok_r(runs, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
					unsigned long long x, y;
					if (sscanf(t, "%llu-%llu", &x, &y) == 2) {
						printf("%s[%llu, %llu]", rf ? "" : ", ", x, y);
						rf = 0;
					}
				}
				free(runs);
				printf("]}");
			}
		}
		printf("]}\n");
	} else {
		for (int i = 0; i < n; i++) {
			struct rec *rc = &recs[i];
			if (!strcmp(rc->kind, "file")) {
				printf("%s  size %s  chunk %s  %llu chunks placed\n", file,
				       human(getu(rc, "size"), a, sizeof(a)),
				       human(getu(rc, "chunk_size"), b, sizeof(b)), total);
				printf("%-12s %-5s %10s %6s  %s\n", "TIER", "CLASS", "CHUNKS", "SHARE", "RUNS");
			} else if (!strcmp(rc->kind, "tier")) {
				unsigned long long c = getu(rc, "chunks");
				const char *runs = get(rc, "runs");
				printf("%-12s %-5s %10llu %5.1f%%  %.*s%s\n", get(rc, "name"), get(rc, "class"), c,
				       total ? 100.0 * (double)c / (double)total : 0.0, 60, runs,
				       strlen(runs) > 60 ? "..." : "");
			}
		}
	}
	free(reply);
	return 0;
}

/* "sync status": one record per peer, shown as they come (JSON: numbers
 * where the value is one). */
static int cmd_sync(const char *sock, const char *what, int json)
{
	struct rec recs[MAX_RECS];
	char *reply, req[32];
	snprintf(req, sizeof(req), "sync %s", what);
	int r = request(sock, req, &reply), n;

	if (r) {
		fprintf(stderr, "siltctl: %s: %s\n", sock, strerror(-r));
		return 1;
	}
	n = parse(reply, recs, MAX_RECS);
	if (check_error(recs, n)) {
		free(reply);
		return 1;
	}
	if (json)
		printf("{\"peers\": [");
	for (int i = 0, first = 1; i < n; i++) {
		struct rec *rc = &recs[i];
		if (!json) {
			if (!strcmp(rc->kind, "sync") && get(rc, "verify")[0])
				printf("verify %s for %s peer(s)\n", get(rc, "verify"), get(rc, "peers"));
			else if (!strcmp(rc->kind, "sync"))
				printf("role %s\n", get(rc, "role"));
			else
				printf("%-10s %-8s %-12s lag %6.1f s  acked %-8s journal %-8s dirty %-6s full %s/%s  %s B/s\n",
				       get(rc, "name"), get(rc, "role"), get(rc, "state"),
				       (double)getu(rc, "lag_ms") / 1000.0,
				       get(rc, "acked")[0] ? get(rc, "acked") : get(rc, "applied"),
				       get(rc, "journal_entries"), get(rc, "dirty"), get(rc, "progress_done"),
				       get(rc, "progress_total"), get(rc, "throughput"));
			continue;
		}
		if (strcmp(rc->kind, "peer"))
			continue;
		printf("%s{", first ? "" : ", ");
		first = 0;
		for (int k = 0; k < rc->n; k++) {
			const char *v = rc->val[k];
			printf("%s\"%s\": ", k ? ", " : "", rc->key[k]);
			if (v[0] && strspn(v, "0123456789") == strlen(v))
				printf("%s", v);
			else
				json_str(v);
		}
		printf("}");
	}
	if (json)
		printf("]}\n");
	free(reply);
	return 0;
}

static int cmd_keygen(void)
{
	char priv[CHAN_KEY_B64], pub[CHAN_KEY_B64];
	if (chan_keygen(priv, pub)) {
		fprintf(stderr, "siltctl: cannot make a key\n");
		return 1;
	}
	printf("private_key = %s\npublic_key = %s\n", priv, pub);
	return 0;
}

static void usage(FILE *o)
{
	fprintf(o, "usage: siltctl [-m MOUNTPOINT | -s SOCKET] status [--json]\n"
		   "       siltctl [-m MOUNTPOINT | -s SOCKET] where [--json] FILE\n"
		   "       siltctl [-m MOUNTPOINT | -s SOCKET] sync status|verify [--json]\n"
		   "       siltctl sync keygen\n");
}

int main(int argc, char **argv)
{
	const char *mnt_arg = NULL, *sock_arg = NULL, *cmd = NULL, *file = NULL;
	char mnt[PATH_MAX], sock[108];
	int json = 0, r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc)
			mnt_arg = argv[++i];
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			sock_arg = argv[++i];
		else if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			json = 1;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!cmd)
			cmd = argv[i];
		else if (!file)
			file = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (cmd && !strcmp(cmd, "sync") && file && !strcmp(file, "keygen"))
		return cmd_keygen();
	if (!cmd || (strcmp(cmd, "status") && strcmp(cmd, "where") && strcmp(cmd, "sync")) ||
	    (!strcmp(cmd, "where") && !file) || (!strcmp(cmd, "status") && file) ||
	    (!strcmp(cmd, "sync") && (!file || (strcmp(file, "status") && strcmp(file, "verify"))))) {
		usage(stderr);
		return 2;
	}
	mnt[0] = '\0';
	if (sock_arg) {
		snprintf(sock, sizeof(sock), "%s", sock_arg);
	} else {
		if (mnt_arg) {
			if (!realpath(mnt_arg, mnt)) {
				fprintf(stderr, "siltctl: %s: %s\n", mnt_arg, strerror(errno));
				return 1;
			}
		} else if ((r = find_mount(strcmp(cmd, "sync") ? file : NULL, mnt, sizeof(mnt)))) {
			if (file)
				fprintf(stderr, "siltctl: %s is not on a mounted siltfs volume\n", file);
			else
				fprintf(stderr, "siltctl: %s; use -m MOUNTPOINT\n",
					r == -EEXIST ? "several siltfs volumes are mounted" : "no siltfs volume is mounted");
			return 1;
		}
		silt_ctl_default_path(mnt, sock, sizeof(sock));
	}
	if (!strcmp(cmd, "status"))
		return cmd_status(sock, mnt[0] ? mnt : NULL, json);
	if (!strcmp(cmd, "sync"))
		return cmd_sync(sock, file, json);
	return cmd_where(sock, file, json);
}
