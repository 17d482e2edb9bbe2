/* Operator control socket: a UNIX stream socket (root only) answering one
 * request per connection; siltctl is the client. */
#ifndef SILT_CTL_H
#define SILT_CTL_H

#include <stdio.h>

struct silt_vol;
struct silt_ctl;

/* Requests whose first word is `word` are answered by a module above the
 * engine (replication: "sync ...", "replica ..."), in the same record
 * format, by fn writing to out; a negative errno becomes an error record. */
struct ctl_ext {
	const char *words[2];
	int (*fn)(void *arg, const char *request, FILE *out);
	void *arg;
};

/* Write s as a record's value: bytes that would end it (space, newline,
 * '=', '%', control and non-ASCII bytes) as %XX, which siltctl decodes. */
void ctl_put_value(FILE *o, const char *s);

/* ext may be NULL. */
int ctl_start(struct silt_vol *v, const char *path, const struct ctl_ext *ext, struct silt_ctl **out);
void ctl_stop(struct silt_ctl *c);

#endif
