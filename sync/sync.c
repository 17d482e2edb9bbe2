/* Replication wiring (sync.h): checks the [sync] and [peer] sections, then
 * starts the journal and a sender per peer with an address (a primary) or
 * the receiver (a replica, `listen`). Every error names the config line. */
#include "sync/sync.h"
#include "sync/chan.h"
#include "sync/journal.h"
#include "sync/receiver.h"
#include "sync/sender.h"
#include "fs/vol.h"
#include "utils/config.h"
#include "utils/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct silt_sync {
	struct sync_journal *journal;
	int nsenders;
	struct sync_sender *senders[SILT_MAX_PEERS];
	struct sync_receiver *receiver;
};

static int key_at(const struct silt_config *cfg, const char *b64, int line, const char *what, uint8_t out[32],
		  char *err, size_t errlen)
{
	if (chan_key_parse(b64, out)) {
		snprintf(err, errlen, "%s:%d: %s: not a key (44 characters of base64, from `siltctl sync keygen`)",
			 cfg->file, line, what);
		return -EINVAL;
	}
	return 0;
}

static int start_replica(struct silt_sync *s, struct silt_vol *v, const struct silt_config *cfg,
			 const uint8_t sk[32], char *err, size_t errlen)
{
	const struct silt_sync_conf *sc = &cfg->sync;
	struct receiver_conf rc = { .vol = v };
	int r;

	if (!sc->state[0]) {
		snprintf(err, errlen, "%s:%d: [sync] with listen needs state = DIR (where the replica keeps "
			 "its position)", cfg->file, sc->line);
		return -EINVAL;
	}
	for (int i = 0; i < sc->npeers; i++) {
		if (sc->peers[i].address[0]) {
			snprintf(err, errlen, "%s:%d: [peer %s] has an address, but this volume is a replica "
				 "(listen): it ships to nobody", cfg->file, sc->peers[i].address_line, sc->peers[i].name);
			return -EINVAL;
		}
		if ((r = key_at(cfg, sc->peers[i].public_key, sc->peers[i].key_line, "public_key",
				rc.peer_pk[rc.npeers], err, errlen)))
			return r;
		snprintf(rc.peer_name[rc.npeers++], 64, "%s", sc->peers[i].name);
	}
	if (!rc.npeers) {
		snprintf(err, errlen, "%s:%d: a replica needs a [peer NAME] with the primary's public_key",
			 cfg->file, sc->line);
		return -EINVAL;
	}
	snprintf(rc.listen, sizeof(rc.listen), "%s", sc->listen);
	snprintf(rc.state, sizeof(rc.state), "%s", sc->state);
	memcpy(rc.sk, sk, 32);
	if ((r = receiver_start(&rc, &s->receiver, err, errlen))) {
		char e2[512];
		snprintf(e2, sizeof(e2), "%s", err);
		snprintf(err, errlen, "%s:%d: %s", cfg->file, sc->listen_line, e2);
	}
	return r;
}

static int start_primary(struct silt_sync *s, struct silt_vol *v, const struct silt_config *cfg,
			 const uint8_t sk[32], char *err, size_t errlen)
{
	const struct silt_sync_conf *sc = &cfg->sync;
	struct journal_conf jc = { .meta = vol_meta(v), .commit = vol_commit_point(v),
				   .max_entries = sc->journal_max };
	struct sender_conf c[SILT_MAX_PEERS];
	int r;

	for (int i = 0; i < sc->npeers; i++) {
		const struct silt_peer_conf *p = &sc->peers[i];
		if (!p->address[0])
			continue; /* a peer that may ship to us once we are a replica */
		struct sender_conf *x = &c[jc.npeers];
		memset(x, 0, sizeof(*x));
		if ((r = key_at(cfg, p->public_key, p->key_line, "public_key", x->peer_pk, err, errlen)))
			return r;
		if (!strchr(p->address, ':')) {
			snprintf(err, errlen, "%s:%d: address = %s: must be host:port", cfg->file, p->address_line,
				 p->address);
			return -EINVAL;
		}
		snprintf(x->name, sizeof(x->name), "%s", p->name);
		snprintf(x->address, sizeof(x->address), "%s", p->address);
		memcpy(x->sk, sk, 32);
		x->vol = v;
		x->peer = jc.npeers;
		x->max_lag_ms = sc->max_lag_ms;
		x->interval_ms = sc->interval_ms;
		x->schedule = sc->schedule;
		x->bandwidth = sc->bandwidth;
		x->verify_ms = sc->verify_ms;
		x->chunk_size = cfg->chunk_size;
		jc.peers[jc.npeers++] = p->name;
	}
	if (!jc.npeers)
		return 0;
	if ((r = gens_begin(vol_meta(v)))) {
		snprintf(err, errlen, "replication: cannot record the volume's generation: %s", strerror(-r));
		return r;
	}
	if ((r = journal_open(&jc, &s->journal))) {
		snprintf(err, errlen, "replication journal: %s", strerror(-r));
		return r;
	}
	for (int i = 0; i < jc.npeers; i++) {
		c[i].journal = s->journal;
		if ((r = sender_start(&c[i], &s->senders[i]))) {
			snprintf(err, errlen, "replication to %s: cannot start: %s", c[i].name, strerror(-r));
			return r;
		}
		s->nsenders++;
	}
	return 0;
}

int sync_start(struct silt_vol *v, const struct silt_config *cfg, struct silt_sync **out, char *err,
	       size_t errlen)
{
	const struct silt_sync_conf *sc = &cfg->sync;
	uint8_t sk[32];
	int r;

	*out = NULL;
	if (!sc->present)
		return 0;
	if (!sc->private_key[0]) {
		snprintf(err, errlen, "%s:%d: [sync] has no private_key (make one with `siltctl sync keygen`)",
			 cfg->file, sc->line);
		return -EINVAL;
	}
	if ((r = key_at(cfg, sc->private_key, sc->key_line, "private_key", sk, err, errlen)))
		return r;
	struct silt_sync *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = sc->listen[0] ? start_replica(s, v, cfg, sk, err, errlen) : start_primary(s, v, cfg, sk, err, errlen);
	memset(sk, 0, sizeof(sk));
	if (r) {
		sync_stop(s);
		sync_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int sync_is_replica(const struct silt_sync *s)
{
	return s && s->receiver;
}

void sync_stop(struct silt_sync *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nsenders; i++)
		sender_stop(s->senders[i]);
	s->nsenders = 0;
	receiver_stop(s->receiver);
	s->receiver = NULL;
}

void sync_free(struct silt_sync *s)
{
	if (!s)
		return;
	journal_free(s->journal);
	free(s);
}

int sync_ctl(void *arg, const char *req, FILE *o)
{
	struct silt_sync *s = arg;

	if (!strcmp(req, "sync verify")) {
		if (!s || !s->nsenders)
			return -ENOTSUP; /* only a primary verifies its peers */
		for (int i = 0; i < s->nsenders; i++)
			sender_verify(s->senders[i]);
		fprintf(o, "sync verify=requested peers=%d\n", s->nsenders);
		return 0;
	}
	if (!strncmp(req, "replica ", 8)) {
		if (!s || !s->receiver)
			return -ENOTSUP; /* only a replica */
		return receiver_command(s->receiver, req + 8, o);
	}
	if (strcmp(req, "sync status"))
		return -EINVAL;
	if (!s) {
		fprintf(o, "sync role=none\n");
		return 0;
	}
	fprintf(o, "sync role=%s\n", s->receiver ? "replica" : "primary");
	for (int i = 0; i < s->nsenders; i++)
		sender_status(s->senders[i], o);
	if (s->receiver)
		receiver_status(s->receiver, o);
	return 0;
}
