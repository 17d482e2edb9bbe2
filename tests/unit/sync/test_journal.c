/* The replication journal (sync/journal.h) over a real metadata store and
 * commit point: coalescing once per batch, batch order, entries that ride
 * in the change's own batch, survival of kill -9, acknowledgement and
 * trimming, and the bound with its fallback to a dirty set that drains. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/meta/commit.h"
#include "fs/meta/meta.h"
#include "sync/journal.h"

struct fixture {
	char dir[64];
	struct silt_meta *meta;
	struct silt_commit *commit;
	struct sync_journal *j;
	uint64_t max;
};

static void open_all(struct fixture *f, int create)
{
	char err[512];
	assert_int_equal(meta_open(f->dir, create ? META_CREATE : META_OPEN, &f->meta, err, sizeof(err)), 0);
	assert_int_equal(commit_open(f->meta, &f->commit), 0);
	struct journal_conf jc = { .meta = f->meta, .commit = f->commit, .peers = { "replica" },
				   .npeers = 1, .max_entries = f->max ? f->max : 1000000 };
	assert_int_equal(journal_open(&jc, &f->j), 0);
}

static void close_all(struct fixture *f)
{
	commit_close(f->commit);
	meta_close(f->meta);
	journal_free(f->j);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/silt-journal-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	open_all(f, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	close_all(f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void note(struct fixture *f, uint64_t ino, uint64_t k0, uint64_t k1)
{
	struct change ch = { .kind = CHANGE_DATA, .ino = ino, .first = k0, .last = k1 };
	commit_note(f->commit, &ch);
}

static void commit_change(struct fixture *f, enum change_kind kind, uint64_t ino, uint64_t k0, uint64_t k1)
{
	struct meta_batch *b = meta_batch_new();
	struct change ch = { .kind = kind, .ino = ino, .first = k0, .last = k1 };
	meta_put(b, f->meta, CF_FACTS, "x", 1, "y", 1);
	assert_int_equal(commit_apply(f->commit, b, 0, &ch, 1), 0);
	meta_batch_free(b);
}

static size_t read_all(struct fixture *f, uint64_t from, uint64_t to, struct journal_entry **e)
{
	size_t n;
	uint64_t covered;
	assert_int_equal(journal_read(f->j, from, to, 1u << 20, e, &n, &covered), 0);
	assert_int_equal(covered, to);
	return n;
}

/* A chunk written a thousand times in one batch is recorded once, and
 * adjacent chunks come back as one range. */
static void test_coalesce(void **state)
{
	struct fixture *f = *state;
	struct journal_stats st;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	for (int i = 0; i < 1000; i++)
		note(f, 7, 3, 3);
	note(f, 7, 4, 5);
	journal_stats(f->j, 0, &st);
	assert_int_equal(st.noted, 1001);
	assert_int_equal(st.recorded, 3);
	uint64_t cut = journal_cut(f->j);
	assert_int_equal(cut, base + 1);
	size_t n = read_all(f, base, cut, &e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].ino, 7);
	assert_int_equal(e[0].first, 3);
	assert_int_equal(e[0].last, 5);
	assert_int_equal(e[0].flags, JE_DATA);
	free(e);
	/* nothing changed: the same cut */
	assert_int_equal(journal_cut(f->j), cut);

	/* a file that grows by a hundred commits: one attribute entry, and
	 * the count of entries in the store says so */
	journal_stats(f->j, 0, &st);
	uint64_t before = st.entries;
	for (int i = 0; i < 100; i++)
		commit_change(f, CHANGE_ATTR, 8, 0, 0);
	journal_stats(f->j, 0, &st);
	assert_int_equal(st.entries, before + 1);
	uint64_t cut2 = journal_cut(f->j);
	n = read_all(f, cut, cut2, &e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].flags, JE_ATTR);
	free(e);
}

/* Batches are ordered; a chunk written again in the next batch is
 * recorded again there; metadata changes carry their entries in their own
 * batch (namespace: the inode and a namespace mark). */
static void test_batches(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	note(f, 9, 0, 0);
	uint64_t c1 = journal_cut(f->j);
	note(f, 9, 0, 0);
	commit_change(f, CHANGE_NS, 12, 0, 0);
	uint64_t c2 = journal_cut(f->j);
	assert_true(c2 == c1 + 1);
	size_t n = read_all(f, base, c1, &e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].ino, 9);
	free(e);
	n = read_all(f, c1, c2, &e);
	assert_int_equal(n, 3); /* ns mark (ino 0), ino 9 chunk 0, ino 12 attributes */
	assert_int_equal(e[0].ino, 0);
	assert_int_equal(e[0].flags, JE_NS);
	assert_int_equal(e[1].ino, 9);
	assert_int_equal(e[2].ino, 12);
	assert_int_equal(e[2].first, JE_INODE);
	assert_int_equal(e[2].flags, JE_ATTR);
	free(e);
	/* across both batches the chunk is one entry */
	n = read_all(f, base, c2, &e);
	assert_int_equal(n, 3);
	free(e);
	/* internal bookkeeping is nothing a replica sees */
	commit_change(f, CHANGE_INTERNAL, 0, 0, 0);
	assert_int_equal(journal_cut(f->j), c2);
}

/* Pins, live rules and events (the commit point's PLACEMENT and EVENT
 * changes) are one facts entry per batch, of its own key: not folded into
 * the namespace mark of the same batch. */
static void test_facts(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	struct journal_stats st;
	uint64_t base = journal_cut(f->j);

	journal_stats(f->j, 0, &st);
	uint64_t before = st.entries;
	commit_change(f, CHANGE_NS, 12, 0, 0);
	for (int i = 0; i < 50; i++) {
		commit_change(f, CHANGE_PLACEMENT, 12, 0, 0);
		commit_change(f, CHANGE_EVENT, 0, 0, 0);
	}
	journal_stats(f->j, 0, &st);
	assert_int_equal(st.entries, before + 3); /* ns mark, ino 12 attributes, facts */
	uint64_t cut = journal_cut(f->j);
	size_t n = read_all(f, base, cut, &e);
	assert_int_equal(n, 3);
	assert_int_equal(e[0].ino, 0);
	assert_int_equal(e[0].first, JE_FACTS_KEY);
	assert_int_equal(e[0].flags, JE_FACTS);
	assert_int_equal(e[1].ino, 0);
	assert_int_equal(e[1].flags, JE_NS);
	free(e);
	/* and again in the next batch */
	commit_change(f, CHANGE_EVENT, 0, 0, 0);
	uint64_t cut2 = journal_cut(f->j);
	assert_int_equal(cut2, cut + 1);
	n = read_all(f, cut, cut2, &e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].flags, JE_FACTS);
	free(e);
}

/* Clearing a peer's dirty set (a full sync begins) takes its dirty keys
 * only: not the journal's entries of the batch that goes on meanwhile
 * (their keys sort right after the dirty sets' and once went with them),
 * nor another peer's dirty set. */
static void test_dirty_clear_only_dirty(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	note(f, 7, 3, 3);
	assert_int_equal(journal_dirty_clear(f->j, 0), 0);
	uint64_t c = journal_cut(f->j);
	size_t n = read_all(f, base, c, &e);
	assert_int_equal(n, 1);
	assert_int_equal(e[0].ino, 7);
	assert_int_equal(e[0].first, 3);
	free(e);
}

/* Close, then in a child: open, do what(f), and die by SIGKILL; open
 * again in the parent. */
static void killed_after(struct fixture *f, void (*what)(struct fixture *f))
{
	int status;

	close_all(f);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		open_all(f, 0);
		what(f);
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	open_all(f, 0);
}

static void kill_writes(struct fixture *f)
{
	note(f, 21, 100, 100);
	commit_change(f, CHANGE_MAP, 22, 5, 6);
}

static void kill_synced(struct fixture *f)
{
	note(f, 31, 200, 200);
	note(f, 31, 3, 3);
	if (commit_sync(f->commit))
		_exit(1);
}

/* A daemon killed with SIGKILL right after a write keeps its entry. */
static void test_survives_kill(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	killed_after(f, kill_writes);
	uint64_t cut = journal_cut(f->j);
	assert_true(cut > base);
	size_t n = read_all(f, base, cut, &e);
	assert_int_equal(n, 3);
	/* the note was still pending: its activity log extent (64 chunks)
	 * brings it back whole */
	assert_int_equal(e[0].ino, 21);
	assert_int_equal(e[0].first, 64);
	assert_int_equal(e[0].last, 127);
	assert_int_equal(e[1].ino, 22);
	assert_int_equal(e[1].first, 5);
	assert_int_equal(e[1].last, 6);
	assert_int_equal(e[2].first, JE_INODE);
	free(e);
}

/* A WAL sync (an fsync) writes the pending notes first: after a kill -9
 * they come back exactly, with no activity log extent left. */
static void test_sync_writes_pending(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	killed_after(f, kill_synced);
	uint64_t cut = journal_cut(f->j);
	size_t n = read_all(f, base, cut, &e);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].first, 3);
	assert_int_equal(e[0].last, 3);
	assert_int_equal(e[1].first, 200);
	assert_int_equal(e[1].last, 200);
	free(e);
}

/* Many more pending notes than the list holds: all of them reach the
 * batch, each chunk once. */
static void test_many_pending(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e;
	uint64_t base = journal_cut(f->j);

	for (uint64_t k = 0; k < 20000; k += 2) /* every other chunk: no ranges */
		note(f, 41, k, k);
	uint64_t cut = journal_cut(f->j);
	size_t n = read_all(f, base, cut, &e);
	assert_int_equal(n, 10000);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(e[i].first, 2 * i);
	free(e);
}

/* What the peer acknowledged is gone from the store, and stays gone after
 * a restart; the next batch numbers go on from there. */
static void test_ack_trims(void **state)
{
	struct fixture *f = *state;
	struct journal_stats st;
	struct journal_entry *e;

	assert_int_equal(journal_full(f->j, 0, NULL, NULL), 1); /* a new peer owes a full sync */
	assert_int_equal(journal_set_full(f->j, 0, 0, 0, 0), 0);
	note(f, 5, 1, 1);
	note(f, 5, 8, 8);
	uint64_t cut = journal_cut(f->j);
	journal_stats(f->j, 0, &st);
	assert_true(st.entries >= 2);
	assert_int_equal(journal_ack(f->j, 0, cut), 0);
	journal_stats(f->j, 0, &st);
	assert_int_equal(st.entries, 0);
	close_all(f);
	open_all(f, 0);
	assert_int_equal(journal_acked(f->j, 0), cut);
	assert_int_equal(journal_full(f->j, 0, NULL, NULL), 0);
	assert_int_equal(read_all(f, 0, cut, &e), 0);
	free(e);
	note(f, 5, 1, 1);
	assert_true(journal_cut(f->j) > cut);
}

/* Past the bound, the lagging peer falls back to its dirty set, the
 * journal shrinks, and shipping the set drains it. */
static void test_bound_and_drain(void **state)
{
	struct fixture *f = *state;
	struct journal_stats st;
	struct journal_entry *e;
	size_t n, total = 0;

	close_all(f);
	f->max = 32;
	open_all(f, 0);
	for (uint64_t k = 0; k < 200; k++)
		note(f, 40, 2 * k, 2 * k); /* never adjacent: 200 ranges */
	journal_cut(f->j);
	for (uint64_t k = 0; k < 10; k++)
		note(f, 40, 2 * k, 2 * k); /* again, later: merges into the same keys */
	assert_int_equal(journal_maintain(f->j), 1);
	journal_stats(f->j, 0, &st);
	assert_true(st.entries <= 32);
	assert_int_equal(st.dirty, 200);
	assert_int_equal(st.folds, 1);
	/* ship in pieces of 64, dropping what was "acknowledged" */
	uint64_t ino = 0, first = 0;
	do {
		assert_int_equal(journal_dirty_read(f->j, 0, ino, first, 64, &e, &n), 0);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(e[i].first, 2 * (total + i));
		total += n;
		if (n) {
			assert_int_equal(journal_dirty_drop(f->j, 0, e, n), 0);
			ino = e[n - 1].ino;
			first = e[n - 1].first + 1;
		}
		free(e);
	} while (n);
	assert_int_equal(total, 200);
	journal_stats(f->j, 0, &st);
	assert_int_equal(st.dirty, 0);
	/* the dirty set is durable: nothing came back after a restart */
	close_all(f);
	open_all(f, 0);
	assert_int_equal(journal_dirty_read(f->j, 0, 0, 0, 64, &e, &n), 0);
	assert_int_equal(n, 0);
	free(e);
}

/* A fold that rewrites a dirty key while a resync has it in flight (another
 * peer's sender folds this peer): the resync's drop keeps the key, whose
 * newer change it may not have sent. */
static void test_refold_in_flight(void **state)
{
	struct fixture *f = *state;
	struct journal_entry *e, *e2;
	size_t n, n2;

	close_all(f);
	f->max = 4;
	open_all(f, 0);
	for (uint64_t k = 0; k < 8; k++)
		note(f, 50, 2 * k, 2 * k);
	journal_cut(f->j);
	assert_int_equal(journal_maintain(f->j), 1);
	assert_int_equal(journal_dirty_read(f->j, 0, 0, 0, 64, &e, &n), 0);
	assert_int_equal(n, 8);
	/* while those are "on the wire": chunk 6 changes again and is folded */
	for (uint64_t k = 0; k < 8; k++)
		note(f, 60, 2 * k, 2 * k);
	note(f, 50, 6, 6);
	journal_cut(f->j);
	assert_int_equal(journal_maintain(f->j), 1);
	assert_int_equal(journal_dirty_drop(f->j, 0, e, n), 0);
	free(e);
	assert_int_equal(journal_dirty_read(f->j, 0, 0, 0, 64, &e2, &n2), 0);
	assert_int_equal(n2, 9); /* the 8 of inode 60, and 50's chunk 6 */
	assert_int_equal(e2[0].ino, 50);
	assert_int_equal(e2[0].first, 6);
	free(e2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_facts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty_clear_only_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_writes_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_trims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound_and_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refold_in_flight, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
