/* Net tier I/O with a timeout (see netio.h).
 *
 * Why threads: a read of a file on a FUSE network filesystem (sshfs) whose
 * link is cut sleeps in the kernel until that filesystem answers; io_uring
 * only moves that sleep to one of its workers, and a request there cannot
 * be cancelled. So each call is a job for a small pool of workers (up to
 * MAX_WORKERS per tier, started when needed), and the caller waits on a
 * condition with a deadline. A job the caller gave up on is "abandoned":
 * one still queued is dropped at once; one running is freed by its worker
 * when the kernel lets go of it, with its own bounce buffer, its own dup of
 * the file descriptor (the caller's number may be closed and reused by
 * then), and, for an open, the descriptor it got. When every worker is
 * stuck, new jobs wait in the queue and time out there: a dead server costs
 * at most MAX_WORKERS threads. */
#include "tiers/netio.h"
#include "tiers/io.h"
#include "tiers/tier.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 4

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
	enum job_state state;
	int abandoned;
	enum { JOB_RW, JOB_OPEN, JOB_SYNC } kind;
	struct tier_io io;      /* io.fd is our dup; io.buf moves along mem */
	char *mem;              /* our bounce buffer */
	char name[48];          /* an open: openat(io.fd, name, flags) */
	int flags;
	int res;
	struct job *next;
};

struct silt_netio {
	char name[64];
	uint32_t timeout_ms;
	unsigned retries;
	const _Atomic int *failed;
	pthread_mutex_t lock;
	pthread_cond_t work, done;  /* done: CLOCK_MONOTONIC */
	struct job *head, *tail;
	int stopping;
	unsigned nworkers, idle, running;
	pthread_t workers[MAX_WORKERS];
};

static void job_free(struct job *j)
{
	if (j->io.fd >= 0)
		close(j->io.fd);
	if (j->kind == JOB_OPEN && j->res >= 0)
		close(j->res); /* an open that came too late */
	free(j->mem);
	free(j);
}

static void job_run(struct job *j)
{
	if (j->kind == JOB_OPEN)
		j->res = openat(j->io.fd, j->name, j->flags | O_CLOEXEC, 0600);
	else if (j->kind == JOB_SYNC)
		j->res = fdatasync(j->io.fd);
	else
		j->res = tier_io_one(&j->io);
	if (j->kind != JOB_RW && j->res < 0)
		j->res = -errno;
}

static void *worker(void *arg)
{
	struct silt_netio *n = arg;

	pthread_setname_np(pthread_self(), "silt-net");
	pthread_mutex_lock(&n->lock);
	while (!n->stopping) {
		struct job *j = n->head;
		if (!j) {
			n->idle++;
			pthread_cond_wait(&n->work, &n->lock);
			n->idle--;
			continue;
		}
		if (!(n->head = j->next))
			n->tail = NULL;
		j->state = JOB_RUNNING;
		n->running++;
		pthread_mutex_unlock(&n->lock);
		job_run(j);
		pthread_mutex_lock(&n->lock);
		n->running--;
		j->state = JOB_DONE;
		if (j->abandoned)
			job_free(j);
		else
			pthread_cond_broadcast(&n->done);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int netio_new(const char *name, uint32_t timeout_ms, unsigned retries, const _Atomic int *failed,
	      struct silt_netio **out)
{
	struct silt_netio *n = calloc(1, sizeof(*n));
	pthread_condattr_t ca;

	if (!n)
		return -ENOMEM;
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->timeout_ms = timeout_ms;
	n->retries = retries;
	n->failed = failed;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->work, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->done, &ca);
	pthread_condattr_destroy(&ca);
	*out = n;
	return 0;
}

uint32_t netio_timeout_ms(const struct silt_netio *n)
{
	return n->timeout_ms;
}

void netio_free(struct silt_netio *n)
{
	uint64_t until = silt_now_ns() + 2000000000ull;
	int stuck = 0;

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stopping = 1;
	pthread_cond_broadcast(&n->work);
	while (n->running && silt_now_ns() < until) { /* a worker busy on a slow server */
		pthread_mutex_unlock(&n->lock);
		usleep(10000);
		pthread_mutex_lock(&n->lock);
	}
	stuck = n->running;
	pthread_mutex_unlock(&n->lock);
	if (stuck) {
		/* they hold n: it stays (the process is about to leave anyway) */
		log_warn("tier %s: %d I/O still stuck in its filesystem at close: leaving them", n->name, stuck);
		for (unsigned i = 0; i < n->nworkers; i++)
			pthread_detach(n->workers[i]);
		return;
	}
	for (unsigned i = 0; i < n->nworkers; i++)
		pthread_join(n->workers[i], NULL);
	while (n->head) {
		struct job *j = n->head;
		n->head = j->next;
		job_free(j);
	}
	pthread_cond_destroy(&n->work);
	pthread_cond_destroy(&n->done);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* Unlink a job that no worker took yet (n->lock). */
static void dequeue(struct silt_netio *n, struct job *j)
{
	struct job **pp = &n->head, *prev = NULL;

	for (; *pp && *pp != j; pp = &(*pp)->next)
		prev = *pp;
	if (!*pp)
		return;
	*pp = j->next;
	if (n->tail == j)
		n->tail = prev;
}

/* Queue j and wait for it until the timeout: its result, or -ETIMEDOUT
 * (j then belongs to its worker, or is freed here if none took it). */
static int job_wait(struct silt_netio *n, struct job *j)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)n->timeout_ms * 1000000ull;
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec = (long)(ns % 1000000000ull);
	pthread_mutex_lock(&n->lock);
	if (n->tail)
		n->tail->next = j;
	else
		n->head = j;
	n->tail = j;
	if (!n->idle && n->nworkers < MAX_WORKERS &&
	    !pthread_create(&n->workers[n->nworkers], NULL, worker, n))
		n->nworkers++;
	pthread_cond_signal(&n->work);
	while (j->state != JOB_DONE && !n->stopping)
		if (pthread_cond_timedwait(&n->done, &n->lock, &ts) == ETIMEDOUT)
			break;
	if (j->state == JOB_DONE) {
		pthread_mutex_unlock(&n->lock);
		return j->res;
	}
	if (j->state == JOB_QUEUED) {
		dequeue(n, j);
		pthread_mutex_unlock(&n->lock);
		job_free(j);
	} else {
		j->abandoned = 1;
		pthread_mutex_unlock(&n->lock);
	}
	return -ETIMEDOUT;
}

/* A fresh job on a dup of fd, or NULL (*err). */
static struct job *job_new(int fd, size_t buflen, int *err)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j && (!buflen || (j->io.buf = j->mem = silt_aligned_alloc(buflen))) &&
	    (j->io.fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
		return j;
	*err = j && (j->mem || !buflen) ? -errno : -ENOMEM;
	if (j)
		free(j->mem);
	free(j);
	return NULL;
}

/* Whether another try may help: the tier is not known broken, and the
 * error says the filesystem did not answer or lost its connection. */
static int retry(struct silt_netio *n, unsigned tries, int r)
{
	return r < 0 && tier_io_error(r) && tries <= n->retries && !atomic_load(n->failed);
}

int netio_rw(struct silt_netio *n, struct tier_io *op)
{
	int r = 0;

	for (unsigned tries = 1;; tries++) {
		struct job *j = job_new(op->fd, op->len, &r);
		if (!j)
			return r;
		j->io.write = op->write;
		j->io.off = op->off;
		j->io.len = op->len;
		if (op->write)
			memcpy(j->mem, op->buf, op->len);
		if ((r = job_wait(n, j)) != -ETIMEDOUT) {
			if (!r && !op->write)
				memcpy(op->buf, j->mem, op->len);
			job_free(j);
		}
		if (!retry(n, tries, r))
			break;
		log_warn("tier %s: %s of %u bytes at %llu: %s: trying again", n->name, op->write ? "write" : "read",
			 op->len, (unsigned long long)op->off, strerror(-r));
	}
	return r;
}

/* A job of kind on a dup of fd (an open's name and flags aside), tried
 * within the bounds: its result. */
static int call(struct silt_netio *n, int kind, int fd, const char *name, int flags)
{
	int r = 0;

	for (unsigned tries = 1;; tries++) {
		struct job *j = job_new(fd, 0, &r);
		if (!j)
			return r;
		j->kind = kind;
		j->flags = flags;
		snprintf(j->name, sizeof(j->name), "%s", name ? name : "");
		if ((r = job_wait(n, j)) != -ETIMEDOUT) {
			j->res = -1; /* an open's fd is the caller's now */
			job_free(j);
		}
		if (!retry(n, tries, r))
			break;
	}
	return r;
}

int netio_open(struct silt_netio *n, int dirfd, const char *name, int flags)
{
	return call(n, JOB_OPEN, dirfd, name, flags);
}

int netio_sync(struct silt_netio *n, int fd)
{
	return call(n, JOB_SYNC, fd, NULL, 0);
}
