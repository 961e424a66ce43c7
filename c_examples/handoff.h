/* handoff.h - the layout anon_parent.c and fd_child.c agree on inside an anonymous region.
 *
 * The parent makes the region with mmipc_anon, writes its message, and starts the child program
 * with the region's descriptor as fd 3 (HANDOFF_FD); the child attaches it with mmipc_attach_fd,
 * reads the message and writes a reply. The Go twins (go_examples/anon_parent, go_examples/fd_child)
 * mirror this struct, so a C parent can start a Go child and the reverse.
 *
 * Every field is a native-endian uint32 at a fixed offset (0, 4, 8, 12; the texts at 16 and
 * 16 + HANDOFF_TEXT_MAX), with no padding. The flags are C11 atomics: each side writes its text and
 * length, then publishes them with a release store of its flag, and the other side reads the flag
 * with an acquire load before it touches them. Both lengths come from another process: each reader
 * checks them against HANDOFF_TEXT_MAX before use. */
#ifndef HANDOFF_H
#define HANDOFF_H

#include <stdatomic.h>
#include <stdint.h>

#define HANDOFF_TEXT_MAX 1024

struct handoff {
	_Atomic uint32_t sent;    /* 1 once msg and msg_len are written (before the child starts) */
	_Atomic uint32_t replied; /* 1 once the child has written reply and reply_len */
	uint32_t msg_len;         /* bytes of msg, at most HANDOFF_TEXT_MAX */
	uint32_t reply_len;       /* bytes of reply, at most HANDOFF_TEXT_MAX */
	char msg[HANDOFF_TEXT_MAX];
	char reply[HANDOFF_TEXT_MAX];
};

#define HANDOFF_FD 3 /* where the child finds the region's descriptor (Go's ExtraFiles[0]) */
#define HANDOFF_REGION_SIZE 4096
#define HANDOFF_TIMEOUT_MS 10000
#define HANDOFF_MESSAGE "nihao child!!"
#define HANDOFF_DEFAULT_REPLY "nihao father!!"

#endif
