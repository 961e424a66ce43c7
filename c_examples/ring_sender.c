/*
 * ring_sender.c - sends COUNT numbered, checksummed messages through a message ring that
 * ring_receiver (in C, Go or Python) created. Unlike raw shared memory, the ring frames each
 * message, keeps order, and blocks while it is full, so the sender never polls or overwrites.
 *
 *   ./ring_receiver [NAME [COUNT [SENDERS]]]  &  ./ring_sender [NAME [COUNT [ID]]]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "mmipc.h"
#include "ringmsg.h"

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : RINGMSG_DEFAULT_NAME;
	uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
	uint32_t id = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 0;

	// The receiver creates the ring; wait up to 10 s for it to appear.
	mmipc_ring *q = NULL;
	for (int ms = 0; ms < 10000; ms += 10) {
		q = mmipc_ring_open(name);
		if (q != NULL || errno != ENOENT)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	if (q == NULL) {
		fprintf(stderr, "ring_sender: %s\n", mmipc_last_error());
		return 1;
	}
	unsigned char msg[RINGMSG_MAX];
	for (uint64_t seq = 0; seq < count; seq++) {
		size_t len = ringmsg_build(msg, seq, id);
		if (mmipc_ring_send(q, msg, len, RINGMSG_TIMEOUT_NS) != 0) {
			// ETIMEDOUT: nobody drained the ring for 10 s.
			fprintf(stderr, "ring_sender %u: message %llu: %s\n", id, (unsigned long long)seq,
				errno == ETIMEDOUT ? "timed out: is the receiver running?" : mmipc_last_error());
			mmipc_ring_close(q);
			return 1;
		}
	}
	printf("ring_sender %u: sent %llu messages\n", id, (unsigned long long)count);
	mmipc_ring_close(q);
	return 0;
}
