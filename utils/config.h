/* Volume configuration: an INI file (libinih) naming the volume and its
 * storage tiers, fastest first. */
#ifndef SILT_CONFIG_H
#define SILT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SILT_MAX_TIERS 8
#define SILT_NAME_MAX 64
#define SILT_NET_TIMEOUT_MS 5000 /* a net tier's timeout = by default */
#define SILT_NET_RETRIES 1

enum silt_tier_class { SILT_CLASS_NVME, SILT_CLASS_SSD, SILT_CLASS_HDD, SILT_CLASS_NET };

struct silt_tier_conf {
	char name[SILT_NAME_MAX];
	char path[4096];
	enum silt_tier_class cls;
	uint64_t capacity;      /* bytes; 0 = "auto" (what the tier filesystem offers) */
	unsigned high_wm;       /* percent of capacity: new chunks go elsewhere above it */
	unsigned low_wm;        /* percent: demotion target for the migration engine */
	int zstd_level;         /* 0 = uncompressed */
	int write_promote;      /* a write into a chunk here first copies it up to the write target */
	int checksum;           /* per-block checksums of its chunks: 1, 0, or -1 (by class: hdd and net) */
	uint32_t timeout_ms;    /* net tiers: an I/O not done by then is retried, then fails (EIO) */
	unsigned retries;       /* net tiers: tries after the first that timed out or failed */
	int timeout_line;       /* where timeout = or retries = is (0: not given) */
	int line;               /* where the section starts, for later error messages */
	int path_line;          /* where path = and capacity = are (0: not given) */
	int capacity_line;
};

/* [placement]: how chunks move between tiers. Names are checked when the
 * volume opens (against predictor/'s policies), with their line. */
struct silt_placement_conf {
	char policy[32];        /* a classical policy of predictor/policy.h */
	int policy_line;
	char migration[16];     /* policy | churn | off */
	int migration_line;
	uint32_t epoch_ms;      /* how often the placer plans */
	uint64_t rate;          /* migration bytes per second at most */
	uint64_t busy_rate;     /* ... while foreground I/O is busy */
	int rates_line;         /* where the later of rate = and busy_rate = is */
	uint32_t half_life_s;   /* heat halves every this many seconds */
};

/* [sync] and [peer NAME]: replication (sync/). Keys and addresses are kept
 * as text with their line and checked by sync/ when it starts, so that its
 * errors still name the line. */
#define SILT_MAX_PEERS 8
struct silt_peer_conf {
	char name[SILT_NAME_MAX];
	char address[256];      /* host:port to ship to; "" = a peer that ships to us */
	char public_key[64];    /* base64 X25519 public key (44 characters) */
	int line, address_line, key_line;
};

struct silt_sync_conf {
	int present;            /* the config has a [sync] section */
	int line;
	char private_key[64];   /* base64 X25519 secret key of this host */
	int key_line;
	char listen[256];       /* host:port: this volume receives (a replica) */
	int listen_line;
	char state[4096];       /* receiver state (spool, last applied batch) */
	int state_line;
	uint64_t max_lag_ms;    /* ship at once when the oldest unshipped change is this old */
	uint64_t interval_ms;   /* otherwise cut a batch this often */
	int schedule;           /* 0: on the interval; 1: in forecast quiet periods */
	uint64_t bandwidth;     /* bytes per second on the wire, 0 = no cap */
	uint64_t journal_max;   /* journal entries before a lagging peer falls back to resync */
	uint64_t verify_ms;     /* verify peers this often, 0 = only on demand */
	int npeers;
	struct silt_peer_conf peers[SILT_MAX_PEERS];
};

/* [rule NAME]: placement bounds for the files whose path matches a glob
 * (fs/rules.c). Tier names are checked against the [tier] sections. */
#define SILT_MAX_RULES 32
#define SILT_GLOB_MAX 200
struct silt_rule_conf {
	char name[SILT_NAME_MAX];
	char match[SILT_GLOB_MAX];  /* glob over the path below the volume root */
	char pin[SILT_NAME_MAX];    /* "" = none: every chunk on this tier */
	char min_tier[SILT_NAME_MAX]; /* "" = none: no chunk on a tier slower than this */
	char max_tier[SILT_NAME_MAX]; /* "" = none: no chunk on a tier faster than this */
	int compress;               /* 0: never on a compressed tier */
	int weight;                 /* 1..100: its chunks rank this much hotter (default 1) */
	int line, match_line, pin_line, min_line, max_line; /* 0 for a live rule (siltctl) */
};

struct silt_config {
	char file[4096];
	char name[SILT_NAME_MAX];
	uint32_t chunk_size;
	char meta_dir[4096];    /* "" = <first tier>/<uuid>/meta */
	int meta_line;          /* where metadata = is */
	uint64_t ram_size;
	struct silt_placement_conf placement;
	char log_file[4096];    /* "" = auto: syslog if present, else /var/log/siltfs/<name>.log */
	int log_level;          /* enum silt_log_level (utils/log.h), default info */
	uint64_t log_max_size;  /* rotate the log file above this; 0 = never */
	struct silt_sync_conf sync;
	int ntiers;
	struct silt_tier_conf tiers[SILT_MAX_TIERS];
	int nrules;             /* in the config's order: the first that matches a file wins */
	struct silt_rule_conf rules[SILT_MAX_RULES];
};

/* Parse and validate. On error returns -EINVAL (or -errno for I/O) and puts
 * "file:line: what is wrong" into err. */
int silt_config_load(const char *path, struct silt_config *cfg, char *err, size_t errlen);

const char *silt_class_name(enum silt_tier_class c);
/* The placement order (0 = fastest) of the tier called name, -1 if none. */
int silt_config_tier_index(const struct silt_config *cfg, const char *name);
/* Whether a rule's glob is well formed: NULL, or what is wrong with it. */
const char *silt_glob_problem(const char *glob);
/* A rule called name with nothing set yet (compress = yes, weight = 1). */
void silt_rule_init(struct silt_rule_conf *r, const char *name);
/* One key of a rule (match, pin, min_tier, max_tier, weight, compress):
 * 0, or -EINVAL and what is wrong with it in why. */
int silt_rule_key(struct silt_rule_conf *r, const char *key, const char *value, char *why, size_t len);
/* A whole rule against the tiers of cfg: 0, or -EINVAL and why in err
 * ("file:line: [rule X] ..." for a config rule, "rule X: ..." for a live one). */
int silt_rule_check(const struct silt_config *cfg, const struct silt_rule_conf *r, char *err, size_t errlen);
#define SILT_RULE_WEIGHT_MAX 100
/* What [placement] holds when the config says nothing. */
void silt_placement_defaults(struct silt_placement_conf *p);
void silt_sync_defaults(struct silt_sync_conf *s);

#endif
