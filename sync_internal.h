/* Internal to libmmipc: the sync layer's helpers shared by sync.c (identity, wait/notify, the lock)
 * and ring.c. Not installed; nothing here is exported from the library. Layout and algorithms:
 * docs/PROTOCOL.md, "The sync layer". Everything here is plain C, so it works in a forked child. */
#ifndef MMIPC_SYNC_INTERNAL_H
#define MMIPC_SYNC_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "mmipc_internal.h"

/* ---- process identity ---- */

/* This process's pid once computed, 0 before that and right after fork() (an atfork handler
 * clears it). Hot paths compare a handle's pid with it to notice a fork without a getpid() call. */
MMIPC_HIDDEN extern _Atomic pid_t mmipc__cached_pid;

/* This process's pid, computed (getpid) only when the cache is empty. */
MMIPC_HIDDEN pid_t mmipc__self_pid(void);

/* This process's identity, pid | low 32 bits of its /proc start time << 32; cached, recomputed
 * after fork. The start time is 0 when /proc/self/stat cannot be read. */
MMIPC_HIDDEN uint64_t mmipc__self_identity(void);

/* 1 when the identity names a living process (its /proc/<pid>/stat exists, the start time matches
 * and it is not a zombie), 0 when it is dead. /proc that cannot be read means alive. */
MMIPC_HIDDEN int mmipc__identity_alive(uint64_t identity);

/* ---- time ---- */

#define MMIPC__NS_PER_MS INT64_C(1000000)
#define MMIPC__NEVER INT64_MAX /* a deadline that never comes */

/* CLOCK_MONOTONIC in nanoseconds. */
MMIPC_HIDDEN int64_t mmipc__now_ns(void);

/* A caller's timeout as a deadline on CLOCK_MONOTONIC, computed only when a wait first needs it
 * (so that the fast paths never read the clock). */
struct mmipc__deadline {
	int64_t timeout; /* -1 forever, 0 try once, > 0 nanoseconds */
	int64_t at;      /* 0 until computed; MMIPC__NEVER for forever */
};

/* 1 when timeout_ns is valid (-1, 0 or > 0); else 0 with errno EINVAL and a last-error message
 * naming call. */
MMIPC_HIDDEN int mmipc__check_timeout(const char *call, int64_t timeout_ns);

static inline struct mmipc__deadline mmipc__deadline_make(int64_t timeout_ns)
{
	struct mmipc__deadline d = {timeout_ns, 0};
	return d;
}

/* The deadline (computing it on first use from the clock, or from now when now != 0; saturates
 * instead of overflowing). */
MMIPC_HIDDEN int64_t mmipc__deadline_at(struct mmipc__deadline *d, int64_t now);

/* The errno of an expired wait: EAGAIN for a try-once call, else ETIMEDOUT. */
static inline int mmipc__expired(const struct mmipc__deadline *d) { return d->timeout == 0 ? EAGAIN : ETIMEDOUT; }

/* ---- futex ---- */

/* FUTEX_WAIT (shared) on the 32-bit word while it holds val, until the monotonic time `until`
 * (MMIPC__NEVER: no limit). Returns 0 (woken, the word differed, or spurious), ETIMEDOUT, EINTR,
 * or another errno from the kernel. */
MMIPC_HIDDEN int mmipc__futex_wait(const void *word, uint32_t val, int64_t until);

/* FUTEX_WAKE (shared) of up to n waiters; returns how many were woken, or -1 with errno. */
MMIPC_HIDDEN int mmipc__futex_wake(const void *word, int n);

/* ---- spinning ---- */

static inline void mmipc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Stores the caller's CPU into a side's cpu word when it changed. The ring calls it on its slow
 * paths only: when a side is claimed, around waits (mmipc__await_change), and at a side's first
 * publish after its thread yielded or slept (mmipc__wait_epoch moved: it may run elsewhere now),
 * which is when a peer about to wait needs it; an operation that never waits keeps running where
 * it was noted. */
MMIPC_HIDDEN void mmipc__note_cpu(_Atomic uint32_t *word);

/* Moves whenever a wait in this process yielded or slept, so that each side handle notes its CPU
 * again at its next publish (a ping-pong waits on one ring and publishes on another: the ring it
 * publishes on never sees it wait). Process-wide rather than per thread: a hidden global is one
 * load on the publish path (thread-local storage in a shared library costs a GOT load more), and
 * another thread's wait only makes a handle note its CPU once more than it needed to. */
MMIPC_HIDDEN extern _Atomic uint32_t mmipc__wait_epoch;

/* The adaptive spin of one handle and one direction: start 4 us, at most 50 us; a spin that worked
 * sets the budget to max(budget, 2 x time spun, 4 us), a wait that slept halves it (below 200 ns it
 * is 0), and a budget of 0 is probed with 1 us every 64th wait.
 * A wait that follows a wake-up this thread gave a peer keeps a history of its own (after_wake_ns,
 * starting at the maximum): the peer it woke must first be scheduled, which takes far longer than
 * a running peer's reply (tens of microseconds when its CPU idled), so such a wait says nothing
 * about the running case. Without this, two peers that once slept keep waking each other: each
 * one's spin ends before the other is back on its CPU, and spinning never pays again.
 * On a shared CPU (the peer's cpu word is ours) a wait does not spin: it yields (sched_yield) up
 * to `yields` times, which lets a runnable peer on this CPU produce without a futex round trip. At
 * most two: two yields that brought nothing say the peer is not running here (idle, or blocked on
 * something else), and the wait sleeps. A wait whose yields paid off resets `yields` to the
 * maximum; one that had to sleep after yielding halves it, and at 0 one wait in 16 probes with a
 * single yield. */
struct mmipc__spin {
	int64_t budget_ns;
	int64_t after_wake_ns;
	uint32_t waits;
	uint32_t yield_waits;
	int yields;
	/* Read the peer's cpu word before the next wait: set at first, after a wait that slept and
	 * while waits find the peer on this CPU, cleared by a spin that worked (reading the peer's
	 * side line on every wait would cost its owner a cache miss per operation). */
	int check_cpu;
};

#define MMIPC__SPIN_START_NS 4000
#define MMIPC__SPIN_MAX_NS 50000
#define MMIPC__SPIN_MIN_NS 200
#define MMIPC__SPIN_PROBE_NS 1000
#define MMIPC__SPIN_PROBE_EVERY 64
#define MMIPC__YIELD_MAX 2
#define MMIPC__YIELD_PROBE_EVERY 16
#define MMIPC__CPU_UNKNOWN UINT32_MAX

/* Sleeps (PROTOCOL "Sleeping and waking", and the lock's): the first after counting in is bounded
 * to 1 ms, the following ones double up to 100 ms (and never pass the caller's deadline). */
#define MMIPC__SLEEP_FIRST_NS MMIPC__NS_PER_MS
#define MMIPC__SLEEP_MAX_NS (100 * MMIPC__NS_PER_MS)

static inline void mmipc__spin_init(struct mmipc__spin *s)
{
	s->budget_ns = MMIPC__SPIN_START_NS;
	s->after_wake_ns = MMIPC__SPIN_MAX_NS;
	s->waits = 0;
	s->yield_waits = 0;
	s->yields = MMIPC__YIELD_MAX;
	s->check_cpu = 1;
}

/* The waker's half of PROTOCOL "Sleeping and waking", for a caller that published, fenced as the
 * protocol says, and read a non-zero *sleepers: swaps the count to 0 and, when the swap took a
 * non-zero count, FUTEX_WAKEs every waiter on the word (a later publish finds 0 and makes no system
 * call until someone counts in again). When it woke anyone, this thread's next wait uses the
 * after-wake history. */
MMIPC_HIDDEN void mmipc__wake_sleepers(_Atomic uint32_t *sleepers, const void *word);

/* Waits until the 64-bit *word differs from seen: spins, or yields when the peer last ran on this
 * CPU (as its side's *peer_cpu says), within what the history allows (the waiter's own CPU goes
 * into its side's *own_cpu on the way), then sleeps on the word's low half after counting itself
 * in *sleepers (never counted out: a waker swaps the count to 0). The lost wake-ups of PROTOCOL
 * "Sleeping and waking" are closed by a membarrier after counting in, and every sleep is bounded
 * (1 ms doubling to 100 ms) against a waker that took the count for a change already seen; a sleep
 * that ends with the word unchanged and the count taken counts in again. Returns 0 when the word
 * changed, or the deadline's expired errno (EAGAIN for try-once, ETIMEDOUT). EINTR is retried. */
MMIPC_HIDDEN int mmipc__await_change(_Atomic uint64_t *word, uint64_t seen, _Atomic uint32_t *sleepers,
				     _Atomic uint32_t *own_cpu, const _Atomic uint32_t *peer_cpu,
				     struct mmipc__spin *spin, struct mmipc__deadline *d);

/* ---- membarrier ---- */

/* 1 when this process is registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (registering on first
 * use, again after fork), 0 when it cannot be: its fast paths then use sequentially consistent
 * stores. */
MMIPC_HIDDEN int mmipc__membarrier_registered(void);

/* MEMBARRIER_CMD_GLOBAL_EXPEDITED: 0, or -1 when the kernel refuses. */
MMIPC_HIDDEN int mmipc__membarrier_global(void);

/* ---- the lock, for the ring's shared sides ---- */

/* Acquires l for the identity self, waiting until d. Returns 0, EOWNERDEAD (held: taken over from
 * a dead owner), ENOTRECOVERABLE, EPROTO, EAGAIN or ETIMEDOUT. Sets no error message. */
MMIPC_HIDDEN int mmipc__lock_acquire(mmipc_lock *l, uint64_t self, struct mmipc__deadline *d);

/* Clears INCONSISTENT of a lock self holds: 0, EPERM or EINVAL. */
MMIPC_HIDDEN int mmipc__lock_consistent(mmipc_lock *l, uint64_t self);

/* Releases l held by self: 0 or EPERM. */
MMIPC_HIDDEN int mmipc__lock_release(mmipc_lock *l, uint64_t self);

#endif
