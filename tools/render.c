/* Records from the control socket into JSON and text tables.
 *
 * The daemon never formats for humans (fs/ctl.c); siltctl's commands
 * declare their output as field and column lists, so that a new command is
 * a few table rows, and the formats of status and where stay fixed in one
 * place. */
#include "tools/render.h"
#include "utils/util.h"

#include <stdlib.h>
#include <string.h>

int recs_parse(char *text, struct rec *recs, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line && n < max; line = strtok_r(NULL, "\n", &save)) {
		struct rec *r = &recs[n++];
		char *s2 = NULL, *tok = strtok_r(line, " ", &s2);
		memset(r, 0, sizeof(*r));
		snprintf(r->kind, sizeof(r->kind), "%s", tok ? tok : "");
		while ((tok = strtok_r(NULL, " ", &s2)) && r->n < REC_MAX_KV) {
			char *eq = strchr(tok, '=');
			if (!eq)
				continue;
			*eq = '\0';
			silt_pct_unescape(eq + 1);
			r->key[r->n] = tok;
			r->val[r->n++] = eq + 1;
		}
	}
	return n;
}

const char *rec_get(const struct rec *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->key[i], key))
			return r->val[i];
	return "";
}

unsigned long long rec_u64(const struct rec *r, const char *key)
{
	return strtoull(rec_get(r, key), NULL, 10);
}

void rec_set(struct rec *r, const char *key, const char *val)
{
	for (int i = 0; i < r->n; i++) {
		if (!strcmp(r->key[i], key)) {
			r->val[i] = val;
			return;
		}
	}
	if (r->n < REC_MAX_KV) {
		r->key[r->n] = key;
		r->val[r->n++] = val;
	}
}

struct rec *recs_find(struct rec *recs, int n, const char *kind)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(recs[i].kind, kind))
			return &recs[i];
	return NULL;
}

void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(o, "\\%c", c);
		else if (c < 0x20)
			fprintf(o, "\\u%04x", c);
		else
			fputc(c, o);
	}
	fputc('"', o);
}

static void json_runs(FILE *o, const char *runs)
{
	char *dup = strdup(runs), *save = NULL;
	int first = 1;

	fputc('[', o);
	for (char *t = dup ? strtok_r(dup, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
		unsigned long long x, y;
		if (sscanf(t, "%llu-%llu", &x, &y) == 2) {
			fprintf(o, "%s[%llu, %llu]", first ? "" : ", ", x, y);
			first = 0;
		}
	}
	fputc(']', o);
	free(dup);
}

static void json_fields(FILE *o, const struct rec *r, const struct jfield *f, int *first)
{
	for (; f->name; f++) {
		const char *v = rec_get(r, f->key);
		fprintf(o, "%s\"%s\": ", *first ? "" : ", ", f->name);
		*first = 0;
		switch (f->type) {
		case J_STR: json_str(o, v); break;
		case J_U64: fprintf(o, "%llu", rec_u64(r, f->key)); break;
		case J_OPT:
			if (!strcmp(v, "-"))
				fputs("null", o);
			else
				json_str(o, v);
			break;
		case J_RUNS: json_runs(o, v); break;
		case J_BOOL: fputs(strcmp(v, "0") && *v ? "true" : "false", o); break;
		}
	}
}

static void json_object(FILE *o, const struct rec *r, const struct jfield *f)
{
	int first = 1;
	fputc('{', o);
	json_fields(o, r, f, &first);
	fputc('}', o);
}

void render_json(FILE *o, const struct rec *recs, int n, const struct jsection *sections)
{
	int first = 1;

	fputc('{', o);
	for (const struct jsection *s = sections; s->kind; s++) {
		const struct rec *r = recs_find((struct rec *)recs, n, s->kind);
		if (!s->array && !r)
			continue;
		if (!s->name) {
			json_fields(o, r, s->fields, &first);
			continue;
		}
		fprintf(o, "%s\"%s\": ", first ? "" : ", ", s->name);
		first = 0;
		if (!s->array) {
			json_object(o, r, s->fields);
			continue;
		}
		int any = 0;
		fputc('[', o);
		for (int i = 0; i < n; i++) {
			if (strcmp(recs[i].kind, s->kind))
				continue;
			fputs(any++ ? ", " : "", o);
			json_object(o, &recs[i], s->fields);
		}
		fputc(']', o);
	}
	fputs("}\n", o);
}

void render_template(FILE *o, const struct rec *r, const char *tmpl)
{
	char key[64], buf[32];

	for (const char *p = tmpl; *p; p++) {
		const char *close;
		if (*p != '{' || !(close = strchr(p, '}')) || close - p - 1 >= (long)sizeof(key)) {
			fputc(*p, o);
			continue;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(close - p - 1), p + 1);
		char *fmt = strchr(key, ':');
		if (fmt)
			*fmt++ = '\0';
		if (fmt && !strcmp(fmt, "size"))
			fputs(silt_fmt_size(rec_u64(r, key), buf, sizeof(buf)), o);
		else if (fmt && !strcmp(fmt, "u"))
			fprintf(o, "%llu", rec_u64(r, key));
		else
			fputs(rec_get(r, key), o);
		p = close;
	}
}

/* One cell's text (before padding). */
static const char *cell(const struct rec *r, const struct column *c, char *buf, size_t len)
{
	unsigned long long of;

	switch (c->type) {
	case C_U64:
		snprintf(buf, len, "%llu", rec_u64(r, c->key));
		return buf;
	case C_SIZE:
		return silt_fmt_size(rec_u64(r, c->key), buf, len);
	case C_PCT:
		of = rec_u64(r, c->of);
		snprintf(buf, len, "%5.1f%%", of ? 100.0 * (double)rec_u64(r, c->key) / (double)of : 0.0);
		return buf;
	case C_STR:
		break;
	}
	const char *v = rec_get(r, c->key);
	if (c->maxlen && strlen(v) > (size_t)c->maxlen) {
		snprintf(buf, len, "%.*s...", c->maxlen, v);
		return buf;
	}
	return v;
}

static void put_cell(FILE *o, const struct column *c, int first, const char *text)
{
	if (!first)
		fputs(c->sep ? c->sep : " ", o);
	if (c->width)
		fprintf(o, "%*s", c->width, text);
	else
		fputs(text, o);
}

void render_table(FILE *o, const struct rec *recs, int n, const char *kind, const struct column *cols,
		  const struct rownote *note)
{
	char buf[256];

	for (const struct column *c = cols; c->head; c++)
		put_cell(o, c, c == cols, c->head);
	fputc('\n', o);
	for (int i = 0; i < n; i++) {
		if (strcmp(recs[i].kind, kind))
			continue;
		for (const struct column *c = cols; c->head; c++)
			put_cell(o, c, c == cols, cell(&recs[i], c, buf, sizeof(buf)));
		fputc('\n', o);
		if (note && strcmp(rec_get(&recs[i], note->when), note->unless))
			fprintf(o, "%*s%s\n", note->indent, "", rec_get(&recs[i], note->key));
	}
}

/* ---- Prometheus ---- */

#define PLABELS_MAX 12

struct plabels {
	int n;
	char name[PLABELS_MAX][32];
	char lit[PLABELS_MAX][64];   /* what spec says after '=' */
	const char *val[PLABELS_MAX];
};

/* Add the pairs of spec ("a=b,c=d"): b the value itself, or (from_rec)
 * the key of r that holds it. */
static void labels_add(struct plabels *l, const char *spec, const struct rec *r, int from_rec)
{
	for (const char *p = spec; p && *p && l->n < PLABELS_MAX;) {
		const char *eq = strchr(p, '='), *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		if (!eq || eq > end)
			break;
		snprintf(l->name[l->n], sizeof(l->name[0]), "%.*s", (int)(eq - p), p);
		snprintf(l->lit[l->n], sizeof(l->lit[0]), "%.*s", (int)(end - eq - 1), eq + 1);
		l->val[l->n] = from_rec ? rec_get(r, l->lit[l->n]) : l->lit[l->n];
		l->n++;
		p = *end ? end + 1 : end;
	}
}

static void prom_escaped(FILE *o, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(o, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", o);
		else
			fputc(*s, o);
	}
}

/* One sample line (or JSON object): name+suffix{labels[,le]} value. */
static void prom_sample(FILE *o, int json, int *first, const char *name, const char *suffix,
			const struct plabels *l, const char *le, const char *value)
{
	if (json) {
		fprintf(o, "%s{\"name\": \"%s%s\", \"labels\": {", *first ? "" : ", ", name, suffix);
		for (int i = 0; i < l->n; i++) {
			fprintf(o, "%s\"%s\": ", i ? ", " : "", l->name[i]);
			json_str(o, l->val[i]);
		}
		if (le) {
			fprintf(o, "%s\"le\": ", l->n ? ", " : "");
			json_str(o, le);
		}
		fprintf(o, "}, \"value\": %s}", value);
	} else {
		fprintf(o, "%s%s", name, suffix);
		if (l->n || le) {
			fputc('{', o);
			for (int i = 0; i < l->n; i++) {
				fprintf(o, "%s%s=\"", i ? "," : "", l->name[i]);
				prom_escaped(o, l->val[i]);
				fputc('"', o);
			}
			if (le)
				fprintf(o, "%sle=\"%s\"", l->n ? "," : "", le);
			fputc('}', o);
		}
		fprintf(o, " %s\n", value);
	}
	*first = 0;
}

/* A histogram sample: cumulative buckets, +Inf, _sum (seconds), _count. */
static void prom_histogram(FILE *o, int json, int *first, const struct pmetric *m, const struct rec *r,
			   const struct plabels *l)
{
	char *counts = strdup(rec_get(r, m->key)), *bounds = strdup(rec_get(r, m->bounds));
	char *sc = NULL, *sb = NULL, le[32], val[32];
	unsigned long long total = 0;

	for (char *c = counts ? strtok_r(counts, ",", &sc) : NULL; c; c = strtok_r(NULL, ",", &sc)) {
		char *b = bounds ? strtok_r(sb ? NULL : bounds, ",", &sb) : NULL;
		total += strtoull(c, NULL, 10);
		if (b)
			snprintf(le, sizeof(le), "%g", (double)strtoull(b, NULL, 10) / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(val, sizeof(val), "%llu", total);
		prom_sample(o, json, first, m->name, "_bucket", l, le, val);
		if (!b)
			break;
	}
	snprintf(val, sizeof(val), "%.9f", (double)rec_u64(r, m->sum) / 1e9);
	prom_sample(o, json, first, m->name, "_sum", l, NULL, val);
	snprintf(val, sizeof(val), "%llu", total);
	prom_sample(o, json, first, m->name, "_count", l, NULL, val);
	free(counts);
	free(bounds);
}

void render_prom(FILE *o, const struct rec *recs, int n, const struct pmetric *table, const char *global,
		 int json)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	int first_family = 1, first = 1;

	if (json)
		fputs("{\"metrics\": [", o);
	for (const struct pmetric *m = table; m->name; m++) {
		int same = m > table && !strcmp(m[-1].name, m->name);
		if (!same && json) {
			fprintf(o, "%s{\"name\": \"%s\", \"type\": \"%s\", \"help\": ", first_family ? "" : "]}, ",
				m->name, types[m->type]);
			json_str(o, m->help);
			fputs(", \"samples\": [", o);
			first_family = 0;
			first = 1;
		} else if (!same) {
			fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
		}
		for (int i = 0; i < n; i++) {
			struct plabels l = { 0 };
			char val[32];
			if (strcmp(recs[i].kind, m->kind))
				continue;
			labels_add(&l, global, NULL, 0);
			labels_add(&l, m->labels, &recs[i], 1);
			labels_add(&l, m->fixed, NULL, 0);
			if (m->type == P_HISTOGRAM) {
				prom_histogram(o, json, &first, m, &recs[i], &l);
				continue;
			}
			snprintf(val, sizeof(val), "%llu", rec_u64(&recs[i], m->key));
			prom_sample(o, json, &first, m->name, "", &l, NULL, val);
		}
	}
	if (json)
		fputs(first_family ? "]}\n" : "]}]}\n", o);
}
