/* libFuzzer target: the replication message decoder (sync/proto.h), fed
 * whatever a hostile peer could put inside an authenticated frame. A
 * decoded chunk is also expanded and checked, as the receiver does, into
 * a buffer of exactly the length it claims. Any crash, out-of-bounds
 * access (AddressSanitizer) or undefined behaviour (UBSan) is a failure.
 * Seeds (tests/fuzz/seeds/) start it on messages it would take long to
 * find alone: a FACT of each kind. */
#include "sync/proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m;
	const char *why;

	if (proto_decode(data, size, &m, &why))
		return 0;
	if (m.type == M_CHUNK) {
		void *out = malloc(m.chunk.len);
		if (out) {
			proto_chunk_unpack(&m.chunk, out);
			free(out);
		}
	}
	if (m.type == M_NODE)
		for (uint32_t i = 0; i < m.node.nxattr; i++)
			if (strlen(m.node.xattr[i].name) > PROTO_MAX_NAME)
				abort();
	if (m.type == M_FACT && (proto_fact_problem(&m.fact) || strlen(m.fact.name) > PROTO_MAX_FACT_NAME ||
				 strlen(m.fact.text) > PROTO_MAX_FACT_TEXT))
		abort(); /* a FACT passed that the receiver must not get */
	/* what decodes must encode again to the same bytes */
	struct proto_buf b = { 0 };
	if (proto_encode(&m, &b) == 0 && (b.len != size || memcmp(b.p, data, size)))
		abort();
	proto_buf_free(&b);
	return 0;
}
