/*
 * lock_counter.c - several processes update shared data under one mmipc_lock, and one of them is
 * killed while holding it. With a plain spinlock or a process-shared pthread mutex without
 * robustness, everyone else would wait forever; with mmipc_lock the next taker gets EOWNERDEAD,
 * repairs the half-done update, marks the lock consistent, and work goes on.
 *
 *   ./lock_counter [WORKERS [INCREMENTS]]
 *
 * The lock is plain C, so the forked workers may use it (the fork rule forbids only calls that
 * need the Go runtime). A Go or Python process could share the same lock through a named region.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmipc.h"

struct shared {
	mmipc_lock lock; /* 64 bytes at offset 0: the region's data is page-aligned */
	uint64_t counter; /* what the lock guards */
	uint64_t pending; /* 1 while an update is half-done: the journal a repairer reads */
	_Atomic uint32_t recovered; /* how many times a taker found a dead owner */
};

static int work(struct shared *s, int increments)
{
	for (int i = 0; i < increments; i++) {
		int rc = mmipc_lock_acquire(&s->lock, 10LL * 1000 * 1000 * 1000);
		if (rc != 0 && errno == EOWNERDEAD) {
			// The previous holder died mid-update: undo its half-done step, then carry on.
			if (s->pending)
				s->pending = 0;
			atomic_fetch_add(&s->recovered, 1);
			mmipc_lock_consistent(&s->lock);
		} else if (rc != 0) {
			perror("lock_counter: mmipc_lock_acquire");
			return 1;
		}
		s->pending = 1;
		s->counter++;
		s->pending = 0;
		mmipc_lock_release(&s->lock);
	}
	return 0;
}

int main(int argc, char *argv[])
{
	int workers = argc > 1 ? atoi(argv[1]) : 4;
	int increments = argc > 2 ? atoi(argv[2]) : 100000;
	if (workers < 1 || workers > 64 || increments < 0) {
		fprintf(stderr, "usage: lock_counter [WORKERS (1-64) [INCREMENTS]]\n");
		return 2;
	}
	mmipc_region *r = mmipc_anon(sizeof(struct shared));
	if (r == NULL) {
		fprintf(stderr, "lock_counter: %s\n", mmipc_last_error());
		return 1;
	}
	struct shared *s = mmipc_data(r); // fresh memory reads as zeros: an unlocked lock

	// The victim takes the lock, starts an update, and dies holding it.
	pid_t victim = fork();
	if (victim == 0) {
		mmipc_lock_acquire(&s->lock, MMIPC_FOREVER);
		s->pending = 1;
		raise(SIGKILL);
	}
	waitpid(victim, NULL, 0);

	for (int w = 0; w < workers; w++)
		if (fork() == 0)
			_exit(work(s, increments));
	int failed = 0, status;
	while (wait(&status) > 0)
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;

	uint64_t want = (uint64_t)workers * (uint64_t)increments;
	printf("counter = %llu (want %llu); dead owners recovered: %u\n", (unsigned long long)s->counter,
	       (unsigned long long)want, atomic_load(&s->recovered));
	int ok = !failed && s->counter == want && atomic_load(&s->recovered) == 1 && s->pending == 0;
	mmipc_detach(r);
	return ok ? 0 : 1;
}
