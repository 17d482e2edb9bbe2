/* Placement rules (rules.h).
 *
 *   struct rule    a compiled rule: its glob (below the volume root, no
 *                  leading '/'; '*' also matches '/'), the tier ids it
 *                  allows, its weight, where it comes from (a config line,
 *                  or live), how many namings it matched since it changed
 *   struct dir     a directory's parent and name, in a chained hash by
 *                  inode: enough to spell any file's path
 *
 * A file follows the first rule whose glob matches its path (fnmatch
 * without FNM_PATHNAME): the live rules first, in the order of their
 * names, then the config's, in its order; a live rule hides the config's
 * rule of the same name. Its bound keeps the rule's index next to any pin
 * (tiers/bounds.h), so that an unpin falls back to the rule; its weight
 * goes to the heat (predictor/heat.h). Config rules are matched again at
 * every mount; live rules are records in the store (CF_FACTS "rule/" |
 * name -> the rule's "key=value ..." text, as siltctl sends it), written
 * through the commit point and loaded at mount. A live change recompiles
 * the list and matches every file again, under ns_lock. */
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

#define RULE_KEY_MAX (sizeof(K_RULE_PREFIX) - 1 + SILT_NAME_MAX)
#define RULE_TEXT_MAX 1024

struct rule {
	char name[SILT_NAME_MAX];
	char glob[SILT_GLOB_MAX];
	uint8_t allowed;
	unsigned weight;
	int line;           /* its line in the config, 0 for a live rule */
	int overrides;      /* a live rule hiding the config's of its name */
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
	int nlive;                                  /* the store's, by name */
	struct silt_rule_conf live[SILT_MAX_RULES];
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

/* File ino is called path now (or the rules changed: force): the rule it
 * follows into its bound, the rule's weight into its heat. */
static void match_file(struct silt_vol *v, uint64_t ino, const char *path, int force)
{
	struct silt_rules *rs = v->rules;
	struct file_bound fb = { .allowed = BOUND_ALL, .pin = -1, .rule = -1 };
	int r = first_match(rs, path);

	bounds_get(v->bounds, ino, &fb);
	if (r == fb.rule && !force)
		return;
	fb.rule = (int8_t)r;
	if (fb.pin < 0)
		fb.allowed = rules_allowed(v, r);
	if (r >= 0)
		rs->rule[r].matched++;
	if (bounds_set(v->bounds, ino, &fb) || heat_set_weight(v->heat, ino, r >= 0 ? rs->rule[r].weight : 1))
		log_warn("inode %llu (%s): out of memory for its placement rule", (unsigned long long)ino, path);
}

/* Every file and directory below dir ino (just named, or the root at
 * mount), from the store: directories into the tree, files matched. */
static int walk(struct silt_vol *v, uint64_t top, int force)
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
				match_file(v, dv.ino, file, force);
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

static int live_index(const struct silt_rules *rs, const char *name)
{
	for (int i = 0; i < rs->nlive; i++)
		if (!strcmp(rs->live[i].name, name))
			return i;
	return -1;
}

static int config_index(const struct silt_vol *v, const char *name)
{
	for (int i = 0; i < v->cfg.nrules; i++)
		if (!strcmp(v->cfg.rules[i].name, name))
			return i;
	return -1;
}

/* How many rules there are with these live ones: each hides its config namesake. */
static int rules_count(const struct silt_vol *v, const struct silt_rules *rs)
{
	int n = rs->nlive;

	for (int i = 0; i < v->cfg.nrules; i++)
		n += live_index(rs, v->cfg.rules[i].name) < 0;
	return n;
}

static void compile_one(struct silt_vol *v, struct rule *r, const struct silt_rule_conf *c)
{
	snprintf(r->name, sizeof(r->name), "%s", c->name);
	snprintf(r->glob, sizeof(r->glob), "%s", c->match + (c->match[0] == '/'));
	r->allowed = compile_tiers(v, c);
	r->weight = c->weight > 1 ? (unsigned)c->weight : 1;
	r->line = c->line;
	r->overrides = !c->line && config_index(v, c->name) >= 0;
	r->matched = 0;
}

/* The list from the live rules and the config's (rules_count of them). */
static void compile_all(struct silt_vol *v, struct silt_rules *rs)
{
	int n = 0;

	for (int i = 0; i < rs->nlive; i++)
		compile_one(v, &rs->rule[n++], &rs->live[i]);
	for (int i = 0; i < v->cfg.nrules && n < SILT_MAX_RULES; i++)
		if (live_index(rs, v->cfg.rules[i].name) < 0)
			compile_one(v, &rs->rule[n++], &v->cfg.rules[i]);
	rs->n = n;
}

/* A rule from its "key=value ..." text (values %-escaped), checked against
 * the volume's tiers; text is consumed. */
static int rule_parse(struct silt_vol *v, struct silt_rule_conf *c, const char *name, char *text, char *why,
		      size_t len)
{
	char *save = NULL;

	silt_rule_init(c, name);
	for (char *tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			snprintf(why, len, "rule %s: '%s' is not KEY=VALUE", name, tok);
			return -EINVAL;
		}
		*eq = '\0';
		char what[512];
		if (silt_rule_key(c, tok, silt_pct_unescape(eq + 1), what, sizeof(what))) {
			snprintf(why, len, "rule %s: %s", name, what);
			return -EINVAL;
		}
	}
	return silt_rule_check(&v->cfg, c, why, len);
}

/* The rule's text as rule_parse reads it (and as the store keeps it). */
static void rule_text(const struct silt_rule_conf *c, char *out, size_t len)
{
	FILE *o = fmemopen(out, len, "w");
	const char *keys[3] = { "pin", "min_tier", "max_tier" }, *vals[3] = { c->pin, c->min_tier, c->max_tier };

	if (!o) {
		out[0] = '\0';
		return;
	}
	fprintf(o, "match=");
	silt_pct_put(o, c->match);
	for (int i = 0; i < 3; i++)
		if (vals[i][0])
			fprintf(o, " %s=%s", keys[i], vals[i]);
	if (c->weight > 1)
		fprintf(o, " weight=%d", c->weight);
	if (!c->compress)
		fprintf(o, " compress=no");
	fclose(o);
}

/* The store's live rules into rs; one that no longer fits the config (a
 * tier it names is gone) is skipped, with a warning. */
static int load_live(struct silt_vol *v, struct silt_rules *rs)
{
	size_t pl = sizeof(K_RULE_PREFIX) - 1;
	struct meta_iter *it = meta_iter_new(v->meta, CF_FACTS, K_RULE_PREFIX, pl);
	const char *k, *val;
	size_t kl, vl;
	int r;

	if (!it)
		return -ENOMEM;
	while ((r = meta_iter_next(it, &k, &kl, &val, &vl)) == 1 && rs->nlive < SILT_MAX_RULES) {
		char name[SILT_NAME_MAX], text[RULE_TEXT_MAX], why[512];
		if (kl <= pl || kl - pl >= sizeof(name) || vl >= sizeof(text))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(kl - pl), k + pl);
		snprintf(text, sizeof(text), "%.*s", (int)vl, val);
		if (rule_parse(v, &rs->live[rs->nlive], name, text, why, sizeof(why)))
			log_warn("live placement rule %s is not applied: %s (siltctl policy rule rm %s drops it)",
				 name, why, name);
		else
			rs->nlive++;
	}
	meta_iter_free(it);
	return r < 0 ? r : 0;
}

static struct silt_rules *rules_new(void)
{
	struct silt_rules *rs = calloc(1, sizeof(*rs));

	if (rs)
		pthread_mutex_init(&rs->lock, NULL);
	return rs;
}

int rules_open(struct silt_vol *v, char *err, size_t errlen)
{
	struct silt_rules *rs = rules_new();
	int r;

	if (!rs)
		return -ENOMEM;
	if ((r = load_live(v, rs))) {
		snprintf(err, errlen, "placement rules: cannot read the live rules: %s", strerror(-r));
		pthread_mutex_destroy(&rs->lock);
		free(rs);
		return r;
	}
	if (!v->cfg.nrules && !rs->nlive) {
		pthread_mutex_destroy(&rs->lock);
		free(rs); /* no rules: no directory tree */
		return 0;
	}
	compile_all(v, rs);
	v->rules = rs;
	if ((r = walk(v, SILT_ROOT_INO, 0))) {
		snprintf(err, errlen, "placement rules: cannot walk the namespace: %s", strerror(-r));
		rules_close(v);
		return r;
	}
	for (int i = 0; i < rs->n; i++)
		log_info("rule %s (%s%s): %llu files", rs->rule[i].name, rs->rule[i].glob,
			 rs->rule[i].line ? "" : ", live", (unsigned long long)rs->rule[i].matched);
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
			r = walk(v, ino, 0); /* their paths changed with it */
	} else if (!dir_path(rs, parent, path, sizeof(path))) {
		snprintf(file, sizeof(file), "%s%s%s", path, path[0] ? "/" : "", name);
		match_file(v, ino, file, 0);
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

/* "rule name= match= tiers= weight= from= line= overrides= matched=" (rs->lock held). */
static void put_rule(struct silt_vol *v, const struct rule *r, FILE *o)
{
	int first = 1;

	fprintf(o, "rule name=");
	ctl_put_value(o, r->name);
	fprintf(o, " match=");
	ctl_put_value(o, r->glob);
	fprintf(o, " tiers=");
	for (int t = 0; t < v->ntiers; t++)
		if (r->allowed & (1u << tier_id(v->tiers[t]))) {
			fprintf(o, "%s", first ? "" : ",");
			ctl_put_value(o, tier_name(v->tiers[t]));
			first = 0;
		}
	fprintf(o, "%s weight=%u from=%s line=%d overrides=%s matched=%llu\n", first ? "-" : "", r->weight,
		r->line ? "config" : "live", r->line, r->overrides ? "yes" : "no", (unsigned long long)r->matched);
}

void rules_report(struct silt_vol *v, FILE *o)
{
	struct silt_rules *rs = __atomic_load_n(&v->rules, __ATOMIC_ACQUIRE);

	if (!rs)
		return;
	pthread_mutex_lock(&rs->lock);
	for (int i = 0; i < rs->n; i++)
		put_rule(v, &rs->rule[i], o);
	pthread_mutex_unlock(&rs->lock);
}

/* The live rules changed (rs->lock and ns_lock held): recompile, match
 * every file again, mark their bounds for the placer. */
static int rematch(struct silt_vol *v, struct silt_rules *rs)
{
	compile_all(v, rs);
	if (!v->rules)
		__atomic_store_n(&v->rules, rs, __ATOMIC_RELEASE);
	return walk(v, SILT_ROOT_INO, 1);
}

/* Write (text) or delete (NULL) the live rule name through the commit point. */
static int store_rule(struct silt_vol *v, const char *name, const char *text)
{
	uint8_t key[RULE_KEY_MAX];
	size_t kl = sizeof(K_RULE_PREFIX) - 1, nl = strlen(name);
	struct meta_batch *b = meta_batch_new();
	int r;

	if (!b)
		return -ENOMEM;
	memcpy(key, K_RULE_PREFIX, kl);
	memcpy(key + kl, name, nl);
	if (text)
		meta_put(b, v->meta, CF_FACTS, key, kl + nl, text, strlen(text));
	else
		meta_del(b, v->meta, CF_FACTS, key, kl + nl);
	r = vol_commit(v, b, 1, CHANGE_PLACEMENT, 0, 0, 0);
	meta_batch_free(b);
	return r;
}

static int valid_rule_name(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n < SILT_NAME_MAX &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* What is wrong with adding rule c to rs: 0, or an errno and why. */
static int add_problem(struct silt_vol *v, struct silt_rules *rs, const struct silt_rule_conf *c, char *why,
		       size_t len)
{
	if (live_index(rs, c->name) >= 0) {
		snprintf(why, len, "rule %s exists already (a live rule): siltctl policy rule rm %s first", c->name,
			 c->name);
		return -EEXIST;
	}
	rs->nlive++; /* counted with it */
	int n = rules_count(v, rs);
	rs->nlive--;
	if (n > SILT_MAX_RULES) {
		snprintf(why, len, "rule %s: too many rules (at most %d, config and live together)", c->name,
			 SILT_MAX_RULES);
		return -E2BIG;
	}
	return 0;
}

static int rule_add(struct silt_vol *v, struct silt_rules *rs, const char *name, char *args, FILE *o, char *why,
		    size_t len)
{
	struct silt_rule_conf c;
	char text[RULE_TEXT_MAX];
	int r;

	if ((r = rule_parse(v, &c, name, args, why, len)) || (r = add_problem(v, rs, &c, why, len)))
		return r;
	rule_text(&c, text, sizeof(text));
	if ((r = store_rule(v, name, text)))
		return r;
	rs->live[rs->nlive++] = c;
	for (int i = rs->nlive - 1; i > 0 && strcmp(rs->live[i - 1].name, name) > 0; i--) {
		rs->live[i] = rs->live[i - 1]; /* by name, as the store has them */
		rs->live[i - 1] = c;
	}
	r = rematch(v, rs);
	log_info("live placement rule %s added: %s", name, text);
	vol_event(v, EVENT_POLICY, "placement rule %s added: %s", name, text);
	for (int i = 0; i < rs->n; i++)
		if (!rs->rule[i].line && !strcmp(rs->rule[i].name, name))
			put_rule(v, &rs->rule[i], o);
	return r;
}

static int rule_rm(struct silt_vol *v, struct silt_rules *rs, const char *name, char *why, size_t len)
{
	int i = rs ? live_index(rs, name) : -1, c = config_index(v, name), r;

	if (i < 0 && c >= 0)
		snprintf(why, len, "rule %s comes from the config (%s:%d): change it there and remount", name,
			 v->cfg.file, v->cfg.rules[c].line);
	else if (i < 0)
		snprintf(why, len, "no rule %s (siltctl policy lists them)", name);
	if (i < 0)
		return c >= 0 ? -EPERM : -ENOENT;
	if ((r = store_rule(v, name, NULL)))
		return r;
	memmove(&rs->live[i], &rs->live[i + 1], (size_t)(rs->nlive - i - 1) * sizeof(rs->live[0]));
	rs->nlive--;
	r = rematch(v, rs);
	log_info("live placement rule %s removed%s", name, c >= 0 ? ": the config's rule of that name again" : "");
	vol_event(v, EVENT_POLICY, "placement rule %s removed", name);
	return r;
}

int rules_live(struct silt_vol *v, const char *req, FILE *o, char *why, size_t len)
{
	char buf[RULE_TEXT_MAX], *save = NULL;
	int r;

	if (strlen(req) >= sizeof(buf)) {
		snprintf(why, len, "the rule is too long (at most %zu characters)", sizeof(buf) - 1);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", req);
	char *verb = strtok_r(buf, " ", &save), *name = strtok_r(NULL, " ", &save), *args = save ? save : "";
	if (!verb || !name || (strcmp(verb, "add") && strcmp(verb, "rm")) || !valid_rule_name(name)) {
		snprintf(why, len, "expected: rule add NAME match=GLOB [KEY=VALUE...] or rule rm NAME, NAME of "
			 "1-%d characters of [A-Za-z0-9._-]", SILT_NAME_MAX - 1);
		return -EINVAL;
	}
	pthread_mutex_lock(&v->ns_lock); /* the namespace hooks match under it */
	struct silt_rules *rs = v->rules ? v->rules : verb[0] == 'a' ? rules_new() : NULL;
	if (!rs && verb[0] == 'a') {
		pthread_mutex_unlock(&v->ns_lock);
		return -ENOMEM;
	}
	if (rs)
		pthread_mutex_lock(&rs->lock);
	r = verb[0] == 'a' ? rule_add(v, rs, name, args, o, why, len) : rule_rm(v, rs, name, why, len);
	if (rs)
		pthread_mutex_unlock(&rs->lock);
	if (rs && !v->rules) { /* a first rule refused: nothing to keep */
		pthread_mutex_destroy(&rs->lock);
		free(rs);
	}
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}

int rules_reload(struct silt_vol *v)
{
	int r;

	pthread_mutex_lock(&v->ns_lock); /* the namespace hooks match under it */
	struct silt_rules *rs = v->rules ? v->rules : rules_new();
	if (!rs) {
		pthread_mutex_unlock(&v->ns_lock);
		return -ENOMEM;
	}
	pthread_mutex_lock(&rs->lock);
	rs->nlive = 0;
	if (!(r = load_live(v, rs)) && (v->rules || rs->nlive))
		r = rematch(v, rs);
	pthread_mutex_unlock(&rs->lock);
	if (!v->rules) { /* none before, none now */
		pthread_mutex_destroy(&rs->lock);
		free(rs);
	}
	pthread_mutex_unlock(&v->ns_lock);
	return r;
}
