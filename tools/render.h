/* The daemon's replies ("kind key=value ..." records, fs/ctl.c) and their
 * two renderings: JSON, and text (a template for the heading, a table for
 * the rows). A command of siltctl describes its output with the tables
 * below instead of printing it field by field. */
#ifndef SILT_RENDER_H
#define SILT_RENDER_H

#include <stdio.h>

/* fields a record keeps (a sync peer has about 40, with those siltctl adds);
 * more are dropped, so raise it with the widest record */
#define REC_MAX_KV 48

struct rec {
	char kind[16];
	int n;
	const char *key[REC_MAX_KV], *val[REC_MAX_KV];
};

/* Split text (modified in place, must outlive recs) into records. */
int recs_parse(char *text, struct rec *recs, int max);
const char *rec_get(const struct rec *r, const char *key);  /* "" if absent */
unsigned long long rec_u64(const struct rec *r, const char *key);
/* Add or replace a value; val must outlive the record. */
void rec_set(struct rec *r, const char *key, const char *val);
struct rec *recs_find(struct rec *recs, int n, const char *kind);

/* JSON: an object made of sections, in order. A section takes its fields
 * from the first record of its kind (an object under name, or merged into
 * the top level when name is NULL; left out when there is no record), or
 * from every record of its kind (array: a list under name, maybe empty). */
enum jtype {
	J_STR,   /* "text" */
	J_U64,   /* number */
	J_OPT,   /* "text", or null for "-" */
	J_RUNS,  /* "0-3,7-7" -> [[0, 3], [7, 7]] */
	J_BOOL,  /* "0" -> false, anything else -> true */
};
struct jfield { const char *name, *key; enum jtype type; };
struct jsection { const char *kind, *name; int array; const struct jfield *fields; };
void render_json(FILE *o, const struct rec *recs, int n, const struct jsection *sections);
void json_str(FILE *o, const char *s);

/* Text heading: tmpl with {key} (the value as is), {key:u} (a number),
 * {key:size} (human size, "64.0 KiB") taken from r. */
void render_template(FILE *o, const struct rec *r, const char *tmpl);

/* Text table of every record of kind: a header line, then one line per
 * record (and its note, if any). width < 0 pads on the right
 * (left-aligned), 0 not at all. */
enum ctype {
	C_STR,
	C_U64,
	C_SIZE,  /* human size */
	C_PCT,   /* 100 * key / of, "%5.1f%%" (0 when of is 0) */
};
struct column {
	const char *head, *key;
	int width;
	enum ctype type;
	const char *of;   /* C_PCT: the denominator's key */
	const char *sep;  /* before the column (default one space) */
	int maxlen;       /* cut longer values, ending them with "..." */
};
/* A line under a row, when the row's `when` value is not `unless`: the
 * row's `key` value, indented by `indent` spaces. */
struct rownote { const char *when, *unless, *key; int indent; };
void render_table(FILE *o, const struct rec *recs, int n, const char *kind, const struct column *cols,
		  const struct rownote *note);

/* Prometheus's text exposition format (or, with json, the same samples as
 * JSON): a metric family per row of table, ended by a row without name.
 * Each record of the row's kind is a sample of it, its value the record's
 * key; consecutive rows of one name are one family (HELP and TYPE once),
 * told apart by their fixed labels. Labels are "label=reckey,..." (values
 * from the record), fixed ones "label=value,...", and the global ones
 * (e.g. "volume=vm") go on every sample. A histogram's key holds the
 * counts of its buckets (comma-separated, the last one +Inf), `bounds` the
 * buckets' upper bounds in microseconds and `sum` the sum in nanoseconds:
 * it is rendered in seconds, cumulative, with _sum and _count. */
enum ptype { P_COUNTER, P_GAUGE, P_HISTOGRAM };
struct pmetric {
	const char *name, *help;
	enum ptype type;
	const char *kind, *key;
	const char *labels, *fixed;
	const char *bounds, *sum;   /* P_HISTOGRAM */
};
void render_prom(FILE *o, const struct rec *recs, int n, const struct pmetric *table, const char *global,
		 int json);

#endif
