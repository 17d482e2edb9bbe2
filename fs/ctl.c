/* Control socket and the operator queries behind it.
 *
 * Protocol: the client sends one line ("status", "where INO"), the daemon
 * answers with records, one per line, "kind key=value key=value ...", values
 * percent-escaped, then closes. siltctl turns the records into tables or
 * JSON, so the daemon never formats for humans.
 *
 * One thread ("silt-ctl") serves the socket; ctl_stop wakes it through a
 * pipe and joins it. */
#include "fs/ctl.h"
#include "fs/pins.h"
#include "fs/rules.h"
#include "fs/vol_int.h"
#include "utils/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct silt_ctl {
	struct silt_vol *v;
	struct ctl_ext ext;
	int lfd;
	int stop[2];
	pthread_t thread;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

void ctl_put_value(FILE *o, const char *s)
{
	silt_pct_put(o, s);
}

static void ctl_placement(struct silt_vol *v, FILE *o)
{
	struct heat_stats hs;
	struct migrate_stats ms;

	heat_stats(v->heat, &hs);
	migrate_stats(v->mig, &ms);
	fprintf(o, "placement policy=%s capacity=%llu resident=%llu recorded=%llu dropped=%llu "
		"migration=%s epoch_ms=%u rate_limit=%llu busy_rate_limit=%llu epochs=%llu pending=%llu "
		"pending_bytes=%llu moved=%llu moved_bytes=%llu promoted=%llu demoted=%llu raced=%llu "
		"failed=%llu rate=%llu busy=%d\n",
		policy_kind_name(hs.policy), (unsigned long long)hs.capacity, (unsigned long long)hs.resident,
		(unsigned long long)hs.recorded, (unsigned long long)hs.dropped, migrate_mode_name(ms.mode),
		v->cfg.placement.epoch_ms, (unsigned long long)v->cfg.placement.rate,
		(unsigned long long)v->cfg.placement.busy_rate, (unsigned long long)ms.epochs,
		(unsigned long long)ms.pending, (unsigned long long)ms.pending_bytes,
		(unsigned long long)ms.moved, (unsigned long long)ms.moved_bytes,
		(unsigned long long)ms.promoted, (unsigned long long)ms.demoted,
		(unsigned long long)ms.raced, (unsigned long long)ms.failed, (unsigned long long)ms.rate,
		ms.busy);
}

static void ctl_status(struct silt_vol *v, FILE *o)
{
	fprintf(o, "volume name=");
	ctl_put_value(o, v->cfg.name);
	fprintf(o, " uuid=%s chunk_size=%u mountpoint=", v->uuid, v->layout.chunk_size);
	ctl_put_value(o, v->mountpoint[0] ? v->mountpoint : "-");
	const char *cache = atomic_load(&v->cache_mode);
	fprintf(o, " cache=%s", cache ? cache : "-");
	fprintf(o, " reads=%llu writes=%llu read_bytes=%llu write_bytes=%llu ns_ops=%llu\n",
		(unsigned long long)atomic_load(&v->reads), (unsigned long long)atomic_load(&v->writes),
		(unsigned long long)atomic_load(&v->read_bytes),
		(unsigned long long)atomic_load(&v->write_bytes), (unsigned long long)v->ns_seq);
	struct ram_stats rs;
	ram_stats(v->ram, &rs);
	fprintf(o, "ram size=%llu used=%llu hits=%llu misses=%llu fills=%llu evictions=%llu "
		"invalidations=%llu\n", (unsigned long long)rs.size, (unsigned long long)rs.used,
		(unsigned long long)rs.hits, (unsigned long long)rs.misses, (unsigned long long)rs.fills,
		(unsigned long long)rs.evictions, (unsigned long long)rs.invalidations);
	ctl_placement(v, o);
	for (int i = 0; i < v->ntiers; i++) {
		struct tier_stats ts;
		tier_get_stats(v->tiers[i], &ts);
		fprintf(o, "tier name=");
		ctl_put_value(o, ts.name);
		fprintf(o, " class=%s path=", silt_class_name(ts.cls));
		ctl_put_value(o, ts.path);
		fprintf(o, " capacity=%llu used=%llu chunks=%llu high_watermark=%u low_watermark=%u compression=",
			(unsigned long long)ts.capacity, (unsigned long long)ts.used,
			(unsigned long long)ts.chunks, ts.high_wm, ts.low_wm);
		if (ts.zstd_level)
			fprintf(o, "zstd:%d", ts.zstd_level);
		else
			fprintf(o, "none");
		struct evac_stats es;
		migrate_evac_stats(v->mig, ts.id, &es);
		fprintf(o, " state=%s evac_total=%llu reason=", ts.state_name, (unsigned long long)es.total);
		ctl_put_value(o, ts.failed ? ts.why : "-");
		fputc('\n', o);
	}
	struct silt_log_where lw;
	silt_log_where(&lw);
	fprintf(o, "log destination=%s level=%s path=", silt_log_dest_name(lw.dest), silt_log_level_name(lw.level));
	ctl_put_value(o, lw.dest == SILT_LOG_TO_FILE ? lw.path : "-");
	fprintf(o, " ident=");
	ctl_put_value(o, lw.dest == SILT_LOG_TO_SYSLOG ? lw.ident : "-");
	fputc('\n', o);
}

/* A request's error, in words (vol_ctl replies with it). */
#define WHY_LEN 512

/* "policy NAME": a new placement policy, live (it starts cold). */
static int ctl_set_policy(struct silt_vol *v, const char *name, FILE *o, char *why)
{
	enum policy_kind pk;

	if (policy_kind_parse(name, &pk) || !heat_policy_ok(pk)) {
		char names[200];
		heat_policy_names(names, sizeof(names));
		snprintf(why, WHY_LEN, "%s is not a placement policy the daemon can run (one of %s)", name, names);
		return -EINVAL;
	}
	int r = heat_set_policy(v->heat, pk, vol_fast_capacity(v));
	if (!r) {
		log_info("placement policy set to %s", name);
		vol_event(v, EVENT_POLICY, "placement policy set to %s", name);
		ctl_placement(v, o);
	}
	return r;
}

/* "migrate [MODE]": change the mode, or run one epoch now. */
static int ctl_migrate(struct silt_vol *v, const char *arg, FILE *o, char *why)
{
	enum migrate_mode mode;

	if (*arg) {
		if (migrate_mode_parse(arg, &mode)) {
			snprintf(why, WHY_LEN, "%s is not a migration mode (policy, churn or off)", arg);
			return -EINVAL;
		}
		migrate_set_mode(v->mig, mode);
		ctl_placement(v, o);
		return 0;
	}
	long n = migrate_run_epoch(v->mig);
	if (n < 0)
		return (int)n;
	fprintf(o, "epoch moved=%ld\n", n);
	ctl_placement(v, o);
	return 0;
}

/* The tier called name (its id), or -1 with why said. */
static int tier_named(struct silt_vol *v, const char *name, char *why)
{
	for (int i = 0; i < v->ntiers; i++)
		if (!strcmp(tier_name(v->tiers[i]), name))
			return tier_id(v->tiers[i]);
	snprintf(why, WHY_LEN, "this volume has no tier called %s", name);
	return -1;
}

/* "evacuate [cancel] TIER": start (or resume) moving every chunk off a
 * tier, or stop; then (and for "evacuate status TIER") where it is. */
static int ctl_evacuate(struct silt_vol *v, const char *arg, FILE *o, char *why)
{
	int cancel = !strncmp(arg, "cancel ", 7), status = !strncmp(arg, "status ", 7);
	int tid = tier_named(v, arg + (cancel || status ? 7 : 0), why), r = 0;
	struct evac_stats es;

	if (tid < 0)
		return -ENOENT;
	if (cancel)
		r = migrate_evacuate_cancel(v->mig, tid, why, WHY_LEN);
	else if (!status)
		r = migrate_evacuate(v->mig, tid, why, WHY_LEN);
	if (r)
		return r;
	migrate_evac_stats(v->mig, tid, &es);
	struct tier_stats ts;
	tier_get_stats(v->tier_by_id[tid], &ts);
	fprintf(o, "evacuation tier=");
	ctl_put_value(o, ts.name);
	fprintf(o, " state=%s running=%d total=%llu left=%llu\n", ts.state_name, es.running,
		(unsigned long long)es.total, (unsigned long long)es.left);
	return 0;
}

/* "pin INO TIER", "unpin INO", "pins". */
static int ctl_pin(struct silt_vol *v, const char *req, FILE *o, char *why)
{
	unsigned long long ino;
	char tier[SILT_NAME_MAX + 1];
	int tid;

	if (!strcmp(req, "pins")) {
		pins_report(v, o);
		return 0;
	}
	if (sscanf(req, "unpin %llu", &ino) == 1)
		return pins_set(v, ino, -1, o, why, WHY_LEN);
	if (sscanf(req, "pin %llu %64s", &ino, tier) != 2)
		return -EINVAL;
	if ((tid = tier_named(v, tier, why)) < 0)
		return -ENOENT;
	return pins_set(v, ino, tid, o, why, WHY_LEN);
}

/* The scrubber's record; its stats into st. */
static void put_scrub(struct silt_scrub *s, FILE *o, struct scrub_stats *st)
{
	scrub_stats(s, st);
	fprintf(o, "scrub running=%d passes=%llu total=%llu checked=%llu damaged=%llu unreadable=%llu "
		"cancelled=%d started=%lld finished=%lld\n", st->running, (unsigned long long)st->passes,
		(unsigned long long)st->total, (unsigned long long)st->checked, (unsigned long long)st->damaged,
		(unsigned long long)st->unreadable, st->cancelled, (long long)(st->started_ns / 1000000000),
		(long long)(st->finished_ns / 1000000000));
}

/* "scrub [start|cancel]": the scrubber's progress and findings. */
static int ctl_scrub(struct silt_vol *v, const char *arg, FILE *o)
{
	struct scrub_stats st;
	int r = 0;

	if (!strcmp(arg, "start"))
		r = scrub_begin(v->scrub);
	else if (!strcmp(arg, "cancel"))
		scrub_cancel(v->scrub);
	else if (*arg)
		return -EINVAL;
	if (r)
		return r;
	put_scrub(v->scrub, o, &st);
	return 0;
}

/* "events [N]": the last N (default 50) events, oldest first. */
static int ctl_events(struct silt_vol *v, const char *arg, FILE *o)
{
	long n = *arg ? strtol(arg, NULL, 10) : 50;
	struct silt_event *ev;

	if (n <= 0 || n > EVENTS_KEEP)
		return -EINVAL;
	if (!(ev = calloc((size_t)n, sizeof(*ev))))
		return -ENOMEM;
	long got = events_last(v->events, ev, (size_t)n);
	for (long i = 0; i < got; i++) {
		fprintf(o, "event seq=%llu time=%lld kind=%s text=", (unsigned long long)ev[i].seq,
			(long long)(ev[i].time_ns / 1000000000), event_kind_name(ev[i].kind));
		ctl_put_value(o, ev[i].text);
		fputc('\n', o);
	}
	free(ev);
	return got < 0 ? (int)got : 0;
}

/* "metrics": everything status says, and the counters only metrics shows:
 * requests by kind with their latency histograms, checksum mismatches by
 * tier (found by reads and by the scrubber), events by kind, the scrubber.
 * siltctl renders them in Prometheus's text format. */
static void ctl_metrics(struct silt_vol *v, FILE *o)
{
	static const char *const ops[2] = { "read", "write" };
	_Atomic uint64_t *const bytes[2] = { &v->read_bytes, &v->write_bytes };
	struct scrub_stats st;
	uint64_t ev[EVENT__COUNT];

	ctl_status(v, o);
	for (int w = 0; w < 2; w++) {
		struct histo *h = &v->latency[w];
		uint64_t n[HISTO_BUCKETS + 1], reqs = 0;
		/* requests are the observations (a read at the end of the file,
		 * which touches nothing, is one too), read once for both */
		for (unsigned b = 0; b <= HISTO_BUCKETS; b++)
			reqs += n[b] = atomic_load(&h->n[b]);
		fprintf(o, "io op=%s requests=%llu bytes=%llu errors=%llu sum_ns=%llu bounds_us=", ops[w],
			(unsigned long long)reqs, (unsigned long long)atomic_load(bytes[w]),
			(unsigned long long)atomic_load(&v->io_errors[w]), (unsigned long long)atomic_load(&h->sum_ns));
		for (unsigned b = 0; b < HISTO_BUCKETS; b++)
			fprintf(o, "%s%llu", b ? "," : "", (unsigned long long)histo_bound_us(b));
		fprintf(o, " buckets=");
		for (unsigned b = 0; b <= HISTO_BUCKETS; b++)
			fprintf(o, "%s%llu", b ? "," : "", (unsigned long long)n[b]);
		fputc('\n', o);
	}
	put_scrub(v->scrub, o, &st);
	for (int i = 0; i < v->ntiers; i++) {
		int id = tier_id(v->tiers[i]);
		fprintf(o, "checksum tier=");
		ctl_put_value(o, tier_name(v->tiers[i]));
		fprintf(o, " read=%llu scrub=%llu\n", (unsigned long long)atomic_load(&v->csum_errors[id]),
			(unsigned long long)st.found[id]);
	}
	events_counts(v->events, ev);
	for (int k = 0; k < EVENT__COUNT; k++)
		fprintf(o, "events kind=%s count=%llu\n", event_kind_name((enum event_kind)k), (unsigned long long)ev[k]);
}

/* A chunk's heat as a level: 0 cold, 1 (1-3 accesses a half-life), 2
 * (4-15), 3 (16-63), 4 (64+). */
static int heat_level(unsigned h)
{
	return h == 0 ? 0 : h < 4 ? 1 : h < 16 ? 2 : h < 64 ? 3 : 4;
}

/* "heat INO": runs of chunks with one tier and one heat level. */
static int ctl_heat(struct silt_vol *v, uint64_t ino, FILE *o)
{
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	pthread_mutex_lock(&in->lock);
	r = inode_load_chunks(v, in);
	uint64_t size = in->rec.size;
	pthread_mutex_unlock(&in->lock);
	if (r)
		goto out;
	heat_sync(v->heat);
	uint64_t nk = (size + v->layout.chunk_size - 1) >> v->layout.shift;
	fprintf(o, "file ino=%llu size=%llu chunk_size=%u chunks=%llu\n", (unsigned long long)ino,
		(unsigned long long)size, v->layout.chunk_size, (unsigned long long)nk);
	for (int i = 0; i < v->ntiers; i++) { /* the tiers, fastest first (heat --png's colours) */
		fprintf(o, "tier name=");
		ctl_put_value(o, tier_name(v->tiers[i]));
		fputc('\n', o);
	}
	for (uint64_t k = 0; k < nk;) {
		uint8_t e = cmap_get(in->cf, k);
		unsigned h = heat_of(v->heat, ino, k), hmax = h;
		int lvl = heat_level(h), hot = heat_contains(v->heat, ino, k);
		uint64_t end = k + 1;
		for (; end < nk; end++) {
			unsigned he = heat_of(v->heat, ino, end);
			if (cmap_get(in->cf, end) != e || heat_level(he) != lvl ||
			    heat_contains(v->heat, ino, end) != hot)
				break;
			hmax = MAX(hmax, he);
		}
		fprintf(o, "run first=%llu last=%llu tier=", (unsigned long long)k, (unsigned long long)end - 1);
		ctl_put_value(o, e ? tier_name(v->tier_by_id[cm_tier(e)]) : "-");
		fprintf(o, " level=%d heat=%u hot=%d\n", lvl, hmax, hot);
		k = end;
	}
out:
	inode_put(v, in);
	return r;
}

/* One tier's part of a `where` reply: its runs, built as the chunks go by. */
struct where_tier {
	FILE *runs;
	char *buf;
	size_t len;
	uint64_t count;
};

static void where_run(struct where_tier *wt, int tid, uint64_t k0, uint64_t k1)
{
	if (tid < 0 || tid >= SILT_MAX_TIERS || !wt[tid].runs)
		return;
	fprintf(wt[tid].runs, "%s%llu-%llu", wt[tid].count ? "," : "", (unsigned long long)k0,
		(unsigned long long)k1);
	wt[tid].count += k1 - k0 + 1;
}

/* Every chunk's entry is read once: the mover may switch chunks between
 * tiers meanwhile, and reading a chunk twice (once per tier) would count
 * one that moved as on both or neither. */
static int where_scan(struct silt_vol *v, struct inode *in, struct where_tier *wt)
{
	uint64_t k0 = 0, prev = 0;
	int tid = -1;

	for (int i = 0; i < v->ntiers; i++) {
		struct where_tier *w = &wt[tier_id(v->tiers[i])];
		if (!(w->runs = open_memstream(&w->buf, &w->len)))
			return -ENOMEM;
	}
	for (uint64_t k = cmap_next_mapped(in->cf, 0); k != UINT64_MAX; k = cmap_next_mapped(in->cf, k + 1)) {
		int t = cm_tier(cmap_get(in->cf, k));
		if (t != tid || k != prev + 1) {
			where_run(wt, tid, k0, prev);
			k0 = k;
			tid = t;
		}
		prev = k;
	}
	where_run(wt, tid, k0, prev);
	int r = 0;
	for (int i = 0; i < SILT_MAX_TIERS; i++) {
		if (wt[i].runs && fclose(wt[i].runs))
			r = -ENOMEM;
		wt[i].runs = NULL;
	}
	return r;
}

static int ctl_where(struct silt_vol *v, uint64_t ino, FILE *o)
{
	struct where_tier wt[SILT_MAX_TIERS] = { 0 };
	struct inode *in;
	int r = inode_get(v, ino, &in);

	if (r)
		return r;
	pthread_mutex_lock(&in->lock);
	r = inode_load_chunks(v, in);
	uint64_t size = in->rec.size, nchunks = in->rec.nchunks;
	pthread_mutex_unlock(&in->lock);
	if (!r)
		r = where_scan(v, in, wt);
	if (r)
		goto out;
	fprintf(o, "file ino=%llu size=%llu chunk_size=%u chunks=%llu\n", (unsigned long long)ino,
		(unsigned long long)size, v->layout.chunk_size, (unsigned long long)nchunks);
	for (int i = 0; i < v->ntiers; i++) {
		struct where_tier *w = &wt[tier_id(v->tiers[i])];
		struct tier_stats ts;
		tier_get_stats(v->tiers[i], &ts);
		fprintf(o, "tier name=");
		ctl_put_value(o, ts.name);
		fprintf(o, " class=%s runs=%s chunks=%llu\n", silt_class_name(ts.cls), w->buf ? w->buf : "",
			(unsigned long long)w->count);
	}
out:
	for (int i = 0; i < SILT_MAX_TIERS; i++) {
		if (wt[i].runs)
			fclose(wt[i].runs);
		free(wt[i].buf);
	}
	inode_put(v, in);
	return r;
}

/* An error record: why (what was wrong with the request) when known. */
static void put_error(FILE *o, int r, const char *why)
{
	fprintf(o, "error errno=%d message=", -r);
	ctl_put_value(o, why && why[0] ? why : r == -EINVAL ? "unknown request or argument" : strerror(-r));
	fputc('\n', o);
}

/* A request for the extension (ctl_ext), if its first word is one of its. */
static int ext_request(const struct ctl_ext *x, const char *req, char **reply, size_t *len)
{
	size_t w = strcspn(req, " ");
	for (int i = 0; i < 2; i++) {
		if (!x->fn || !x->words[i] || strlen(x->words[i]) != w || strncmp(req, x->words[i], w))
			continue;
		FILE *o = open_memstream(reply, len);
		if (!o)
			return -ENOMEM;
		int r = x->fn(x->arg, req, o);
		if (r)
			put_error(o, r, NULL);
		fclose(o);
		return 1;
	}
	return 0;
}

int vol_ctl(struct silt_vol *v, const char *req, char **reply, size_t *len)
{
	FILE *o = open_memstream(reply, len);
	unsigned long long ino;
	char why[WHY_LEN] = "";
	int r = 0;

	if (!o)
		return -ENOMEM;
	if (!strcmp(req, "status"))
		ctl_status(v, o);
	else if (sscanf(req, "where %llu", &ino) == 1)
		r = ctl_where(v, ino, o);
	else if (sscanf(req, "heat %llu", &ino) == 1)
		r = ctl_heat(v, ino, o);
	else if (!strcmp(req, "metrics"))
		ctl_metrics(v, o);
	else if (!strcmp(req, "policy")) {
		ctl_placement(v, o);
		rules_report(v, o);
	}
	else if (!strncmp(req, "policy rule ", 12))
		r = rules_live(v, req + 12, o, why, WHY_LEN);
	else if (!strncmp(req, "policy ", 7))
		r = ctl_set_policy(v, req + 7, o, why);
	else if (!strcmp(req, "migrate") || !strncmp(req, "migrate ", 8))
		r = ctl_migrate(v, req[7] ? req + 8 : "", o, why);
	else if (!strcmp(req, "scrub") || !strncmp(req, "scrub ", 6))
		r = ctl_scrub(v, req[5] ? req + 6 : "", o);
	else if (!strcmp(req, "events") || !strncmp(req, "events ", 7))
		r = ctl_events(v, req[6] ? req + 7 : "", o);
	else if (!strncmp(req, "evacuate ", 9))
		r = ctl_evacuate(v, req + 9, o, why);
	else if (!strcmp(req, "pins") || !strncmp(req, "pin ", 4) || !strncmp(req, "unpin ", 6))
		r = ctl_pin(v, req, o, why);
	else
		r = -EINVAL;
	if (r)
		put_error(o, r, why);
	fclose(o);
	return 0;
}

/* Metrics carry the extension's state too (replication: "sync status",
 * its peers' records), when it has one. */
static void append_ext_status(struct silt_ctl *c, char **reply, size_t *len)
{
	char *more = NULL, *both;
	size_t n = 0;

	if (!c->ext.fn || ext_request(&c->ext, "sync status", &more, &n) != 1 || !more)
		return;
	/* (an error record: the extension could not say; metrics go without) */
	if (strncmp(more, "error ", 6) && !strstr(more, "\nerror ") && (both = realloc(*reply, *len + n + 1))) {
		memcpy(both + *len, more, n + 1);
		*reply = both;
		*len += n;
	}
	free(more);
}

static void serve(struct silt_ctl *c, int fd)
{
	char req[2048]; /* a live rule's glob, escaped, is the longest request */
	size_t n = 0;
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (n < sizeof(req) - 1) {
		ssize_t r = read(fd, req + n, sizeof(req) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(req, '\n', n))
			break;
	}
	req[n] = '\0';
	req[strcspn(req, "\r\n")] = '\0';
	log_debug("control socket: request '%s'", req);
	char *reply = NULL;
	size_t len = 0;
	int handled = ext_request(&c->ext, req, &reply, &len);
	if (handled == 0 && vol_ctl(c->v, req, &reply, &len) == 0 && !strcmp(req, "metrics"))
		append_ext_status(c, &reply, &len);
	if (handled == 1 || (handled == 0 && reply)) {
		for (size_t off = 0; off < len;) {
			/* a client that went away must not kill the daemon */
			ssize_t w = send(fd, reply + off, len - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
	}
	free(reply);
}

static void *ctl_thread(void *arg)
{
	struct silt_ctl *c = arg;
	struct pollfd p[2] = { { .fd = c->lfd, .events = POLLIN }, { .fd = c->stop[0], .events = POLLIN } };

	pthread_setname_np(pthread_self(), "silt-ctl");
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN) {
			int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				serve(c, fd);
				close(fd);
			}
		}
	}
	return NULL;
}

int ctl_start(struct silt_vol *v, const char *path, const struct ctl_ext *ext, struct silt_ctl **out)
{
	struct silt_ctl *c = calloc(1, sizeof(*c));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	int r;

	if (!c)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	c->v = v;
	if (ext)
		c->ext = *ext;
	snprintf(c->path, sizeof(c->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		silt_mkdir_p(dir, 0700);
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0) {
		r = -errno;
		free(c);
		return r;
	}
	/* A socket left by a crashed daemon is stale; a live one is a clash,
	 * unless its daemon is on its way out (just unmounted): give it 10 s. */
	for (int tries = 0; connect(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0; tries++) {
		close(c->lfd);
		if (tries == 100) {
			free(c);
			return -EADDRINUSE;
		}
		usleep(100 * 1000);
		c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->lfd < 0) {
			r = -errno;
			free(c);
			return r;
		}
	}
	unlink(path);
	if (bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(c->lfd, 16) < 0 || pipe2(c->stop, O_CLOEXEC) < 0) {
		r = -errno;
		close(c->lfd);
		unlink(path);
		free(c);
		return r;
	}
	if ((r = -pthread_create(&c->thread, NULL, ctl_thread, c))) {
		close(c->lfd);
		close(c->stop[0]);
		close(c->stop[1]);
		unlink(path);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void ctl_stop(struct silt_ctl *c)
{
	if (!c)
		return;
	if (write(c->stop[1], "x", 1) < 0)
		log_warn("control socket: cannot wake its thread: %s", strerror(errno));
	pthread_join(c->thread, NULL);
	close(c->lfd);
	close(c->stop[0]);
	close(c->stop[1]);
	unlink(c->path);
	free(c);
}
