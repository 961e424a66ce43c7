/*
 * named_reader.c - the other unrelated process: it opens the region named_writer created (waiting
 * for it to appear), waits for the message, prints it and acknowledges.
 *
 *   ./named_writer [NAME [MESSAGE]]  &  ./named_reader [NAME]
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "greeting.h"
#include "mmipc.h"

static void sleep_ms(void) { nanosleep(&(struct timespec){0, 1000000}, NULL); }

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : GREETING_DEFAULT_NAME;

	// The writer may not have created the region yet: ENOENT means "not yet", anything else is
	// an error. mmipc_open never sees a half-made region, so no other state needs handling.
	mmipc_region *r = NULL;
	for (int ms = 0; r == NULL && ms < GREETING_TIMEOUT_MS; ms++) {
		r = mmipc_open(name, 0);
		if (r == NULL && errno != ENOENT)
			break;
		if (r == NULL)
			sleep_ms();
	}
	if (r == NULL) {
		fprintf(stderr, "named_reader: %s\n", mmipc_last_error());
		return 1;
	}
	// The region's size comes from whoever created it: too small for the greeting is an error,
	// not a reason to touch bytes past its end.
	if (mmipc_size(r) < sizeof(struct greeting)) {
		fprintf(stderr, "named_reader: the region has %zu bytes, the greeting needs %zu\n", mmipc_size(r),
			sizeof(struct greeting));
		mmipc_detach(r);
		return 1;
	}
	struct greeting *g = mmipc_data(r);
	int ready = 0;
	for (int ms = 0; ms < GREETING_TIMEOUT_MS && !ready; ms++) {
		ready = atomic_load_explicit(&g->ready, memory_order_acquire) == 1;
		if (!ready)
			sleep_ms();
	}
	if (!ready) {
		fprintf(stderr, "named_reader: no message within %d ms\n", GREETING_TIMEOUT_MS);
		mmipc_detach(r);
		return 1;
	}
	// len comes from another process: never trust it past the region's end.
	size_t room = mmipc_size(r) - sizeof *g;
	if (g->len > room) {
		fprintf(stderr, "named_reader: corrupt message length %u (room for %zu)\n", g->len, room);
		mmipc_detach(r);
		return 1;
	}
	printf("reader got: %.*s\n", (int)g->len, g->text);
	atomic_store_explicit(&g->ack, 1, memory_order_release);
	mmipc_detach(r);
	return 0;
}
