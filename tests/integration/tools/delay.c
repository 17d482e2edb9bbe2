/* silt-delay LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS
 * A TCP proxy that holds every byte DELAY_MS before passing it on, in both
 * directions: latency between the replication tests' hosts in miniature,
 * where the kernel has no netem. Each accepted connection is paired with
 * one to the target; what one side sends is queued with the time it may
 * leave and written to the other side then, in order. A side's queue is
 * bounded (QUEUE_MAX bytes): past it, that side is not read (TCP's own
 * back pressure). An end of stream passes on (shutdown) once its queue
 * has drained; an error or a reset closes the pair. One thread, poll(2);
 * it stops on SIGTERM or SIGINT (the default action). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAIRS 16
#define SEG 65536
#define QUEUE_MAX (8u << 20)

struct seg {
	struct seg *next;
	uint64_t due_ns;
	size_t len, off;
	char data[];
};

struct dir {               /* bytes from fd `from` on their way to `to` */
	int from, to;
	struct seg *head, *tail;
	size_t queued;
	int eof, done;
};

struct pair {
	int used;
	struct dir d[2];
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int resolve(const char *hp, struct addrinfo **ai)
{
	char host[256];
	const char *c = strrchr(hp, ':');
	if (!c || (size_t)(c - hp) >= sizeof(host))
		return -1;
	memcpy(host, hp, (size_t)(c - hp));
	host[c - hp] = 0;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	return getaddrinfo(host, c + 1, &hints, ai) ? -1 : 0;
}

static void pair_close(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		struct seg *s = p->d[i].head;
		while (s) {
			struct seg *n = s->next;
			free(s);
			s = n;
		}
	}
	close(p->d[0].from);
	close(p->d[0].to);
	memset(p, 0, sizeof(*p));
}

/* Read what from has into the queue; -1 closes the pair. */
static int pull(struct dir *d, uint64_t delay_ns)
{
	struct seg *s = malloc(sizeof(*s) + SEG);
	if (!s)
		return -1;
	ssize_t n = read(d->from, s->data, SEG);
	if (n <= 0) {
		free(s);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			return -1;
		d->eof = 1;
		return 0;
	}
	*s = (struct seg){ .due_ns = now_ns() + delay_ns, .len = (size_t)n };
	s->next = NULL;
	if (d->tail)
		d->tail->next = s;
	else
		d->head = s;
	d->tail = s;
	d->queued += (size_t)n;
	return 0;
}

/* Write what is due; -1 closes the pair. */
static int push(struct dir *d)
{
	uint64_t now = now_ns();
	while (d->head && d->head->due_ns <= now) {
		struct seg *s = d->head;
		ssize_t n = write(d->to, s->data + s->off, s->len - s->off);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		s->off += (size_t)n;
		d->queued -= (size_t)n;
		if (s->off < s->len)
			return 0;
		if (!(d->head = s->next))
			d->tail = NULL;
		free(s);
	}
	if (d->eof && !d->head && !d->done) {
		shutdown(d->to, SHUT_WR);
		d->done = 1;
	}
	return 0;
}

static void accept_one(int lfd, struct addrinfo *target, struct pair *pairs)
{
	int a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (a < 0)
		return;
	int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* connect blocking (to a peer that is there or refuses at once), then non-blocking */
	if (b < 0 || connect(b, target->ai_addr, target->ai_addrlen) || fcntl(b, F_SETFL, O_NONBLOCK)) {
		close(a);
		if (b >= 0)
			close(b);
		return;
	}
	for (int i = 0; i < PAIRS; i++)
		if (!pairs[i].used) {
			pairs[i] = (struct pair){ .used = 1, .d = { { .from = a, .to = b }, { .from = b, .to = a } } };
			return;
		}
	close(a);
	close(b);
}

int main(int argc, char **argv)
{
	struct addrinfo *la, *ta;
	if (argc != 4 || resolve(argv[1], &la) || resolve(argv[2], &ta)) {
		fprintf(stderr, "usage: silt-delay LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS\n");
		return 1;
	}
	uint64_t delay = strtoull(argv[3], NULL, 10) * 1000000ull;
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, la->ai_addr, la->ai_addrlen) || listen(lfd, 16)) {
		perror("silt-delay: listen");
		return 1;
	}
	static struct pair pairs[PAIRS];
	for (;;) {
		/* per direction: its source (to read) and its destination (to write) */
		struct pollfd pf[1 + 4 * PAIRS];
		struct dir *owner[1 + 4 * PAIRS];
		int n = 0, timeout = -1;
		uint64_t now = now_ns();
		pf[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < PAIRS; i++)
			for (int k = 0; pairs[i].used && k < 2; k++) {
				struct dir *d = &pairs[i].d[k];
				int in = !d->eof && d->queued < QUEUE_MAX, out = d->head && d->head->due_ns <= now;
				if (d->head && !out) {
					int ms = (int)((d->head->due_ns - now) / 1000000) + 1;
					timeout = timeout < 0 || ms < timeout ? ms : timeout;
				}
				owner[n] = d;
				pf[n++] = (struct pollfd){ .fd = in ? d->from : -1, .events = POLLIN };
				owner[n] = d;
				pf[n++] = (struct pollfd){ .fd = out ? d->to : -1, .events = POLLOUT };
			}
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR)
			return 1;
		if (pf[0].revents & POLLIN)
			accept_one(lfd, ta, pairs);
		for (int j = 1; j < n; j += 2) {
			struct dir *d = owner[j];
			if (pf[j].revents && pull(d, delay) < 0)
				d->done = d->eof = -1; /* broken: the pair closes below */
		}
		for (int i = 0; i < PAIRS; i++) {
			struct dir *d = pairs[i].d;
			if (!pairs[i].used)
				continue;
			int bad = d[0].done < 0 || d[1].done < 0 || push(&d[0]) < 0 || push(&d[1]) < 0;
			if (bad || (d[0].done && d[1].done))
				pair_close(&pairs[i]);
		}
	}
}
