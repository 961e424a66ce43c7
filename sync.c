/* The sync layer's foundations (docs/PROTOCOL.md, "The sync layer"): process identity and the
 * liveness check, mmipc_wait/mmipc_notify, the lock that survives a dead owner, and the waiting
 * helpers ring.c uses. Plain C throughout (no Go, no malloc), so every function here works in a
 * forked child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sync_internal.h"

/* A futex is keyed on the 32-bit word at the 64-bit word's address: its low half on the only byte
 * order the protocol supports. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the sync layer needs a little-endian host");

/* ---- process identity ---- */

/* The kernel's PID_MAX_LIMIT: no pid is larger, so an identity naming one is garbage, and dead. */
#define PID_MAX_LIMIT (1u << 22)

_Atomic pid_t mmipc__cached_pid;
static _Atomic uint64_t cached_identity;
/* 0 not tried yet, 1 registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED, -1 the kernel refused. */
static _Atomic int membarrier_state;

/* A forked child is a new process: new pid, new identity, and (to be sure) no registration. */
static void sync_on_fork_child(void)
{
	atomic_store_explicit(&mmipc__cached_pid, 0, memory_order_relaxed);
	atomic_store_explicit(&cached_identity, 0, memory_order_relaxed);
	atomic_store_explicit(&membarrier_state, 0, memory_order_relaxed);
}

__attribute__((constructor)) static void sync_init(void) { pthread_atfork(NULL, NULL, sync_on_fork_child); }

enum stat_result { STAT_OK, STAT_GONE, STAT_UNKNOWN };

/* Reads /proc/<pid>/stat: the state (field 3) and the low 32 bits of starttime (field 22). The line
 * is parsed after its last ')', since the command name may hold spaces and parentheses. No stdio
 * and no malloc: this runs in forked children. */
static enum stat_result read_stat(uint32_t pid, char *state, uint32_t *start)
{
	char path[32] = "/proc/", digits[12];
	int nd = 0;
	do {
		digits[nd++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid != 0);
	size_t n = strlen(path);
	while (nd > 0)
		path[n++] = digits[--nd];
	memcpy(path + n, "/stat", sizeof "/stat");

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? STAT_GONE : STAT_UNKNOWN;
	char buf[2048];
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			close(fd);
			return err == ESRCH ? STAT_GONE : STAT_UNKNOWN; /* it went away after the open */
		}
		if (r == 0 || (len += (size_t)r) == sizeof buf - 1)
			break;
	}
	close(fd);
	const char *p = memrchr(buf, ')', len), *end = buf + len;
	if (p == NULL)
		return STAT_UNKNOWN;
	p++;
	int field = 2; /* the ')' closes field 2, the command name */
	int have_state = 0;
	while (p < end) {
		while (p < end && *p == ' ')
			p++;
		if (p >= end || *p == '\n')
			break;
		field++;
		if (field == 3) {
			*state = *p;
			have_state = 1;
		} else if (field == 22) {
			uint64_t v = 0;
			const char *q = p;
			while (q < end && *q >= '0' && *q <= '9')
				v = v * 10 + (uint64_t)(*q++ - '0');
			if (q == p || !have_state)
				return STAT_UNKNOWN;
			*start = (uint32_t)v;
			return STAT_OK;
		}
		while (p < end && *p != ' ' && *p != '\n')
			p++;
	}
	return STAT_UNKNOWN;
}

pid_t mmipc__self_pid(void)
{
	pid_t pid = atomic_load_explicit(&mmipc__cached_pid, memory_order_relaxed);
	if (pid == 0) {
		pid = getpid();
		atomic_store_explicit(&mmipc__cached_pid, pid, memory_order_relaxed);
	}
	return pid;
}

uint64_t mmipc__self_identity(void)
{
	uint64_t id = atomic_load_explicit(&cached_identity, memory_order_relaxed);
	if (id != 0)
		return id;
	pid_t pid = mmipc__self_pid();
	char state;
	uint32_t start = 0;
	if (read_stat((uint32_t)pid, &state, &start) != STAT_OK)
		start = 0; /* no /proc: peers that cannot read it either treat us as alive */
	id = (uint64_t)(uint32_t)pid | (uint64_t)start << 32;
	atomic_store_explicit(&cached_identity, id, memory_order_relaxed);
	return id;
}

int mmipc__identity_alive(uint64_t identity)
{
	uint32_t pid = (uint32_t)identity;
	if (pid == 0 || pid > PID_MAX_LIMIT)
		return 0;
	char state = 0;
	uint32_t start = 0;
	switch (read_stat(pid, &state, &start)) {
	case STAT_GONE:
		return 0;
	case STAT_UNKNOWN:
		return 1; /* cannot tell: wait, never steal */
	case STAT_OK:
		break;
	}
	if (start != (uint32_t)(identity >> 32))
		return 0; /* the pid was recycled */
	return state != 'Z' && state != 'X';
}

/* ---- time ---- */

int64_t mmipc__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mmipc__deadline_at(struct mmipc__deadline *d, int64_t now)
{
	if (d->at == 0) {
		if (d->timeout < 0) {
			d->at = MMIPC__NEVER;
		} else {
			if (now == 0)
				now = mmipc__now_ns();
			d->at = d->timeout > MMIPC__NEVER - now ? MMIPC__NEVER : now + d->timeout;
		}
	}
	return d->at;
}

/* ---- futex ---- */

int mmipc__futex_wait(const void *word, uint32_t val, int64_t until)
{
	struct timespec ts, *tp = NULL;
	if (until != MMIPC__NEVER) {
		if (until < 0)
			until = 0;
		ts.tv_sec = (time_t)(until / 1000000000);
		ts.tv_nsec = (long)(until % 1000000000);
		tp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so retries keep the caller's
	 * deadline; FUTEX_WAKE wakes it like a plain FUTEX_WAIT. No FUTEX_PRIVATE_FLAG: the key is the
	 * shared page, so processes that map it at different addresses meet. */
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	int err = errno;
	return err == EAGAIN ? 0 : err;
}

int mmipc__futex_wake(const void *word, int n)
{
	return (int)syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- spinning and waiting ---- */

void mmipc__note_cpu(_Atomic uint32_t *word)
{
	int cpu = sched_getcpu();
	if (cpu >= 0 && atomic_load_explicit(word, memory_order_relaxed) != (uint32_t)cpu)
		atomic_store_explicit(word, (uint32_t)cpu, memory_order_relaxed);
}

_Atomic uint32_t mmipc__wait_epoch;

static void wait_epoch_move(void) { atomic_fetch_add_explicit(&mmipc__wait_epoch, 1, memory_order_relaxed); }

/* Set when this thread's last publish woke a sleeping peer; the next wait reads and clears it.
 * Initial-exec: no __tls_get_addr call (one int of static TLS). */
static __thread int woke_peer __attribute__((tls_model("initial-exec")));

void mmipc__wake_sleepers(_Atomic uint32_t *sleepers, const void *word)
{
	/* Only the swap that takes a non-zero count wakes: the sleepers it covers are woken once,
	 * however many publishes follow before they run again. */
	if (atomic_exchange(sleepers, 0) != 0 && mmipc__futex_wake(word, INT_MAX) > 0)
		woke_peer = 1;
}

/* The budget b after a spin that worked after spun ns: at least twice that, and never below the
 * starting budget (a success says the peer answers while it runs; halving on every sleep and
 * growing only by the time spun would let rare preemptions of the peer wear the budget down to
 * nothing for good). */
static int64_t spin_grown(int64_t b, int64_t spun)
{
	int64_t g = 2 * spun > b ? 2 * spun : b;
	if (g < MMIPC__SPIN_START_NS)
		g = MMIPC__SPIN_START_NS;
	return g > MMIPC__SPIN_MAX_NS ? MMIPC__SPIN_MAX_NS : g;
}

static int64_t spin_halved(int64_t b) { return b / 2 < MMIPC__SPIN_MIN_NS ? 0 : b / 2; }

/* Spins until the word differs from seen (1) or the budget (or the deadline) runs out (0). */
static int spin_phase(_Atomic uint64_t *word, uint64_t seen, int64_t *history, int64_t budget,
		      struct mmipc__spin *spin, struct mmipc__deadline *d)
{
	int64_t start = 0, limit = 0;
	for (uint32_t i = 1;; i++) {
		if (atomic_load_explicit(word, memory_order_acquire) != seen) {
			*history = spin_grown(budget, start != 0 ? mmipc__now_ns() - start : 0);
			spin->check_cpu = 0;
			return 1;
		}
		mmipc__cpu_relax();
		if (i % 64 == 0) {
			int64_t now = mmipc__now_ns();
			if (start == 0) {
				start = now;
				int64_t until = mmipc__deadline_at(d, now);
				limit = until - now > budget ? now + budget : until;
			}
			if (now >= limit)
				return 0;
		}
	}
}

/* True when this thread may run on one CPU only. Yielding to a peer on our CPU pays only then: an
 * unpinned pair that yields to each other stays on one CPU (each is always runnable and cache-hot,
 * so the balancer leaves them be), 3 µs a round trip, where sleeping lets the scheduler wake the
 * peer on an idle CPU and the pair then spins at ~0.3 µs. Asked again every 256 calls: affinity
 * rarely changes, and the system call costs a tenth of a yield. */
static int pinned_to_one_cpu(void)
{
	static __thread int pinned __attribute__((tls_model("initial-exec")));
	static __thread unsigned calls __attribute__((tls_model("initial-exec")));
	if (calls++ % 256 == 0) {
		cpu_set_t set;
		pinned = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) == 1;
	}
	return pinned;
}

/* The peer last ran on this CPU, so it cannot run while we spin, but it may well be runnable
 * here: give it the CPU and look again, up to the allowance (1 when the word changed). A yield
 * may last another process's whole time slice: none starts past the deadline. */
static int yield_phase(_Atomic uint64_t *word, uint64_t seen, struct mmipc__spin *spin, struct mmipc__deadline *d)
{
	int allowed = spin->yields;
	if (allowed == 0 && ++spin->yield_waits % MMIPC__YIELD_PROBE_EVERY == 0)
		allowed = 1;
	for (int i = 0; i < allowed; i++) {
		if (d->timeout > 0) {
			int64_t now = mmipc__now_ns(); /* one clock read, also for the deadline's first use */
			if (now >= mmipc__deadline_at(d, now))
				return 0;
		}
		sched_yield();
		if (atomic_load_explicit(word, memory_order_acquire) != seen) {
			spin->yields = MMIPC__YIELD_MAX;
			return 1;
		}
	}
	spin->yields /= 2; /* yielding did not pay: the sleep below decides */
	return 0;
}

/* Counts the caller in as a sleeper. A waker publishes, then reads the count without a fence in
 * between, so it may have read it before our increment while we still read its old word: a lost
 * wake-up. The membarrier closes that window for wakers registered for it (every C process; Go's
 * and fenced wakers have no window): either their store is visible to our re-check of the word,
 * or their count read comes after the barrier and sees us. Without it the bounded first sleep
 * caps what a lost wake-up costs. */
static void count_in(_Atomic uint32_t *sleepers)
{
	atomic_fetch_add(sleepers, 1);
	mmipc__membarrier_global();
}

int mmipc__await_change(_Atomic uint64_t *word, uint64_t seen, _Atomic uint32_t *sleepers,
			_Atomic uint32_t *own_cpu, const _Atomic uint32_t *peer_cpu, struct mmipc__spin *spin,
			struct mmipc__deadline *d)
{
	int after_wake = woke_peer;
	woke_peer = 0;
	if (d->timeout == 0)
		return EAGAIN;
	/* A later wait of the same call checks the deadline first (the op in between may have found
	 * the word changed but still nothing to do). The first one reads the clock only when a spin
	 * lasts or it sleeps: a reply that comes within a few dozen reads costs no clock read. */
	if (d->at != 0 && d->at != MMIPC__NEVER && mmipc__now_ns() >= d->at)
		return ETIMEDOUT;

	/* Spinning pays only while the peer runs on another CPU: a peer that last ran on ours cannot
	 * make progress until we stop, so there we yield instead (when we are pinned to this CPU) or
	 * sleep at once (when the scheduler may move one of us to another CPU). */
	int same_cpu = 0;
	if (spin->check_cpu) {
		uint32_t pc = atomic_load_explicit(peer_cpu, memory_order_relaxed);
		int cpu = sched_getcpu(); /* a few ns with rseq: read only while check_cpu is set */
		same_cpu = pc != MMIPC__CPU_UNKNOWN && cpu >= 0 && (uint32_t)cpu == pc;
		if (cpu >= 0 && atomic_load_explicit(own_cpu, memory_order_relaxed) != (uint32_t)cpu)
			atomic_store_explicit(own_cpu, (uint32_t)cpu, memory_order_relaxed);
	}
	int64_t *history = after_wake ? &spin->after_wake_ns : &spin->budget_ns;
	if (same_cpu && pinned_to_one_cpu()) {
		int changed = yield_phase(word, seen, spin, d);
		wait_epoch_move(); /* it gave up the CPU: where it runs is noted again */
		if (changed)
			return 0;
	} else if (!same_cpu) {
		int64_t budget = *history;
		if (budget == 0 && ++spin->waits % MMIPC__SPIN_PROBE_EVERY == 0)
			budget = MMIPC__SPIN_PROBE_NS;
		if (budget > 0 && spin_phase(word, seen, history, budget, spin, d))
			return 0;
	}

	/* One clock read serves the deadline's first use, this check and the first sleep's bound. */
	int64_t now = mmipc__now_ns();
	int64_t until = mmipc__deadline_at(d, now);
	if (now >= until)
		return ETIMEDOUT; /* before counting in: a wait that cannot sleep leaves no count behind */
	int r = 0, slept = 0;
	int64_t bound = MMIPC__SLEEP_FIRST_NS;
	count_in(sleepers);
	for (;;) {
		if (atomic_load_explicit(word, memory_order_acquire) != seen)
			break;
		/* Every sleep is bounded: a waker that published the very word we saw and read the count
		 * late (it was preempted in between) may have swapped our count to 0 and woken nobody,
		 * since we were not asleep yet. */
		slept = 1;
		mmipc__futex_wait(word, (uint32_t)seen, until - now > bound ? now + bound : until);
		if (atomic_load_explicit(word, memory_order_acquire) != seen)
			break;
		now = mmipc__now_ns();
		if (now >= until) {
			r = ETIMEDOUT;
			break;
		}
		/* Woken for nothing, interrupted or timed out: when the count was taken, count in again
		 * (its first sleep short again), else sleep longer. */
		if (atomic_load(sleepers) == 0) {
			count_in(sleepers);
			bound = MMIPC__SLEEP_FIRST_NS;
		} else if ((bound *= 2) > MMIPC__SLEEP_MAX_NS) {
			bound = MMIPC__SLEEP_MAX_NS;
		}
	}
	if (slept) {
		spin->check_cpu = 1;
		mmipc__note_cpu(own_cpu); /* it may wake up elsewhere */
		wait_epoch_move();
		if (!same_cpu)
			*history = spin_halved(*history);
	}
	return r;
}

/* ---- membarrier ---- */

int mmipc__membarrier_registered(void)
{
	int s = atomic_load_explicit(&membarrier_state, memory_order_relaxed);
	if (s == 0) {
		s = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0 ? 1 : -1;
		atomic_store_explicit(&membarrier_state, s, memory_order_relaxed);
	}
	return s == 1;
}

int mmipc__membarrier_global(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0 ? 0 : -1;
}

/* ---- wait and notify ---- */

static int word_ok(const char *call, const uint32_t *word)
{
	if (word == NULL) {
		mmipc__set_error(EINVAL, "%s: word is NULL", call);
		return 0;
	}
	if ((uintptr_t)word % 4 != 0) {
		mmipc__set_error(EINVAL, "%s: word %p is not 4-byte aligned", call, (const void *)word);
		return 0;
	}
	return 1;
}

int mmipc__check_timeout(const char *call, int64_t timeout_ns)
{
	if (timeout_ns >= -1)
		return 1;
	mmipc__set_error(EINVAL, "%s: invalid timeout %lld ns (-1 forever, 0 try once, > 0 nanoseconds)", call,
			 (long long)timeout_ns);
	return 0;
}

int mmipc_wait(const uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
	const char *call = "mmipc_wait";
	if (!word_ok(call, word) || !mmipc__check_timeout(call, timeout_ns))
		return -1;
	if (timeout_ns == 0) {
		if (atomic_load((_Atomic uint32_t *)word) != expected)
			return 0;
		errno = EAGAIN;
		return -1;
	}
	struct mmipc__deadline d = mmipc__deadline_make(timeout_ns);
	int r = mmipc__futex_wait(word, expected, mmipc__deadline_at(&d, 0));
	if (r == 0)
		return 0;
	if (r == ETIMEDOUT || r == EINTR)
		errno = r;
	else
		mmipc__set_error(r, "mmipc_wait: futex: %s", strerror(r));
	return -1;
}

int mmipc_notify(uint32_t *word, int count)
{
	const char *call = "mmipc_notify";
	if (!word_ok(call, word))
		return -1;
	if (count < 1) {
		mmipc__set_error(EINVAL, "%s: count %d (want 1 or more; INT_MAX wakes all)", call, count);
		return -1;
	}
	int n = mmipc__futex_wake(word, count);
	if (n < 0) {
		int err = errno;
		mmipc__set_error(err, "%s: futex: %s", call, strerror(err));
	}
	return n;
}

/* ---- the lock ---- */

#define LOCK_INCONSISTENT 1u
#define LOCK_NOTRECOVERABLE 2u
#define LOCK_STATE_KNOWN (LOCK_INCONSISTENT | LOCK_NOTRECOVERABLE)
/* Sleeps are bounded as the ring's are (MMIPC__SLEEP_*: 1 ms doubling to 100 ms), so that a dead
 * owner is noticed without anyone's help; the spin before sleeping covers a holder that is about
 * to release. */
#define LOCK_SPINS 100

_Static_assert(sizeof(mmipc_lock) == 64, "mmipc_lock is 64 bytes");
_Static_assert(_Alignof(mmipc_lock) == 64, "mmipc_lock is 64-aligned");
_Static_assert(offsetof(mmipc_lock, owner) == 0, "lock owner at 0");
_Static_assert(offsetof(mmipc_lock, wake_seq) == 8, "lock wake_seq at 8");
_Static_assert(offsetof(mmipc_lock, sleepers) == 12, "lock sleepers at 12");
_Static_assert(offsetof(mmipc_lock, state) == 16, "lock state at 16");
_Static_assert(offsetof(mmipc_lock, reserved) == 20, "lock reserved at 20");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "lock-free atomic words");

/* The lock's words as atomics; every lock operation is sequentially consistent (PROTOCOL "Lock"). */
#define L_OWNER(l) ((_Atomic uint64_t *)&(l)->owner)
#define L_WAKE(l) ((_Atomic uint32_t *)&(l)->wake_seq)
#define L_SLEEPERS(l) ((_Atomic uint32_t *)&(l)->sleepers)
#define L_STATE(l) ((_Atomic uint32_t *)&(l)->state)

static void lock_wake(mmipc_lock *l, int n)
{
	if (atomic_load(L_SLEEPERS(l)) != 0) {
		atomic_fetch_add(L_WAKE(l), 1);
		mmipc__futex_wake(L_WAKE(l), n);
	}
}

/* After taking the lock (free, or from a dead owner): what the state says about it. A lock that
 * turned out not recoverable (or garbage) is given back at once: nobody may hold it. */
static int lock_check_taken(mmipc_lock *l, uint64_t self)
{
	uint32_t st = atomic_load(L_STATE(l));
	if ((st & ~LOCK_STATE_KNOWN) != 0 || (st & LOCK_NOTRECOVERABLE) != 0) {
		uint64_t o = self;
		if (atomic_compare_exchange_strong(L_OWNER(l), &o, 0))
			lock_wake(l, INT_MAX);
		return (st & ~LOCK_STATE_KNOWN) != 0 ? EPROTO : ENOTRECOVERABLE;
	}
	return (st & LOCK_INCONSISTENT) != 0 ? EOWNERDEAD : 0;
}

static int lock_took_over(mmipc_lock *l, uint64_t self)
{
	atomic_fetch_or(L_STATE(l), LOCK_INCONSISTENT);
	int r = lock_check_taken(l, self);
	return r == 0 ? EOWNERDEAD : r;
}

int mmipc__lock_acquire(mmipc_lock *l, uint64_t self, struct mmipc__deadline *d)
{
	int64_t interval = MMIPC__SLEEP_FIRST_NS;
	for (;;) {
		uint32_t st = atomic_load(L_STATE(l));
		if ((st & ~LOCK_STATE_KNOWN) != 0)
			return EPROTO;
		if ((st & LOCK_NOTRECOVERABLE) != 0)
			return ENOTRECOVERABLE;
		uint64_t o = 0;
		if (atomic_compare_exchange_strong(L_OWNER(l), &o, self))
			return lock_check_taken(l, self);
		for (int i = 0; i < LOCK_SPINS && o != 0; i++) {
			mmipc__cpu_relax();
			o = atomic_load_explicit(L_OWNER(l), memory_order_relaxed);
		}
		if (o == 0 && atomic_compare_exchange_strong(L_OWNER(l), &o, self))
			return lock_check_taken(l, self);
		if (d->timeout == 0) {
			/* Try-once checks the holder at once. */
			if (o != 0 && !mmipc__identity_alive(o) && atomic_compare_exchange_strong(L_OWNER(l), &o, self))
				return lock_took_over(l, self);
			return EAGAIN;
		}

		int64_t now = mmipc__now_ns(); /* one clock read: the deadline's first use and this sleep */
		int64_t until = mmipc__deadline_at(d, now);
		atomic_fetch_add(L_SLEEPERS(l), 1);
		uint32_t seq = atomic_load(L_WAKE(l));
		o = 0;
		/* A release between the failed swap and the registration above is not missed: either
		 * this swap sees it, or the releaser sees us counted and moves wake_seq. */
		if (atomic_compare_exchange_strong(L_OWNER(l), &o, self)) {
			atomic_fetch_sub(L_SLEEPERS(l), 1);
			return lock_check_taken(l, self);
		}
		int r = ETIMEDOUT;
		if (now < until)
			r = mmipc__futex_wait(L_WAKE(l), seq, until - now > interval ? now + interval : until);
		atomic_fetch_sub(L_SLEEPERS(l), 1);
		if (r == ETIMEDOUT) {
			/* Nobody released during a whole sleep: is the holder still there at all? */
			uint64_t cur = o;
			if (atomic_load(L_OWNER(l)) == o && !mmipc__identity_alive(o) &&
			    atomic_compare_exchange_strong(L_OWNER(l), &cur, self))
				return lock_took_over(l, self);
			if (mmipc__now_ns() >= until)
				return ETIMEDOUT;
		}
		interval = interval * 2 > MMIPC__SLEEP_MAX_NS ? MMIPC__SLEEP_MAX_NS : interval * 2;
	}
}

int mmipc__lock_consistent(mmipc_lock *l, uint64_t self)
{
	if (atomic_load(L_OWNER(l)) != self)
		return EPERM;
	if ((atomic_load(L_STATE(l)) & LOCK_INCONSISTENT) == 0)
		return EINVAL;
	atomic_fetch_and(L_STATE(l), ~LOCK_INCONSISTENT);
	return 0;
}

int mmipc__lock_release(mmipc_lock *l, uint64_t self)
{
	if (atomic_load(L_OWNER(l)) != self)
		return EPERM;
	int wake = 1;
	if ((atomic_load(L_STATE(l)) & LOCK_INCONSISTENT) != 0) {
		/* Released unrepaired: nobody may use it again, so every sleeper is told at once. */
		atomic_fetch_or(L_STATE(l), LOCK_NOTRECOVERABLE);
		wake = INT_MAX;
	}
	uint64_t o = self;
	if (!atomic_compare_exchange_strong(L_OWNER(l), &o, 0))
		return EPERM;
	lock_wake(l, wake);
	return 0;
}

static int lock_ok(const char *call, const mmipc_lock *l)
{
	if (l == NULL) {
		mmipc__set_error(EINVAL, "%s: lock is NULL", call);
		return 0;
	}
	if ((uintptr_t)l % 64 != 0) {
		mmipc__set_error(EINVAL, "%s: lock %p is not 64-byte aligned", call, (const void *)l);
		return 0;
	}
	return 1;
}

int mmipc_lock_init(mmipc_lock *l)
{
	if (!lock_ok("mmipc_lock_init", l))
		return -1;
	memset(l, 0, sizeof *l);
	atomic_thread_fence(memory_order_seq_cst);
	return 0;
}

int mmipc_lock_acquire(mmipc_lock *l, int64_t timeout_ns)
{
	const char *call = "mmipc_lock_acquire";
	if (!lock_ok(call, l) || !mmipc__check_timeout(call, timeout_ns))
		return -1;
	struct mmipc__deadline d = mmipc__deadline_make(timeout_ns);
	int r = mmipc__lock_acquire(l, mmipc__self_identity(), &d);
	switch (r) {
	case 0:
		return 0;
	case EAGAIN:
	case ETIMEDOUT:
		errno = r;
		break;
	case EOWNERDEAD:
		mmipc__set_error(r, "%s: the previous holder died holding the lock; the caller holds it now: repair "
				    "the data, then call mmipc_lock_consistent",
				 call);
		break;
	case ENOTRECOVERABLE:
		mmipc__set_error(r, "%s: the lock is not recoverable (released without mmipc_lock_consistent after a "
				    "holder died); mmipc_lock_init resets it",
				 call);
		break;
	case EPROTO:
		mmipc__set_error(r, "%s: protocol error: the lock's state word %#x has unknown bits", call,
				 (unsigned)atomic_load(L_STATE(l)));
		break;
	default:
		mmipc__set_error(r, "%s: %s", call, strerror(r));
	}
	return -1;
}

int mmipc_lock_consistent(mmipc_lock *l)
{
	const char *call = "mmipc_lock_consistent";
	if (!lock_ok(call, l))
		return -1;
	int r = mmipc__lock_consistent(l, mmipc__self_identity());
	if (r == EPERM)
		mmipc__set_error(r, "%s: the lock is not held by this process", call);
	else if (r == EINVAL)
		mmipc__set_error(r, "%s: the lock was not taken over from a dead holder (nothing to mark consistent)",
				 call);
	return r == 0 ? 0 : -1;
}

int mmipc_lock_release(mmipc_lock *l)
{
	const char *call = "mmipc_lock_release";
	if (!lock_ok(call, l))
		return -1;
	if (mmipc__lock_release(l, mmipc__self_identity()) != 0) {
		mmipc__set_error(EPERM, "%s: the lock is not held by this process", call);
		return -1;
	}
	return 0;
}
