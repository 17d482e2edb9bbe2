/* On-tier layout and an inode's open tier files (see layout.h).
 *
 *   struct fd_table   fd[tier id][segment], -1 = not open
 *
 * Lookups are lock-free (the table pointer and each fd are atomics that
 * only go from "absent" to "present" while the inode is in memory);
 * opening takes the inode's mutex so that two threads do not open the same
 * file twice.
 *
 * A tier that failed and came back (tiers/tier.h, tier_check) has a new
 * folder generation: the first lookup that sees a table's files of that
 * tier from an older one opens each of them again from the new folder and
 * puts it in place under the same number (dup3), so a thread that fetched
 * the number just before does its I/O on the new file, never on some other
 * file that took a freed number. Letting go of a tier (tfiles_release)
 * points its numbers at the tier's dead descriptor the same way. A number
 * whose file cannot be opened again is kept aside, dead, until the inode
 * leaves memory. */
#include "tiers/layout.h"
#include "tiers/netio.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <unistd.h>

struct fd_table {
	_Atomic int fd[SILT_MAX_TIERS][SILT_SEG_MAX];
	_Atomic unsigned gen[SILT_MAX_TIERS]; /* the tier folder generation they are of */
	int *retired;                         /* dead numbers (tf->lock) */
	size_t nretired;
};

void layout_init(struct layout *l, uint32_t chunk_size)
{
	l->chunk_size = chunk_size;
	l->shift = (unsigned)__builtin_ctz(chunk_size);
	l->chunks_per_seg = SILT_SEG_BYTES >> l->shift;
}

void tfiles_init(struct tier_files *tf, uint64_t ino)
{
	tf->ino = ino;
	pthread_mutex_init(&tf->lock, NULL);
	atomic_init(&tf->tab, NULL);
	atomic_init(&tf->dirty, 0);
}

void tfiles_close(struct tier_files *tf)
{
	struct fd_table *t = atomic_exchange(&tf->tab, NULL);

	if (!t)
		return;
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		for (int s = 0; s < SILT_SEG_MAX; s++)
			if (atomic_load(&t->fd[i][s]) >= 0)
				close(atomic_load(&t->fd[i][s]));
	for (size_t i = 0; i < t->nretired; i++)
		close(t->retired[i]);
	free(t->retired);
	free(t);
}

static struct fd_table *table_get(struct tier_files *tf)
{
	struct fd_table *t = atomic_load(&tf->tab);

	if (t)
		return t;
	if (!(t = calloc(1, sizeof(*t))))
		return NULL;
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		for (int s = 0; s < SILT_SEG_MAX; s++)
			atomic_init(&t->fd[i][s], -1);
	atomic_store(&tf->tab, t);
	return t;
}

/* Number fd no longer names a file of the table: it points at nothing
 * until the inode leaves memory (a thread may still hold the number). */
static void retire(struct fd_table *tab, struct silt_tier *t, int tid, int s, int fd)
{
	int *n = realloc(tab->retired, (tab->nretired + 1) * sizeof(*n));

	if (dup3(tier_dead_fd(t), fd, O_CLOEXEC) < 0 || !n) {
		if (n)
			tab->retired = n;
		return; /* left in the table, dead or stale: I/O through it fails */
	}
	tab->retired = n;
	tab->retired[tab->nretired++] = fd;
	atomic_store(&tab->fd[tid][s], -1);
}

/* The tier's folder is a new one since these files were opened (tf->lock):
 * open each again from it, under its old number. gen was read before, so
 * a folder newer still is seen at the next lookup. */
static void reopen_tier(struct tier_files *tf, struct fd_table *tab, struct silt_tier *t, unsigned gen)
{
	int tid = tier_id(t);

	for (int s = 0; s < SILT_SEG_MAX; s++) {
		int fd = atomic_load(&tab->fd[tid][s]);
		if (fd < 0)
			continue;
		int nfd = tier_open_file(t, tf->ino, (unsigned)s, 0);
		if (nfd < 0 || dup3(nfd, fd, O_CLOEXEC) < 0)
			retire(tab, t, tid, s, fd);
		if (nfd >= 0)
			close(nfd);
	}
	atomic_store(&tab->gen[tid], gen);
}

void tfiles_release(struct tier_files *tf, struct silt_tier *t)
{
	struct fd_table *tab;
	int tid = tier_id(t);

	pthread_mutex_lock(&tf->lock);
	if ((tab = atomic_load(&tf->tab)))
		for (int s = 0; s < SILT_SEG_MAX; s++) {
			int fd = atomic_load(&tab->fd[tid][s]);
			if (fd >= 0)
				(void)dup3(tier_dead_fd(t), fd, O_CLOEXEC);
		}
	pthread_mutex_unlock(&tf->lock);
}

/* A net tier's file, opened without tf->lock (held on entry and on
 * return): its open may take the tier's whole timeout, and the inode's
 * files on the other tiers need the lock meanwhile. -ESTALE when the
 * tier's folder changed during the open. */
static int open_net(struct tier_files *tf, struct fd_table *tab, struct silt_tier *t, unsigned seg,
		    int create, unsigned gen)
{
	int tid = tier_id(t), fd = -1;

	pthread_mutex_unlock(&tf->lock);
	int nfd = tier_open_file(t, tf->ino, seg, create);
	pthread_mutex_lock(&tf->lock);
	if (atomic_load(&tab->gen[tid]) != gen || (fd = atomic_load(&tab->fd[tid][seg])) >= 0) {
		if (nfd >= 0) /* another thread opened it meanwhile, or the folder changed */
			close(nfd);
		return atomic_load(&tab->gen[tid]) != gen ? -ESTALE : fd;
	}
	if (nfd >= 0)
		atomic_store(&tab->fd[tid][seg], nfd);
	return nfd;
}

int tfiles_fd(struct tier_files *tf, const struct layout *l, struct silt_tier *t,
	      uint64_t k, int create)
{
	unsigned seg = layout_seg(l, k);
	int tid = tier_id(t), fd;
	struct fd_table *tab = atomic_load(&tf->tab);

	unsigned gen = tier_gen(t);

	if (seg >= SILT_SEG_MAX)
		return -EFBIG;
	if (tab && atomic_load(&tab->gen[tid]) == gen && (fd = atomic_load(&tab->fd[tid][seg])) >= 0)
		return fd;
	pthread_mutex_lock(&tf->lock);
	if (!(tab = table_get(tf))) {
		pthread_mutex_unlock(&tf->lock);
		return -ENOMEM;
	}
	if (atomic_load(&tab->gen[tid]) != gen)
		reopen_tier(tf, tab, t, gen);
	fd = atomic_load(&tab->fd[tid][seg]);
	if (fd < 0 && tier_netio(t)) {
		if ((fd = open_net(tf, tab, t, seg, create, gen)) == -ESTALE) {
			pthread_mutex_unlock(&tf->lock);
			return tfiles_fd(tf, l, t, k, create); /* from the new folder */
		}
	} else if (fd < 0) {
		fd = tier_open_file(t, tf->ino, seg, create);
		if (fd >= 0)
			atomic_store(&tab->fd[tid][seg], fd);
	}
	pthread_mutex_unlock(&tf->lock);
	/* a tier that cannot create a file has lost its folder or its disk */
	if (fd < 0 && create && tier_io_error(fd))
		tier_fail(t, fd, "creating a chunk file");
	return fd;
}

int tfiles_punch(struct tier_files *tf, const struct layout *l, struct silt_tier *t,
		 uint64_t k, uint64_t from, uint64_t len)
{
	int fd = tfiles_fd(tf, l, t, k, 0);

	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	return layout_punch_fd(fd, layout_slot(l, k) + from, len);
}

int layout_punch_fd(int fd, uint64_t off, uint64_t len)
{
	const size_t piece = 1u << 16;
	char *z;
	int r = 0;

	if (!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	if (!(z = silt_aligned_alloc(piece)))
		return -ENOMEM;
	while (len && !r) {
		ssize_t w = pwrite(fd, z, len < piece ? len : piece, (off_t)off);
		if (w <= 0)
			r = w < 0 ? -errno : -EIO;
		else
			off += (uint64_t)w, len -= (uint64_t)w;
	}
	free(z);
	return r;
}

int tfiles_sync(struct tier_files *tf, uint32_t mask, struct silt_tier *const *by_id)
{
	struct fd_table *tab = atomic_load(&tf->tab);
	int r = 0;

	for (int i = 0; i < SILT_MAX_TIERS && tab; i++) {
		if (!(mask & (1u << i)))
			continue;
		for (int s = 0; s < SILT_SEG_MAX; s++) {
			int fd = atomic_load(&tab->fd[i][s]), e = 0;
			struct silt_netio *net = by_id[i] ? tier_netio(by_id[i]) : NULL;
			if (fd >= 0)
				e = net ? netio_sync(net, fd) : fdatasync(fd) < 0 ? -errno : 0;
			if (e && !r)
				r = e;
		}
	}
	return r;
}
