/* The secure channel between a sender and a receiver, over a connected
 * TCP socket, with libsodium.
 *
 * Like WireGuard, each host has a static X25519 key pair in its config and
 * knows its peers' public keys. A connection opens with a clear hello each
 * way (magic, protocol version, static and ephemeral public keys); both
 * derive two session keys from the three Diffie-Hellman results
 * (ephemeral-ephemeral, client static-server ephemeral, client
 * ephemeral-server static) and the two hellos, then each direction is one
 * crypto_secretstream_xchacha20poly1305 stream. Only the holders of the
 * two static secret keys can derive the keys; a recorded connection played
 * again meets a fresh ephemeral key and does not decrypt; an altered,
 * dropped or reordered frame fails authentication. Frames are a 4-byte
 * length (authenticated as associated data) and the ciphertext, at most
 * PROTO_MAX_MSG bytes of plaintext. */
#ifndef SILT_SYNC_CHAN_H
#define SILT_SYNC_CHAN_H

#include <stddef.h>
#include <stdint.h>

#define CHAN_KEY_B64 45 /* 44 characters of base64 + NUL */

struct sync_chan;

/* Keys in base64, as in the config. */
int chan_keygen(char priv[CHAN_KEY_B64], char pub[CHAN_KEY_B64]);
int chan_key_parse(const char *b64, uint8_t out[32]);
void chan_public_of(const uint8_t sk[32], uint8_t pk[32]);
void chan_key_b64(const uint8_t key[32], char out[CHAN_KEY_B64]);

/* TCP under the channel: "host:port" or "[v6]:port". dial connects within
 * timeout_ms; both set send/receive timeouts (timeout_ms) and keepalives so
 * that a dead link turns into an error rather than a hang. -errno, with
 * err saying what failed. */
int chan_dial(const char *address, int timeout_ms, char *err, size_t errlen);
int chan_listen(const char *address, char *err, size_t errlen);
int chan_set_timeouts(int fd, int timeout_ms);

/* Client side (the sender): the server must prove peer_pk. */
int chan_client(int fd, const uint8_t sk[32], const uint8_t peer_pk[32], struct sync_chan **out,
		char *err, size_t errlen);
/* Server side (the receiver): the client must be one of allowed[]; *which
 * says which. */
int chan_server(int fd, const uint8_t sk[32], const uint8_t (*allowed)[32], int nallowed, int *which,
		struct sync_chan **out, char *err, size_t errlen);
/* 0 or -errno (-EBADMSG: a frame failed authentication; -ECONNRESET: the
 * peer closed). The received message stays valid until the next recv. */
int chan_send(struct sync_chan *c, const void *msg, size_t len);
int chan_recv(struct sync_chan *c, const void **msg, size_t *len);
/* Bytes sent and received on the wire so far (frames included). */
void chan_counters(const struct sync_chan *c, uint64_t *sent, uint64_t *received);
void chan_free(struct sync_chan *c);

#endif
