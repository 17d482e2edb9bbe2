/* Configuration parser.
 *
 * libinih does the lexing; we feed it through our own reader so that every
 * handler call knows its line number, and report the first problem as
 * "file:line: what is wrong". Validation that needs the whole file (a tier
 * without a path, watermarks out of order) names the line of the section.
 *
 * The reader also cleans each line before inih sees it, because inih's own
 * rules let mistakes through silently or misreport them: an indented line
 * would be a continuation of the previous value (Python configparser style;
 * none of our values spans lines), text after "[section]" would be dropped,
 * a line longer than inih's buffer would be split in two, a UTF-8 BOM would
 * hide the first header from us, and only ';' starts an inline comment. So:
 * indentation is dropped, ';' and '#' after whitespace start a comment (the
 * rule of libinih's INI_INLINE_COMMENT_PREFIXES, with both characters), and
 * the rest is refused with its line named.
 *
 *   [volume]    name, chunk_size (power of two, 4K..4M), metadata,
 *               log_file, log_level, log_max_size
 *   [ram]       size
 *   [placement] policy, migration, epoch, rate, busy_rate, half_life
 *   [tier X]    path, class, capacity, high_watermark, low_watermark,
 *               compression, write_promote, checksum, timeout and
 *               retries (class net only)
 *   [sync]      private_key, listen, state, max_lag, interval, schedule, bandwidth,
 *               journal_max, verify_interval (replication, sync/)
 *   [peer X]    address, public_key
 *   [rule X]    match, pin, min_tier, max_tier, compress
 *               (tier names are checked once every [tier] is known: a
 *               rule may come before the tiers it names)
 */
#include "utils/config.h"
#include "utils/log.h"
#include "utils/util.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_KEYS 8 /* keys of one section: [tier] has seven */

struct parse_state {
	struct silt_config *cfg;
	FILE *fp;
	char *raw;         /* the current line as read (getline) */
	size_t rawcap;
	int line;
	char *err;
	size_t errlen;
	int failed;
	char cur_section[128];
	struct silt_tier_conf *cur_tier;
	struct silt_peer_conf *cur_peer;
	struct silt_rule_conf *cur_rule;
	struct { char key[24]; int line; } keys[MAX_KEYS]; /* set so far in this section */
	int nkeys;
	int seen_volume, seen_ram, seen_placement;
	int volume_line;   /* where [volume] starts */
	int fail_line;     /* line of our first error, 0 if none */
};

static int fail(struct parse_state *st, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct parse_state *st, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (st->failed)
		return 0;
	st->failed = 1;
	st->fail_line = line;
	n = snprintf(st->err, st->errlen, "%s:%d: ", st->cfg->file, line);
	if (n < 0 || (size_t)n >= st->errlen)
		return 0;
	va_start(ap, fmt);
	vsnprintf(st->err + n, st->errlen - n, fmt, ap);
	va_end(ap);
	return 0; /* inih stops at the first handler that returns 0 */
}

static int enter_section(struct parse_state *st, const char *section);

/* Strip what is not content: a BOM on the first line, indentation, a
 * comment (whole line, or ';'/'#' after whitespace), trailing whitespace
 * (and the newline). Returns a pointer into s. */
static char *clean_line(char *s, int first)
{
	char *p = s, *c;

	if (first && !strncmp(p, "\xEF\xBB\xBF", 3))
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == ';' || *p == '#')
		*p = '\0';
	for (c = p; *c; c++) {
		if ((*c == ';' || *c == '#') && isspace((unsigned char)c[-1])) {
			*c = '\0';
			break;
		}
	}
	for (c = p + strlen(p); c > p && isspace((unsigned char)c[-1]); c--)
		c[-1] = '\0';
	return p;
}

/* "[name]" on a line of its own. Handled here rather than in the key
 * handler: inih only tells the handler about sections that have keys, so
 * an unknown or repeated header without keys would slip through, and
 * errors about a section should name its header's line. */
static void section_line(struct parse_state *st, const char *p)
{
	const char *close = strchr(p, ']');
	char name[128];

	if (!close)
		return; /* inih reports the syntax error */
	if (close[1]) {
		const char *rest = close + 1 + strspn(close + 1, " \t");
		fail(st, st->line, "text after the section header %.*s: '%s' (each key = value goes on a line of its own)",
		     (int)(close - p + 1), p, rest);
		return;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(close - p - 1), p + 1);
	enter_section(st, name);
}

/* Line source for inih: read a whole line, clean it, and hand inih the
 * content only. */
static char *reader(char *buf, int size, void *stream)
{
	struct parse_state *st = stream;
	ssize_t n = getline(&st->raw, &st->rawcap, st->fp);
	char *p;

	if (n < 0)
		return NULL;
	st->line++;
	p = clean_line(st->raw, st->line == 1);
	if (strlen(p) + 2 > (size_t)size) {
		fail(st, st->line, "line too long: %zu characters, at most %d (not counting indentation and comments)",
		     strlen(p), size - 2);
		p = "";
	}
	if (*p == '[' && !st->failed)
		section_line(st, p);
	snprintf(buf, (size_t)size, "%s\n", p);
	return buf;
}

const char *silt_class_name(enum silt_tier_class c)
{
	static const char *n[] = { "nvme", "ssd", "hdd", "net" };
	return n[c];
}

static int parse_percent(const char *v, unsigned *out)
{
	char *end;
	long p = strtol(v, &end, 10);
	if (end == v)
		return -EINVAL;
	if (*end == '%')
		end++;
	if (*end || p < 1 || p > 100)
		return -EINVAL;
	*out = (unsigned)p;
	return 0;
}

static int valid_name(const char *s)
{
	if (!*s || strlen(s) >= SILT_NAME_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}

static int parse_bool(const char *v)
{
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcmp(v, "0"))
		return 0;
	return -1;
}

static int placement_key(struct parse_state *st, struct silt_placement_conf *p, const char *key,
			 const char *value, int line)
{
	uint64_t v;

	if (!strcmp(key, "policy")) {
		if (strlen(value) >= sizeof(p->policy))
			return fail(st, line, "policy = %s: no such policy", value);
		snprintf(p->policy, sizeof(p->policy), "%s", value);
		p->policy_line = line;
	} else if (!strcmp(key, "migration")) {
		if (strcmp(value, "policy") && strcmp(value, "churn") && strcmp(value, "off"))
			return fail(st, line, "migration = %s: must be policy, churn (tests) or off", value);
		snprintf(p->migration, sizeof(p->migration), "%s", value);
		p->migration_line = line;
	} else if (!strcmp(key, "epoch")) {
		if (silt_parse_duration(value, &v) || v < 100 || v > 3600000)
			return fail(st, line, "epoch = %s: must be a duration from 100ms to 1h (e.g. 5s)", value);
		p->epoch_ms = (uint32_t)v;
	} else if (!strcmp(key, "half_life")) {
		if (silt_parse_duration(value, &v) || v < 1000 || v > 86400000)
			return fail(st, line, "half_life = %s: must be a duration from 1s to 24h (e.g. 60s)", value);
		p->half_life_s = (uint32_t)(v / 1000);
	} else if (!strcmp(key, "rate") || !strcmp(key, "busy_rate")) {
		if (silt_parse_size(value, &v) || v < (1u << 20))
			return fail(st, line, "%s = %s: must be a size per second of at least 1M (e.g. 200M)", key, value);
		*(key[0] == 'r' ? &p->rate : &p->busy_rate) = v;
		p->rates_line = line;
	} else {
		return fail(st, line, "unknown key '%s' in [placement] (expected policy, migration, epoch, rate, "
			    "busy_rate, half_life)", key);
	}
	return 1;
}

static int enter_peer(struct parse_state *st, const char *section)
{
	struct silt_sync_conf *sc = &st->cfg->sync;
	const char *name = section + 5;

	while (*name == ' ' || *name == '\t')
		name++;
	if (!valid_name(name))
		return fail(st, st->line, "[%s]: peer name must be 1-63 characters of [A-Za-z0-9._-]", section);
	for (int i = 0; i < sc->npeers; i++)
		if (!strcmp(sc->peers[i].name, name))
			return fail(st, st->line, "peer '%s' is defined twice (first at line %d)", name,
				    sc->peers[i].line);
	if (sc->npeers == SILT_MAX_PEERS)
		return fail(st, st->line, "too many peers (at most %d)", SILT_MAX_PEERS);
	st->cur_peer = &sc->peers[sc->npeers++];
	memset(st->cur_peer, 0, sizeof(*st->cur_peer));
	snprintf(st->cur_peer->name, sizeof(st->cur_peer->name), "%.*s", SILT_NAME_MAX - 1, name);
	st->cur_peer->line = st->line;
	return 1;
}

/* Copy a text value that must fit; *line records where it was given. */
static int text_key(struct parse_state *st, char *dst, size_t len, int *line, const char *key,
		    const char *value)
{
	if (strlen(value) >= len || !value[0])
		return fail(st, st->line, "%s = %s: must be 1 to %zu characters", key, value, len - 1);
	snprintf(dst, len, "%s", value);
	if (line)
		*line = st->line;
	return 1;
}

static int sync_key(struct parse_state *st, struct silt_sync_conf *s, const char *key, const char *value)
{
	uint64_t v;

	if (!strcmp(key, "private_key"))
		return text_key(st, s->private_key, sizeof(s->private_key), &s->key_line, key, value);
	if (!strcmp(key, "listen"))
		return text_key(st, s->listen, sizeof(s->listen), &s->listen_line, key, value);
	if (!strcmp(key, "state")) {
		if (value[0] != '/')
			return fail(st, st->line, "state = %s: must be an absolute path", value);
		return text_key(st, s->state, sizeof(s->state) - 64, &s->state_line, key, value);
	}
	if (!strcmp(key, "verify_interval")) {
		if (!strcasecmp(value, "off")) {
			s->verify_ms = 0;
		} else if (silt_parse_duration(value, &v) || v < 1000) {
			return fail(st, st->line, "verify_interval = %s: must be a duration of at least 1s, or off", value);
		} else {
			s->verify_ms = v;
		}
		return 1;
	}
	if (!strcmp(key, "max_lag") || !strcmp(key, "interval")) {
		if (silt_parse_duration(value, &v) || v < 10 || v > 24ull * 3600 * 1000)
			return fail(st, st->line, "%s = %s: must be a duration from 10ms to 24h (e.g. 5s)", key, value);
		*(key[0] == 'm' ? &s->max_lag_ms : &s->interval_ms) = v;
		return 1;
	}
	if (!strcmp(key, "schedule")) {
		if (strcmp(value, "interval") && strcmp(value, "quiet"))
			return fail(st, st->line, "schedule = %s: must be interval or quiet", value);
		s->schedule = !strcmp(value, "quiet");
		return 1;
	}
	if (!strcmp(key, "bandwidth")) {
		char *end;
		double mb = strtod(value, &end);
		if (end == value || (*end && strcasecmp(end, "MB/s")) || mb < 0 || mb > 1e6)
			return fail(st, st->line, "bandwidth = %s: must be MB/s (e.g. 100), 0 for no cap", value);
		s->bandwidth = (uint64_t)(mb * 1e6);
		return 1;
	}
	if (!strcmp(key, "journal_max")) {
		char *end;
		unsigned long long n = strtoull(value, &end, 10);
		if (end == value || *end || n < 16 || n > (1ull << 32))
			return fail(st, st->line, "journal_max = %s: must be a number of entries, 16 to 2^32", value);
		s->journal_max = n;
		return 1;
	}
	return fail(st, st->line, "unknown key '%s' in [sync] (expected private_key, listen, state, max_lag, "
		    "interval, schedule, bandwidth, journal_max, verify_interval)", key);
}

static int peer_key(struct parse_state *st, struct silt_peer_conf *p, const char *key, const char *value)
{
	if (!strcmp(key, "address"))
		return text_key(st, p->address, sizeof(p->address), &p->address_line, key, value);
	if (!strcmp(key, "public_key"))
		return text_key(st, p->public_key, sizeof(p->public_key), &p->key_line, key, value);
	return fail(st, st->line, "unknown key '%s' in [peer %s] (expected address, public_key)", key, p->name);
}

const char *silt_glob_problem(const char *g)
{
	if (!*g)
		return "it is empty";
	if (!strcmp(g, "/") || strstr(g, "//"))
		return "it has an empty path component";
	for (const char *p = g; *p; p++) {
		if (*p == '\\' && !*++p)
			return "it ends in a lone backslash";
		if (*p != '[')
			continue;
		const char *q = p + 1;
		if (*q == '!' || *q == '^')
			q++;
		if (*q == ']')
			q++; /* a leading ] is a member */
		while (*q && *q != ']' && *q != '/')
			q++;
		if (*q != ']')
			return "a [ has no closing ] in its path component";
		p = q;
	}
	return NULL;
}

int silt_rule_key(struct silt_rule_conf *r, const char *key, const char *value, char *why, size_t len)
{
	const char *bad;
	char *end;

	if (strchr(value, '\n')) {
		snprintf(why, len, "%s: a value on one line", key);
		return -EINVAL;
	}
	if (!strcmp(key, "match")) {
		if (strlen(value) >= sizeof(r->match))
			snprintf(why, len, "match = %s: a glob of at most %zu characters", value, sizeof(r->match) - 1);
		else if ((bad = silt_glob_problem(value)))
			snprintf(why, len, "match = %s: not a glob: %s", value, bad);
		else
			return snprintf(r->match, sizeof(r->match), "%s", value) < 0;
	} else if (!strcmp(key, "pin") || !strcmp(key, "min_tier") || !strcmp(key, "max_tier")) {
		char *dst = key[0] == 'p' ? r->pin : key[1] == 'i' ? r->min_tier : r->max_tier;
		if (valid_name(value))
			return snprintf(dst, SILT_NAME_MAX, "%s", value) < 0;
		snprintf(why, len, "%s = %s: not a tier name", key, value);
	} else if (!strcmp(key, "compress")) {
		if ((r->compress = parse_bool(value)) >= 0)
			return 0;
		snprintf(why, len, "compress = %s: must be yes or no", value);
	} else if (!strcmp(key, "weight")) {
		long w = strtol(value, &end, 10);
		if (*value && !*end && w >= 1 && w <= SILT_RULE_WEIGHT_MAX) {
			r->weight = (int)w;
			return 0;
		}
		snprintf(why, len, "weight = %s: must be a whole number from 1 to %d", value, SILT_RULE_WEIGHT_MAX);
	} else {
		snprintf(why, len, "unknown key '%s' in [rule %s] (expected match, pin, min_tier, max_tier, weight, "
			 "compress)", key, r->name);
	}
	return -EINVAL;
}

static int rule_key(struct parse_state *st, struct silt_rule_conf *r, const char *key, const char *value,
		    int line)
{
	char why[512];

	if (silt_rule_key(r, key, value, why, sizeof(why)))
		return fail(st, line, "%s", why);
	if (!strcmp(key, "match"))
		r->match_line = line;
	else if (!strcmp(key, "pin") || !strcmp(key, "min_tier") || !strcmp(key, "max_tier"))
		*(key[0] == 'p' ? &r->pin_line : key[1] == 'i' ? &r->min_line : &r->max_line) = line;
	return 1;
}

void silt_rule_init(struct silt_rule_conf *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%.*s", SILT_NAME_MAX - 1, name);
	r->compress = 1;
	r->weight = 1;
}

/* "[KIND NAME]": NAME, or NULL when the header is not of that kind. */
static const char *section_name(const char *section, const char *kind)
{
	size_t n = strlen(kind);
	if (strncmp(section, kind, n) || (section[n] != ' ' && section[n] != '\t'))
		return NULL;
	section += n;
	while (*section == ' ' || *section == '\t')
		section++;
	return section;
}

static int enter_rule(struct parse_state *st, const char *section, const char *name)
{
	struct silt_config *cfg = st->cfg;

	if (!valid_name(name))
		return fail(st, st->line, "[%s]: rule name must be 1-63 characters of [A-Za-z0-9._-]", section);
	for (int i = 0; i < cfg->nrules; i++)
		if (!strcmp(cfg->rules[i].name, name))
			return fail(st, st->line, "rule '%s' is defined twice (first at line %d)", name, cfg->rules[i].line);
	if (cfg->nrules == SILT_MAX_RULES)
		return fail(st, st->line, "too many rules (at most %d)", SILT_MAX_RULES);
	st->cur_rule = &cfg->rules[cfg->nrules++];
	silt_rule_init(st->cur_rule, name);
	st->cur_rule->line = st->line;
	return 1;
}

/* A new section header: decide what it is before any of its keys arrive. */
static int enter_section(struct parse_state *st, const char *section)
{
	struct silt_config *cfg = st->cfg;

	snprintf(st->cur_section, sizeof(st->cur_section), "%s", section);
	st->cur_tier = NULL;
	st->cur_peer = NULL;
	st->cur_rule = NULL;
	st->nkeys = 0;
	if (!strcmp(section, "volume")) {
		if (st->seen_volume++)
			return fail(st, st->line, "[volume] appears twice");
		st->volume_line = st->line;
		return 1;
	}
	if (!strcmp(section, "ram")) {
		if (st->seen_ram++)
			return fail(st, st->line, "[ram] appears twice");
		return 1;
	}
	if (!strcmp(section, "placement")) {
		if (st->seen_placement++)
			return fail(st, st->line, "[placement] appears twice");
		return 1;
	}
	if (!strcmp(section, "sync")) {
		if (cfg->sync.present++)
			return fail(st, st->line, "[sync] appears twice");
		cfg->sync.line = st->line;
		return 1;
	}
	if (!strncmp(section, "peer", 4) && (section[4] == ' ' || section[4] == '\t'))
		return enter_peer(st, section);
	if (!strcmp(section, "peer"))
		return fail(st, st->line, "[peer] needs a name: [peer NAME]");
	if (!strncmp(section, "tier", 4) && (section[4] == ' ' || section[4] == '\t')) {
		const char *name = section + 5;
		while (*name == ' ' || *name == '\t')
			name++;
		if (!valid_name(name))
			return fail(st, st->line, "[%s]: tier name must be 1-63 characters of [A-Za-z0-9._-]", section);
		if (!strcasecmp(name, "ram"))
			return fail(st, st->line, "[%s]: 'ram' is reserved for the [ram] section", section);
		for (int i = 0; i < cfg->ntiers; i++)
			if (!strcmp(cfg->tiers[i].name, name))
				return fail(st, st->line, "tier '%s' is defined twice (first at line %d)", name, cfg->tiers[i].line);
		if (cfg->ntiers == SILT_MAX_TIERS)
			return fail(st, st->line, "too many tiers (at most %d)", SILT_MAX_TIERS);
		st->cur_tier = &cfg->tiers[cfg->ntiers++];
		memset(st->cur_tier, 0, sizeof(*st->cur_tier));
		snprintf(st->cur_tier->name, sizeof(st->cur_tier->name), "%.*s", SILT_NAME_MAX - 1, name);
		st->cur_tier->line = st->line;
		st->cur_tier->cls = -1;
		st->cur_tier->high_wm = 90;
		st->cur_tier->low_wm = 75;
		st->cur_tier->write_promote = 1;
		st->cur_tier->checksum = -1; /* by class, once the class is known */
		st->cur_tier->timeout_ms = SILT_NET_TIMEOUT_MS;
		st->cur_tier->retries = SILT_NET_RETRIES;
		return 1;
	}
	if (!strcmp(section, "tier"))
		return fail(st, st->line, "[tier] needs a name: [tier NAME]");
	const char *rule = section_name(section, "rule");
	if (rule)
		return enter_rule(st, section, rule);
	if (!strcmp(section, "rule"))
		return fail(st, st->line, "[rule] needs a name: [rule NAME]");
	return fail(st, st->line, "unknown section [%s] (expected [volume], [ram], [placement], [tier NAME], "
		    "[rule NAME], [sync] or [peer NAME])", section);
}

static int handle_key(struct parse_state *st, const char *section, const char *key,
		      const char *value, int line);

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parse_state *st = user;
	int line = st->line;

	if (st->failed) /* inih goes on after an error; we report the first */
		return 0;
	if (!section[0])
		return fail(st, line, "'%s' is outside any section", key);
	for (int i = 0; i < st->nkeys; i++)
		if (!strcmp(st->keys[i].key, key))
			return fail(st, line, "%s is set twice in [%s], at lines %d and %d: keep one", key,
				    section, st->keys[i].line, line);
	if (!handle_key(st, section, key, value, line))
		return 0;
	/* only known keys get here, and a section has at most MAX_KEYS */
	if (st->nkeys < MAX_KEYS) {
		snprintf(st->keys[st->nkeys].key, sizeof(st->keys[0].key), "%s", key);
		st->keys[st->nkeys++].line = line;
	}
	return 1;
}

static int handle_key(struct parse_state *st, const char *section, const char *key,
		      const char *value, int line)
{
	struct silt_config *cfg = st->cfg;
	uint64_t sz;


	if (!strcmp(section, "volume")) {
		if (!strcmp(key, "name")) {
			if (!valid_name(value))
				return fail(st, line, "name = %s: must be 1-63 characters of [A-Za-z0-9._-]", value);
			snprintf(cfg->name, sizeof(cfg->name), "%s", value);
		} else if (!strcmp(key, "chunk_size")) {
			if (silt_parse_size(value, &sz) || sz < 4096 || sz > (4u << 20) || (sz & (sz - 1)))
				return fail(st, line, "chunk_size = %s: must be a power of two from 4K to 4M", value);
			cfg->chunk_size = (uint32_t)sz;
		} else if (!strcmp(key, "metadata")) {
			if (value[0] != '/')
				return fail(st, line, "metadata = %s: must be an absolute path", value);
			snprintf(cfg->meta_dir, sizeof(cfg->meta_dir), "%s", value);
			cfg->meta_line = line;
		} else if (!strcmp(key, "log_file")) {
			if (value[0] != '/' && strcmp(value, "auto") && strcmp(value, "syslog"))
				return fail(st, line, "log_file = %s: must be auto, syslog or an absolute path", value);
			snprintf(cfg->log_file, sizeof(cfg->log_file), "%s", value);
		} else if (!strcmp(key, "log_level")) {
			if ((cfg->log_level = silt_log_level_parse(value)) < 0)
				return fail(st, line, "log_level = %s: must be error, warning, info or debug", value);
		} else if (!strcmp(key, "log_max_size")) {
			if (silt_parse_size(value, &sz) || (sz && sz < 4096))
				return fail(st, line, "log_max_size = %s: must be 0 (never rotate) or a size of at least 4K", value);
			cfg->log_max_size = sz;
		} else {
			return fail(st, line, "unknown key '%s' in [volume] (expected name, chunk_size, metadata, "
				    "log_file, log_level, log_max_size)", key);
		}
		return 1;
	}
	if (!strcmp(section, "ram")) {
		if (!strcmp(key, "size")) {
			if (silt_parse_size(value, &sz))
				return fail(st, line, "size = %s: not a size (e.g. 256M, 2G)", value);
			cfg->ram_size = sz;
		} else {
			return fail(st, line, "unknown key '%s' in [ram] (expected size)", key);
		}
		return 1;
	}

	if (!strcmp(section, "placement"))
		return placement_key(st, &cfg->placement, key, value, line);
	if (!strcmp(section, "sync"))
		return sync_key(st, &cfg->sync, key, value);
	if (st->cur_peer)
		return peer_key(st, st->cur_peer, key, value);
	if (st->cur_rule)
		return rule_key(st, st->cur_rule, key, value, line);

	struct silt_tier_conf *t = st->cur_tier;
	if (!t) /* cannot happen: every other section was refused at its header */
		return fail(st, line, "'%s' is not in a known section", key);
	if (!strcmp(key, "path")) {
		if (value[0] != '/')
			return fail(st, line, "path = %s: must be an absolute path", value);
		if (strlen(value) >= sizeof(t->path) - 128)
			return fail(st, line, "path is too long");
		snprintf(t->path, sizeof(t->path), "%s", value);
		t->path_line = line;
		size_t n = strlen(t->path);
		while (n > 1 && t->path[n - 1] == '/')
			t->path[--n] = '\0';
	} else if (!strcmp(key, "class")) {
		static const char *names[] = { "nvme", "ssd", "hdd", "net" };
		t->cls = -1;
		for (int i = 0; i < 4; i++)
			if (!strcasecmp(value, names[i]))
				t->cls = i;
		if ((int)t->cls < 0)
			return fail(st, line, "class = %s: must be one of nvme, ssd, hdd, net", value);
	} else if (!strcmp(key, "capacity")) {
		if (!strcasecmp(value, "auto"))
			t->capacity = 0;
		else if (silt_parse_size(value, &sz) || sz < (1u << 20))
			return fail(st, line, "capacity = %s: must be 'auto' or a size of at least 1M", value);
		else
			t->capacity = sz;
		t->capacity_line = line;
	} else if (!strcmp(key, "high_watermark")) {
		if (parse_percent(value, &t->high_wm))
			return fail(st, line, "high_watermark = %s: must be a percentage from 1%% to 100%%", value);
	} else if (!strcmp(key, "low_watermark")) {
		if (parse_percent(value, &t->low_wm))
			return fail(st, line, "low_watermark = %s: must be a percentage from 1%% to 100%%", value);
	} else if (!strcmp(key, "compression")) {
		char *end;
		if (!strcasecmp(value, "none")) {
			t->zstd_level = 0;
		} else if (!strncasecmp(value, "zstd", 4)) {
			long lvl = 3;
			if (value[4] == ':') {
				lvl = strtol(value + 5, &end, 10);
				if (end == value + 5 || *end)
					lvl = -1;
			} else if (value[4]) {
				lvl = -1;
			}
			if (lvl < 1 || lvl > 19)
				return fail(st, line, "compression = %s: zstd level must be 1..19 (e.g. zstd:3)", value);
			t->zstd_level = (int)lvl;
		} else {
			return fail(st, line, "compression = %s: must be none or zstd:N", value);
		}
	} else if (!strcmp(key, "write_promote")) {
		if ((t->write_promote = parse_bool(value)) < 0)
			return fail(st, line, "write_promote = %s: must be yes or no", value);
	} else if (!strcmp(key, "checksum")) {
		if ((t->checksum = parse_bool(value)) < 0)
			return fail(st, line, "checksum = %s: must be yes or no", value);
	} else if (!strcmp(key, "timeout")) {
		uint64_t v;
		if (silt_parse_duration(value, &v) || v < 100 || v > 600000)
			return fail(st, line, "timeout = %s: must be a duration from 100ms to 10min (e.g. 5s)", value);
		t->timeout_ms = (uint32_t)v;
		t->timeout_line = line;
	} else if (!strcmp(key, "retries")) {
		char *end;
		unsigned long n = strtoul(value, &end, 10);
		if (end == value || *end || n > 10)
			return fail(st, line, "retries = %s: must be a number from 0 to 10", value);
		t->retries = (unsigned)n;
		t->timeout_line = line;
	} else {
		return fail(st, line, "unknown key '%s' in [%s] (expected path, class, capacity, high_watermark, "
			    "low_watermark, compression, write_promote, checksum, timeout, retries)", key, section);
	}
	return 1;
}

void silt_placement_defaults(struct silt_placement_conf *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->policy, sizeof(p->policy), "arc");
	snprintf(p->migration, sizeof(p->migration), "policy");
	p->epoch_ms = 5000;
	p->rate = 256ull << 20;
	p->busy_rate = 8ull << 20;
	p->half_life_s = 60;
}

void silt_sync_defaults(struct silt_sync_conf *s)
{
	memset(s, 0, sizeof(*s));
	s->max_lag_ms = 5000;
	s->interval_ms = 1000;
	s->journal_max = 1u << 20;
}

/* The checks that need the whole file; each names the line it is about. */
static int check_tier(const struct silt_config *cfg, int i, char *err, size_t errlen)
{
	const struct silt_tier_conf *t = &cfg->tiers[i];
	const char *path = cfg->file;
	char a[32], b[32];

	if (!t->path[0]) {
		snprintf(err, errlen, "%s:%d: [tier %s] has no path", path, t->line, t->name);
		return -EINVAL;
	}
	if ((int)t->cls < 0) {
		snprintf(err, errlen, "%s:%d: [tier %s] has no class (nvme, ssd, hdd or net)", path, t->line, t->name);
		return -EINVAL;
	}
	if (t->timeout_line && t->cls != SILT_CLASS_NET) {
		snprintf(err, errlen, "%s:%d: [tier %s] timeout and retries are for class net tiers (this one is %s)",
			 path, t->timeout_line, t->name, silt_class_name(t->cls));
		return -EINVAL;
	}
	if (t->low_wm > t->high_wm) {
		snprintf(err, errlen, "%s:%d: [tier %s] low_watermark (%u%%) is above high_watermark (%u%%)",
			 path, t->line, t->name, t->low_wm, t->high_wm);
		return -EINVAL;
	}
	/* A tier that can never take a chunk is a typo, not a choice. */
	if (t->capacity && (unsigned __int128)t->capacity * t->high_wm / 100 < cfg->chunk_size) {
		snprintf(err, errlen,
			 "%s:%d: [tier %s] capacity = %s with high_watermark = %u%% has no room for one chunk of %s",
			 path, t->capacity_line, t->name, silt_fmt_size(t->capacity, a, sizeof(a)), t->high_wm,
			 silt_fmt_size(cfg->chunk_size, b, sizeof(b)));
		return -EINVAL;
	}
	for (int j = 0; j < i; j++) {
		if (!strcmp(cfg->tiers[j].path, t->path)) {
			snprintf(err, errlen, "%s:%d: [tier %s] uses the same path as [tier %s] (line %d)",
				 path, t->path_line, t->name, cfg->tiers[j].name, cfg->tiers[j].path_line);
			return -EINVAL;
		}
	}
	return 0;
}

int silt_config_tier_index(const struct silt_config *cfg, const char *name)
{
	for (int i = 0; i < cfg->ntiers; i++)
		if (!strcmp(cfg->tiers[i].name, name))
			return i;
	return -1;
}

/* A rule's error: "file:line: [rule X] ..." (config), "rule X: ..." (live). */
static int rule_err(const struct silt_config *cfg, const struct silt_rule_conf *r, int line, char *err,
		    size_t errlen, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int rule_err(const struct silt_config *cfg, const struct silt_rule_conf *r, int line, char *err,
		    size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = r->line ? snprintf(err, errlen, "%s:%d: [rule %s] ", cfg->file, line ? line : r->line, r->name)
			: snprintf(err, errlen, "rule %s: ", r->name);

	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A rule names tiers that exist, and bounds that leave it somewhere to go. */
int silt_rule_check(const struct silt_config *cfg, const struct silt_rule_conf *r, char *err, size_t errlen)
{
	const char *names[3] = { r->pin, r->min_tier, r->max_tier }, *keys[3] = { "pin", "min_tier", "max_tier" };
	int lines[3] = { r->pin_line, r->min_line, r->max_line };

	if (!r->match[0])
		return rule_err(cfg, r, 0, err, errlen, "has no match = GLOB");
	for (int i = 0; i < 3; i++)
		if (names[i][0] && silt_config_tier_index(cfg, names[i]) < 0)
			return rule_err(cfg, r, lines[i], err, errlen,
					"%s = %s: no such tier (the tiers are the [tier NAME] sections)", keys[i], names[i]);
	if (r->pin[0] && (r->min_tier[0] || r->max_tier[0]))
		return rule_err(cfg, r, r->pin_line, err, errlen,
				"pin = %s leaves no choice: drop min_tier and max_tier, or the pin", r->pin);
	/* min_tier is the slowest tier allowed, max_tier the fastest: tiers are listed fastest first */
	if (r->min_tier[0] && r->max_tier[0] &&
	    silt_config_tier_index(cfg, r->min_tier) < silt_config_tier_index(cfg, r->max_tier)) {
		char at[32] = "";
		if (r->max_line)
			snprintf(at, sizeof(at), " (line %d)", r->max_line);
		return rule_err(cfg, r, r->min_line, err, errlen,
				"min_tier = %s is faster than max_tier = %s%s: min_tier is the slowest tier the files "
				"may go down to, max_tier the fastest they may rise to", r->min_tier, r->max_tier, at);
	}
	int lo = r->pin[0] ? silt_config_tier_index(cfg, r->pin) : r->max_tier[0] ? silt_config_tier_index(cfg, r->max_tier) : 0;
	int hi = r->pin[0] ? lo : r->min_tier[0] ? silt_config_tier_index(cfg, r->min_tier) : cfg->ntiers - 1, ok = 0;
	for (int i = lo; i <= hi; i++)
		ok += r->compress || !cfg->tiers[i].zstd_level;
	if (!ok)
		return rule_err(cfg, r, 0, err, errlen, "compress = no leaves no tier: every tier it allows is compressed");
	return 0;
}

static int check_whole(const struct parse_state *st, char *err, size_t errlen)
{
	const struct silt_config *cfg = st->cfg;
	const char *path = cfg->file;
	int r;

	if (st->line == 0) {
		snprintf(err, errlen, "%s:1: the file is empty: a config needs a [volume] section with a name "
			 "and at least one [tier NAME] section", path);
		return -EINVAL;
	}
	if (!st->seen_volume) {
		snprintf(err, errlen, "%s:1: there is no [volume] section: a config needs one, with name = ...", path);
		return -EINVAL;
	}
	if (cfg->placement.busy_rate > cfg->placement.rate) {
		char a[32], b[32];
		snprintf(err, errlen, "%s:%d: [placement] busy_rate (%s/s) is above rate (%s/s)", path,
			 cfg->placement.rates_line, silt_fmt_size(cfg->placement.busy_rate, a, sizeof(a)),
			 silt_fmt_size(cfg->placement.rate, b, sizeof(b)));
		return -EINVAL;
	}
	if (cfg->ntiers == 0) {
		snprintf(err, errlen, "%s:%d: no [tier NAME] section: a volume needs at least one storage tier",
			 path, st->line);
		return -EINVAL;
	}
	if (!cfg->name[0]) {
		snprintf(err, errlen, "%s:%d: [volume] has no name (name = ...)", path, st->volume_line);
		return -EINVAL;
	}
	for (int i = 0; i < cfg->ntiers; i++)
		if ((r = check_tier(cfg, i, err, errlen)))
			return r;
	for (int i = 0; i < cfg->sync.npeers; i++)
		if (!cfg->sync.peers[i].public_key[0]) {
			snprintf(err, errlen, "%s:%d: [peer %s] has no public_key", path, cfg->sync.peers[i].line,
				 cfg->sync.peers[i].name);
			return -EINVAL;
		}
	if (cfg->sync.npeers && !cfg->sync.present) {
		snprintf(err, errlen, "%s:%d: [peer %s] without a [sync] section (which holds this host's private_key)",
			 path, cfg->sync.peers[0].line, cfg->sync.peers[0].name);
		return -EINVAL;
	}
	for (int i = 0; i < cfg->nrules; i++)
		if ((r = silt_rule_check(cfg, &cfg->rules[i], err, errlen)))
			return r;
	return 0;
}

int silt_config_load(const char *path, struct silt_config *cfg, char *err, size_t errlen)
{
	struct parse_state st = { .cfg = cfg, .err = err, .errlen = errlen };
	int r, rd_err;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->file, sizeof(cfg->file), "%s", path);
	cfg->chunk_size = 64 * 1024;
	cfg->ram_size = 64ull << 20;
	silt_placement_defaults(&cfg->placement);
	cfg->log_level = SILT_LOG_INFO;
	cfg->log_max_size = SILT_LOG_MAX_SIZE;
	silt_sync_defaults(&cfg->sync);
	err[0] = '\0';

	st.fp = fopen(path, "r");
	if (!st.fp) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot open config: %s", path, strerror(-r));
		return r;
	}
	r = ini_parse_stream(reader, &st, handler, &st);
	rd_err = ferror(st.fp);
	fclose(st.fp);
	free(st.raw);
	if (r > 0 && (!st.failed || r < st.fail_line)) {
		snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path, r);
		return -EINVAL;
	}
	if (st.failed)
		return -EINVAL;
	if (r < 0 || rd_err) {
		snprintf(err, errlen, "%s: cannot read config", path);
		return -EIO;
	}
	return check_whole(&st, err, errlen);
}
