/* greeting.h - the layout named_writer.c and named_reader.c agree on inside their region.
 *
 * Two unrelated processes share only the region's bytes, so the layout is their protocol. The
 * flags are C11 atomics: the writer publishes the text with a release store of `ready`, the reader
 * sees it with an acquire load, so it never reads a half-written message. (A later mmipc adds
 * wait/notify so that nobody has to poll.) The reader treats `len` as hostile: it checks it
 * against the region's size before using it. */
#ifndef GREETING_H
#define GREETING_H

#include <stdatomic.h>
#include <stdint.h>

struct greeting {
	_Atomic uint32_t ready; /* 1 once text and len are written */
	_Atomic uint32_t ack;   /* 1 once the reader has read them */
	uint32_t len;           /* bytes of text */
	char text[];            /* up to mmipc_size() - sizeof(struct greeting) bytes */
};

#define GREETING_DEFAULT_NAME "mmipc-greeting"
#define GREETING_REGION_SIZE 4096
#define GREETING_TIMEOUT_MS 10000

#endif
