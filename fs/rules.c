/* Placement rules (rules.h).
 *
 *   struct rule    a compiled [rule NAME]: its glob (below the volume root,
 *                  no leading '/'; '*' also matches '/'), the tier ids it
 *                  allows, how many namings it matched since mount
 *   struct dir     a directory's parent and name, in a chained hash by
 *                  inode: enough to spell any file's path
 *
 * A file follows the first rule, in the config's order, whose glob matches
 * its path (fnmatch without FNM_PATHNAME). Its bound keeps the rule's
 * index next to any pin (tiers/bounds.h), so that an unpin falls back to
 * the rule. Rules come from the config and are matched again at every
 * mount: nothing about them is stored. */
#include "fs/rules.h"
#include "fs/ctl.h"
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#define DIR_BUCKETS 4096
#define PATH_MAX_LEN 4096

struct rule {
	const char *name;
	char glob[SILT_GLOB_MAX];
	uint8_t allowed;
	uint64_t matched;
};

struct dir {
	uint64_t ino, parent;
	struct dir *next;
	char name[];
};

struct silt_rules {
	pthread_mutex_t lock;
	int n;
	struct rule rule[SILT_MAX_RULES];
	struct dir *bucket[DIR_BUCKETS];
};

static struct dir **slot(struct silt_rules *rs, uint64_t ino)
{
	struct dir **p = &rs->bucket[(ino * 0x9E3779B97F4A7C15ull) >> 52];
	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

static int dir_set(struct silt_rules *rs, uint64_t ino, uint64_t parent, const char *name)
{
	struct dir **p = slot(rs, ino), *d = malloc(sizeof(*d) + strlen(name) + 1);

	if (!d)
		return -ENOMEM;
	d->ino = ino;
	d->parent = parent;
	strcpy(d->name, name);
	d->next = *p ? (*p)->next : NULL;
	free(*p);
	*p = d;
	return 0;
}

/* The path of directory ino below the root ("" for the root itself). */
static int dir_path(struct silt_rules *rs, uint64_t ino, char *out, size_t len)
{
	const char *names[256];
	int depth = 0;
	size_t at = 0;

	for (; ino != SILT_ROOT_INO; depth++) {
		struct dir *d = *slot(rs, ino);
		if (!d || depth == 256)
			return -ENOENT;
		names[depth] = d->name;
		ino = d->parent;
	}
	out[0] = '\0';
	while (depth--) {
		int n = snprintf(out + at, len - at, "%s%s", at ? "/" : "", names[depth]);
		if (n < 0 || (size_t)n >= len - at)
			return -ENAMETOOLONG;
		at += (size_t)n;
	}
	return 0;
}

static int first_match(struct silt_rules *rs, const char *path)
{
	for (int i = 0; i < rs->n; i++)
		if (fnmatch(rs->rule[i].glob, path, 0) == 0)
			return i;
	return -1;
}

/* File ino is called path now: the rule it follows into its bound. */
static void match_file(struct silt_vol *v, uint64_t ino, const char *path)
{
	struct silt_rules *rs = v->rules;
	struct file_bound fb = { .allowed = BOUND_ALL, .pin = -1, .rule = -1 };
	int r = first_match(rs, path);

	bounds_get(v->bounds, ino, &fb);
	if (r == fb.rule)
		return;
	fb.rule = (int8_t)r;
	if (fb.pin < 0)
		fb.allowed = rules_allowed(v, r);
	if (r >= 0)
		rs->rule[r].matched++;
	if (bounds_set(v->bounds, ino, &fb))
		log_warn("inode %llu (%s): out of memory for its placement rule", (unsigned long long)ino, path);
}

/* Every file and directory below dir ino (just named, or the root at
 * mount), from the store: directories into the tree, files matched. */
static int walk(struct silt_vol *v, uint64_t top)
{
	struct silt_rules *rs = v->rules;
	uint64_t *queue = malloc(64 * sizeof(*queue));
	size_t head = 0, tail = 0, cap = 64;
	char path[PATH_MAX_LEN], file[PATH_MAX_LEN + 256];
	int r = 0;

	if (!queue)
		return -ENOMEM;
	queue[tail++] = top;
	while (head < tail && !r) {
		uint64_t dir = queue[head++];
		uint8_t key[8];
		const char *k, *val;
		size_t kl, vl;
		if (dir_path(rs, dir, path, sizeof(path)))
			continue; /* (too deep to spell: not matched) */
		silt_put_be64(key, dir);
		struct meta_iter *it = meta_iter_new(v->meta, CF_DENTRIES, key, 8);
		if (!it) {
			r = -ENOMEM;
			break;
		}
		while (!r && (r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1) {
			r = 0;
			if (kl <= 8 || vl < sizeof(struct dent_val))
				continue;
			struct dent_val dv;
			memcpy(&dv, val, sizeof(dv));
			snprintf(file, sizeof(file), "%s%s%.*s", path, path[0] ? "/" : "", (int)(kl - 8), k + 8);
			if (S_ISREG(dv.mode)) {
				match_file(v, dv.ino, file);
			} else if (S_ISDIR(dv.mode)) {
				char name[256];
				snprintf(name, sizeof(name), "%.*s", (int)MIN(kl - 8, 255), k + 8);
				if ((r = dir_set(rs, dv.ino, dir, name)))
					break;
				if (tail == cap) {
					uint64_t *nq = realloc(queue, 2 * cap * sizeof(*nq));
					if (!nq) {
						r = -ENOMEM;
						break;
					}
					queue = nq;
					cap *= 2;
				}
				queue[tail++] = dv.ino;
			}
		}
		meta_iter_free(it);
	}
	free(queue);
	return r < 0 ? r : 0;
}

/* The tier ids a rule allows: from its fastest to its slowest tier, the
 * compressed ones only if it may compress. */
static uint8_t compile_tiers(struct silt_vol *v, const struct silt_rule_conf *c)
{
	int lo = 0, hi = v->ntiers - 1;
	uint8_t mask = 0;

	if (c->pin[0])
		lo = hi = silt_config_tier_index(&v->cfg, c->pin);
	if (c->max_tier[0])
		lo = silt_config_tier_index(&v->cfg, c->max_tier);
	if (c->min_tier[0])
		hi = silt_config_tier_index(&v->cfg, c->min_tier);
	for (int i = lo; i <= hi && i >= 0; i++)
		if (c->compress || !v->cfg.tiers[i].zstd_level)
			mask |= (uint8_t)(1u << tier_id(v->tiers[i]));
	return mask;
}

int rules_open(struct silt_vol *v, char *err, size_t errlen)
{
	struct silt_rules *rs;
	int r;

	if (!v->cfg.nrules)
		return 0;
	if (!(rs = calloc(1, sizeof(*rs))))
		return -ENOMEM;
	pthread_mutex_init(&rs->lock, NULL);
	for (int i = 0; i < v->cfg.nrules; i++) {
		const struct silt_rule_conf *c = &v->cfg.rules[i];
		rs->rule[i].name = c->name;
		snprintf(rs->rule[i].glob, sizeof(rs->rule[i].glob), "%s", c->match + (c->match[0] == '/'));
		rs->rule[i].allowed = compile_tiers(v, c);
	}
	rs->n = v->cfg.nrules;
	v->rules = rs;
	if ((r = walk(v, SILT_ROOT_INO))) {
		snprintf(err, errlen, "placement rules: cannot walk the namespace: %s", strerror(-r));
		rules_close(v);
		return r;
	}
	for (int i = 0; i < rs->n; i++)
		log_info("rule %s (%s): %llu files", rs->rule[i].name, rs->rule[i].glob,
			 (unsigned long long)rs->rule[i].matched);
	return 0;
}

void rules_close(struct silt_vol *v)
{
	struct silt_rules *rs = v->rules;

	if (!rs)
		return;
	for (int b = 0; b < DIR_BUCKETS; b++)
		for (struct dir *d = rs->bucket[b], *n; d; d = n) {
			n = d->next;
			free(d);
		}
	pthread_mutex_destroy(&rs->lock);
	free(rs);
	v->rules = NULL;
}

uint8_t rules_allowed(struct silt_vol *v, int r)
{
	return v->rules && r >= 0 && r < v->rules->n ? v->rules->rule[r].allowed : BOUND_ALL;
}

void rules_named(struct silt_vol *v, uint64_t parent, const char *name, uint64_t ino, mode_t mode)
{
	struct silt_rules *rs = v->rules;
	char path[PATH_MAX_LEN], file[PATH_MAX_LEN + 256];
	int r = 0;

	if (!rs || (!S_ISREG(mode) && !S_ISDIR(mode)))
		return;
	pthread_mutex_lock(&rs->lock);
	if (S_ISDIR(mode)) {
		int known = *slot(rs, ino) != NULL; /* renamed, not made: it has files */
		if (!(r = dir_set(rs, ino, parent, name)) && known)
			r = walk(v, ino); /* their paths changed with it */
	} else if (!dir_path(rs, parent, path, sizeof(path))) {
		snprintf(file, sizeof(file), "%s%s%s", path, path[0] ? "/" : "", name);
		match_file(v, ino, file);
	}
	pthread_mutex_unlock(&rs->lock);
	if (r)
		log_warn("placement rules: inode %llu (%s): %s; its files keep the rules they had",
			 (unsigned long long)ino, name, strerror(-r));
}

void rules_dir_gone(struct silt_vol *v, uint64_t ino)
{
	struct silt_rules *rs = v->rules;

	if (!rs)
		return;
	pthread_mutex_lock(&rs->lock);
	struct dir **p = slot(rs, ino), *d = *p;
	if (d) {
		*p = d->next;
		free(d);
	}
	pthread_mutex_unlock(&rs->lock);
}

void rules_report(struct silt_vol *v, FILE *o)
{
	struct silt_rules *rs = v->rules;

	if (!rs)
		return;
	pthread_mutex_lock(&rs->lock);
	for (int i = 0; i < rs->n; i++) {
		fprintf(o, "rule name=");
		ctl_put_value(o, rs->rule[i].name);
		fprintf(o, " match=");
		ctl_put_value(o, rs->rule[i].glob);
		fprintf(o, " tiers=");
		int first = 1;
		for (int t = 0; t < v->ntiers; t++)
			if (rs->rule[i].allowed & (1u << tier_id(v->tiers[t]))) {
				fprintf(o, "%s", first ? "" : ",");
				ctl_put_value(o, tier_name(v->tiers[t]));
				first = 0;
			}
		fprintf(o, "%s matched=%llu\n", first ? "-" : "", (unsigned long long)rs->rule[i].matched);
	}
	pthread_mutex_unlock(&rs->lock);
}
