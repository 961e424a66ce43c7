/*
 * fd_child.c - the program anon_parent (C or Go) starts: it finds the parent's anonymous region at
 * fd 3, attaches it with mmipc_attach_fd, prints the parent's message and writes a reply into the
 * shared memory. The layout is handoff.h.
 *
 *   ./anon_parent ./fd_child [REPLY]      (REPLY defaults to "nihao father!!")
 *
 * Run without a region at fd 3 it fails: EBADF if fd 3 is closed, EPROTO for a file that is not a
 * region, EACCES for a read-only one. (A Go runtime, this program's or libmmipc's, opens files of
 * its own at start-up, cgroup limits since Go 1.25, which may take fd 3 when nothing holds it.)
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handoff.h"
#include "mmipc.h"

int main(int argc, char *argv[])
{
	const char *reply = argc > 1 ? argv[1] : HANDOFF_DEFAULT_REPLY;

	mmipc_region *r = mmipc_attach_fd(HANDOFF_FD, 0);
	if (r == NULL) {
		fprintf(stderr, "fd_child: %s\n", mmipc_last_error());
		return 1;
	}
	close(HANDOFF_FD); // the handle keeps its own duplicate
	// The parent chose the region's size: make sure the layout fits before touching it.
	if (mmipc_size(r) < sizeof(struct handoff)) {
		fprintf(stderr, "fd_child: the region has %zu bytes, the handoff needs %zu\n", mmipc_size(r),
			sizeof(struct handoff));
		mmipc_detach(r);
		return 1;
	}
	struct handoff *h = mmipc_data(r);
	if (atomic_load_explicit(&h->sent, memory_order_acquire) != 1) {
		fprintf(stderr, "fd_child: the parent sent no message\n");
		mmipc_detach(r);
		return 1;
	}
	// msg_len comes from another process: read it once, and never trust it past the message's room.
	uint32_t n = h->msg_len;
	if (n > HANDOFF_TEXT_MAX) {
		fprintf(stderr, "fd_child: corrupt message length %u (room for %d)\n", n, HANDOFF_TEXT_MAX);
		mmipc_detach(r);
		return 1;
	}
	printf("child got: %.*s\n", (int)n, h->msg);

	size_t len = strlen(reply);
	if (len > HANDOFF_TEXT_MAX)
		len = HANDOFF_TEXT_MAX;
	memcpy(h->reply, reply, len);
	h->reply_len = (uint32_t)len;
	// Printed before the reply is published, so that on a shared terminal these lines come before
	// the parent's "parent got".
	printf("child replied: %.*s\n", (int)len, h->reply);
	fflush(stdout);
	atomic_store_explicit(&h->replied, 1, memory_order_release);
	mmipc_detach(r);
	return 0;
}
