/* load_peer.c - the C peer of the load test (tests/hardening_load_test.go): the twin of
 * tests/loadpeer/main.go, whose comment specifies the command line, the behaviour and the output:
 *
 *   load_peer send RING SECONDS MINLEN MAXLEN SEED ID
 *   load_peer recv RING SECONDS MINLEN MAXLEN SEED NSENDERS
 *
 * It allocates nothing per message (the test bounds its memory growth tightly). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peerutil.h"
#include "hmsg.h"
#include "mmipc.h"

#define CALL_LIMIT_NS ((int64_t)1000 * 1000 * 1000)
#define END_LIMIT_S 15.0
#define RECV_GRACE_S 12.0
#define MAX_SENDERS 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int timed_out(void) { return errno == ETIMEDOUT || errno == EAGAIN; }

static unsigned char buf[HMSG_MAX];

static void do_send(mmipc_ring *q, const char *ring, double seconds, size_t min_len, size_t max_len, uint64_t rng,
		    uint32_t id)
{
	double deadline = now() + seconds;
	uint64_t seq = 0, bytes = 0;
	while (now() < deadline) {
		uint64_t r = splitmix64(&rng);
		size_t n = min_len + (size_t)(r % (max_len - min_len + 1));
		for (;;) {
			int rc;
			if ((r >> 32) & 1) {
				unsigned char *msg = mmipc_ring_reserve(q, n, CALL_LIMIT_NS);
				rc = -1;
				if (msg != NULL) {
					hmsg_fill(msg, n, seq, id, 0);
					rc = mmipc_ring_commit(q, n);
				}
			} else {
				hmsg_fill(buf, n, seq, id, 0);
				rc = mmipc_ring_send(q, buf, n, CALL_LIMIT_NS);
			}
			if (rc == 0) {
				seq++;
				bytes += n;
				break;
			}
			if (!timed_out())
				fail("message %llu: %s", (unsigned long long)seq, mmipc_last_error());
			if (now() >= deadline)
				break; /* the ring stayed full to the end: this message is not sent */
		}
	}
	hmsg_fill(buf, HMSG_HEADER, seq, id, HMSG_END);
	double end_by = now() + END_LIMIT_S;
	while (mmipc_ring_send(q, buf, HMSG_HEADER, CALL_LIMIT_NS) != 0) {
		if (!timed_out() || now() > end_by)
			fail("end marker: %s", mmipc_last_error());
	}
	printf("ok send ring=%s id=%u sent=%llu bytes=%llu\n", ring, id, (unsigned long long)seq,
	       (unsigned long long)bytes);
}

struct sender {
	uint32_t id;
	uint64_t count;
	int ended;
};

static void do_recv(mmipc_ring *q, const char *ring, double seconds, size_t max_len, unsigned nsenders)
{
	if (nsenders > MAX_SENDERS)
		fail("at most %d senders", MAX_SENDERS);
	static struct sender senders[MAX_SENDERS];
	unsigned nseen = 0, ended = 0;
	uint64_t total = 0, got = 0;
	double give_up = now() + seconds + RECV_GRACE_S;
	char why[256];
	while (ended < nsenders) {
		const unsigned char *msg;
		size_t len = 0;
		int peeked = got % 2 == 1;
		if (peeked) {
			msg = mmipc_ring_peek(q, &len, CALL_LIMIT_NS);
		} else {
			ssize_t n = mmipc_ring_recv(q, buf, sizeof buf, CALL_LIMIT_NS);
			msg = n >= 0 ? buf : NULL;
			len = n >= 0 ? (size_t)n : 0;
		}
		if (msg == NULL) {
			if (!timed_out())
				fail("%s", mmipc_last_error());
			if (now() > give_up)
				fail("%u of %u senders ended after %.0f s", ended, nsenders, seconds + RECV_GRACE_S);
			continue;
		}
		got++;
		uint64_t seq;
		uint32_t id, flags;
		if (hmsg_verify(msg, len, &seq, &id, &flags, why, sizeof why) != 0)
			fail("%s", why);
		struct sender *s = NULL;
		for (unsigned i = 0; i < nseen; i++)
			if (senders[i].id == id)
				s = &senders[i];
		if (s == NULL) {
			if (nseen == nsenders)
				fail("a message from sender %u, after %u senders already", id, nsenders);
			s = &senders[nseen++];
			s->id = id;
		}
		if (s->ended)
			fail("sender %u: seq %llu after its end marker", id, (unsigned long long)seq);
		else if (flags == HMSG_END && seq != s->count)
			fail("sender %u: end marker says %llu sent, %llu received", id, (unsigned long long)seq,
			     (unsigned long long)s->count);
		else if (flags == HMSG_END) {
			s->ended = 1;
			ended++;
		} else if (seq != s->count)
			fail("sender %u: seq %llu after %llu messages (lost, repeated or reordered)", id,
			     (unsigned long long)seq, (unsigned long long)s->count);
		else if (len > max_len)
			fail("sender %u: seq %llu has %zu bytes, more than %zu", id, (unsigned long long)seq, len, max_len);
		else {
			s->count++;
			total++;
		}
		if (peeked && mmipc_ring_release(q) != 0)
			fail("%s", mmipc_last_error());
	}
	if (mmipc_ring_recv(q, buf, sizeof buf, 0) >= 0 || errno != EAGAIN)
		fail("after every end marker the ring is not empty: %s", mmipc_last_error());
	for (unsigned i = 0; i < nseen; i++)
		printf("from id=%u count=%llu last=%lld\n", senders[i].id, (unsigned long long)senders[i].count,
		       (long long)senders[i].count - 1);
	printf("ok recv ring=%s total=%llu\n", ring, (unsigned long long)total);
}

int main(int argc, char *argv[])
{
	if (argc != 8 || (strcmp(argv[1], "send") != 0 && strcmp(argv[1], "recv") != 0))
		peer_usage(argv[0], "tests/loadpeer/main.go");
	command = argv[1];
	const char *ring = argv[2];
	double seconds = (double)number(argv[3]);
	size_t min_len = (size_t)number(argv[4]), max_len = (size_t)number(argv[5]);
	uint64_t seed = number(argv[6]), last = number(argv[7]);
	if (min_len < HMSG_HEADER || max_len < min_len || max_len > HMSG_MAX) {
		fprintf(stderr, "bad length range %zu..%zu\n", min_len, max_len);
		return 2;
	}
	hmsg_init();
	mmipc_ring *q = mmipc_ring_open(ring);
	if (q == NULL)
		fail("%s", mmipc_last_error());
	if (max_len > mmipc_ring_max_message(q))
		fail("MAXLEN %zu: the ring carries at most %zu", max_len, mmipc_ring_max_message(q));
	if (strcmp(command, "send") == 0)
		do_send(q, ring, seconds, min_len, max_len, seed, (uint32_t)last);
	else
		do_recv(q, ring, seconds, max_len, (unsigned)last);
	mmipc_ring_close(q);
	return 0;
}
