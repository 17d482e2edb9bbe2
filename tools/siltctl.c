/* siltctl: the operator's view of a mounted siltfs volume.
 *
 *   siltctl [-m MOUNTPOINT | -s SOCKET] [--json] COMMAND [ARGS]
 *   siltctl help [COMMAND] | COMMAND --help | --version
 *
 * It talks to the daemon's control socket (root only) and renders the
 * daemon's records (see fs/ctl.c) as tables or JSON (tools/render.h).
 * Without -m/-s the volume is found in /proc/self/mounts: the one that
 * holds FILE, or the only siltfs mount there is.
 *
 * Every command is one row of the table `commands` (name, usage, help,
 * handler); the handlers share the context below, which finds the volume
 * and reports errors, as JSON when --json is given. Exit status: 0, 1 for
 * an error, 2 for a usage error. */
#include "sync/chan.h"
#include "tools/client.h"
#include "tools/png.h"
#include "tools/render.h"
#include "utils/config.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 16

struct ctx;
struct command {
	const char *name;
	const char *args;      /* usage after the name */
	const char *summary;   /* one line, for the list */
	const char *help;      /* what it does, for help COMMAND */
	int min_args, max_args;
	int (*run)(struct ctx *c, int argc, char **argv);
};

struct ctx {
	int json;
	const char *mnt_arg, *sock_arg;
	const struct command *cmd;
	struct client_mount m;  /* the volume, once found (m.mnt "" with -s) */
	char sock[108];
	char *reply;            /* the daemon's last answer; recs point into it */
	struct rec *recs;       /* a record per line of it */
	int nrecs;
};

static const struct command commands[];

/* Report an error (text on stderr, or JSON on stdout) and return status. */
static int fail_as(struct ctx *c, int status, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_as(struct ctx *c, int status, int err, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->json) {
		printf("{\"error\": ");
		json_str(stdout, msg);
		printf(", \"errno\": ");
		json_str(stdout, strerrorname_np(err) ? strerrorname_np(err) : "EIO");
		printf("}\n");
	} else {
		fprintf(stderr, "siltctl: %s\n", msg);
	}
	return status;
}
#define fail(c, err, ...) fail_as(c, 1, err, __VA_ARGS__)

static void print_usage(FILE *o, const struct command *cmd)
{
	fprintf(o, "usage: siltctl [-m MOUNTPOINT | -s SOCKET] %s%s%s\n", cmd->name,
		cmd->args[0] ? " " : "", cmd->args);
}

static int usage_error(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(struct ctx *c, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->cmd && !c->json)
		print_usage(stderr, c->cmd);
	return fail_as(c, 2, EINVAL, "%s (see siltctl help%s%s)", what, c->cmd ? " " : "",
		       c->cmd ? c->cmd->name : "");
}

/* A path that does not exist is "no such file"; one on a dead mount says
 * whose daemon is gone. */
static int path_error(struct ctx *c, const char *path, int err)
{
	if (err == ENOENT)
		return fail(c, err, "%s: no such file", path);
	if (err == ENOTCONN && client_find_mount(path, &c->m) == 0)
		return fail(c, err, "%s: the daemon of %s is not running (umount %s, then mount it again)",
			    path, c->m.mnt, c->m.mnt);
	return fail(c, err, "%s: %s", path, strerror(err));
}

/* Find the volume (from -s, -m, FILE or the only mount) and its socket. */
static int find_volume(struct ctx *c, const char *file)
{
	char real[PATH_MAX];
	int r;

	if (c->sock_arg) {
		snprintf(c->sock, sizeof(c->sock), "%s", c->sock_arg);
		return 0;
	}
	if (c->mnt_arg) {
		const char *mnt = c->mnt_arg;
		if (!realpath(mnt, real)) {
			if (errno != ENOTCONN)
				return path_error(c, c->mnt_arg, errno);
			r = client_find_mount(mnt, &c->m); /* a dead daemon's mount */
		} else {
			r = client_mount_at(real, &c->m);
		}
		if (r)
			return fail(c, ENOENT, "%s is not a mounted siltfs volume", c->mnt_arg);
	} else if (file && (r = client_find_mount(file, &c->m))) {
		if (r == -ENOENT)
			return fail(c, ENOENT, "%s is not on a mounted siltfs volume", file);
		return path_error(c, file, -r);
	} else if (!file && (r = client_find_mount(NULL, &c->m))) {
		return fail(c, -r, "%s; use -m MOUNTPOINT",
			    r == -EEXIST ? "several siltfs volumes are mounted" : "no siltfs volume is mounted");
	}
	silt_ctl_default_path(c->m.mnt, c->sock, sizeof(c->sock));
	return 0;
}

/* Split the daemon's answer into records, as many as it has lines. */
static int parse_reply(struct ctx *c)
{
	int lines = 1;

	for (const char *p = c->reply; *p; p++)
		lines += *p == '\n';
	free(c->recs);
	if (!(c->recs = calloc((size_t)lines, sizeof(*c->recs))))
		return -ENOMEM;
	c->nrecs = recs_parse(c->reply, c->recs, lines);
	return 0;
}

/* Ask the daemon; its records land in c->recs. */
static int query(struct ctx *c, const char *req)
{
	int r;

	free(c->reply); /* the last answer's records go with it */
	c->reply = NULL;
	c->nrecs = 0;
	r = client_request(c->sock, req, &c->reply, NULL);

	if ((r == -ENOENT || r == -ECONNREFUSED) && c->m.mnt[0])
		return fail(c, -r, "the daemon of %s is not running (no answer on %s): umount %s, then mount it again",
			    c->m.mnt, c->sock, c->m.mnt);
	if (r == -ENOENT || r == -ECONNREFUSED)
		return fail(c, -r, "no siltfs daemon answers on %s", c->sock);
	if (r)
		return fail(c, -r, "%s: %s", c->sock, strerror(-r));
	if ((r = parse_reply(c)))
		return fail(c, -r, "out of memory for the daemon's answer");
	struct rec *e = recs_find(c->recs, c->nrecs, "error");
	if (e)
		return fail(c, (int)rec_u64(e, "errno"), "daemon says: %s", rec_get(e, "message"));
	return 0;
}

/* ---- status ------------------------------------------------------------ */

static const struct jfield volume_json[] = {
	{ "name", "name", J_STR }, { "uuid", "uuid", J_STR }, { "chunk_size", "chunk_size", J_U64 },
	{ "mountpoint", "mountpoint", J_STR }, { "reads", "reads", J_U64 }, { "writes", "writes", J_U64 },
	{ "read_bytes", "read_bytes", J_U64 }, { "write_bytes", "write_bytes", J_U64 },
	{ "namespace_ops", "ns_ops", J_U64 }, { "cache", "cache", J_STR }, { 0 } };
static const struct jfield ram_json[] = {
	{ "size", "size", J_U64 }, { "used", "used", J_U64 }, { "hits", "hits", J_U64 },
	{ "misses", "misses", J_U64 }, { "fills", "fills", J_U64 }, { "evictions", "evictions", J_U64 },
	{ "invalidations", "invalidations", J_U64 }, { 0 } };
static const struct jfield tier_json[] = {
	{ "name", "name", J_STR }, { "class", "class", J_STR }, { "path", "path", J_STR },
	{ "capacity", "capacity", J_U64 }, { "used", "used", J_U64 }, { "chunks", "chunks", J_U64 },
	{ "high_watermark", "high_watermark", J_U64 }, { "low_watermark", "low_watermark", J_U64 },
	{ "compression", "compression", J_STR }, { "state", "state", J_STR }, { "reason", "reason", J_STR }, { 0 } };
/* the placement policy and the migration engine (tiers/migrate.h) */
static const struct jfield placement_json[] = {
	{ "policy", "policy", J_STR }, { "capacity", "capacity", J_U64 }, { "resident", "resident", J_U64 },
	{ "recorded", "recorded", J_U64 }, { "dropped", "dropped", J_U64 }, { "migration", "migration", J_STR },
	{ "epoch_ms", "epoch_ms", J_U64 }, { "rate_limit", "rate_limit", J_U64 },
	{ "busy_rate_limit", "busy_rate_limit", J_U64 }, { "epochs", "epochs", J_U64 },
	{ "pending", "pending", J_U64 }, { "pending_bytes", "pending_bytes", J_U64 }, { "moved", "moved", J_U64 },
	{ "moved_bytes", "moved_bytes", J_U64 }, { "promoted", "promoted", J_U64 }, { "demoted", "demoted", J_U64 },
	{ "raced", "raced", J_U64 }, { "failed", "failed", J_U64 }, { "rate", "rate", J_U64 },
	{ "busy", "busy", J_U64 }, { 0 } };
static const struct jfield log_json[] = {
	{ "destination", "destination", J_STR }, { "level", "level", J_STR },
	{ "path", "path", J_OPT }, { "ident", "ident", J_OPT }, { 0 } };
static const struct jsection status_json[] = {
	{ "volume", "volume", 0, volume_json }, { "ram", "ram", 0, ram_json },
	{ "tier", "tiers", 1, tier_json }, { "placement", "placement", 0, placement_json },
	{ "log", "log", 0, log_json }, { 0 } };

static const char status_heading[] =
	"volume {name}  uuid {uuid}  mounted on {mountpoint}  cache {cache}\n"
	"chunk size {chunk_size:size}  reads {reads:u} ({read_bytes:size})  writes {writes:u} ({write_bytes:size})\n\n";
static const struct column status_table[] = {
	{ "TIER", "name", -12, C_STR }, { "CLASS", "class", -5, C_STR },
	{ "CAPACITY", "capacity", 12, C_SIZE }, { "USED", "used", 12, C_SIZE },
	{ "USE%", "used", 6, C_PCT, .of = "capacity" }, { "CHUNKS", "chunks", 10, C_U64 },
	{ "COMPRESS", "compression", -8, C_STR }, { "STATE", "state", -7, C_STR }, { "PATH", "path", 0, C_STR },
	{ 0 } };
/* a tier that is not active says why, under its row */
static const struct rownote status_note = { "state", "active", "reason", 13 };

static int cmd_status(struct ctx *c, int argc, char **argv)
{
	struct rec *vol;

	if (find_volume(c, NULL) || query(c, "status"))
		return 1;
	if (c->json) {
		render_json(stdout, c->recs, c->nrecs, status_json);
		return 0;
	}
	if ((vol = recs_find(c->recs, c->nrecs, "volume"))) {
		if (c->m.mnt[0])
			rec_set(vol, "mountpoint", c->m.mnt);
		render_template(stdout, vol, status_heading);
		render_table(stdout, c->recs, c->nrecs, "tier", status_table, &status_note);
	}
	return 0;
}

/* ---- where ------------------------------------------------------------- */

static const struct jfield file_json[] = {
	{ "file", "path", J_STR }, { "ino", "ino", J_U64 }, { "size", "size", J_U64 },
	{ "chunk_size", "chunk_size", J_U64 }, { "chunks", "chunks", J_U64 }, { 0 } };
static const struct jfield where_tier_json[] = {
	{ "name", "name", J_STR }, { "class", "class", J_STR }, { "chunks", "chunks", J_U64 },
	{ "runs", "runs", J_RUNS }, { 0 } };
static const struct jsection where_json[] = {
	{ "file", NULL, 0, file_json }, { "tier", "tiers", 1, where_tier_json }, { 0 } };

static const char where_heading[] = "{path}  size {size:size}  chunk {chunk_size:size}  {chunks:u} chunks placed\n";
static const struct column where_table[] = {
	{ "TIER", "name", -12, C_STR }, { "CLASS", "class", -5, C_STR }, { "CHUNKS", "chunks", 10, C_U64 },
	{ "SHARE", "chunks", 6, C_PCT, .of = "file_chunks" },
	{ "RUNS", "runs", 0, C_STR, .sep = "  ", .maxlen = 60 }, { 0 } };

/* Ask the daemon "VERB <inode>" about a regular file; its file record. */
static struct rec *query_file(struct ctx *c, const char *verb, const char *file)
{
	char req[64];
	struct stat st;
	struct rec *f;

	if (stat(file, &st) < 0) {
		path_error(c, file, errno);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		fail(c, EINVAL, "%s: not a regular file", file);
		return NULL;
	}
	snprintf(req, sizeof(req), "%s %llu", verb, (unsigned long long)st.st_ino);
	if (find_volume(c, file) || query(c, req))
		return NULL;
	if (!(f = recs_find(c->recs, c->nrecs, "file"))) {
		fail(c, EPROTO, "the daemon's answer has no file record");
		return NULL;
	}
	rec_set(f, "path", file);
	return f;
}

static int cmd_where(struct ctx *c, int argc, char **argv)
{
	struct rec *f = query_file(c, "where", argv[0]);

	if (!f)
		return 1;
	if (c->json) {
		render_json(stdout, c->recs, c->nrecs, where_json);
		return 0;
	}
	/* each tier's share is of the file's placed chunks */
	for (int i = 0; i < c->nrecs; i++)
		if (!strcmp(c->recs[i].kind, "tier"))
			rec_set(&c->recs[i], "file_chunks", rec_get(f, "chunks"));
	render_template(stdout, f, where_heading);
	render_table(stdout, c->recs, c->nrecs, "tier", where_table, NULL);
	return 0;
}

/* ---- heat -------------------------------------------------------------- */

static const struct jfield heat_file_json[] = {
	{ "file", "path", J_STR }, { "ino", "ino", J_U64 }, { "size", "size", J_U64 },
	{ "chunk_size", "chunk_size", J_U64 }, { "chunks", "chunks", J_U64 }, { 0 } };
static const struct jfield heat_run_json[] = {
	{ "first", "first", J_U64 }, { "last", "last", J_U64 }, { "tier", "tier", J_OPT },
	{ "level", "level", J_U64 }, { "heat", "heat", J_U64 }, { "hot", "hot", J_BOOL }, { 0 } };
static const struct jsection heat_json[] = {
	{ "file", NULL, 0, heat_file_json }, { "run", "runs", 1, heat_run_json }, { 0 } };

static const char heat_heading[] = "{path}  size {size:size}  chunk {chunk_size:size}  {chunks:u} chunks\n"
				   "level: 0 cold, 1-4 warmer (accesses per half-life: 1-3, 4-15, 16-63, 64+); "
				   "hot: the policy keeps it on the fast tiers\n\n";
static const struct column heat_table[] = {
	{ "FIRST", "first", 10, C_U64 }, { "LAST", "last", 10, C_U64 }, { "TIER", "tier", -12, C_STR, .sep = "  " },
	{ "LEVEL", "level", 5, C_U64 }, { "HEAT", "heat", 8, C_U64 }, { "HOT", "hot_word", -3, C_STR, .sep = "  " },
	{ 0 } };

/* heat --png: the file's chunks as cells, row after row; a colour per tier
 * (fastest first: blue, green, orange, ...), brighter the hotter (level 0
 * to 4); holes dark grey. */
static int heat_png(struct ctx *c, const struct rec *f, const char *out)
{
	static const uint8_t palette[][3] = { { 60, 120, 255 }, { 40, 200, 90 }, { 255, 170, 30 },
					      { 220, 60, 200 }, { 240, 60, 60 }, { 0, 210, 220 },
					      { 200, 200, 60 }, { 160, 110, 255 } };
	const char *tiers[8];
	int ntiers = 0;
	uint64_t nk = rec_u64(f, "chunks");
	uint32_t cols = nk <= 64 ? (uint32_t)(nk ? nk : 1) : nk <= 16384 ? 64 : nk <= 1u << 20 ? 512 : 2048;
	uint32_t cell = nk <= 4096 ? 8 : nk <= 65536 ? 4 : 1, rows = (uint32_t)((nk + cols - 1) / cols);
	uint32_t w = cols * cell, h = (rows ? rows : 1) * cell;
	uint8_t *rgb = calloc((size_t)w * h, 3);
	char why[512];

	if (!rgb)
		return fail(c, ENOMEM, "out of memory for a %u x %u picture", w, h);
	for (int i = 0; i < c->nrecs && ntiers < 8; i++)
		if (!strcmp(c->recs[i].kind, "tier"))
			tiers[ntiers++] = rec_get(&c->recs[i], "name");
	for (int i = 0; i < c->nrecs; i++) {
		const struct rec *r = &c->recs[i];
		if (strcmp(r->kind, "run"))
			continue;
		const char *t = rec_get(r, "tier");
		int ti = -1;
		for (int x = 0; x < ntiers && ti < 0; x++)
			ti = strcmp(tiers[x], t) ? -1 : x;
		unsigned lvl = (unsigned)MIN(rec_u64(r, "level"), 4ull);
		uint8_t px[3] = { 40, 40, 40 };
		for (int k = 0; k < 3 && ti >= 0; k++)
			px[k] = (uint8_t)(palette[ti][k] * (35 + 65 * lvl / 4) / 100);
		for (uint64_t k = rec_u64(r, "first"); k <= rec_u64(r, "last") && k < nk; k++)
			for (uint32_t y = 0; y < cell; y++)
				for (uint32_t x = 0; x < cell; x++)
					memcpy(rgb + (((size_t)(k / cols * cell + y) * w) + k % cols * cell + x) * 3, px, 3);
	}
	int r = png_write(out, w, h, rgb, why, sizeof(why));
	free(rgb);
	if (r)
		return fail(c, -r, "%s", why);
	printf("%s: %u x %u pixels, %u chunks a row, %u pixels a chunk; brighter is hotter;", out, w, h, cols, cell);
	for (int x = 0; x < ntiers; x++)
		printf(" %s rgb(%u,%u,%u)", tiers[x], palette[x][0], palette[x][1], palette[x][2]);
	printf("\n");
	return 0;
}

static int cmd_heat(struct ctx *c, int argc, char **argv)
{
	const char *file = NULL, *png = NULL;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--png") && i + 1 < argc)
			png = argv[++i];
		else if (argv[i][0] == '-' || file)
			return usage_error(c, "heat: '%s': expected FILE [--png OUT]", argv[i]);
		else
			file = argv[i];
	}
	if (!file)
		return usage_error(c, "heat: no FILE");
	struct rec *f = query_file(c, "heat", file);

	if (!f)
		return 1;
	if (png)
		return heat_png(c, f, png);
	if (c->json) {
		render_json(stdout, c->recs, c->nrecs, heat_json);
		return 0;
	}
	for (int i = 0; i < c->nrecs; i++)
		if (!strcmp(c->recs[i].kind, "run"))
			rec_set(&c->recs[i], "hot_word", rec_u64(&c->recs[i], "hot") ? "yes" : "no");
	render_template(stdout, f, heat_heading);
	render_table(stdout, c->recs, c->nrecs, "run", heat_table, NULL);
	return 0;
}

/* ---- policy, migrate ---------------------------------------------------- */

static const struct jfield rule_json[] = {
	{ "name", "name", J_STR }, { "match", "match", J_STR }, { "tiers", "tiers", J_STR },
	{ "weight", "weight", J_U64 }, { "from", "from", J_STR }, { "line", "line", J_U64 },
	{ "overrides", "overrides", J_STR }, { "matched", "matched", J_U64 }, { 0 } };
static const struct jsection placement_only_json[] = {
	{ "placement", NULL, 0, placement_json }, { "rule", "rules", 1, rule_json }, { 0 } };
static const struct jsection rule_only_json[] = { { "rule", NULL, 0, rule_json }, { 0 } };
static const struct column rules_table[] = {
	{ "RULE", "name", -12, C_STR }, { "MATCH", "match", -24, C_STR }, { "TIERS", "tiers", -16, C_STR },
	{ "WEIGHT", "weight", 6, C_U64 }, { "FROM", "from", -7, C_STR, .sep = "  " },
	{ "MATCHED", "matched", 8, C_U64 }, { 0 } };
static const char placement_text[] =
	"policy {policy}  (fast tiers: {capacity:u} chunks; {resident:u} chunks tracked)\n"
	"migration {migration}  epoch {epoch_ms:u} ms  rate limit {rate_limit:size}/s "
	"({busy_rate_limit:size}/s while busy)\n"
	"moved {moved:u} chunks ({moved_bytes:size}): {promoted:u} up, {demoted:u} down; "
	"{raced:u} raced, {failed:u} failed; backlog {pending:u} chunks ({pending_bytes:size})\n";

static int show_placement(struct ctx *c, const struct jsection *json)
{
	struct rec *p = recs_find(c->recs, c->nrecs, "placement");

	if (!p)
		return fail(c, EPROTO, "the daemon's answer has no placement record");
	if (c->json) {
		render_json(stdout, c->recs, c->nrecs, json);
		return 0;
	}
	render_template(stdout, p, placement_text);
	if (recs_find(c->recs, c->nrecs, "rule")) {
		printf("\nplacement rules (tried in this order, live ones first: the first that matches a file's path wins; pins win over them):\n");
		render_table(stdout, c->recs, c->nrecs, "rule", rules_table, NULL);
	}
	return 0;
}

/* "policy rule add NAME KEY=VALUE...", "policy rule rm NAME": the values
 * %-escaped on the way (a glob may hold spaces). */
static int policy_rule(struct ctx *c, int argc, char **argv)
{
	char *req = NULL;
	size_t len = 0;
	int add = argc >= 3 && !strcmp(argv[1], "add"), rm = argc == 3 && !strcmp(argv[1], "rm"), r;

	if (!add && !rm)
		return usage_error(c, "policy rule: expected 'rule add NAME match=GLOB [KEY=VALUE...]' or 'rule rm NAME'");
	FILE *o = open_memstream(&req, &len);
	if (!o)
		return fail(c, ENOMEM, "out of memory");
	fprintf(o, "policy rule %s ", argv[1]);
	silt_pct_put(o, argv[2]);
	for (int i = 3; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i]) {
			fclose(o);
			free(req);
			return usage_error(c, "policy rule add: '%s' is not KEY=VALUE (keys: match, pin, min_tier, "
					   "max_tier, weight, compress)", argv[i]);
		}
		fprintf(o, " %.*s=", (int)(eq - argv[i]), argv[i]);
		silt_pct_put(o, eq + 1);
	}
	fclose(o);
	r = find_volume(c, NULL) || query(c, req);
	free(req);
	if (r)
		return 1;
	if (c->json && rm)
		printf("{\"removed\": \"%s\"}\n", argv[2]); /* (the daemon took it: [A-Za-z0-9._-]) */
	else if (c->json)
		render_json(stdout, c->recs, c->nrecs, rule_only_json);
	else if (rm)
		printf("rule %s removed: every file is matched again\n", argv[2]);
	else
		render_table(stdout, c->recs, c->nrecs, "rule", rules_table, NULL);
	return 0;
}

static int cmd_policy(struct ctx *c, int argc, char **argv)
{
	char req[128];

	if (argc && !strcmp(argv[0], "rule"))
		return policy_rule(c, argc, argv);
	if (argc > 1)
		return usage_error(c, "policy: one NAME, or 'rule add|rm ...'");
	if (argc && (strlen(argv[0]) > 64 || strpbrk(argv[0], " \n")))
		return usage_error(c, "policy: '%s' is not a policy name", argv[0]);
	snprintf(req, sizeof(req), argc ? "policy %s" : "policy", argc ? argv[0] : "");
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	return show_placement(c, placement_only_json);
}

static const struct jfield epoch_json[] = { { "moved", "moved", J_U64 }, { 0 } };
static const struct jsection migrate_json[] = {
	{ "epoch", NULL, 0, epoch_json }, { "placement", "placement", 0, placement_json }, { 0 } };

static int cmd_migrate(struct ctx *c, int argc, char **argv)
{
	char req[64];
	struct rec *e;

	if (argc && strcmp(argv[0], "policy") && strcmp(argv[0], "churn") && strcmp(argv[0], "off"))
		return usage_error(c, "migrate: '%s': the mode is policy, churn or off", argv[0]);
	snprintf(req, sizeof(req), argc ? "migrate %s" : "migrate", argc ? argv[0] : "");
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (!argc && !c->json && (e = recs_find(c->recs, c->nrecs, "epoch")))
		render_template(stdout, e, "one epoch: {moved:u} chunks moved\n");
	return show_placement(c, argc ? placement_only_json : migrate_json);
}

/* ---- scrub ------------------------------------------------------------- */

static const struct jfield scrub_json_f[] = {
	{ "running", "running", J_BOOL }, { "passes", "passes", J_U64 }, { "total", "total", J_U64 },
	{ "checked", "checked", J_U64 }, { "damaged", "damaged", J_U64 }, { "unreadable", "unreadable", J_U64 },
	{ "cancelled", "cancelled", J_BOOL }, { "started", "started", J_U64 }, { "finished", "finished", J_U64 },
	{ 0 } };
static const struct jsection scrub_json[] = { { "scrub", NULL, 0, scrub_json_f }, { 0 } };
static const char scrub_text[] =
	"scrub: {checked:u} of {total:u} checksummed chunks verified, {damaged:u} damaged, "
	"{unreadable:u} unreadable\n";

/* A progress bar on a terminal: [#####.....] done/total chunks, and what
 * else there is to say (extra, may be ""). */
static void progress(unsigned long long done, unsigned long long total, const char *extra)
{
	int w = 40, fill = total ? (int)(MIN(done, total) * (unsigned long long)w / total) : w;

	fprintf(stderr, "\r[%.*s%*s] %llu/%llu chunks%s\033[K", MIN(fill, w), "########################################",
		w - MIN(fill, w), "", done, total, extra);
}

static int scrub_report(struct ctx *c, struct rec *s)
{
	if (c->json)
		render_json(stdout, c->recs, c->nrecs, scrub_json);
	else
		render_template(stdout, s, scrub_text);
	if (rec_u64(s, "damaged") || rec_u64(s, "unreadable"))
		return c->json ? 1 : fail(c, EIO, "damaged chunks found: siltctl events names them");
	return 0;
}

/* "scrub": start a pass (or join the running one) and follow it to its end. */
static int scrub_follow(struct ctx *c)
{
	int tty = !c->json && isatty(2);
	unsigned long long passes;
	struct rec *s;

	if (find_volume(c, NULL) || query(c, "scrub"))
		return 1;
	if (!(s = recs_find(c->recs, c->nrecs, "scrub")))
		return fail(c, EPROTO, "the daemon's answer has no scrub record");
	passes = rec_u64(s, "passes") + !rec_u64(s, "running");
	if (!rec_u64(s, "running") && query(c, "scrub start"))
		return 1;
	for (;;) {
		if (query(c, "scrub"))
			return 1;
		if (!(s = recs_find(c->recs, c->nrecs, "scrub")))
			return fail(c, EPROTO, "the daemon's answer has no scrub record");
		if (tty)
			progress(rec_u64(s, "checked"), rec_u64(s, "total"), "");
		if (!rec_u64(s, "running") && rec_u64(s, "passes") >= passes)
			break;
		usleep(200 * 1000);
	}
	if (tty)
		fputc('\n', stderr);
	if (rec_u64(s, "cancelled"))
		return fail(c, ECANCELED, "the scrub was cancelled after %llu of %llu chunks",
			    rec_u64(s, "checked"), rec_u64(s, "total"));
	return scrub_report(c, s);
}

static int cmd_scrub(struct ctx *c, int argc, char **argv)
{
	const char *sub = argc ? argv[0] : "";
	char req[32];
	struct rec *s;

	if (!*sub)
		return scrub_follow(c);
	if (strcmp(sub, "start") && strcmp(sub, "cancel") && strcmp(sub, "status"))
		return usage_error(c, "scrub: '%s': expected start, cancel or status", sub);
	snprintf(req, sizeof(req), strcmp(sub, "status") ? "scrub %s" : "scrub", sub);
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (!(s = recs_find(c->recs, c->nrecs, "scrub")))
		return fail(c, EPROTO, "the daemon's answer has no scrub record");
	if (c->json)
		render_json(stdout, c->recs, c->nrecs, scrub_json);
	else
		render_template(stdout, s, rec_u64(s, "running") ? "scrub running: {checked:u} of {total:u} chunks so far, "
			"{damaged:u} damaged, {unreadable:u} unreadable\n" : scrub_text);
	return 0;
}

/* ---- tiers, evacuate -------------------------------------------------- */

static const struct jfield tiers_json_f[] = {
	{ "name", "name", J_STR }, { "class", "class", J_STR }, { "state", "state", J_STR },
	{ "chunks", "chunks", J_U64 }, { "capacity", "capacity", J_U64 }, { "used", "used", J_U64 },
	{ "evacuation_total", "evac_total", J_U64 }, { "reason", "reason", J_STR }, { 0 } };
static const struct jsection tiers_json[] = { { "tier", "tiers", 1, tiers_json_f }, { 0 } };
static const struct column tiers_table[] = {
	{ "TIER", "name", -12, C_STR }, { "CLASS", "class", -5, C_STR }, { "STATE", "state", -10, C_STR },
	{ "CHUNKS", "chunks", 10, C_U64 }, { "USED", "used", 12, C_SIZE }, { "CAPACITY", "capacity", 12, C_SIZE },
	{ 0 } };

/* Ask req of the volume and show the records of kind: as JSON, or as a
 * table. */
static int show_table(struct ctx *c, const char *req, const struct jsection *json, const char *kind,
		      const struct column *table, const struct rownote *note)
{
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (c->json)
		render_json(stdout, c->recs, c->nrecs, json);
	else
		render_table(stdout, c->recs, c->nrecs, kind, table, note);
	return 0;
}

static int cmd_tiers(struct ctx *c, int argc, char **argv)
{
	return show_table(c, "status", tiers_json, "tier", tiers_table, &status_note);
}

static const struct jfield evac_json_f[] = {
	{ "tier", "tier", J_STR }, { "state", "state", J_STR }, { "running", "running", J_BOOL },
	{ "total", "total", J_U64 }, { "left", "left", J_U64 }, { 0 } };
static const struct jsection evac_json[] = { { "evacuation", NULL, 0, evac_json_f }, { 0 } };
static const char evac_text[] = "tier {tier}: {state}, {left:u} of {total:u} chunks still on it\n";

/* "evacuate TIER": start (or join) and follow to the end; --no-wait,
 * --cancel and --status ask once. */
static int cmd_evacuate(struct ctx *c, int argc, char **argv)
{
	int o = argc == 2 && argv[1][0] == '-'; /* the option, before or after TIER */
	const char *tier = argv[argc == 2 ? !o : 0], *opt = argc == 2 ? argv[o] : "";
	int follow = !*opt, tty = follow && !c->json && isatty(2);
	char req[128];
	struct rec *e;

	if (*opt && strcmp(opt, "--cancel") && strcmp(opt, "--status") && strcmp(opt, "--no-wait"))
		return usage_error(c, "evacuate: '%s': expected --cancel, --status or --no-wait", opt);
	if (strlen(tier) > 64 || strpbrk(tier, " \n"))
		return usage_error(c, "evacuate: '%s' is not a tier name", tier);
	snprintf(req, sizeof(req), "evacuate %s%s", !strcmp(opt, "--cancel") ? "cancel " :
		 !strcmp(opt, "--status") ? "status " : "", tier);
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	for (;;) {
		if (!(e = recs_find(c->recs, c->nrecs, "evacuation")))
			return fail(c, EPROTO, "the daemon's answer has no evacuation record");
		if (!follow || strcmp(rec_get(e, "state"), "evacuating"))
			break;
		if (tty)
			progress(rec_u64(e, "total") - MIN(rec_u64(e, "left"), rec_u64(e, "total")), rec_u64(e, "total"), "");
		usleep(200 * 1000);
		snprintf(req, sizeof(req), "evacuate status %s", tier);
		if (query(c, req))
			return 1;
	}
	if (tty)
		fputc('\n', stderr);
	if (c->json)
		render_json(stdout, c->recs, c->nrecs, evac_json);
	else
		render_template(stdout, e, evac_text);
	if (follow && strcmp(rec_get(e, "state"), "evacuated"))
		return fail(c, ECANCELED, "the evacuation of %s stopped (%s) with %s chunks still on it", tier,
			    rec_get(e, "state"), rec_get(e, "left"));
	return 0;
}

/* ---- pins --------------------------------------------------------------- */

static const struct jfield pin_json_f[] = { { "ino", "ino", J_U64 }, { "tier", "tier", J_OPT }, { 0 } };
static const struct jsection pins_json[] = { { "pin", "pins", 1, pin_json_f }, { 0 } };
static const struct jsection pin_json[] = { { "pin", NULL, 0, pin_json_f }, { 0 } };
static const struct column pins_table[] = {
	{ "INODE", "ino", 10, C_U64 }, { "TIER", "tier", 0, C_STR, .sep = "  " }, { 0 } };

/* "pin FILE TIER", "unpin FILE": through the file's inode. */
static int pin_file(struct ctx *c, const char *file, const char *tier)
{
	char req[160];
	struct stat st;
	struct rec *p;

	if (tier && (strlen(tier) > 64 || strpbrk(tier, " \n")))
		return usage_error(c, "pin: '%s' is not a tier name", tier);
	if (stat(file, &st) < 0)
		return path_error(c, file, errno);
	if (!S_ISREG(st.st_mode))
		return fail(c, EINVAL, "%s: not a regular file (only files are pinned)", file);
	if (tier)
		snprintf(req, sizeof(req), "pin %llu %s", (unsigned long long)st.st_ino, tier);
	else
		snprintf(req, sizeof(req), "unpin %llu", (unsigned long long)st.st_ino);
	if (find_volume(c, file) || query(c, req))
		return 1;
	if (!(p = recs_find(c->recs, c->nrecs, "pin")))
		return fail(c, EPROTO, "the daemon's answer has no pin record");
	if (c->json)
		render_json(stdout, c->recs, c->nrecs, pin_json);
	else if (tier)
		printf("%s pinned to tier %s: its chunks move there as room allows (siltctl where %s)\n", file,
		       rec_get(p, "tier"), file);
	else
		printf("%s unpinned: the placement policy places it again\n", file);
	return 0;
}

static int cmd_pin(struct ctx *c, int argc, char **argv)
{
	return pin_file(c, argv[0], argv[1]);
}

static int cmd_unpin(struct ctx *c, int argc, char **argv)
{
	return pin_file(c, argv[0], NULL);
}

static int cmd_pins(struct ctx *c, int argc, char **argv)
{
	return show_table(c, "pins", pins_json, "pin", pins_table, NULL);
}

/* ---- metrics ----------------------------------------------------------- */

#define TIER_LABELS "tier=name,class=class"
static const struct pmetric metrics_table[] = {
	{ "siltfs_volume_info", "The volume: name, uuid (always 1)", P_GAUGE, "volume", "one", "uuid=uuid" },
	{ "siltfs_chunk_size_bytes", "Chunk size", P_GAUGE, "volume", "chunk_size" },
	{ "siltfs_namespace_operations_total", "Namespace changes committed (create, rename, unlink, ...)",
	  P_COUNTER, "volume", "ns_ops" },
	{ "siltfs_io_requests_total", "Read and write requests served", P_COUNTER, "io", "requests", "op=op" },
	{ "siltfs_io_bytes_total", "Bytes read and written by requests", P_COUNTER, "io", "bytes", "op=op" },
	{ "siltfs_io_errors_total", "Read and write requests that failed", P_COUNTER, "io", "errors", "op=op" },
	{ "siltfs_io_latency_seconds", "Time from a request's arrival in the engine to its answer", P_HISTOGRAM,
	  "io", "buckets", "op=op", .bounds = "bounds_us", .sum = "sum_ns" },
	{ "siltfs_tier_info", "A tier: class, compression, state (always 1)", P_GAUGE, "tier", "one",
	  TIER_LABELS ",compression=compression,state=state" },
	{ "siltfs_tier_failed", "1 when the tier failed (siltctl status says why)", P_GAUGE, "tier", "failed",
	  TIER_LABELS },
	{ "siltfs_tier_capacity_bytes", "What the tier can hold now", P_GAUGE, "tier", "capacity", TIER_LABELS },
	{ "siltfs_tier_used_bytes", "Bytes the tier's chunks take (what compression saves not counted)", P_GAUGE,
	  "tier", "used", TIER_LABELS },
	{ "siltfs_tier_chunks", "Chunks living on the tier", P_GAUGE, "tier", "chunks", TIER_LABELS },
	{ "siltfs_tier_high_watermark_percent", "New chunks go elsewhere above this share of the capacity",
	  P_GAUGE, "tier", "high_watermark", TIER_LABELS },
	{ "siltfs_tier_low_watermark_percent", "The migration engine drains the tier down to this share",
	  P_GAUGE, "tier", "low_watermark", TIER_LABELS },
	{ "siltfs_checksum_errors_total", "Chunks that failed their checksum, by tier and by who found it",
	  P_COUNTER, "checksum", "read", "tier=tier", "source=read" },
	{ "siltfs_checksum_errors_total", "", P_COUNTER, "checksum", "scrub", "tier=tier", "source=scrub" },
	{ "siltfs_ram_size_bytes", "RAM tier budget", P_GAUGE, "ram", "size" },
	{ "siltfs_ram_used_bytes", "RAM tier bytes in use", P_GAUGE, "ram", "used" },
	{ "siltfs_ram_hits_total", "Reads the RAM tier answered", P_COUNTER, "ram", "hits" },
	{ "siltfs_ram_misses_total", "Reads the RAM tier could not answer", P_COUNTER, "ram", "misses" },
	{ "siltfs_ram_fills_total", "Chunks copied into the RAM tier", P_COUNTER, "ram", "fills" },
	{ "siltfs_ram_evictions_total", "Chunks dropped from the RAM tier for room", P_COUNTER, "ram", "evictions" },
	{ "siltfs_ram_invalidations_total", "RAM tier copies dropped because the chunk was written", P_COUNTER, "ram",
	  "invalidations" },
	{ "siltfs_placement_accesses_recorded_total", "Accesses the placement policy learned from", P_COUNTER,
	  "placement", "recorded" },
	{ "siltfs_placement_accesses_dropped_total", "Accesses lost to a full recording ring", P_COUNTER,
	  "placement", "dropped" },
	{ "siltfs_placement_resident_chunks", "Chunks in the policy's fast set", P_GAUGE, "placement", "resident" },
	{ "siltfs_migration_epochs_total", "Migration epochs run", P_COUNTER, "placement", "epochs" },
	{ "siltfs_migration_moves_total", "Chunks moved between tiers, by direction", P_COUNTER, "placement",
	  "promoted", NULL, "direction=up" },
	{ "siltfs_migration_moves_total", "", P_COUNTER, "placement", "demoted", NULL, "direction=down" },
	{ "siltfs_migration_moved_bytes_total", "Bytes moved between tiers", P_COUNTER, "placement", "moved_bytes" },
	{ "siltfs_migration_raced_total", "Moves dropped because a write came in between (redone later)", P_COUNTER,
	  "placement", "raced" },
	{ "siltfs_migration_failed_total", "Moves that failed", P_COUNTER, "placement", "failed" },
	{ "siltfs_migration_pending_chunks", "Moves planned, not yet carried out", P_GAUGE, "placement", "pending" },
	{ "siltfs_migration_pending_bytes", "Bytes of the moves planned, not yet carried out", P_GAUGE, "placement",
	  "pending_bytes" },
	{ "siltfs_migration_rate_bytes_per_second", "Migration rate over the last seconds", P_GAUGE, "placement",
	  "rate" },
	{ "siltfs_migration_busy", "1 while foreground I/O is busy (the busy rate limit applies)", P_GAUGE,
	  "placement", "busy" },
	{ "siltfs_scrub_running", "1 while a scrub pass runs", P_GAUGE, "scrub", "running" },
	{ "siltfs_scrub_passes_total", "Scrub passes finished", P_COUNTER, "scrub", "passes" },
	{ "siltfs_scrub_checked_chunks", "Chunks the current or last pass verified", P_GAUGE, "scrub", "checked" },
	{ "siltfs_scrub_damaged_chunks", "Damaged chunks the current or last pass found", P_GAUGE, "scrub",
	  "damaged" },
	{ "siltfs_scrub_unreadable_chunks", "Chunks the current or last pass could not read", P_GAUGE, "scrub",
	  "unreadable" },
	{ "siltfs_scrub_last_finished_timestamp_seconds", "When the last pass ended (0: none yet)", P_GAUGE, "scrub",
	  "finished" },
	{ "siltfs_events_total", "Events raised (siltctl events), by kind", P_COUNTER, "events", "count",
	  "kind=kind" },
	/* replication (sync/): a primary's peers, a replica's primary */
	{ "siltfs_sync_connected", "1 while the peer is connected and live", P_GAUGE, "peer", "connected",
	  "peer=name" },
	{ "siltfs_sync_lag_milliseconds", "Age of the oldest change the peer does not have yet", P_GAUGE, "peer",
	  "lag_ms", "peer=name" },
	{ "siltfs_sync_acked_batch", "The last batch the peer acknowledged", P_GAUGE, "peer", "acked", "peer=name" },
	{ "siltfs_sync_journal_entries", "Journal entries kept for the peer", P_GAUGE, "peer", "journal_entries",
	  "peer=name" },
	{ "siltfs_sync_dirty_chunks", "Chunk ranges owed to the peer after it fell behind", P_GAUGE, "peer", "dirty",
	  "peer=name" },
	{ "siltfs_sync_batches_total", "Batches the peer acknowledged", P_COUNTER, "peer", "batches", "peer=name" },
	{ "siltfs_sync_chunks_total", "Chunks shipped to the peer", P_COUNTER, "peer", "chunks", "peer=name" },
	{ "siltfs_sync_data_bytes_total", "Chunk bytes shipped to the peer (before compression)", P_COUNTER, "peer",
	  "data_bytes", "peer=name" },
	{ "siltfs_sync_wire_bytes_total", "Bytes sent to the peer on the wire", P_COUNTER, "peer", "sent_bytes",
	  "peer=name" },
	{ "siltfs_sync_folds_total", "Times a lagging peer fell back to its dirty set", P_COUNTER, "peer", "folds",
	  "peer=name" },
	{ "siltfs_sync_verify_differ_chunks", "Chunks the last verify found different on the peer", P_GAUGE, "peer",
	  "verify_differ", "peer=name" },
	{ "siltfs_sync_last_ack_timestamp_seconds", "When the peer last acknowledged a batch", P_GAUGE, "peer",
	  "last_ack", "peer=name" },
	{ "siltfs_replica_connected", "1 while the primary is connected", P_GAUGE, "replica", "connected",
	  "peer=name" },
	{ "siltfs_replica_applied_batch", "The last batch applied", P_GAUGE, "replica", "applied", "peer=name" },
	{ "siltfs_replica_batches_total", "Batches applied", P_COUNTER, "replica", "batches", "peer=name" },
	{ "siltfs_replica_chunks_total", "Chunks applied", P_COUNTER, "replica", "chunks", "peer=name" },
	{ "siltfs_replica_bytes_total", "Chunk bytes applied", P_COUNTER, "replica", "bytes", "peer=name" },
	{ "siltfs_replica_refused_total", "Connections refused (unknown key, another protocol)", P_COUNTER, "replica",
	  "refused", "peer=name" },
	{ "siltfs_replica_last_batch_timestamp_seconds", "When the last batch was applied", P_GAUGE, "replica",
	  "last_ack", "peer=name" },
	{ 0 } };

static int cmd_metrics(struct ctx *c, int argc, char **argv)
{
	char global[96];
	struct rec *vol;

	if (find_volume(c, NULL) || query(c, "metrics"))
		return 1;
	if (!(vol = recs_find(c->recs, c->nrecs, "volume")))
		return fail(c, EPROTO, "the daemon's answer has no volume record");
	/* values metrics derive from the records */
	for (int i = 0; i < c->nrecs; i++) {
		struct rec *r = &c->recs[i];
		rec_set(r, "one", "1");
		if (!strcmp(r->kind, "peer")) {
			/* a replica's record of its primary is a family of its own */
			if (!strcmp(rec_get(r, "role"), "replica"))
				snprintf(r->kind, sizeof(r->kind), "replica");
			rec_set(r, "connected", !strcmp(rec_get(r, "state"), "live") ? "1" : "0");
		}
		if (!strcmp(c->recs[i].kind, "tier"))
			rec_set(&c->recs[i], "failed", strcmp(rec_get(&c->recs[i], "state"), "failed") ? "0" : "1");
	}
	snprintf(global, sizeof(global), "volume=%s", rec_get(vol, "name"));
	render_prom(stdout, c->recs, c->nrecs, metrics_table, global, c->json);
	return 0;
}

/* ---- events ------------------------------------------------------------ */

static const struct jfield event_json[] = {
	{ "seq", "seq", J_U64 }, { "time", "time", J_U64 }, { "kind", "kind", J_STR }, { "text", "text", J_STR },
	{ 0 } };
static const struct jsection events_json[] = { { "event", "events", 1, event_json }, { 0 } };
static const struct column events_table[] = {
	{ "SEQ", "seq", 6, C_U64 }, { "TIME", "when", -19, C_STR, .sep = "  " }, { "KIND", "kind", -10, C_STR },
	{ "WHAT", "text", 0, C_STR }, { 0 } };

static int cmd_events(struct ctx *c, int argc, char **argv)
{
	char req[32], *end;
	long n = 50;

	if (argc == 2 && !strcmp(argv[0], "-n")) {
		n = strtol(argv[1], &end, 10);
		if (*end || n < 1 || n > 1000)
			return usage_error(c, "-n: a number of events from 1 to 1000");
	} else if (argc) {
		return usage_error(c, "events: unexpected argument '%s'", argv[0]);
	}
	snprintf(req, sizeof(req), "events %ld", n);
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (c->json) {
		render_json(stdout, c->recs, c->nrecs, events_json);
		return 0;
	}
	/* local time, for reading; the JSON keeps the epoch seconds */
	char (*when)[32] = calloc((size_t)c->nrecs + 1, sizeof(*when));
	if (!when)
		return fail(c, ENOMEM, "out of memory");
	for (int i = 0; i < c->nrecs; i++) {
		time_t t = (time_t)rec_u64(&c->recs[i], "time");
		struct tm tm;
		strftime(when[i], sizeof(when[i]), "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
		rec_set(&c->recs[i], "when", when[i]);
	}
	render_table(stdout, c->recs, c->nrecs, "event", events_table, NULL);
	free(when);
	return 0;
}

/* ---- sync (replication, sync/) ----------------------------------------- */

/* Every field of every record of kind, as a JSON list of objects (the
 * peers' fields differ by role: a number where the value is one). */
static void json_all_fields(FILE *o, const struct rec *recs, int n, const char *kind)
{
	int first = 1;

	fprintf(o, "[");
	for (int i = 0; i < n; i++) {
		const struct rec *rc = &recs[i];
		if (strcmp(rc->kind, kind))
			continue;
		fprintf(o, "%s{", first ? "" : ", ");
		first = 0;
		for (int k = 0; k < rc->n; k++) {
			const char *v = rc->val[k];
			fprintf(o, "%s\"%s\": ", k ? ", " : "", rc->key[k]);
			if (v[0] && strspn(v, "0123456789") == strlen(v))
				fprintf(o, "%s", v);
			else
				json_str(o, v);
		}
		fprintf(o, "}");
	}
	fprintf(o, "]");
}

static void show_peer(const struct rec *rc)
{
	printf("%-10s %-8s %-12s lag %6.1f s  acked %-8s journal %-8s dirty %-6s full %s/%s  %s B/s\n",
	       rec_get(rc, "name"), rec_get(rc, "role"), rec_get(rc, "state"),
	       (double)rec_u64(rc, "lag_ms") / 1000.0,
	       rec_get(rc, "acked")[0] ? rec_get(rc, "acked") : rec_get(rc, "applied"),
	       rec_get(rc, "journal_entries"), rec_get(rc, "dirty"), rec_get(rc, "progress_done"),
	       rec_get(rc, "progress_total"), rec_get(rc, "throughput"));
}

static int cmd_keygen(struct ctx *c)
{
	char priv[CHAN_KEY_B64], pub[CHAN_KEY_B64];

	if (chan_keygen(priv, pub))
		return fail(c, EIO, "cannot make a key pair (libsodium)");
	if (c->json)
		printf("{\"private_key\": \"%s\", \"public_key\": \"%s\"}\n", priv, pub);
	else
		printf("private_key = %s\npublic_key = %s\n", priv, pub);
	return 0;
}

/* "replica promote|discard-local|keep-separate": the operator's decision
 * on a replica (sync/receiver.h); the daemon's "replica" record. */
static int cmd_replica(struct ctx *c, int argc, char **argv)
{
	char req[64];
	struct rec *r;

	if (strcmp(argv[0], "promote") && strcmp(argv[0], "discard-local") && strcmp(argv[0], "keep-separate"))
		return usage_error(c, "replica: '%s': promote, discard-local or keep-separate", argv[0]);
	snprintf(req, sizeof(req), "replica %s", argv[0]);
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (!(r = recs_find(c->recs, c->nrecs, "replica")))
		return fail(c, EPROTO, "the daemon's answer has no replica record");
	if (c->json) {
		json_all_fields(stdout, c->recs, c->nrecs, "replica");
		putchar('\n');
		return 0;
	}
	for (int k = 0; k < r->n; k++)
		printf("%s%s %s", k ? ", " : "", r->key[k], r->val[k]);
	putchar('\n');
	return 0;
}

static void peers_json(const struct ctx *c)
{
	printf("{\"peers\": ");
	json_all_fields(stdout, c->recs, c->nrecs, "peer");
	printf("}\n");
}

/* A primary's peer that has all it is owed: connected and shipping live,
 * no full sync or dirty set left, no cut batch unacknowledged. */
static int caught_up(const struct rec *p)
{
	return !strcmp(rec_get(p, "state"), "live") && !rec_u64(p, "full_sync") && !rec_u64(p, "dirty") &&
	       !rec_u64(p, "lag_entries");
}

/* The first of the peers followed (one, or every one) not caught up; NULL
 * when all are. *found: how many were followed. */
static const struct rec *peer_behind(const struct ctx *c, const char *name, int *found)
{
	const struct rec *behind = NULL;

	*found = 0;
	for (int i = 0; i < c->nrecs; i++) {
		const struct rec *p = &c->recs[i];
		if (strcmp(p->kind, "peer") || strcmp(rec_get(p, "role"), "primary") ||
		    (name && strcmp(rec_get(p, "name"), name)))
			continue;
		++*found;
		if (!behind && !caught_up(p))
			behind = p;
	}
	return behind;
}

/* Where a peer is: "full-sync 1024/16384 chunks (6.2%), 95.3 MiB/s". */
static void peer_line(const struct rec *p, char *out, size_t len)
{
	unsigned long long d = rec_u64(p, "progress_done"), t = rec_u64(p, "progress_total");
	char rate[32];
	const char *st = rec_get(p, "state");

	silt_fmt_size(rec_u64(p, "throughput"), rate, sizeof(rate));
	if (!strcmp(st, "full-sync") || !strcmp(st, "resync"))
		snprintf(out, len, "%s %s %llu/%llu chunks (%.1f%%), %s/s", rec_get(p, "name"), st, d, t,
			 t ? 100.0 * (double)MIN(d, t) / (double)t : 100.0, rate);
	else
		snprintf(out, len, "%s %s, lag %.1f s", rec_get(p, "name"), st, (double)rec_u64(p, "lag_ms") / 1000.0);
}

/* What the plain lines of sync wait said last. */
struct shown {
	char line[256], state[32];
	time_t when;
};

/* Draw where the peer behind is: a bar on a terminal, else a plain line
 * when its state changed, or its progress (at most once a second). */
static void wait_show(const struct rec *p, int tty, struct shown *last)
{
	char line[256], extra[300], rate[32];
	const char *st = rec_get(p, "state");

	peer_line(p, line, sizeof(line));
	if (tty && (!strcmp(st, "full-sync") || !strcmp(st, "resync"))) {
		silt_fmt_size(rec_u64(p, "throughput"), rate, sizeof(rate));
		snprintf(extra, sizeof(extra), " %s %s, %s/s", rec_get(p, "name"), st, rate);
		progress(rec_u64(p, "progress_done"), rec_u64(p, "progress_total"), extra);
	} else if (tty) {
		fprintf(stderr, "\r%s\033[K", line);
	} else if (strcmp(line, last->line) && (strcmp(st, last->state) || time(NULL) != last->when)) {
		printf("%s\n", line);
		fflush(stdout);
		snprintf(last->line, sizeof(last->line), "%s", line);
		snprintf(last->state, sizeof(last->state), "%s", st);
		last->when = time(NULL);
	}
}

/* "sync wait [PEER] [--timeout SECONDS]": follow the full sync or resync
 * of PEER (or of every peer) until it is caught up. */
static int sync_wait(struct ctx *c, int argc, char **argv)
{
	const char *name = NULL;
	double timeout = 0;
	struct shown last = { 0 };
	int tty = !c->json && isatty(2), found;

	for (int i = 0; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			timeout = strtod(argv[++i], &end);
			if (*end || end == argv[i] || timeout <= 0)
				return usage_error(c, "sync wait: --timeout '%s': expected seconds (> 0)", argv[i]);
		} else if (argv[i][0] == '-' || name)
			return usage_error(c, "sync wait: '%s': expected PEER or --timeout SECONDS", argv[i]);
		else
			name = argv[i];
	}
	if (find_volume(c, NULL))
		return 1;
	uint64_t t0 = silt_now_ns();
	for (;;) {
		if (query(c, "sync status"))
			return 1;
		if (!c->nrecs) /* the connection closed before an answer */
			return fail(c, ECONNRESET, "sync wait: the daemon did not answer (it stopped?)");
		const struct rec *p = peer_behind(c, name, &found);
		if (!found)
			return fail(c, ENOENT, name ? "sync wait: this volume ships to no peer named '%s'"
					   : "sync wait: this volume ships to no peer%s (not a primary)", name ? name : "");
		if (!p)
			break;
		const char *st = rec_get(p, "state");
		if (!strcmp(st, "refused") || !strcmp(st, "split-brain")) {
			if (tty)
				fputc('\n', stderr);
			return fail(c, ECONNREFUSED, "sync wait: peer %s is %s: %s", rec_get(p, "name"), st,
				    rec_get(p, "error"));
		}
		if (!c->json)
			wait_show(p, tty, &last);
		if (timeout && (double)(silt_now_ns() - t0) / 1e9 >= timeout) {
			char line[256];
			peer_line(p, line, sizeof(line));
			if (tty)
				fputc('\n', stderr);
			return fail(c, ETIMEDOUT, "sync wait: not caught up after %g s: %s", timeout, line);
		}
		usleep(200 * 1000);
	}
	if (tty)
		fputc('\n', stderr);
	if (c->json) {
		peers_json(c);
		return 0;
	}
	for (int i = 0; i < c->nrecs; i++)
		if (!strcmp(c->recs[i].kind, "peer") && (!name || !strcmp(rec_get(&c->recs[i], "name"), name)))
			printf("%s caught up: live, acked batch %s\n", rec_get(&c->recs[i], "name"),
			       rec_get(&c->recs[i], "acked"));
	return 0;
}

static int cmd_sync(struct ctx *c, int argc, char **argv)
{
	char req[32];

	if (!strcmp(argv[0], "keygen"))
		return cmd_keygen(c);
	if (!strcmp(argv[0], "wait"))
		return sync_wait(c, argc - 1, argv + 1);
	if (argc > 1)
		return usage_error(c, "sync %s: too many arguments", argv[0]);
	if (strcmp(argv[0], "status") && strcmp(argv[0], "verify"))
		return usage_error(c, "sync: '%s': status, verify, wait or keygen", argv[0]);
	snprintf(req, sizeof(req), "sync %s", argv[0]);
	if (find_volume(c, NULL) || query(c, req))
		return 1;
	if (c->json) {
		peers_json(c);
		return 0;
	}
	for (int i = 0; i < c->nrecs; i++) {
		const struct rec *rc = &c->recs[i];
		if (!strcmp(rc->kind, "sync") && rec_get(rc, "verify")[0])
			printf("verify %s for %s peer(s)\n", rec_get(rc, "verify"), rec_get(rc, "peers"));
		else if (!strcmp(rc->kind, "sync"))
			printf("role %s\n", rec_get(rc, "role"));
		else if (!strcmp(rc->kind, "peer"))
			show_peer(rc);
	}
	return 0;
}

/* ---- log --------------------------------------------------------------- */

/* The last n lines of path (and of path.1 when path has fewer): log lines
 * are at most ~1.2 KB, so the tail of the file suffices. Prints them as
 * text or as JSON strings; returns how many it found, or -errno. */
static int tail_file(const char *path, int n, int json, int *first)
{
	char rotated[4200];
	FILE *f = fopen(path, "r");
	int got = 0;

	if (!f)
		return -errno;
	off_t size = fseeko(f, 0, SEEK_END) ? -1 : ftello(f);
	off_t from = size > (off_t)n * 1300 ? size - (off_t)n * 1300 : 0;
	size_t len = size > 0 ? (size_t)(size - from) : 0;
	char *buf = malloc(len + 1), **lines = calloc((size_t)n, sizeof(*lines));
	if (size < 0 || !buf || !lines || fseeko(f, from, SEEK_SET) || fread(buf, 1, len, f) != len) {
		fclose(f);
		free(buf);
		free(lines);
		return -EIO;
	}
	fclose(f);
	buf[len] = '\0';
	/* walk back from the end over whole lines */
	char *end = buf + len;
	while (got < n && end > buf) {
		char *e = end[-1] == '\n' ? end - 1 : end, *s = e;
		while (s > buf && s[-1] != '\n')
			s--;
		if (s == buf && from > 0)
			break; /* a cut line */
		*e = '\0';
		lines[got++] = s;
		end = s;
	}
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	int older = got < n && access(rotated, R_OK) == 0 ? tail_file(rotated, n - got, json, first) : 0;
	for (int i = got - 1; i >= 0; i--) {
		if (json) {
			fputs(*first ? "" : ", ", stdout);
			json_str(stdout, lines[i]);
			*first = 0;
		} else {
			puts(lines[i]);
		}
	}
	free(buf);
	free(lines);
	return got + (older > 0 ? older : 0);
}

/* The log's destination from the config: for a dead daemon or -c. */
static int log_from_config(struct ctx *c, const char *file, struct rec *r, char *path, size_t len)
{
	static struct silt_config cfg;
	char err[4096];
	int e = silt_config_load(file, &cfg, err, sizeof(err));

	if (e)
		return fail(c, -e, "%s", err);
	struct silt_log_conf lc = { .file = cfg.log_file, .volume = cfg.name };
	rec_set(r, "destination", silt_log_dest_name(silt_log_resolve(&lc, 0, path, len)));
	rec_set(r, "path", path);
	static char ident[80];
	silt_log_ident(cfg.name, ident, sizeof(ident));
	rec_set(r, "ident", ident);
	return 0;
}

/* Where the volume logs: from its daemon, else from its config. */
static int log_where(struct ctx *c, const char *config, struct rec **out)
{
	static struct rec from_cfg;
	static char path[4096];

	*out = &from_cfg;
	if (config)
		return log_from_config(c, config, &from_cfg, path, sizeof(path));
	if (find_volume(c, NULL))
		return 1;
	if (client_request(c->sock, "status", &c->reply, NULL) == 0) {
		if (parse_reply(c) == 0 && (*out = recs_find(c->recs, c->nrecs, "log")))
			return 0;
	}
	if (!c->m.source[0])
		return fail(c, ENOTCONN, "no siltfs daemon answers on %s; use -c CONFIG", c->sock);
	fprintf(stderr, "siltctl: the daemon of %s is not running; its log, as %s sets it:\n", c->m.mnt,
		c->m.source);
	*out = &from_cfg;
	return log_from_config(c, c->m.source, &from_cfg, path, sizeof(path));
}

static int cmd_log(struct ctx *c, int argc, char **argv)
{
	const char *config = NULL;
	char *end;
	int n = 20, first = 1;
	struct rec *lr;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			n = (int)strtol(argv[++i], &end, 10);
			if (*end || n < 1 || n > 100000)
				return usage_error(c, "-n: a number of lines from 1 to 100000");
		} else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
			config = argv[++i];
		} else {
			return usage_error(c, "log: unexpected argument '%s'", argv[i]);
		}
	}
	if (log_where(c, config, &lr))
		return 1;
	const char *dest = rec_get(lr, "destination"), *path = rec_get(lr, "path"), *ident = rec_get(lr, "ident");
	if (!strcmp(dest, "syslog")) {
		if (!c->json && access("/run/systemd/journal/socket", F_OK) == 0) {
			char lines[16];
			snprintf(lines, sizeof(lines), "%d", n);
			execlp("journalctl", "journalctl", "-q", "--no-pager", "-n", lines, "-t", ident, (char *)NULL);
		}
		return fail(c, ENOENT, "the daemon logs to syslog as %s: read it where the syslog daemon writes "
			    "(journalctl -t %s, /var/log/syslog)", ident, ident);
	}
	if (strcmp(dest, "file"))
		return fail(c, ENOENT, "the daemon runs in the foreground and logs to its standard error");
	if (access(path, R_OK))
		return fail(c, errno, "%s: %s", path, strerror(errno));
	if (c->json) {
		printf("{\"destination\": \"file\", \"path\": ");
		json_str(stdout, path);
		printf(", \"lines\": [");
	}
	int r = tail_file(path, n, c->json, &first);
	if (c->json)
		printf("]}\n");
	if (r < 0)
		return c->json ? 1 : fail(c, -r, "%s: %s", path, strerror(-r));
	return 0;
}

/* ---- help -------------------------------------------------------------- */

static const struct command *lookup(const char *name)
{
	for (const struct command *k = commands; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

static void global_help(FILE *o)
{
	int w = 0;

	fprintf(o, "usage: siltctl [-m MOUNTPOINT | -s SOCKET] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (const struct command *k = commands; k->name; k++)
		w = MAX(w, (int)(strlen(k->name) + 1 + strlen(k->args)));
	for (const struct command *k = commands; k->name; k++) {
		char left[128];
		snprintf(left, sizeof(left), "%s%s%s", k->name, k->args[0] ? " " : "", k->args);
		fprintf(o, "  %-*s  %s\n", w, left, k->summary);
	}
	fprintf(o, "\noptions:\n"
		   "  -m MOUNTPOINT   the volume mounted there (default: the one holding FILE,\n"
		   "                  or the only siltfs volume mounted)\n"
		   "  -s SOCKET       the daemon's control socket\n"
		   "  --json, -j      JSON output, errors included\n"
		   "  --help, -h      this text; COMMAND --help: that command's\n"
		   "  --version       siltctl's version\n"
		   "  --list-commands the command names, one per line (for shell completion)\n"
		   "\nsee siltctl(8)\n");
}

static int cmd_help(struct ctx *c, int argc, char **argv)
{
	const struct command *k;

	if (!argc) {
		global_help(stdout);
		return 0;
	}
	if (!(k = lookup(argv[0])))
		return fail_as(c, 2, EINVAL, "help: unknown command '%s' (see siltctl help)", argv[0]);
	print_usage(stdout, k);
	printf("\n%s\n", k->help);
	return 0;
}

static const struct command commands[] = {
	{ "status", "[--json]", "the volume and its tiers (with --json also RAM, placement, log)",
	  "Shows the volume (name, uuid, mount point, chunk size, I/O counters) and\n"
	  "each tier: class, capacity, use, chunks, compression, state and path; a\n"
	  "failed tier says why on the line under it. --json adds the RAM budget,\n"
	  "the placement policy and migration counters, and where the daemon logs.",
	  0, 0, cmd_status },
	{ "where", "[--json] FILE", "which tier holds each chunk of FILE",
	  "Shows FILE's size, how many of its chunks are placed, and for every tier\n"
	  "of the volume how many chunks it holds and their index ranges (runs).",
	  1, 1, cmd_where },
	{ "heat", "[--json] FILE [--png OUT]", "how hot each range of FILE's chunks is, and where it lives",
	  "Shows FILE's chunks as runs of one tier and one heat level: the level\n"
	  "(0 cold to 4 hottest, by accesses per half-life), the highest heat in\n"
	  "the run, and whether the placement policy counts the run as hot (it\n"
	  "then belongs on the fast tiers). With --png, draws them into the PNG\n"
	  "file OUT instead: a cell per chunk, row after row, a colour per tier,\n"
	  "brighter the hotter, holes dark grey (the line printed gives the\n"
	  "layout and the colours).",
	  1, 3, cmd_heat },
	{ "policy", "[--json] [NAME | rule add NAME match=GLOB [KEY=VALUE...] | rule rm NAME]",
	  "show the placement policy and rules, change the policy, add or remove a rule live",
	  "Without NAME, shows the placement policy, the migration engine's state\n"
	  "and counters, and the placement rules in the order they are tried (each\n"
	  "with its tiers, weight, and whether it comes from the config or was\n"
	  "added live). With NAME (lru, arc, s3fifo, lirs, lfu, ...), the policy\n"
	  "changes at once (it starts cold: it learns the heat again); a name the\n"
	  "daemon cannot run online is refused and nothing changes.\n"
	  "\n"
	  "rule add NAME match=GLOB [pin=TIER] [min_tier=TIER] [max_tier=TIER]\n"
	  "[weight=1..100] [compress=no] adds a placement rule live, with the keys\n"
	  "of a [rule NAME] config section: it is kept in the volume's metadata\n"
	  "(it survives a remount), applies at once to the files already there\n"
	  "(the migration engine moves their chunks into it), and is tried before\n"
	  "the config's rules; one named like a config rule hides it until it is\n"
	  "removed. rule rm NAME removes a live rule (config rules are changed in\n"
	  "the config). A bad key, glob, tier or weight, a name already taken by a\n"
	  "live rule, or more than 32 rules in all is refused and nothing changes.\n"
	  "weight = N makes the file's chunks N times as hot to the placement\n"
	  "policy, so they win the fast tiers over others used alike. Every change\n"
	  "is recorded in the event log.",
	  0, 64, cmd_policy },
	{ "migrate", "[policy|churn|off] [--json]", "run one migration epoch now, or set the mode",
	  "Without an argument, runs one epoch of the migration engine now (the\n"
	  "placer's moves, carried out before the command returns) and shows how\n"
	  "many chunks moved. With a mode, sets it until the next mount: policy\n"
	  "(the default), churn (every chunk to another tier each epoch: a test\n"
	  "mode) or off.",
	  0, 1, cmd_migrate },
	{ "scrub", "[start|cancel|status] [--json]", "verify every checksummed chunk",
	  "Without an argument, starts a pass over every chunk that carries a\n"
	  "checksum (those on hdd and net tiers, and compressed ones), or joins the\n"
	  "one running, follows it (a progress bar on a terminal) and reports what\n"
	  "it found; exit status 1 when a chunk is damaged or unreadable (siltctl\n"
	  "events names them). start begins a pass in the background, cancel stops\n"
	  "it, status shows its progress.",
	  0, 1, cmd_scrub },
	{ "events", "[-n N] [--json]", "the volume's event log",
	  "Shows the last N (default 50) events, oldest first: checksum errors,\n"
	  "tier failures, policy changes, scrub results. The log is kept in the\n"
	  "volume's metadata (the last 1000 events).",
	  0, 2, cmd_events },
	{ "tiers", "[--json]", "each tier's state (active, evacuating, evacuated, failed) and use",
	  "Shows each tier's state: active; evacuating (siltctl evacuate is moving\n"
	  "its chunks off it, and it takes no new ones); evacuated (it holds\n"
	  "nothing and takes nothing until the evacuation is cancelled); failed\n"
	  "(an I/O error made the daemon stop using it; the reason is under its\n"
	  "row). A state other than active survives a remount.",
	  0, 0, cmd_tiers },
	{ "evacuate", "[--cancel|--status|--no-wait] [--json] TIER", "move every chunk off TIER",
	  "Moves every chunk off TIER to the other tiers (the nearest in speed\n"
	  "first, pinned files' to their tier when it has room) while the volume\n"
	  "stays in use, and follows the evacuation to its end (a progress bar on\n"
	  "a terminal). Refused before anything moves when the other tiers cannot\n"
	  "hold TIER's chunks, when TIER failed or when another tier is being\n"
	  "evacuated. TIER takes no new chunks from the start; once empty it is\n"
	  "evacuated and stays so, across remounts, until --cancel, which also\n"
	  "stops an evacuation under way (the chunks moved so far stay where they\n"
	  "went). An evacuation interrupted by an unmount resumes at the next\n"
	  "mount; running the command again joins it. --no-wait starts it and\n"
	  "returns; --status says where it is. Exit status 1 when it stopped\n"
	  "before TIER was empty.",
	  1, 2, cmd_evacuate },
	{ "pin", "[--json] FILE TIER", "keep FILE's chunks on TIER",
	  "Pins FILE to TIER: its new chunks go there while TIER has room (else\n"
	  "to another tier, and back later), and the migration engine moves its\n"
	  "other chunks there as room allows; the placement policy no longer\n"
	  "moves them. The pin is kept in the volume's metadata: it survives a\n"
	  "remount and goes when the file is deleted. A new pin replaces the old.",
	  2, 2, cmd_pin },
	{ "unpin", "[--json] FILE", "undo siltctl pin", "FILE's chunks are placed by the policy again.", 1, 1,
	  cmd_unpin },
	{ "pins", "[--json]", "the pinned files (by inode) and their tiers",
	  "Lists the pinned files by inode number (find -inum finds their names)\n"
	  "and the tier each is pinned to.",
	  0, 0, cmd_pins },
	{ "metrics", "[--json]", "the volume's counters in Prometheus's text format",
	  "Prints the volume's metrics in Prometheus's text exposition format: I/O\n"
	  "requests, bytes, errors and latency histograms, tiers (capacity, use,\n"
	  "chunks, state), the RAM tier, migrations, checksum errors by tier,\n"
	  "the scrubber, events by kind. Every sample carries a volume label. For\n"
	  "node_exporter's textfile collector: siltctl metrics > DIR/vm.prom.$$ &&\n"
	  "mv DIR/vm.prom.$$ DIR/vm.prom. --json prints the same samples as JSON.",
	  0, 0, cmd_metrics },
	{ "log", "[-n LINES] [-c CONFIG] [--json]", "the last lines of the daemon's log",
	  "Shows the last LINES (default 20) lines of the daemon's log file, also\n"
	  "after the daemon died (the mount's config names the file). With -c, the\n"
	  "log of the volume of CONFIG, mounted or not. A daemon that logs to\n"
	  "syslog is shown through journalctl; one in the foreground logs to its\n"
	  "standard error.",
	  0, 4, cmd_log },
	{ "sync", "status|verify|keygen [--json] | wait [PEER] [--timeout SECONDS]",
	  "replication: the peers' state, a verify, a key pair, waiting for a sync",
	  "status shows each replication peer: its role, state (connecting,\n"
	  "full-sync, streaming, refused, ...), lag, the last batch acknowledged or\n"
	  "applied, the journal's entries, the dirty set and the full sync's\n"
	  "progress. verify compares the chunk checksum trees of both sides now and\n"
	  "ships what differs. keygen prints a new key pair for [sync] private_key\n"
	  "and a peer's public_key (no volume needed). wait (on a primary) follows\n"
	  "PEER (default: every peer) until it is caught up: live, no full sync or\n"
	  "resync left, every cut batch acknowledged; a progress bar of the full\n"
	  "sync or resync (chunks done of total, and the rate) on a terminal, else\n"
	  "a plain line when it changes. Exit status 1 when the peer refuses us, or\n"
	  "when it is not caught up after --timeout SECONDS.",
	  1, 4, cmd_sync },
	{ "replica", "promote|discard-local|keep-separate [--json]", "a replica's fate: promote it, or settle a split brain",
	  "promote: the replica stops receiving and becomes a primary: unmount it\n"
	  "and mount it read-write with its own [peer] sections (its numbering goes\n"
	  "on from the last batch it applied). An old primary that comes back with\n"
	  "writes of its own is then a split brain: both sides refuse each other\n"
	  "and nothing is applied, until the operator decides on the side that\n"
	  "gives way: discard-local forgets this volume's own changes since the\n"
	  "split (the next connection brings a full sync from the peer),\n"
	  "keep-separate keeps it as it is and refuses the peer from now on.",
	  1, 1, cmd_replica },
	{ "help", "[COMMAND]", "this list, or what COMMAND does",
	  "Without COMMAND, lists the commands and options; with it, its usage and\n"
	  "what it does (the same as siltctl COMMAND --help).",
	  0, 1, cmd_help },
	{ 0 } };

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct ctx c = { 0 };
	char *args[MAX_ARGS];
	const char *name = NULL;
	int nargs = 0, want_help = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-m") || !strcmp(a, "-s")) && i + 1 < argc)
			*(a[1] == 'm' ? &c.mnt_arg : &c.sock_arg) = argv[++i];
		else if (!strcmp(a, "--json") || !strcmp(a, "-j"))
			c.json = 1;
		else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			want_help = 1;
		else if (!strcmp(a, "--version") || !strcmp(a, "-V"))
			return printf("siltctl %s\n", SILT_VERSION) < 0;
		else if (!strcmp(a, "--list-commands")) {
			for (const struct command *k = commands; k->name; k++)
				puts(k->name);
			return 0;
		} else if (!name && a[0] == '-')
			return usage_error(&c, "unknown option '%s'", a);
		else if (!name)
			name = a;
		else if (nargs < MAX_ARGS)
			args[nargs++] = argv[i];
		else
			return usage_error(&c, "too many arguments");
	}
	if (!name && want_help) {
		global_help(stdout);
		return 0;
	}
	if (!name) {
		if (!c.json)
			global_help(stderr);
		return fail_as(&c, 2, EINVAL, "no command given");
	}
	if (!(c.cmd = lookup(name)))
		return fail_as(&c, 2, EINVAL, "unknown command '%s' (see siltctl help)", name);
	if (want_help)
		return cmd_help(&c, 1, (char **)&c.cmd->name);
	if (nargs < c.cmd->min_args || nargs > c.cmd->max_args)
		return usage_error(&c, "%s: %s", name, nargs < c.cmd->min_args ? "missing argument" : "too many arguments");
	int r = c.cmd->run(&c, nargs, args);
	free(c.reply);
	free(c.recs);
	return r;
}
