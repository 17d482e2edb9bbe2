/* On-tier layout and an inode's open tier files (see layout.h).
 *
 *   struct fd_table   fd[tier id][segment], -1 = not open
 *
 * Lookups are lock-free (the table pointer and each fd are atomics that
 * only go from "absent" to "present" while the inode is in memory);
 * opening takes the inode's mutex so that two threads do not open the same
 * file twice. */
#include "tiers/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <unistd.h>

struct fd_table {
	_Atomic int fd[SILT_MAX_TIERS][SILT_SEG_MAX];
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
	free(t);
}

static struct fd_table *table_get(struct tier_files *tf)
{
	struct fd_table *t = atomic_load(&tf->tab);

	if (t)
		return t;
	if (!(t = malloc(sizeof(*t))))
		return NULL;
	for (int i = 0; i < SILT_MAX_TIERS; i++)
		for (int s = 0; s < SILT_SEG_MAX; s++)
			atomic_init(&t->fd[i][s], -1);
	atomic_store(&tf->tab, t);
	return t;
}

int tfiles_fd(struct tier_files *tf, const struct layout *l, struct silt_tier *t,
	      uint64_t k, int create)
{
	unsigned seg = layout_seg(l, k);
	int tid = tier_id(t), fd;
	struct fd_table *tab = atomic_load(&tf->tab);

	if (seg >= SILT_SEG_MAX)
		return -EFBIG;
	if (tab && (fd = atomic_load(&tab->fd[tid][seg])) >= 0)
		return fd;
	pthread_mutex_lock(&tf->lock);
	if (!(tab = table_get(tf))) {
		pthread_mutex_unlock(&tf->lock);
		return -ENOMEM;
	}
	fd = atomic_load(&tab->fd[tid][seg]);
	if (fd < 0) {
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
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(layout_slot(l, k) + from), (off_t)len) < 0)
		return -errno;
	return 0;
}

int tfiles_sync(struct tier_files *tf, uint32_t mask)
{
	struct fd_table *tab = atomic_load(&tf->tab);
	int r = 0;

	for (int i = 0; i < SILT_MAX_TIERS && tab; i++) {
		if (!(mask & (1u << i)))
			continue;
		for (int s = 0; s < SILT_SEG_MAX; s++) {
			int fd = atomic_load(&tab->fd[i][s]);
			if (fd >= 0 && fdatasync(fd) < 0 && !r)
				r = -errno;
		}
	}
	return r;
}
