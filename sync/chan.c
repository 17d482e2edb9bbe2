/* The secure channel (chan.h): handshake and framing with libsodium.
 *
 * Hello (clear, 76 bytes): "SILTSYNC" | version (u16 LE) | reserved (u16)
 * | static public key | ephemeral public key. A server that gets another
 * version answers with its own hello and closes, so that the client can
 * say which version the peer speaks. Session keys: BLAKE2b-512 over a
 * label, both hellos and the three X25519 results; the first half keys
 * the client's stream, the second the server's. Each side then sends its
 * secretstream header (24 bytes). */
#include "sync/chan.h"
#include "sync/proto.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define HELLO_LEN 76
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

struct sync_chan {
	int fd;
	crypto_secretstream_xchacha20poly1305_state tx, rx;
	uint8_t *buf; /* one frame: ciphertext in, plaintext out */
	uint8_t *out; /* plaintext of the last message received */
	uint64_t sent, received;
};

static const char MAGIC[8] = { 'S', 'I', 'L', 'T', 'S', 'Y', 'N', 'C' };

/* ---- keys ---- */

int chan_keygen(char priv[CHAN_KEY_B64], char pub[CHAN_KEY_B64])
{
	uint8_t sk[32], pk[32];
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(sk, sizeof(sk));
	chan_public_of(sk, pk);
	chan_key_b64(sk, priv);
	chan_key_b64(pk, pub);
	sodium_memzero(sk, sizeof(sk));
	return 0;
}

int chan_key_parse(const char *b64, uint8_t out[32])
{
	size_t n;
	if (strlen(b64) != 44 ||
	    sodium_base642bin(out, 32, b64, 44, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) || n != 32)
		return -EINVAL;
	return 0;
}

void chan_public_of(const uint8_t sk[32], uint8_t pk[32])
{
	crypto_scalarmult_base(pk, sk);
}

void chan_key_b64(const uint8_t key[32], char out[CHAN_KEY_B64])
{
	sodium_bin2base64(out, CHAN_KEY_B64, key, 32, sodium_base64_VARIANT_ORIGINAL);
}

/* ---- TCP ---- */

static int split_address(const char *address, char host[256], char port[16])
{
	const char *colon = strrchr(address, ':');
	if (!colon || !colon[1] || strlen(colon + 1) >= 16 || (size_t)(colon - address) >= 256)
		return -EINVAL;
	size_t hl = (size_t)(colon - address);
	if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']')
		snprintf(host, 256, "%.*s", (int)(hl - 2), address + 1);
	else
		snprintf(host, 256, "%.*s", (int)hl, address);
	snprintf(port, 16, "%s", colon + 1);
	return 0;
}

int chan_set_timeouts(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	int one = 1, idle = 5, intvl = 2, cnt = 3;
	unsigned ut = (unsigned)timeout_ms;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
	return 0;
}

static struct addrinfo *resolve(const char *address, int passive, char *err, size_t errlen)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0 }, *ai;
	if (split_address(address, host, port)) {
		snprintf(err, errlen, "%s: not host:port", address);
		return NULL;
	}
	int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (g) {
		snprintf(err, errlen, "%s: %s", address, gai_strerror(g));
		return NULL;
	}
	return ai;
}

int chan_dial(const char *address, int timeout_ms, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(address, 0, err, errlen);
	int fd, r = -EHOSTUNREACH;

	if (!ai)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
	} else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (poll(&p, 1, timeout_ms) != 1)
			r = -ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) || soerr)
			r = -(soerr ? soerr : errno);
		else
			r = 0;
	} else {
		r = -errno;
	}
	freeaddrinfo(ai);
	if (!r) {
		int fl = fcntl(fd, F_GETFL);
		if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || (r = chan_set_timeouts(fd, timeout_ms)))
			r = r ? r : -errno;
	}
	if (r) {
		snprintf(err, errlen, "connecting to %s: %s", address, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

int chan_listen(const char *address, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(address, 1, err, errlen);
	int fd, one = 1, r = 0;

	if (!ai)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 8))
		r = -errno;
	freeaddrinfo(ai);
	if (r) {
		snprintf(err, errlen, "listen on %s: %s", address, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}

/* ---- plumbing ---- */

/* send() rather than write(): a peer gone away is an error here, never a
 * SIGPIPE that would end the daemon. */
static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (r == 0)
			return -ECONNRESET;
		p = (char *)p + r;
		n -= (size_t)r;
	}
	return 0;
}

static void make_hello(uint8_t h[HELLO_LEN], const uint8_t spk[32], const uint8_t epk[32])
{
	memcpy(h, MAGIC, 8);
	h[8] = PROTO_VERSION & 0xff;
	h[9] = PROTO_VERSION >> 8;
	h[10] = h[11] = 0;
	memcpy(h + 12, spk, 32);
	memcpy(h + 44, epk, 32);
}

static int check_hello(const uint8_t h[HELLO_LEN], char *err, size_t errlen)
{
	if (memcmp(h, MAGIC, 8)) {
		snprintf(err, errlen, "not a siltfs replication peer (bad hello)");
		return -EPROTO;
	}
	unsigned v = h[8] | (unsigned)h[9] << 8;
	if (v != PROTO_VERSION) {
		snprintf(err, errlen, "peer speaks replication protocol version %u, this siltfs speaks %u", v,
			 PROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

static int dh(uint8_t out[32], const uint8_t sk[32], const uint8_t pk[32])
{
	return crypto_scalarmult(out, sk, pk) ? -EPROTO : 0; /* an all-zero result: a bad point */
}

static int new_chan(int fd, struct sync_chan **out)
{
	struct sync_chan *c = calloc(1, sizeof(*c));
	if (!c || !(c->buf = malloc(PROTO_MAX_MSG + ABYTES)) || !(c->out = malloc(PROTO_MAX_MSG))) {
		if (c)
			free(c->buf);
		free(c);
		return -ENOMEM;
	}
	c->fd = fd;
	*out = c;
	return 0;
}

/* Both sides: keys from the DH results and the hellos, streams started. */
static int start_streams(struct sync_chan *c, const uint8_t dhs[96], const uint8_t hc[HELLO_LEN],
			 const uint8_t hs[HELLO_LEN], int client, char *err, size_t errlen)
{
	uint8_t k[64], hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
	crypto_generichash_state st;
	int r;

	crypto_generichash_init(&st, NULL, 0, sizeof(k));
	crypto_generichash_update(&st, (const uint8_t *)"siltfs-sync v1", 14);
	crypto_generichash_update(&st, hc, HELLO_LEN);
	crypto_generichash_update(&st, hs, HELLO_LEN);
	crypto_generichash_update(&st, dhs, 96);
	crypto_generichash_final(&st, k, sizeof(k));
	crypto_secretstream_xchacha20poly1305_init_push(&c->tx, hdr, client ? k : k + 32);
	if ((r = write_all(c->fd, hdr, sizeof(hdr))) || (r = read_all(c->fd, hdr, sizeof(hdr)))) {
		snprintf(err, errlen, "handshake: %s", strerror(-r));
		sodium_memzero(k, sizeof(k));
		return r;
	}
	r = crypto_secretstream_xchacha20poly1305_init_pull(&c->rx, hdr, client ? k + 32 : k);
	sodium_memzero(k, sizeof(k));
	if (r) {
		snprintf(err, errlen, "handshake: bad stream header");
		return -EBADMSG;
	}
	c->sent += HELLO_LEN + sizeof(hdr);
	c->received += HELLO_LEN + sizeof(hdr);
	return 0;
}

/* The start of a handshake: a channel on fd, a fresh ephemeral key pair
 * (its secret in esk) and this side's hello made of both public keys. */
static int handshake_begin(int fd, const uint8_t sk[32], uint8_t esk[32], uint8_t hello[HELLO_LEN],
			   struct sync_chan **c)
{
	uint8_t pk[32], epk[32];

	if (sodium_init() < 0 || new_chan(fd, c))
		return -ENOMEM;
	chan_public_of(sk, pk);
	randombytes_buf(esk, 32);
	chan_public_of(esk, epk);
	make_hello(hello, pk, epk);
	return 0;
}

/* The end of a handshake: the ephemeral secret and the shared secrets
 * wiped, the channel handed out on success (r 0) or freed. */
static int handshake_end(struct sync_chan *c, uint8_t esk[32], uint8_t dhs[96], int r, struct sync_chan **out)
{
	sodium_memzero(esk, 32);
	sodium_memzero(dhs, 96);
	if (r)
		chan_free(c);
	else
		*out = c;
	return r;
}

int chan_client(int fd, const uint8_t sk[32], const uint8_t peer_pk[32], struct sync_chan **out,
		char *err, size_t errlen)
{
	uint8_t esk[32], hc[HELLO_LEN], hs[HELLO_LEN], dhs[96];
	struct sync_chan *c;
	int r;

	if ((r = handshake_begin(fd, sk, esk, hc, &c)))
		return r;
	if ((r = write_all(fd, hc, sizeof(hc))) || (r = read_all(fd, hs, sizeof(hs)))) {
		snprintf(err, errlen, r == -ECONNRESET ? "the peer closed the connection during the "
			 "handshake (our key not among its peers?)" : "handshake: %s", strerror(-r));
		goto fail;
	}
	if ((r = check_hello(hs, err, errlen)))
		goto fail;
	if (sodium_memcmp(hs + 12, peer_pk, 32)) {
		snprintf(err, errlen, "the peer's key is not the one configured for it");
		r = -EACCES;
		goto fail;
	}
	if (dh(dhs, esk, hs + 44) || dh(dhs + 32, sk, hs + 44) || dh(dhs + 64, esk, peer_pk)) {
		snprintf(err, errlen, "handshake: bad public key");
		r = -EPROTO;
		goto fail;
	}
	r = start_streams(c, dhs, hc, hs, 1, err, errlen);
fail:
	return handshake_end(c, esk, dhs, r, out);
}

int chan_server(int fd, const uint8_t sk[32], const uint8_t (*allowed)[32], int nallowed, int *which,
		struct sync_chan **out, char *err, size_t errlen)
{
	uint8_t esk[32], hc[HELLO_LEN], hs[HELLO_LEN], dhs[96];
	struct sync_chan *c;
	int r;

	if ((r = handshake_begin(fd, sk, esk, hs, &c)))
		return r;
	if ((r = read_all(fd, hc, sizeof(hc)))) {
		snprintf(err, errlen, "handshake: %s", strerror(-r));
		goto fail;
	}
	if ((r = check_hello(hc, err, errlen))) {
		if (r == -EPROTONOSUPPORT)
			write_all(fd, hs, sizeof(hs)); /* tell it what we speak */
		goto fail;
	}
	*which = -1;
	for (int i = 0; i < nallowed; i++)
		if (!sodium_memcmp(hc + 12, allowed[i], 32))
			*which = i;
	if (*which < 0) {
		char b64[CHAN_KEY_B64];
		chan_key_b64(hc + 12, b64);
		snprintf(err, errlen, "refused a peer with key %s: not among the configured peers", b64);
		r = -EACCES;
		goto fail;
	}
	if ((r = write_all(fd, hs, sizeof(hs)))) {
		snprintf(err, errlen, "handshake: %s", strerror(-r));
		goto fail;
	}
	if (dh(dhs, esk, hc + 44) || dh(dhs + 32, esk, hc + 12) || dh(dhs + 64, sk, hc + 44)) {
		snprintf(err, errlen, "handshake: bad public key");
		r = -EPROTO;
		goto fail;
	}
	r = start_streams(c, dhs, hc, hs, 0, err, errlen);
fail:
	return handshake_end(c, esk, dhs, r, out);
}

int chan_send(struct sync_chan *c, const void *msg, size_t len)
{
	uint8_t hdr[4];
	unsigned long long clen;

	if (len > PROTO_MAX_MSG)
		return -EMSGSIZE;
	uint32_t flen = (uint32_t)(len + ABYTES);
	hdr[0] = (uint8_t)(flen >> 24);
	hdr[1] = (uint8_t)(flen >> 16);
	hdr[2] = (uint8_t)(flen >> 8);
	hdr[3] = (uint8_t)flen;
	crypto_secretstream_xchacha20poly1305_push(&c->tx, c->buf, &clen, msg, len, hdr, 4, 0);
	int r = write_all(c->fd, hdr, 4);
	if (!r)
		r = write_all(c->fd, c->buf, (size_t)clen);
	if (!r)
		c->sent += 4 + clen;
	return r;
}

int chan_recv(struct sync_chan *c, const void **msg, size_t *len)
{
	uint8_t hdr[4], tag;
	unsigned long long mlen;
	int r = read_all(c->fd, hdr, 4);

	if (r)
		return r;
	uint32_t flen = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (flen < ABYTES || flen > PROTO_MAX_MSG + ABYTES)
		return -EBADMSG;
	if ((r = read_all(c->fd, c->buf, flen)))
		return r;
	if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, c->out, &mlen, &tag, c->buf, flen, hdr, 4))
		return -EBADMSG;
	c->received += 4 + flen;
	*msg = c->out;
	*len = (size_t)mlen;
	return 0;
}

void chan_counters(const struct sync_chan *c, uint64_t *sent, uint64_t *received)
{
	*sent = c->sent;
	*received = c->received;
}

void chan_free(struct sync_chan *c)
{
	if (!c)
		return;
	sodium_memzero(&c->tx, sizeof(c->tx));
	sodium_memzero(&c->rx, sizeof(c->rx));
	free(c->buf);
	free(c->out);
	free(c);
}
