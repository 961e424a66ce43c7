/* test_sync.c - mmipc_wait/mmipc_notify and mmipc_lock (docs/PROTOCOL.md "Wait and notify", "Lock";
 * mmipc.h) from threads and processes.
 *
 *   wait/notify  every errno; timeouts 0, positive and -1, woken by a thread and by a process;
 *                EINTR from a signal handler; how many notify wakes (waiters proven asleep in the
 *                futex through /proc/self/task/<tid>/syscall); the load-check-wait pattern.
 *   lock         the errno table; the owner word is this process's identity; 4 processes x 4
 *                threads incrementing a plain counter under the lock; a holder killed by SIGKILL
 *                with three waiters (exactly one EOWNERDEAD, it repairs, the others then get the
 *                lock normally); release without consistent (ENOTRECOVERABLE until init); a holder
 *                that is an unreaped zombie of the waiter; a recycled pid (live pid, other start
 *                time); garbage state bits; ETIMEDOUT/EAGAIN bounds; a release that wakes a
 *                sleeper at once (not at the end of its 100 ms sleep); a forked child.
 *
 * The words and locks live in an anonymous region shared with forked children (the sync calls are
 * fork-safe). Every wait is bounded: alarm() in every process, deadlines in the parent.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define MS 1000000LL

/* The shared page: words and locks used by the parent and its children. */
struct shared {
	mmipc_lock lock;     /* offset 0 */
	mmipc_lock lock2;    /* offset 64 */
	_Atomic uint32_t word;
	_Atomic uint32_t flag;
	_Atomic uint32_t ready;
	_Atomic uint32_t results[8];
	_Atomic uint32_t inside;
	_Atomic uint32_t violations;
	_Atomic uint64_t release_ns;
	uint64_t counter; /* plain: only the lock protects it */
	uint64_t guarded[4];
};

static struct shared *sh;


/* ---- /proc ---- */

/* State (field 3) and starttime (field 22) of /proc/<pid>/stat; 0 on success. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	p += 2; /* ") " */
	*state = *p;
	int field = 3;
	while (field < 22 && (p = strchr(p, ' ')) != NULL) {
		p++;
		field++;
	}
	if (p == NULL)
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static uint64_t identity_of(pid_t pid)
{
	char st;
	unsigned long long start = 0;
	if (proc_stat(pid, &st, &start) != 0)
		die("reading /proc/<pid>/stat");
	return (uint64_t)(uint32_t)pid | (uint64_t)(uint32_t)start << 32;
}

/* The syscall a thread is blocked in, from /proc/self/task/<tid>/syscall: its number and first
 * argument, or -1 when it runs (or the file cannot be read). */
static long blocked_in(pid_t tid, unsigned long *arg0)
{
	char path[96], buf[256];
	snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *end;
	long nr = strtol(buf, &end, 10);
	if (end == buf)
		return -1; /* "running" */
	*arg0 = strtoul(end, NULL, 16);
	return nr;
}

/* ---- wait/notify ---- */

static void test_wait_errors(void)
{
	_Atomic uint32_t *w = &sh->word;
	atomic_store(w, 7);
	uint32_t *pw = (uint32_t *)w;
	uint32_t *odd = (uint32_t *)((char *)pw + 2);
	EXPECT_FAIL(mmipc_wait(NULL, 0, 0), EINVAL);
	check(strstr(mmipc_last_error(), "mmipc_wait") != NULL, "mmipc_wait(NULL) names the call: \"%s\"",
	      mmipc_last_error());
	EXPECT_FAIL(mmipc_wait(odd, 0, 0), EINVAL);
	EXPECT_FAIL(mmipc_wait(pw, 7, -2), EINVAL);
	EXPECT_FAIL(mmipc_wait(pw, 7, INT64_MIN), EINVAL);
	EXPECT_FAIL(mmipc_wait(pw, 7, 0), EAGAIN);
	check(mmipc_wait(pw, 8, 0) == 0, "mmipc_wait(word 7, expected 8, timeout 0): 0 at once (the word differs)");
	double t0 = now_s();
	int r = mmipc_wait(pw, 8, -1);
	check(r == 0 && now_s() - t0 < 1.0, "mmipc_wait(word 7, expected 8, forever): 0 at once: got %d", r);
	t0 = now_s();
	errno = 0;
	r = mmipc_wait(pw, 7, 30 * MS);
	int err = errno;
	double dt = now_s() - t0;
	check(r == -1 && err == ETIMEDOUT && dt >= 0.029 && dt < 2.0,
	      "mmipc_wait(equal, 30 ms) with nobody notifying: got %d errno %s after %.3f s, want ETIMEDOUT after "
	      "30 ms",
	      r, strerror(err), dt);
	t0 = now_s();
	errno = 0;
	r = mmipc_wait(pw, 7, 1);
	err = errno;
	check(r == -1 && err == ETIMEDOUT && now_s() - t0 < 1.0, "mmipc_wait(equal, 1 ns): got %d %s, want ETIMEDOUT",
	      r, strerror(err));

	EXPECT_FAIL(mmipc_notify(NULL, 1), EINVAL);
	check(strstr(mmipc_last_error(), "mmipc_notify") != NULL, "mmipc_notify(NULL) names the call: \"%s\"",
	      mmipc_last_error());
	EXPECT_FAIL(mmipc_notify(odd, 1), EINVAL);
	EXPECT_FAIL(mmipc_notify(pw, 0), EINVAL);
	EXPECT_FAIL(mmipc_notify(pw, -1), EINVAL);
	EXPECT_FAIL(mmipc_notify(pw, INT_MIN), EINVAL);
	check(mmipc_notify(pw, 1) == 0 && mmipc_notify(pw, INT_MAX) == 0, "mmipc_notify with nobody waiting: 0");
}

struct notifier_arg {
	_Atomic uint32_t *w;
	int delay_ms;
	uint32_t value;
	int woke;
};

static void *notifier_thread(void *p)
{
	struct notifier_arg *a = p;
	sleep_ms(a->delay_ms);
	atomic_store(a->w, a->value);
	a->woke = mmipc_notify((uint32_t *)a->w, INT_MAX);
	return NULL;
}

static void test_wait_woken(void)
{
	/* Forever, woken by a thread: the waiter runs the documented pattern. */
	atomic_store(&sh->word, 0);
	struct notifier_arg a = {&sh->word, 30, 1, -1};
	pthread_t th;
	if (pthread_create(&th, NULL, notifier_thread, &a) != 0)
		die("pthread_create");
	double t0 = now_s();
	int calls = 0, bad = 0;
	uint32_t v;
	while ((v = atomic_load(&sh->word)) == 0) {
		calls++;
		if (mmipc_wait((uint32_t *)&sh->word, v, -1) != 0)
			bad++;
	}
	double dt = now_s() - t0;
	pthread_join(th, NULL);
	check(v == 1 && bad == 0 && calls >= 1 && dt >= 0.025 && dt < 5.0,
	      "mmipc_wait forever, woken by a thread after 30 ms: value %u, %d calls (%d failed), %.3f s", v, calls,
	      bad, dt);
	check(a.woke >= 0 && a.woke <= 1, "the thread's mmipc_notify returned %d (0 or 1)", a.woke);

	/* A positive timeout, woken by a process: the region is mapped by both. */
	atomic_store(&sh->word, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(10);
		sleep_ms(30);
		atomic_store(&sh->word, 2);
		mmipc_notify((uint32_t *)&sh->word, 1);
		_exit(0);
	}
	t0 = now_s();
	bad = 0;
	while ((v = atomic_load(&sh->word)) == 0 && now_s() - t0 < 10) {
		if (mmipc_wait((uint32_t *)&sh->word, v, 5000 * MS) != 0)
			bad++;
	}
	dt = now_s() - t0;
	int st = 0, w = wait_bounded(pid, 10, &st);
	char buf[128];
	check(v == 2 && bad == 0 && dt < 5.0, "mmipc_wait(5 s), woken by another process: value %u, %d failures, %.3f s",
	      v, bad, dt);
	check(exited_zero(w, st), "the notifying process: %s", describe(w, st, buf, sizeof buf));
}

static volatile sig_atomic_t usr1_seen;
static void on_usr1(int sig)
{
	(void)sig;
	usr1_seen++;
}

static void test_wait_eintr(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1; /* no SA_RESTART: the wait must report the signal */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		die("sigaction");
	atomic_store(&sh->word, 5);
	atomic_store(&sh->flag, 0);
	pid_t parent = getpid();
	pid_t pid = fork_flushed();
	if (pid == 0) {
		/* Signal every 20 ms until the parent says it saw one inside the wait. */
		child_begin(10);
		while (atomic_load(&sh->flag) == 0) {
			sleep_ms(20);
			kill(parent, SIGUSR1);
		}
		_exit(0);
	}
	double t0 = now_s();
	errno = 0;
	int r = mmipc_wait((uint32_t *)&sh->word, 5, 5000 * MS);
	int err = errno;
	if (r == -1 && err == ETIMEDOUT) { /* every signal came outside the syscall: try once more */
		errno = 0;
		r = mmipc_wait((uint32_t *)&sh->word, 5, 5000 * MS);
		err = errno;
	}
	double dt = now_s() - t0;
	atomic_store(&sh->flag, 1);
	int st = 0, w = wait_bounded(pid, 10, &st);
	char buf[128];
	check(r == -1 && err == EINTR && usr1_seen > 0 && dt < 5.0,
	      "mmipc_wait(5 s) interrupted by a SIGUSR1 handler (no SA_RESTART): got %d errno %s after %.3f s, "
	      "%d signals handled; want EINTR",
	      r, strerror(err), dt, (int)usr1_seen);
	check(exited_zero(w, st), "the signalling process: %s", describe(w, st, buf, sizeof buf));
	signal(SIGUSR1, SIG_DFL);
}

struct count_arg {
	_Atomic pid_t tid;
	_Atomic int done;
	int result, err;
};

static void *count_waiter(void *p)
{
	struct count_arg *a = p;
	atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
	errno = 0;
	a->result = mmipc_wait((uint32_t *)&sh->word, 9, 10000 * MS);
	a->err = errno;
	atomic_store(&a->done, 1);
	return NULL;
}

static int count_blocked(struct count_arg *a, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++) {
		unsigned long arg0 = 0;
		pid_t tid = atomic_load(&a[i].tid);
		if (tid != 0 && !atomic_load(&a[i].done) && blocked_in(tid, &arg0) == SYS_futex &&
		    arg0 == (unsigned long)(uintptr_t)&sh->word)
			k++;
	}
	return k;
}

static int count_done(struct count_arg *a, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += atomic_load(&a[i].done);
	return k;
}

static void test_notify_counts(void)
{
	enum { N = 3 };
	struct count_arg a[N];
	pthread_t th[N];
	memset(a, 0, sizeof a);
	atomic_store(&sh->word, 9);
	for (int i = 0; i < N; i++)
		if (pthread_create(&th[i], NULL, count_waiter, &a[i]) != 0)
			die("pthread_create");
	int asleep = POLL_UNTIL(count_blocked(a, N) == N, 10);
	check(asleep, "three threads asleep in FUTEX_WAIT on the word (from /proc/self/task/*/syscall): %d",
	      count_blocked(a, N));
	int woke1 = mmipc_notify((uint32_t *)&sh->word, 1);
	int one_done = POLL_UNTIL(count_done(a, N) == 1, 10);
	sleep_ms(20);
	int done1 = count_done(a, N);
	check(woke1 == 1 && one_done && done1 == 1, "mmipc_notify(count 1) with three asleep: returned %d, %d woke (want 1, 1)",
	      woke1, done1);
	int still = count_blocked(a, N);
	check(!asleep || still == 2, "the other two still asleep: %d", still);
	int woke2 = mmipc_notify((uint32_t *)&sh->word, INT_MAX);
	int all = POLL_UNTIL(count_done(a, N) == N, 10);
	check(woke2 == 2 && all, "mmipc_notify(INT_MAX): returned %d (want 2), all done: %d", woke2, all);
	int ok = 0;
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		ok += a[i].result == 0;
	}
	check(ok == N, "every woken mmipc_wait returned 0: %d of %d", ok, N);
	check(mmipc_notify((uint32_t *)&sh->word, INT_MAX) == 0, "mmipc_notify after all left: 0");
}

/* The documented pattern, many times: a thread increments and notifies; the waiter loads, checks
 * and waits with what it loaded; it ends with the exact final value and never waits past a change. */
static void *incrementer(void *p)
{
	(void)p;
	for (int i = 0; i < 20000; i++) {
		atomic_fetch_add(&sh->word, 1);
		mmipc_notify((uint32_t *)&sh->word, 1);
		if (i % 1000 == 0)
			sched_yield();
	}
	return NULL;
}

static void test_wait_pattern(void)
{
	atomic_store(&sh->word, 0);
	pthread_t th;
	if (pthread_create(&th, NULL, incrementer, NULL) != 0)
		die("pthread_create");
	double t0 = now_s();
	uint32_t v;
	int failures = 0, waits = 0;
	while ((v = atomic_load(&sh->word)) < 20000 && now_s() - t0 < 30) {
		waits++;
		if (mmipc_wait((uint32_t *)&sh->word, v, 1000 * MS) != 0)
			failures++;
	}
	pthread_join(th, NULL);
	check(v == 20000 && failures == 0, "load-check-wait against 20000 increment+notify: final %u, %d waits, %d "
	      "timed out (a lost wake-up would time out)", v, waits, failures);
}

/* ---- the lock ---- */

static void test_lock_errors(void)
{
	mmipc_lock *l = &sh->lock;
	mmipc_lock *odd = (mmipc_lock *)((char *)l + 8);
	EXPECT_FAIL(mmipc_lock_init(NULL), EINVAL);
	EXPECT_FAIL(mmipc_lock_init(odd), EINVAL);
	check(strstr(mmipc_last_error(), "mmipc_lock_init") != NULL, "the message names the call: \"%s\"",
	      mmipc_last_error());
	EXPECT_FAIL(mmipc_lock_acquire(NULL, 0), EINVAL);
	EXPECT_FAIL(mmipc_lock_acquire(odd, 0), EINVAL);
	EXPECT_FAIL(mmipc_lock_acquire(l, -2), EINVAL);
	EXPECT_FAIL(mmipc_lock_consistent(NULL), EINVAL);
	EXPECT_FAIL(mmipc_lock_consistent(odd), EINVAL);
	EXPECT_FAIL(mmipc_lock_release(NULL), EINVAL);
	EXPECT_FAIL(mmipc_lock_release(odd), EINVAL);

	/* All zeros is an unlocked lock: no init needed. */
	memset(l, 0, sizeof *l);
	EXPECT_FAIL(mmipc_lock_release(l), EPERM);
	EXPECT_FAIL(mmipc_lock_consistent(l), EPERM);
	EXPECT_ZERO(mmipc_lock_acquire(l, 0));
	uint64_t me = identity_of(getpid());
	check(l->owner == me, "the owner word is pid | starttime << 32: got %#llx, want %#llx",
	      (unsigned long long)l->owner, (unsigned long long)me);
	check(l->state == 0 && l->sleepers == 0, "state 0, sleepers 0 after an uncontended acquire: %u %u", l->state,
	      l->sleepers);
	EXPECT_FAIL(mmipc_lock_consistent(l), EINVAL); /* held, but not taken from a dead owner */
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EAGAIN); /* not recursive */
	double t0 = now_s();
	EXPECT_FAIL(mmipc_lock_acquire(l, 20 * MS), ETIMEDOUT);
	double dt = now_s() - t0;
	check(dt >= 0.019 && dt < 2.0, "a 20 ms acquire of a lock this process holds timed out after %.3f s", dt);
	EXPECT_ZERO(mmipc_lock_release(l));
	check(l->owner == 0, "released: owner 0 (%#llx)", (unsigned long long)l->owner);
	EXPECT_FAIL(mmipc_lock_release(l), EPERM);
	EXPECT_ZERO(mmipc_lock_acquire(l, -1));
	EXPECT_ZERO(mmipc_lock_release(l));
	EXPECT_ZERO(mmipc_lock_acquire(l, 1000 * MS));
	EXPECT_ZERO(mmipc_lock_release(l));

	/* init writes zeros, whatever was there. */
	memset(l, 0xA5, sizeof *l);
	EXPECT_ZERO(mmipc_lock_init(l));
	static const unsigned char zeros[64];
	check(memcmp(l, zeros, 64) == 0, "mmipc_lock_init wrote 64 zero bytes");
	EXPECT_ZERO(mmipc_lock_init(&sh->lock2)); /* any 64-aligned offset */
	EXPECT_ZERO(mmipc_lock_acquire(&sh->lock2, 0));
	EXPECT_ZERO(mmipc_lock_release(&sh->lock2));

	/* Garbage state bits are not a lock. */
	l->state = 4;
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EPROTO);
	check(strstr(mmipc_last_error(), "mmipc_lock_acquire") != NULL, "EPROTO names the call: \"%s\"",
	      mmipc_last_error());
	l->state = 0x80000001u;
	EXPECT_FAIL(mmipc_lock_acquire(l, 100 * MS), EPROTO);
	check(l->owner == 0, "an EPROTO acquire holds nothing: owner %#llx", (unsigned long long)l->owner);
	EXPECT_ZERO(mmipc_lock_init(l));
}

/* ---- contention ---- */

enum { CONT_PROCS = 4, CONT_THREADS = 4, CONT_ITERS = 2000 };

static void *contender(void *p)
{
	(void)p;
	for (int i = 0; i < CONT_ITERS; i++) {
		int r = mmipc_lock_acquire(&sh->lock, 20000 * MS);
		if (r != 0) {
			atomic_fetch_add(&sh->violations, 1000);
			continue;
		}
		if (atomic_exchange(&sh->inside, 1) != 0)
			atomic_fetch_add(&sh->violations, 1);
		volatile uint64_t *c = &sh->counter;
		uint64_t v = *c;
		if (i % 64 == 0)
			sched_yield(); /* hold it a while now and then, so others must sleep */
		*c = v + 1;
		atomic_store(&sh->inside, 0);
		if (mmipc_lock_release(&sh->lock) != 0)
			atomic_fetch_add(&sh->violations, 1000);
	}
	return NULL;
}

static void test_lock_contention(void)
{
	mmipc_lock_init(&sh->lock);
	sh->counter = 0;
	atomic_store(&sh->inside, 0);
	atomic_store(&sh->violations, 0);
	pid_t pids[CONT_PROCS];
	double t0 = now_s();
	for (int p = 0; p < CONT_PROCS; p++) {
		pids[p] = fork_flushed();
		if (pids[p] == 0) {
			child_begin(60);
			pthread_t th[CONT_THREADS];
			for (int i = 0; i < CONT_THREADS; i++)
				if (pthread_create(&th[i], NULL, contender, NULL) != 0)
					_exit(3);
			for (int i = 0; i < CONT_THREADS; i++)
				pthread_join(th[i], NULL);
			_exit(0);
		}
	}
	int ok = 0;
	char buf[128];
	for (int p = 0; p < CONT_PROCS; p++) {
		int st = 0, w = wait_bounded(pids[p], 90, &st);
		ok += check(exited_zero(w, st), "contender process %d: %s", p, describe(w, st, buf, sizeof buf));
	}
	uint64_t want = (uint64_t)CONT_PROCS * CONT_THREADS * CONT_ITERS;
	check(sh->counter == want && atomic_load(&sh->violations) == 0,
	      "%d processes x %d threads x %d increments under the lock: counter %llu (want %llu), %u violations "
	      "(two inside at once, or a failed acquire/release x1000), %.2f s",
	      CONT_PROCS, CONT_THREADS, CONT_ITERS, (unsigned long long)sh->counter, (unsigned long long)want,
	      atomic_load(&sh->violations), now_s() - t0);
	check(sh->lock.owner == 0 && sh->lock.sleepers == 0 && sh->lock.state == 0,
	      "the lock is free and clean afterwards: owner %#llx sleepers %u state %u",
	      (unsigned long long)sh->lock.owner, sh->lock.sleepers, sh->lock.state);
}

/* ---- a holder killed ---- */

static void test_lock_owner_killed(void)
{
	enum { WAITERS = 3 };
	mmipc_lock_init(&sh->lock);
	atomic_store(&sh->ready, 0);
	for (int i = 0; i < 8; i++)
		atomic_store(&sh->results[i], 0);
	sh->guarded[0] = 0;
	sh->guarded[1] = 0;
	char buf[128];

	pid_t holder = fork_flushed();
	if (holder == 0) {
		child_begin(30);
		if (mmipc_lock_acquire(&sh->lock, 0) != 0)
			_exit(3);
		sh->guarded[0] = 1; /* half an update: the waiters must see the lock as not consistent */
		atomic_store(&sh->ready, 1);
		for (;;)
			pause();
	}
	if (!POLL_UNTIL(atomic_load(&sh->ready) == 1, 10)) {
		check(0, "the holder took the lock");
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
		return;
	}
	pid_t w[WAITERS];
	for (int i = 0; i < WAITERS; i++) {
		w[i] = fork_flushed();
		if (w[i] == 0) {
			child_begin(30);
			atomic_fetch_add(&sh->ready, 1);
			errno = 0;
			int r = mmipc_lock_acquire(&sh->lock, 20000 * MS);
			int err = r == 0 ? 0 : errno;
			if (r == 0 || err == EOWNERDEAD) {
				if (err == EOWNERDEAD) {
					sh->guarded[1] = sh->guarded[0]; /* repair */
					if (mmipc_lock_consistent(&sh->lock) != 0)
						err = -1;
				} else if (sh->guarded[1] != 1) {
					err = -2; /* the lock was handed on unrepaired */
				}
				sleep_ms(5);
				if (mmipc_lock_release(&sh->lock) != 0)
					err = -3;
			}
			atomic_store(&sh->results[i], (uint32_t)(err == 0 ? 1000 : err + 2000));
			_exit(0);
		}
	}
	POLL_UNTIL(atomic_load(&sh->ready) == 1 + WAITERS, 10);
	sleep_ms(50); /* let them go to sleep on the lock */
	double t0 = now_s();
	kill(holder, SIGKILL);
	int st = 0, hw = wait_bounded(holder, 10, &st);
	check(hw == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the holder was killed: %s",
	      describe(hw, st, buf, sizeof buf));
	int done = 0;
	for (int i = 0; i < WAITERS; i++) {
		int wst = 0, ww = wait_bounded(w[i], 30, &wst);
		done += exited_zero(ww, wst);
	}
	double dt = now_s() - t0;
	int ownerdead = 0, normal = 0, other = 0;
	for (int i = 0; i < WAITERS; i++) {
		uint32_t r = atomic_load(&sh->results[i]);
		if (r == 2000 + EOWNERDEAD)
			ownerdead++;
		else if (r == 1000)
			normal++;
		else
			other++;
	}
	check(done == WAITERS && ownerdead == 1 && normal == WAITERS - 1 && other == 0,
	      "a holder killed with SIGKILL, %d waiters: %d EOWNERDEAD (want 1), %d normal (want %d), %d other, "
	      "%d exited cleanly, all served within %.2f s",
	      WAITERS, ownerdead, normal, WAITERS - 1, other, done, dt);
	check(dt < 10.0, "the dead holder was noticed within bounds: %.2f s", dt);
	check(sh->lock.owner == 0 && sh->lock.state == 0, "afterwards the lock is free and consistent: owner %#llx state %u",
	      (unsigned long long)sh->lock.owner, sh->lock.state);
	EXPECT_ZERO(mmipc_lock_acquire(&sh->lock, 0));
	EXPECT_ZERO(mmipc_lock_release(&sh->lock));
}

/* A holder that exited without releasing. Returns its pid (reaped unless keep_zombie). */
static pid_t holder_exits(mmipc_lock *l, int keep_zombie)
{
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(10);
		_exit(mmipc_lock_acquire(l, 0) == 0 ? 0 : 3);
	}
	if (keep_zombie) {
		char st = 0;
		unsigned long long start;
		POLL_UNTIL(proc_stat(pid, &st, &start) == 0 && st == 'Z', 10);
		check(st == 'Z', "the holder is an unreaped zombie (state %c)", st ? st : '?');
		return pid;
	}
	int s = 0, w = wait_bounded(pid, 10, &s);
	check(exited_zero(w, s), "the holder took the lock and exited");
	return pid;
}

static void test_lock_not_recoverable(void)
{
	mmipc_lock *l = &sh->lock;
	mmipc_lock_init(l);
	holder_exits(l, 0);
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EOWNERDEAD); /* try-once checks the holder at once */
	check(strstr(mmipc_last_error(), "mmipc_lock_acquire") != NULL, "EOWNERDEAD has a message: \"%s\"",
	      mmipc_last_error());
	check(l->owner == identity_of(getpid()) && l->state == 1, "taken over: owner is us, state INCONSISTENT (%u)",
	      l->state);
	EXPECT_ZERO(mmipc_lock_release(l)); /* without consistent */
	check(l->state == 3 && l->owner == 0, "released unrepaired: state %u (want 3), owner %#llx", l->state,
	      (unsigned long long)l->owner);
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), ENOTRECOVERABLE);
	EXPECT_FAIL(mmipc_lock_acquire(l, -1), ENOTRECOVERABLE);
	EXPECT_FAIL(mmipc_lock_acquire(l, 50 * MS), ENOTRECOVERABLE);
	EXPECT_FAIL(mmipc_lock_release(l), EPERM);
	EXPECT_ZERO(mmipc_lock_init(l));
	EXPECT_ZERO(mmipc_lock_acquire(l, 0));
	EXPECT_ZERO(mmipc_lock_release(l));

	/* A taker that died before repairing: the next acquire is EOWNERDEAD again, and consistent
	 * then makes it whole. */
	holder_exits(l, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(10);
		int r = mmipc_lock_acquire(l, 5000 * MS);
		_exit(r == -1 && errno == EOWNERDEAD ? 0 : 3); /* dies holding it, still INCONSISTENT */
	}
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "a second taker got EOWNERDEAD and died without repairing");
	EXPECT_FAIL(mmipc_lock_acquire(l, 5000 * MS), EOWNERDEAD);
	EXPECT_ZERO(mmipc_lock_consistent(l));
	EXPECT_FAIL(mmipc_lock_consistent(l), EINVAL);
	check(l->state == 0, "consistent cleared the state: %u", l->state);
	EXPECT_ZERO(mmipc_lock_release(l));
	EXPECT_ZERO(mmipc_lock_acquire(l, 0));
	EXPECT_ZERO(mmipc_lock_release(l));
}

static void test_lock_zombie(void)
{
	mmipc_lock *l = &sh->lock;
	mmipc_lock_init(l);
	pid_t pid = holder_exits(l, 1);
	double t0 = now_s();
	errno = 0;
	int r = mmipc_lock_acquire(l, 5000 * MS);
	int err = errno;
	double dt = now_s() - t0;
	check(r == -1 && err == EOWNERDEAD && dt < 4.0,
	      "the holder is our unreaped zombie child; acquire(5 s): got %d %s after %.3f s, want EOWNERDEAD (a zombie "
	      "is dead)",
	      r, strerror(err), dt);
	if (r == -1 && err == EOWNERDEAD) {
		EXPECT_ZERO(mmipc_lock_consistent(l));
		EXPECT_ZERO(mmipc_lock_release(l));
	}
	waitpid(pid, NULL, 0);
}

static void test_lock_recycled_pid(void)
{
	mmipc_lock *l = &sh->lock;
	pid_t live = fork_flushed();
	if (live == 0) {
		child_begin(30);
		for (;;)
			pause();
	}
	usleep(10000);
	uint64_t id = identity_of(live);
	/* The live process's own identity: alive, so never taken. */
	mmipc_lock_init(l);
	l->owner = id;
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EAGAIN);
	double t0 = now_s();
	EXPECT_FAIL(mmipc_lock_acquire(l, 30 * MS), ETIMEDOUT);
	double dt = now_s() - t0;
	check(dt >= 0.029 && dt < 2.0, "ETIMEDOUT after %.3f s (want 30 ms)", dt);
	check(l->owner == id && l->sleepers == 0, "the live holder keeps it; sleepers back to 0 (%u)", l->sleepers);

	/* Its pid with another start time: the pid was recycled, the holder is dead. */
	l->owner = id + ((uint64_t)1 << 32);
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EOWNERDEAD);
	EXPECT_ZERO(mmipc_lock_consistent(l));
	EXPECT_ZERO(mmipc_lock_release(l));

	l->owner = id - ((uint64_t)1 << 32);
	t0 = now_s();
	EXPECT_FAIL(mmipc_lock_acquire(l, 5000 * MS), EOWNERDEAD); /* noticed after the first sleep */
	check(now_s() - t0 < 1.0, "a recycled holder's pid noticed within %.3f s", now_s() - t0);
	EXPECT_ZERO(mmipc_lock_consistent(l));
	EXPECT_ZERO(mmipc_lock_release(l));

	/* Pids that cannot exist: 0 with a start time, and above PID_MAX_LIMIT. */
	l->owner = (uint64_t)12345 << 32;
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EOWNERDEAD);
	EXPECT_ZERO(mmipc_lock_release(l)); /* unrepaired: not recoverable */
	EXPECT_ZERO(mmipc_lock_init(l));
	l->owner = (1u << 22) + 1;
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EOWNERDEAD);
	EXPECT_ZERO(mmipc_lock_consistent(l));
	EXPECT_ZERO(mmipc_lock_release(l));

	kill(live, SIGKILL);
	waitpid(live, NULL, 0);
}

static void test_lock_timeouts(void)
{
	mmipc_lock *l = &sh->lock;
	mmipc_lock_init(l);
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->flag, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(30);
		if (mmipc_lock_acquire(l, 0) != 0)
			_exit(3);
		atomic_store(&sh->ready, 1);
		while (atomic_load(&sh->flag) == 0)
			usleep(1000);
		_exit(mmipc_lock_release(l) == 0 ? 0 : 4);
	}
	POLL_UNTIL(atomic_load(&sh->ready) == 1, 10);
	double t0 = now_s();
	EXPECT_FAIL(mmipc_lock_acquire(l, 0), EAGAIN);
	check(now_s() - t0 < 1.0, "try-once returns at once: %.3f s", now_s() - t0);
	long long tos[] = {1, 5 * MS, 50 * MS, 250 * MS};
	for (size_t i = 0; i < sizeof tos / sizeof tos[0]; i++) {
		t0 = now_s();
		errno = 0;
		int r = mmipc_lock_acquire(l, tos[i]);
		int err = errno;
		double dt = now_s() - t0, want = (double)tos[i] / 1e9;
		check(r == -1 && err == ETIMEDOUT && dt >= want * 0.99 && dt < want + 1.5,
		      "acquire(%lld ns) of a lock a live process holds: got %d %s after %.3f s", tos[i], r, strerror(err),
		      dt);
	}
	check(l->sleepers == 0, "every timed-out sleeper unregistered: sleepers %u", l->sleepers);
	/* The holder releases while we sleep: the wake-up comes at once, not at the end of a sleep. */
	atomic_store(&sh->flag, 1);
	t0 = now_s();
	int r = mmipc_lock_acquire(l, 10000 * MS);
	double dt = now_s() - t0;
	check(r == 0 && dt < 5.0, "acquire while the holder releases: got %d after %.3f s", r, dt);
	if (r == 0)
		mmipc_lock_release(l);
	int st = 0, w = wait_bounded(pid, 10, &st);
	char buf[128];
	check(exited_zero(w, st), "the holder released: %s", describe(w, st, buf, sizeof buf));
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A release wakes a sleeper at once. A thread of this process waits on a lock the main thread holds
 * until it is in its longest (100 ms) sleeps; the main thread releases right after the waiter has
 * begun a fresh sleep (seen through the sleepers word and /proc/self/task/<tid>/syscall), so that
 * a release that forgot the wake-up would leave it asleep for about 100 ms, every time. Two trials
 * of three must see the lock taken within 60 ms (one may be late under heavy load). */
struct lock_waiter_arg {
	_Atomic pid_t tid;
	_Atomic int done;
	int r;
	uint64_t got_ns;
};

static void *lock_waiter(void *p)
{
	struct lock_waiter_arg *a = p;
	atomic_store(&a->tid, (pid_t)syscall(SYS_gettid));
	a->r = mmipc_lock_acquire(&sh->lock, 5000 * MS);
	a->got_ns = mono_ns();
	if (a->r == 0)
		mmipc_lock_release(&sh->lock);
	atomic_store(&a->done, 1);
	return NULL;
}

static void test_lock_wakeup(void)
{
	mmipc_lock *l = &sh->lock;
	_Atomic uint32_t *sleepers = (_Atomic uint32_t *)&l->sleepers;
	int prompt = 0, trials = 3;
	for (int trial = 0; trial < trials; trial++) {
		mmipc_lock_init(l);
		if (mmipc_lock_acquire(l, 0) != 0)
			die("mmipc_lock_acquire");
		struct lock_waiter_arg a;
		memset(&a, 0, sizeof a);
		pthread_t th;
		if (pthread_create(&th, NULL, lock_waiter, &a) != 0)
			die("pthread_create");
		sleep_ms(300); /* 1 + 2 + 4 + ... ms: its sleeps are 100 ms long now */
		double end = now_s() + 2.0;
		while (atomic_load(sleepers) != 0 && now_s() < end)
			sched_yield(); /* between two sleeps */
		while (atomic_load(sleepers) == 0 && now_s() < end)
			sched_yield(); /* registered for the next one */
		unsigned long arg0 = 0;
		int in_sleep = POLL_UNTIL(blocked_in(atomic_load(&a.tid), &arg0) == SYS_futex &&
						  arg0 == (unsigned long)(uintptr_t)&l->wake_seq,
					  2);
		uint64_t released = mono_ns();
		mmipc_lock_release(l);
		int done = POLL_UNTIL(atomic_load(&a.done), 10);
		pthread_join(th, NULL);
		double late = (double)(a.got_ns - released) / 1e9;
		prompt += done && a.r == 0 && late < 0.060;
		check(in_sleep && done && a.r == 0, "wake-up trial %d: the waiter slept in FUTEX_WAIT on wake_seq (%d) and got "
		      "the lock (%d) %.4f s after the release", trial, in_sleep, a.r, late);
	}
	check(prompt >= trials - 1, "a release wakes a sleeping acquirer at once: %d of %d trials within 60 ms (a lost "
	      "wake-up leaves it asleep for about 100 ms)", prompt, trials);
}

static void test_lock_fork(void)
{
	mmipc_lock *l = &sh->lock;
	mmipc_lock_init(l);
	EXPECT_ZERO(mmipc_lock_acquire(l, 0)); /* the parent's identity is cached now */
	atomic_store(&sh->flag, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		/* A new process: not the holder, whatever the parent computed before the fork. */
		EXPECT_FAIL(mmipc_lock_release(l), EPERM);
		EXPECT_FAIL(mmipc_lock_consistent(l), EPERM);
		EXPECT_FAIL(mmipc_lock_acquire(l, 0), EAGAIN); /* the parent lives */
		atomic_store(&sh->flag, 1);
		int r = mmipc_lock_acquire(l, 10000 * MS);
		check(r == 0, "the forked child acquires once the parent releases: %d [%s]", r, r ? mmipc_last_error() : "");
		check(l->owner == identity_of(getpid()), "the child's own identity is the owner");
		EXPECT_ZERO(mmipc_lock_release(l));
		/* A grandchild too. */
		pid_t g = fork_flushed();
		if (g == 0) {
			child_begin(10);
			EXPECT_ZERO(mmipc_lock_acquire(l, 1000 * MS));
			check(l->owner == identity_of(getpid()), "the grandchild's identity is the owner");
			EXPECT_ZERO(mmipc_lock_release(l));
			child_exit();
		}
		int st = 0, w = wait_bounded(g, 10, &st);
		check(exited_zero(w, st), "the grandchild used the lock");
		child_exit();
	}
	POLL_UNTIL(atomic_load(&sh->flag) == 1, 10);
	sleep_ms(20);
	EXPECT_ZERO(mmipc_lock_release(l));
	int st = 0, w = wait_bounded(pid, 20, &st);
	char buf[128];
	check(exited_zero(w, st), "a forked child (and grandchild) used the lock: %s", describe(w, st, buf, sizeof buf));
	EXPECT_ZERO(mmipc_lock_acquire(l, 1000 * MS));
	EXPECT_ZERO(mmipc_lock_release(l));
}

int main(void)
{
	alarm(150); /* the whole run; the Go driver allows 3 minutes */
	setvbuf(stdout, NULL, _IOLBF, 0);
	mmipc_region *r = mmipc_anon(4096);
	if (r == NULL)
		die("mmipc_anon");
	sh = mmipc_data(r);
	_Static_assert(sizeof(struct shared) <= 4096, "one page");

	test_wait_errors();
	test_wait_woken();
	test_wait_eintr();
	test_notify_counts();
	test_wait_pattern();

	test_lock_errors();
	test_lock_contention();
	test_lock_owner_killed();
	test_lock_not_recoverable();
	test_lock_zombie();
	test_lock_recycled_pid();
	test_lock_timeouts();
	test_lock_wakeup();
	test_lock_fork();

	mmipc_detach(r);
	return check_exit();
}
