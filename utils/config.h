/* Volume configuration: an INI file (libinih) naming the volume and its
 * storage tiers, fastest first. */
#ifndef SILT_CONFIG_H
#define SILT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SILT_MAX_TIERS 8
#define SILT_NAME_MAX 64

enum silt_tier_class { SILT_CLASS_NVME, SILT_CLASS_SSD, SILT_CLASS_HDD, SILT_CLASS_NET };

struct silt_tier_conf {
	char name[SILT_NAME_MAX];
	char path[4096];
	enum silt_tier_class cls;
	uint64_t capacity;      /* bytes; 0 = "auto" (what the tier filesystem offers) */
	unsigned high_wm;       /* percent of capacity: new chunks go elsewhere above it */
	unsigned low_wm;        /* percent: demotion target for the migration engine */
	int zstd_level;         /* 0 = uncompressed */
	int line;               /* where the section starts, for later error messages */
};

struct silt_config {
	char file[4096];
	char name[SILT_NAME_MAX];
	uint32_t chunk_size;
	char meta_dir[4096];    /* "" = <first tier>/<uuid>/meta */
	uint64_t ram_size;
	int ntiers;
	struct silt_tier_conf tiers[SILT_MAX_TIERS];
};

/* Parse and validate. On error returns -EINVAL (or -errno for I/O) and puts
 * "file:line: what is wrong" into err. */
int silt_config_load(const char *path, struct silt_config *cfg, char *err, size_t errlen);

const char *silt_class_name(enum silt_tier_class c);

#endif
