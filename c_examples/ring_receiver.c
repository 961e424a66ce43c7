/*
 * ring_receiver.c - creates a message ring, receives COUNT messages from each of SENDERS senders
 * (ring_sender in C, Go or Python, any mix), and checks every one: per-sender order, no loss, no
 * repeat, payload checksum. Then it removes the ring's name.
 *
 *   ./ring_receiver [NAME [COUNT [SENDERS]]]  &  ./ring_sender [NAME [COUNT [ID]]] ...
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmipc.h"
#include "ringmsg.h"

#define MAX_SENDERS 64

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : RINGMSG_DEFAULT_NAME;
	uint64_t count = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
	unsigned senders = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 1;
	if (senders < 1 || senders > MAX_SENDERS) {
		fprintf(stderr, "ring_receiver: SENDERS must be 1 to %d\n", MAX_SENDERS);
		return 2;
	}
	mmipc_ring *q = mmipc_ring_create(name, RINGMSG_CAPACITY, 0600);
	if (q == NULL) {
		fprintf(stderr, "ring_receiver: %s\n", mmipc_last_error());
		return 1;
	}
	uint64_t next[MAX_SENDERS] = {0};
	unsigned char msg[RINGMSG_MAX], want[RINGMSG_MAX];
	int status = 0;
	for (uint64_t got = 0; got < count * senders && status == 0; got++) {
		ssize_t n = mmipc_ring_recv(q, msg, sizeof msg, RINGMSG_TIMEOUT_NS);
		if (n < 0) {
			fprintf(stderr, "ring_receiver: after %" PRIu64 " messages: %s\n", got,
				errno == ETIMEDOUT ? "timed out: are the senders running?" : mmipc_last_error());
			status = 1;
			break;
		}
		uint64_t seq;
		uint32_t sender;
		if (n < RINGMSG_HEADER) {
			fprintf(stderr, "ring_receiver: a %zd-byte message is too short\n", n);
			status = 1;
			break;
		}
		memcpy(&seq, msg, 8);
		memcpy(&sender, msg + 8, 4);
		if (sender >= senders || seq != next[sender]) {
			fprintf(stderr, "ring_receiver: got message %" PRIu64 " of sender %u, want sender < %u and seq %" PRIu64 "\n",
				seq, sender, senders, sender < senders ? next[sender] : 0);
			status = 1;
			break;
		}
		size_t len = ringmsg_build(want, seq, sender);
		if ((size_t)n != len || memcmp(msg, want, len) != 0) {
			fprintf(stderr, "ring_receiver: message %" PRIu64 " of sender %u is damaged\n", seq, sender);
			status = 1;
			break;
		}
		next[sender]++;
	}
	if (status == 0)
		printf("ring_receiver: %" PRIu64 " messages from %u sender(s): in order, none lost or repeated, checksums match\n",
		       count * senders, senders);
	mmipc_unlink(name);
	mmipc_ring_close(q);
	return status;
}
