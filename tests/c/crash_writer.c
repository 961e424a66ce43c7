/* crash_writer.c - the C writer of the crash test (tests/hardening_crash_test.go): the twin of
 * tests/crashwriter/main.go, whose comment specifies the command line, the loop and the lock
 * region's layout. Only the "write" command:
 *
 *   crash_writer write RING LOCKREGION ID SCRATCHSIZE
 *
 * The test kills it with SIGKILL anywhere: mid-acquire, with the lock held and the invariant
 * broken, between reserve and commit, or while it is still creating its scratch region. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peerutil.h"
#include "hmsg.h"
#include "mmipc.h"

#define OFF_A0 64
#define OFF_A1 72
#define OFF_PHASE 80
#define OFF_READY 84
#define OFF_REPAIRS 88
#define OFF_RESV_SEQ 96

#define WAIT_LIMIT_NS ((int64_t)10 * 1000 * 1000 * 1000)

static void pause_us(long us)
{
	struct timespec ts = {0, us * 1000};
	nanosleep(&ts, NULL);
}

int main(int argc, char *argv[])
{
	if (argc != 6 || strcmp(argv[1], "write") != 0)
		peer_usage(argv[0], "tests/crashwriter/main.go");
	command = "write";
	const char *ring = argv[2], *lockname = argv[3];
	uint32_t id = (uint32_t)number(argv[4]);
	size_t scratch_size = (size_t)number(argv[5]);
	alarm(60); /* never killed: SIGALRM ends it, and the test reports it */
	hmsg_init();

	mmipc_ring *q = mmipc_ring_open(ring);
	if (q == NULL)
		fail("%s", mmipc_last_error());
	mmipc_region *lr = mmipc_open(lockname, 0);
	if (lr == NULL)
		fail("%s", mmipc_last_error());
	char scratch[64];
	snprintf(scratch, sizeof scratch, "scratch-%u", id);
	if (mmipc_create(scratch, scratch_size, 0600) == NULL)
		fail("%s", mmipc_last_error());

	unsigned char *b = mmipc_data(lr);
	mmipc_lock *lock = (mmipc_lock *)b;
	_Atomic uint64_t *a0 = (_Atomic uint64_t *)(b + OFF_A0), *a1 = (_Atomic uint64_t *)(b + OFF_A1);
	_Atomic uint64_t *resv_seq = (_Atomic uint64_t *)(b + OFF_RESV_SEQ);
	_Atomic uint32_t *phase = (_Atomic uint32_t *)(b + OFF_PHASE), *ready = (_Atomic uint32_t *)(b + OFF_READY);
	_Atomic uint32_t *repairs = (_Atomic uint32_t *)(b + OFF_REPAIRS);

	atomic_store(ready, id + 1);
	mmipc_notify((uint32_t *)ready, 1 << 30);

	for (uint64_t seq = 0;;) {
		int rc = mmipc_lock_acquire(lock, WAIT_LIMIT_NS);
		if (rc != 0 && errno == EOWNERDEAD) {
			atomic_store(a1, atomic_load(a0));
			atomic_fetch_add(repairs, 1);
			rc = mmipc_lock_consistent(lock);
		} else if (rc == 0) {
			uint64_t x = atomic_load(a0), y = atomic_load(a1);
			if (x != y)
				fail("a clean acquire found a0 %llu != a1 %llu", (unsigned long long)x, (unsigned long long)y);
		}
		if (rc != 0)
			fail("%s", mmipc_last_error());
		atomic_store(phase, 1);
		uint64_t v = atomic_load(a0) + 1;
		atomic_store(a0, v);
		pause_us(200);
		atomic_store(a1, v);
		atomic_store(phase, 0);
		if (mmipc_lock_release(lock) != 0)
			fail("%s", mmipc_last_error());

		for (int k = 0; k < 3; k++, seq++) {
			size_t n = HMSG_HEADER + (size_t)((seq * 37 + (uint64_t)id * 11) % 300);
			unsigned char *msg = mmipc_ring_reserve(q, n, WAIT_LIMIT_NS);
			if (msg == NULL)
				fail("%s", mmipc_last_error());
			atomic_store(resv_seq, seq);
			atomic_store(phase, 2);
			hmsg_fill(msg, n, seq, id, 0);
			pause_us(100);
			if (mmipc_ring_commit(q, n) != 0)
				fail("%s", mmipc_last_error());
			atomic_store(phase, 0);
		}
	}
}
