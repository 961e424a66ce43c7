/* syncpeer.c - the C side of the cross-language tests of the sync layer (tests/sync_cross_test.go).
 *
 * Same command line and output as the Go peer, tests/syncpeer/main.go, and the Python one,
 * tests/python_syncpeer.py, so that the test matrix can put any language in any role. The shared
 * layout (the lock at 0, counter at 64, dirty 72, repairs 76, ready 80, arrived 84, word 128,
 * armed 132) and every command are specified once, in the comment at the top of
 * tests/syncpeer/main.go.
 *
 * zombie forks its holder: the child uses only the data pointer taken before the fork and the
 * sync-layer calls, which are fork-safe (mmipc.h).
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "check.h"
#include "testutil.h"
#include "peerutil.h"

#define OFF_COUNTER 64
#define OFF_DIRTY 72
#define OFF_REPAIRS 76
#define OFF_READY 80
#define OFF_ARRIVED 84
#define OFF_WORD 128
#define OFF_ARMED 132

#define HALF_DONE 1000000u
#define REREADS 16
#define WAIT_LIMIT_NS INT64_C(20000000000)
#define WAIT_LIMIT_S 20.0
#define HOLD_LIMIT_S 60.0
#define PROBE_SHORT_NS INT64_C(30000000)

static mmipc_region *region;
static unsigned char *data;
static mmipc_lock *lock;

static uint32_t *word_at(size_t off) { return (uint32_t *)(void *)(data + off); }
static uint64_t *counter(void) { return (uint64_t *)(void *)(data + OFF_COUNTER); }

static uint32_t load32(size_t off) { return __atomic_load_n(word_at(off), __ATOMIC_ACQUIRE); }
static void store32(size_t off, uint32_t v) { __atomic_store_n(word_at(off), v, __ATOMIC_RELEASE); }
static uint64_t load_counter(void) { return __atomic_load_n(counter(), __ATOMIC_RELAXED); }
static void store_counter(uint64_t v) { __atomic_store_n(counter(), v, __ATOMIC_RELAXED); }

static void open_region(const char *name)
{
	region = mmipc_open(name, 0);
	if (region == NULL)
		fail("mmipc_open(\"%s\"): %s [%s]", name, strerror(errno), mmipc_last_error());
	if (mmipc_size(region) < 4096)
		fail("region \"%s\" has %zu bytes, want 4096", name, mmipc_size(region));
	data = mmipc_data(region);
	lock = (mmipc_lock *)(void *)data;
}

/* Takes the lock; returns 0 or the errno (EOWNERDEAD: held, for the caller to handle). */
static int acquire(int64_t timeout_ns)
{
	errno = 0;
	if (mmipc_lock_acquire(lock, timeout_ns) == 0)
		return 0;
	return errno;
}

static void release(const char *what)
{
	if (mmipc_lock_release(lock) != 0)
		fail("%s: mmipc_lock_release: %s [%s]", what, strerror(errno), mmipc_last_error());
}

/* The guarded non-atomic read-modify-write: a separate load and store (each a relaxed atomic, so
 * the compiler keeps every re-read). Returns whether the counter changed while the lock was held. */
static int increment(void)
{
	int overlap = 0;
	uint64_t v = load_counter();
	for (int i = 0; i < REREADS; i++)
		if (load_counter() != v)
			overlap = 1;
	store_counter(v + 1);
	return overlap;
}

/* Waits until ready is 1, sleeping on it (hold notifies it). */
static void wait_ready(void)
{
	double deadline = now_s() + WAIT_LIMIT_S;
	for (;;) {
		uint32_t v = load32(OFF_READY);
		if (v == 1)
			return;
		double left = deadline - now_s();
		if (left <= 0)
			fail("ready is still %u after %.0f s", v, WAIT_LIMIT_S);
		if (mmipc_wait(word_at(OFF_READY), v, (int64_t)(left * 1e9) + 1) != 0 && errno != ETIMEDOUT &&
		    errno != EINTR)
			fail("mmipc_wait for ready: %s", strerror(errno));
	}
}

/* Undoes the half-done state after an EOWNERDEAD and marks the lock consistent. */
static void repair(const char *what)
{
	uint32_t d = load32(OFF_DIRTY);
	uint64_t c = load_counter();
	if (d != 1 || c != HALF_DONE)
		fail("%s: EOWNERDEAD but dirty = %u, counter = %llu; want the holder's half-done 1, %u", what, d,
		     (unsigned long long)c, HALF_DONE);
	store_counter(0);
	store32(OFF_DIRTY, 0);
	store32(OFF_REPAIRS, load32(OFF_REPAIRS) + 1);
	if (mmipc_lock_consistent(lock) != 0)
		fail("%s: mmipc_lock_consistent: %s [%s]", what, strerror(errno), mmipc_last_error());
}

/* rounds acquire/increment/release cycles; the first (if allow_dead) may return EOWNERDEAD, which
 * it repairs. Returns how many EOWNERDEADs it saw. */
static int cycles(long rounds, int allow_dead)
{
	int dead = 0;
	for (long i = 0; i < rounds; i++) {
		char what[32];
		snprintf(what, sizeof what, "cycle %ld", i + 1);
		int e = acquire(WAIT_LIMIT_NS);
		if (e == 0) {
			uint32_t d = load32(OFF_DIRTY);
			if (d != 0)
				fail("%s: acquire returned 0 but dirty = %u: a half-done state nobody reported", what, d);
		} else if (e == EOWNERDEAD) {
			if (i > 0 || !allow_dead)
				fail("%s: EOWNERDEAD, but nobody died since this process last held the lock", what);
			dead++;
			repair(what);
		} else {
			fail("%s: mmipc_lock_acquire: %s [%s]", what, strerror(e), mmipc_last_error());
		}
		if (increment())
			fail("%s: the counter changed while this process held the lock", what);
		release(what);
	}
	return dead;
}

__attribute__((noreturn)) static void hold(void)
{
	int e = acquire(WAIT_LIMIT_NS);
	if (e != 0)
		fail("mmipc_lock_acquire: %s, want success on a fresh lock [%s]", strerror(e), mmipc_last_error());
	store_counter(HALF_DONE);
	store32(OFF_DIRTY, 1);
	store32(OFF_READY, 1);
	if (mmipc_notify(word_at(OFF_READY), INT_MAX) < 0)
		fail("mmipc_notify ready: %s", strerror(errno));
	printf("holding pid=%d\n", (int)getpid());
	fflush(stdout);
	for (double end = now_s() + HOLD_LIMIT_S; now_s() < end;)
		usleep(10000);
	fail("still alive %.0f s after taking the lock: nobody killed it", HOLD_LIMIT_S);
}

/* The state letter of /proc/PID/stat (after the last ')'), or 0 if unreadable. */
static char proc_state(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == 0)
		return 0;
	return p[2];
}

static int cmd_count(long span_ms, uint32_t npeers)
{
	int e = acquire(WAIT_LIMIT_NS);
	if (e != 0)
		fail("barrier: mmipc_lock_acquire: %s", strerror(e));
	store32(OFF_ARRIVED, load32(OFF_ARRIVED) + 1);
	release("barrier");
	for (double deadline = now_s() + WAIT_LIMIT_S; load32(OFF_ARRIVED) < npeers;) {
		if (now_s() > deadline)
			fail("only %u of %u peers arrived in %.0f s", load32(OFF_ARRIVED), npeers, WAIT_LIMIT_S);
		usleep(100);
	}
	long n = 0, overlaps = 0, busy = 0;
	for (double end = now_s() + (double)span_ms / 1e3; now_s() < end; n++) {
		/* Tried once first, to count how often another peer held it (proof of contention). */
		e = acquire(0);
		if (e == EAGAIN) {
			busy++;
			e = acquire(WAIT_LIMIT_NS);
		}
		if (e != 0)
			fail("increment %ld: mmipc_lock_acquire: %s [%s]", n + 1, strerror(e), mmipc_last_error());
		overlaps += increment();
		release("increment");
	}
	if (overlaps > 0)
		fail("the counter changed under the lock in %ld of %ld increments", overlaps, n);
	ok(" n=%ld overlaps=0 busy=%ld", n, busy);
	return 0;
}

static int cmd_survive(long rounds, const char *mode)
{
	if (strcmp(mode, "probe") == 0) {
		wait_ready();
		int e = acquire(0);
		if (e != EAGAIN)
			fail("try-once acquire of a lock a live process holds: %s, want EAGAIN", strerror(e));
		e = acquire(PROBE_SHORT_NS);
		if (e != ETIMEDOUT)
			fail("30 ms acquire of a lock a live process holds: %s, want ETIMEDOUT", strerror(e));
		printf("waiting\n");
		fflush(stdout);
	} else if (strcmp(mode, "noprobe") != 0) {
		peer_usage("syncpeer", "tests/syncpeer/main.go");
	}
	int dead = cycles(rounds, 1);
	ok(" ownerdead=%d rounds=%ld", dead, rounds);
	return 0;
}

static int cmd_zombie(long rounds, const char *mode)
{
	int waiting = strcmp(mode, "waiting") == 0;
	if (rounds < 1 || (!waiting && strcmp(mode, "after") != 0))
		peer_usage("syncpeer", "tests/syncpeer/main.go");
	pid_t pid = fork_flushed();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0)
		hold();
	printf("child pid=%d\n", (int)pid);
	fflush(stdout);
	wait_ready();
	if (waiting) {
		int e = acquire(0);
		if (e != EAGAIN)
			fail("try-once acquire of a lock the live child holds: %s, want EAGAIN", strerror(e));
		printf("waiting\n");
		fflush(stdout);
	} else {
		for (double deadline = now_s() + WAIT_LIMIT_S; proc_state(pid) != 'Z';) {
			if (now_s() > deadline)
				fail("the child %d is not a zombie after %.0f s (state '%c')", (int)pid, WAIT_LIMIT_S,
				     proc_state(pid));
			usleep(1000);
		}
		printf("zombie\n");
		fflush(stdout);
	}
	int e = acquire(WAIT_LIMIT_NS);
	if (e != EOWNERDEAD)
		fail("acquire after the child died holding the lock: %s, want EOWNERDEAD", strerror(e));
	/* Not reaped yet, so the child was an unreaped zombie all along since it died. */
	char st = proc_state(pid);
	if (st != 'Z')
		fail("after the takeover the child's state is '%c', want Z (unreaped)", st);
	repair("takeover");
	if (increment())
		fail("takeover: the counter changed while this process held the lock");
	release("takeover");
	cycles(rounds - 1, 0);
	char buf[128];
	int status = 0, w = wait_bounded(pid, WAIT_LIMIT_S, &status);
	if (!(w == 1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
		fail("the child: %s, want killed by SIGKILL", describe(w, status, buf, sizeof buf));
	ok(" ownerdead=1 rounds=%ld", rounds);
	return 0;
}

static int cmd_wait(long limit_ms)
{
	uint32_t v = load32(OFF_WORD);
	double start = now_s(), limit = (double)limit_ms / 1e3;
	store32(OFF_ARMED, 1);
	long calls = 0;
	while (load32(OFF_WORD) == v) {
		double left = limit - (now_s() - start);
		if (left <= 0)
			fail("the word is still %u after %ld ms: no wake-up", v, limit_ms);
		calls++;
		if (mmipc_wait(word_at(OFF_WORD), v, (int64_t)(left * 1e9) + 1) != 0 && errno != EINTR)
			fail("mmipc_wait (call %ld, %.3f s left): %s", calls, left, strerror(errno));
	}
	ok(" elapsed_ms=%.3f calls=%ld", (now_s() - start) * 1e3, calls);
	return 0;
}

static int cmd_notify(long delay_ms)
{
	for (double deadline = now_s() + WAIT_LIMIT_S; load32(OFF_ARMED) != 1;) {
		if (now_s() > deadline)
			fail("the waiter did not arm in %.0f s", WAIT_LIMIT_S);
		usleep(100);
	}
	usleep((useconds_t)(delay_ms * 1000));
	__atomic_fetch_add(word_at(OFF_WORD), 1, __ATOMIC_SEQ_CST);
	int n = mmipc_notify(word_at(OFF_WORD), INT_MAX);
	if (n < 0)
		fail("mmipc_notify: %s", strerror(errno));
	ok(" woken=%d", n);
	return 0;
}

static int cmd_wait_timeouts(long limit_ms)
{
	uint32_t v = load32(OFF_WORD);
	double start = now_s();
	errno = 0;
	int rc = mmipc_wait(word_at(OFF_WORD), v, 0);
	if (rc != -1 || errno != EAGAIN)
		fail("mmipc_wait with timeout 0 on an unchanged word: %d %s, want -1 EAGAIN", rc, strerror(errno));
	double eagain = now_s() - start, limit = (double)limit_ms / 1e3;
	start = now_s();
	for (;;) {
		/* An early return (allowed: spurious, EINTR) waits again for the rest, at least 1 ns. */
		double left = limit - (now_s() - start);
		int64_t ns = left > 0 ? (int64_t)(left * 1e9) + 1 : 1;
		errno = 0;
		rc = mmipc_wait(word_at(OFF_WORD), v, ns);
		if (rc == -1 && errno == ETIMEDOUT)
			break;
		if (rc != 0 && errno != EINTR)
			fail("mmipc_wait: %d %s, want ETIMEDOUT", rc, strerror(errno));
		if (load32(OFF_WORD) != v)
			fail("the word changed to %u: somebody notified", load32(OFF_WORD));
	}
	ok(" eagain_ms=%.3f etimedout_ms=%.3f", eagain * 1e3, (now_s() - start) * 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	int nargs;
	char **a = peer_begin(argc, argv, 1, "syncpeer", "tests/syncpeer/main.go", &nargs);
	open_region(a[0]);
	int rc;
	if (strcmp(command, "count") == 0 && nargs == 3)
		rc = cmd_count(number(a[1]), (uint32_t)number(a[2]));
	else if (strcmp(command, "hold") == 0 && nargs == 1)
		hold();
	else if (strcmp(command, "survive") == 0 && nargs == 3)
		rc = cmd_survive(number(a[1]), a[2]);
	else if (strcmp(command, "zombie") == 0 && nargs == 3)
		rc = cmd_zombie(number(a[1]), a[2]);
	else if (strcmp(command, "wait") == 0 && nargs == 2)
		rc = cmd_wait(number(a[1]));
	else if (strcmp(command, "notify") == 0 && nargs == 2)
		rc = cmd_notify(number(a[1]));
	else if (strcmp(command, "wait-timeouts") == 0 && nargs == 2)
		rc = cmd_wait_timeouts(number(a[1]));
	else
		peer_usage("syncpeer", "tests/syncpeer/main.go");
	if (mmipc_detach(region) != 0)
		fail("mmipc_detach: %s", strerror(errno));
	return rc;
}
