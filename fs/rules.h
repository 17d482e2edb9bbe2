/* Placement rules: [rule NAME] sections of the config that bound where the
 * chunks of the files whose path matches a glob may live (pin to a tier,
 * the fastest and the slowest tier allowed, compression allowed or not)
 * and how much their chunks weigh in the placement policy.
 *
 * The daemon knows inodes, not paths, so it keeps the directory tree in
 * memory (each directory's parent and name: built from the store at mount,
 * and only when there are rules) and matches a file whenever it gets a
 * name: create, link, rename, and every file below a directory that is
 * renamed. At mount every file is matched again, so a rule added to the
 * config applies to the files already there. Rules can also be added and
 * removed live (siltctl policy rule): records in the store, written
 * through the commit point, matched at once against every file and again
 * at every mount; a live rule hides the config's of its name. What a rule
 * makes of a file is its bound (tiers/bounds.h), which the allocator and
 * the migration engine follow, and its weight, which makes the file's
 * chunks rank hotter (heat_set_weight); an operator's pin (fs/pins.h)
 * wins over a rule.
 *
 * The namespace hooks run under ns_lock, after their change is committed. */
#ifndef SILT_RULES_H
#define SILT_RULES_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct silt_vol;

/* At mount, before the pins: compile the rules, match every file. */
int rules_open(struct silt_vol *v, char *err, size_t errlen);
void rules_close(struct silt_vol *v);
/* The tier ids rule r (-1: none) allows, BOUND_ALL for none. */
uint8_t rules_allowed(struct silt_vol *v, int r);
/* ino (of mode) is now called parent/name. */
void rules_named(struct silt_vol *v, uint64_t parent, const char *name, uint64_t ino, mode_t mode);
/* The directory ino is gone. */
void rules_dir_gone(struct silt_vol *v, uint64_t ino);
/* "rule name= match= tiers= weight= from= line= overrides= matched="
 * records, in the order they are tried. */
void rules_report(struct silt_vol *v, FILE *o);
/* siltctl policy rule: "add NAME KEY=VALUE..." (the keys of a [rule]
 * section, values %-escaped) or "rm NAME". Written through the commit
 * point, then every file is matched again. A "rule" record of the new rule
 * goes to o; why says what is wrong (-EINVAL: a bad key, glob, tier or
 * weight; -EEXIST: a live rule of that name; -E2BIG: too many rules;
 * -ENOENT: no such rule; -EPERM: a config rule), and nothing changes. */
int rules_live(struct silt_vol *v, const char *req, FILE *o, char *why, size_t len);
/* The store's live rules changed under us (a replica took its primary's,
 * fs/facts.c): load them again and match every file. */
int rules_reload(struct silt_vol *v);

#endif
