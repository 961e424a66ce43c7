/*
 * named_writer.c - one of two unrelated processes sharing memory by name (the classic example's
 * second case, without a file to prepare). It creates the region, writes a message, publishes it,
 * waits for named_reader to acknowledge, then removes the name.
 *
 *   ./named_writer [NAME [MESSAGE]]  &  ./named_reader [NAME]
 *
 * The region lives at $MMIPC_DIR/NAME (default /dev/shm/NAME) while the two run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "greeting.h"
#include "mmipc.h"

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : GREETING_DEFAULT_NAME;
	const char *message = argc > 2 ? argv[2] : "hello from the writer";

	mmipc_region *r = mmipc_create(name, GREETING_REGION_SIZE, 0600);
	if (r == NULL) {
		fprintf(stderr, "named_writer: %s\n", mmipc_last_error());
		if (errno == EEXIST)
			fprintf(stderr, "named_writer: a stale region? remove it with mmipc_unlink(\"%s\")\n", name);
		return 1;
	}
	struct greeting *g = mmipc_data(r);
	size_t room = mmipc_size(r) - sizeof *g;
	size_t len = strlen(message);
	if (len > room)
		len = room;
	memcpy(g->text, message, len);
	g->len = (uint32_t)len;
	atomic_store_explicit(&g->ready, 1, memory_order_release);
	printf("writer sent: %.*s\n", (int)len, g->text);
	fflush(stdout);

	// Raw shared memory cannot block, so poll for the reader's acknowledgement, with a deadline.
	int acked = 0;
	for (int ms = 0; ms < GREETING_TIMEOUT_MS && !acked; ms++) {
		acked = atomic_load_explicit(&g->ack, memory_order_acquire) == 1;
		if (!acked)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	mmipc_unlink(name); // peers that are still attached keep working
	mmipc_detach(r);
	if (!acked) {
		fprintf(stderr, "named_writer: no reader acknowledged within %d ms\n", GREETING_TIMEOUT_MS);
		return 1;
	}
	printf("writer: reader acknowledged\n");
	return 0;
}
