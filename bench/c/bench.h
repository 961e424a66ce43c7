/*
 * bench.h - helpers shared by the benchmark engines (bench/ENGINES.md): timing, statistics, the
 * RESULT line, CPU affinity, spin and futex waits, the peer process, the data pattern every
 * engine verifies, a watchdog that bounds every wait, and clean-up on failure.
 *
 * Include it first, after #define _GNU_SOURCE. Everything is static: each engine is one file.
 *
 * Bounded waits: the hot loops never read the clock to check a deadline (that would add to what
 * they measure). Instead a watchdog thread wakes once a second and fails the engine (exit 1,
 * peer killed, names removed) when bench_progress() has not been called for BENCH_TIMEOUT_S
 * seconds, or as soon as the peer process has died with a failure.
 */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BENCH_FN static __attribute__((unused))

/* Seconds without progress before an engine gives up. */
#define BENCH_TIMEOUT_S 20
/* Spin-wait: checks with a pause instruction before the waiter starts yielding (or sleeping);
 * pingpong's --spin changes it. */
#define BENCH_SPIN 100
static unsigned bench_spin_limit = BENCH_SPIN;
/* A sequence word holding this tells the waiter that the peer failed (bandwidth consumer). */
#define BENCH_SEQ_ERR 0xFFFFFFFFu

/* Salts of the data pattern: ping, pong and bulk payloads never match one another. */
#define BENCH_SALT_PING UINT64_C(0x50494e4700000000)
#define BENCH_SALT_PONG UINT64_C(0x504f4e4700000000)
#define BENCH_SALT_BULK UINT64_C(0x42554c4b00000000)

static const char *bench_prog = "bench";

/* ---- failure and clean-up ---------------------------------------------------------------- */

#define BENCH_MAX_CLEANUP 4
/* Files (region paths) and POSIX queue names to remove on failure: fixed arrays, so that the
 * signal handler and the watchdog can use them without allocating. */
static char bench_cleanup_path[BENCH_MAX_CLEANUP][PATH_MAX];
static char bench_cleanup_mq[BENCH_MAX_CLEANUP][NAME_MAX];
static volatile pid_t bench_peer_pid; /* killed on failure; 0: none */

BENCH_FN void bench_cleanup_add_path(const char *path)
{
	for (int i = 0; i < BENCH_MAX_CLEANUP; i++)
		if (bench_cleanup_path[i][0] == 0) {
			snprintf(bench_cleanup_path[i], PATH_MAX, "%s", path);
			return;
		}
}

BENCH_FN void bench_cleanup_forget_path(const char *path)
{
	for (int i = 0; i < BENCH_MAX_CLEANUP; i++)
		if (strcmp(bench_cleanup_path[i], path) == 0)
			bench_cleanup_path[i][0] = 0;
}

BENCH_FN void bench_cleanup_add_mq(const char *name)
{
	for (int i = 0; i < BENCH_MAX_CLEANUP; i++)
		if (bench_cleanup_mq[i][0] == 0) {
			snprintf(bench_cleanup_mq[i], NAME_MAX, "%s", name);
			return;
		}
}

BENCH_FN void bench_cleanup_forget_mq(const char *name)
{
	for (int i = 0; i < BENCH_MAX_CLEANUP; i++)
		if (strcmp(bench_cleanup_mq[i], name) == 0)
			bench_cleanup_mq[i][0] = 0;
}

/* Async-signal-safe: unlink, mq_unlink (a system call: its glibc wrapper only skips the '/'),
 * kill. Region files are removed with unlink(2): a named region is a plain file. */
static void bench_cleanup_now(void)
{
	pid_t peer = bench_peer_pid;
	if (peer > 0)
		kill(peer, SIGKILL);
	for (int i = 0; i < BENCH_MAX_CLEANUP; i++) {
		if (bench_cleanup_path[i][0])
			unlink(bench_cleanup_path[i]);
		if (bench_cleanup_mq[i][0])
			syscall(SYS_mq_unlink, bench_cleanup_mq[i] + 1);
	}
	/* Reap the killed peer (up to a second), so that it is gone, not a zombie, when we exit. */
	for (int i = 0; peer > 0 && i < 100 && waitpid(peer, NULL, WNOHANG) == 0; i++)
		nanosleep(&(struct timespec){0, 10000000}, NULL);
}

/* Reports a failure on stderr and exits 1 at once, from any thread: the peer is killed and every
 * registered name removed. RESULT lines already printed stay (stdout is flushed after each). */
__attribute__((noreturn, format(printf, 1, 2))) static void bench_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: FAIL: %s\n", bench_prog, msg);
	bench_cleanup_now();
	_exit(1);
}

/* A bad command line: exit 2, as the driver's other tools do. */
__attribute__((noreturn, format(printf, 1, 2))) static void bench_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: usage: ", bench_prog);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	bench_cleanup_now();
	_exit(2);
}

static void bench_on_signal(int sig)
{
	static const char msg[] = ": FAIL: killed by a signal; cleaned up\n";
	if (write(2, bench_prog, strlen(bench_prog)) < 0 || write(2, msg, sizeof msg - 1) < 0) {
		/* nothing more to do */
	}
	bench_cleanup_now();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- watchdog ---------------------------------------------------------------------------- */

static unsigned long bench_progress_count;
static volatile int bench_watch_peer_exit; /* fail as soon as the peer dies with an error */

/* Called once per operation (round trip, transfer, cycle): a relaxed increment of a counter no
 * other process touches, so it costs about a nanosecond. */
static inline void bench_progress(void) { __atomic_fetch_add(&bench_progress_count, 1, __ATOMIC_RELAXED); }

BENCH_FN const char *bench_describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped (status %#x)", (unsigned)status);
	return buf;
}

static void *bench_watchdog(void *arg)
{
	(void)arg;
	unsigned long last = __atomic_load_n(&bench_progress_count, __ATOMIC_RELAXED);
	int idle = 0;
	for (;;) {
		nanosleep(&(struct timespec){1, 0}, NULL);
		pid_t peer = bench_peer_pid;
		if (peer > 0 && bench_watch_peer_exit) {
			/* WNOWAIT: look without reaping; the main thread collects the status. */
			siginfo_t si = {0};
			if (waitid(P_PID, (id_t)peer, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == peer &&
			    !(si.si_code == CLD_EXITED && si.si_status == 0))
				bench_fail("the peer process %d died (%s %d) before the end: see its message above", (int)peer,
					   si.si_code == CLD_EXITED ? "exit status" : "signal", si.si_status);
		}
		unsigned long now = __atomic_load_n(&bench_progress_count, __ATOMIC_RELAXED);
		if (now != last) {
			last = now;
			idle = 0;
		} else if (++idle >= BENCH_TIMEOUT_S) {
			bench_fail("no progress for %d s (a stuck peer or a lost message); giving up", BENCH_TIMEOUT_S);
		}
	}
	return NULL;
}

/* Sets the program name for messages, installs the clean-up on SIGINT/SIGTERM/SIGHUP and starts
 * the watchdog. Line-buffered stdout: each RESULT line leaves at once. */
BENCH_FN void bench_init(const char *prog)
{
	bench_prog = prog;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa = {0};
	sa.sa_handler = bench_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, bench_watchdog, NULL) != 0)
		bench_fail("cannot start the watchdog thread");
	pthread_attr_destroy(&attr);
}

/* ---- time and statistics ----------------------------------------------------------------- */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct bench_stats {
	size_t n;
	double p50, p99, mean, min, max;
};

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The median cost of one clock read (back-to-back difference): what per-operation timing adds
 * to each sample. Logged, not subtracted. */
BENCH_FN double bench_clock_overhead_ns(void)
{
	enum { N = 10001 };
	static double d[N];
	for (int i = 0; i < N; i++) {
		uint64_t a = bench_now_ns();
		uint64_t b = bench_now_ns();
		d[i] = (double)(b - a);
	}
	qsort(d, N, sizeof *d, bench_cmp_double);
	return d[N / 2];
}

/* Nearest-rank percentile of sorted v[0..n-1]: the smallest value with at least q of the samples
 * at or below it. */
static double bench_rank(const double *v, size_t n, double q)
{
	size_t k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

/* Sorts v in place. */
BENCH_FN struct bench_stats bench_stats_of(double *v, size_t n)
{
	struct bench_stats s = {0};
	if (n == 0)
		bench_fail("no samples");
	qsort(v, n, sizeof *v, bench_cmp_double);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	s.n = n;
	s.p50 = bench_rank(v, n, 0.50);
	s.p99 = bench_rank(v, n, 0.99);
	s.mean = sum / (double)n;
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

/* Writes s as a JSON string; our strings are identifiers, but escape anyway. */
static void bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* One RESULT line (bench/ENGINES.md). A zero p50 (a clock that did not tick) would be
 * meaningless: fail instead of printing it. */
BENCH_FN void bench_result(const char *id, const char *group, const char *mech, const char *param,
			   const char *placement, const char *unit, const struct bench_stats *s, uint64_t bytes)
{
	if (!(s->p50 > 0) || !(s->p99 > 0) || !(s->mean > 0) || !(s->max > 0) || s->min < 0)
		bench_fail("%s: non-positive statistics (p50 %g p99 %g min %g)", id, s->p50, s->p99, s->min);
	fputs("RESULT {\"id\":", stdout);
	bench_json_str(stdout, id);
	fputs(",\"group\":", stdout);
	bench_json_str(stdout, group);
	fputs(",\"mechanism\":", stdout);
	bench_json_str(stdout, mech);
	fputs(",\"param\":", stdout);
	bench_json_str(stdout, param);
	fputs(",\"placement\":", stdout);
	bench_json_str(stdout, placement);
	fputs(",\"unit\":", stdout);
	bench_json_str(stdout, unit);
	printf(",\"n\":%zu,\"p50\":%.3f,\"p99\":%.3f,\"mean\":%.3f,\"min\":%.3f,\"max\":%.3f,\"bytes\":%" PRIu64 "}\n",
	       s->n, s->p50, s->p99, s->mean, s->min, s->max, bytes);
	fflush(stdout);
}

/* ---- command line ------------------------------------------------------------------------ */

BENCH_FN uint64_t bench_parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi)
{
	char *end;
	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		bench_usage("%s wants a number, got %s", flag, s ? s : "nothing");
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		bench_usage("%s %s: want an integer in [%" PRIu64 ", %" PRIu64 "]", flag, s, lo, hi);
	return v;
}

/* One "--flag VALUE" option of an engine. str (if not NULL) gets the value as given, NULL when
 * the flag is the last argument (the engine's own check then reports it); num (if not NULL) gets
 * it as an integer in [lo, hi], else a usage error. An option with both is a number whose
 * presence matters too (pingpong's --spin, passed on to the responder only when asked). */
struct bench_flag {
	const char *name;
	const char **str;
	uint64_t *num;
	uint64_t lo, hi;
};

#define BENCH_STR(name, ptr) {(name), (ptr), NULL, 0, 0}
#define BENCH_NUM(name, ptr, lo, hi) {(name), NULL, (ptr), (lo), (hi)}
#define BENCH_STR_NUM(name, sptr, nptr, lo, hi) {(name), (sptr), (nptr), (lo), (hi)}
#define BENCH_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Parses argv[first..argc-1] as "--flag VALUE" pairs of flags[0..n-1]; a flag always takes the
 * next argument as its value, even one that looks like a flag. An unknown flag is a usage error:
 * usage is the engine's usage line, with the argument in place of its "%s" (plain text, not a
 * printf format: the compiler cannot check a format passed in a variable). */
BENCH_FN void bench_parse_flags(int argc, char **argv, int first, const struct bench_flag *flags, size_t n,
				const char *usage)
{
	for (int i = first; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const struct bench_flag *f = NULL;
		for (size_t k = 0; k < n && f == NULL; k++)
			if (!strcmp(a, flags[k].name))
				f = &flags[k];
		if (f == NULL) {
			const char *at = strstr(usage, "%s");
			if (at == NULL)
				bench_usage("%s (unknown argument %s)", usage, a);
			bench_usage("%.*s%s%s", (int)(at - usage), usage, a, at + 2);
		}
		if (f->str)
			*f->str = v;
		if (f->num)
			*f->num = bench_parse_u64(a, v, f->lo, f->hi);
	}
}

/* "--cpus A,B" -> a, b; "--cpus A" -> a, a (single-process engines). */
BENCH_FN void bench_parse_cpus(const char *s, int *a, int *b)
{
	char *end;
	long x = strtol(s, &end, 10), y = x;
	if (end == s || x < 0 || x >= CPU_SETSIZE)
		bench_usage("--cpus %s: want A,B (CPU numbers)", s);
	if (*end == ',') {
		const char *t = end + 1;
		y = strtol(t, &end, 10);
		if (end == t || y < 0 || y >= CPU_SETSIZE)
			bench_usage("--cpus %s: want A,B (CPU numbers)", s);
	}
	if (*end)
		bench_usage("--cpus %s: want A,B (CPU numbers)", s);
	*a = (int)x;
	*b = (int)y;
}

/* The placement name of --cpus: "unpinned" (a < 0), "1core" (a == b) or "2cores". */
BENCH_FN const char *bench_placement(int a, int b)
{
	if (a < 0)
		return "unpinned";
	return a == b ? "1core" : "2cores";
}

/* Pins the calling thread (and what it forks or execs later) to one CPU. Plain system call:
 * allowed in a forked child. */
BENCH_FN int bench_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof set, &set);
}

/* ---- waiting on a shared word ------------------------------------------------------------ */

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* The cost of one bench_cpu_relax() (the fastest of a few timed batches): the Go peer, which has
 * no pause instruction, is told how long the C spin phase lasts so that it spins as long. */
BENCH_FN double bench_pause_ns(void)
{
	double best = 1e9;
	for (int r = 0; r < 5; r++) {
		uint64_t t0 = bench_now_ns();
		for (int i = 0; i < 10000; i++)
			bench_cpu_relax();
		double d = (double)(bench_now_ns() - t0) / 10000;
		if (d < best)
			best = d;
	}
	return best;
}

/* Spins until *w is want (or BENCH_SEQ_ERR), acquire; returns the value seen. First
 * bench_spin_limit checks with a pause, then sched_yield() between checks: on a shared core the
 * peer must run for the word to change, and without the yield each wait would cost a scheduler
 * time slice. */
static inline uint32_t bench_spin_wait(const uint32_t *w, uint32_t want)
{
	unsigned spins = 0;
	for (;;) {
		uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		if (v == want || v == BENCH_SEQ_ERR)
			return v;
		if (spins < bench_spin_limit) {
			spins++;
			bench_cpu_relax();
		} else {
			sched_yield();
		}
	}
}

/* The same spin, then sleeps in FUTEX_WAIT (shared, not PRIVATE: the word is in a MAP_SHARED
 * mapping of another process) with the value it saw, so a wake between the check and the sleep
 * is never lost (the kernel re-checks the value). No timeout: the watchdog bounds the wait. */
static inline uint32_t bench_futex_wait(uint32_t *w, uint32_t want)
{
	for (unsigned spins = 0;; spins++) {
		uint32_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		if (v == want || v == BENCH_SEQ_ERR)
			return v;
		if (spins < bench_spin_limit) {
			bench_cpu_relax();
			continue;
		}
		if (syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0) == -1 && errno != EAGAIN && errno != EINTR)
			bench_fail("futex wait: %s", strerror(errno));
	}
}

/* Publishes *w = v (release) and wakes every sleeper, every time (issue 6 will skip the wake
 * when nobody sleeps). */
static inline void bench_futex_store_wake(uint32_t *w, uint32_t v)
{
	__atomic_store_n(w, v, __ATOMIC_RELEASE);
	if (syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) == -1)
		bench_fail("futex wake: %s", strerror(errno));
}

/* ---- the data pattern -------------------------------------------------------------------- */

/* The pattern of round (or transfer) i: the 8-byte native-endian word k of the payload is
 * base + k, with base = (i + 1) * 0x9E3779B97F4A7C15 ^ salt (mod 2^64); a tail shorter than a word
 * holds the first bytes of the next word. Every word changes from one round to the next, so a
 * stale, shifted, short or foreign payload fails. bench/gopeer computes the same. */
static inline uint64_t bench_base(uint64_t i, uint64_t salt) { return (i + 1) * UINT64_C(0x9E3779B97F4A7C15) ^ salt; }

static inline uint64_t bench_load64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8); /* one plain load; memcpy keeps unaligned payloads defined */
	return v;
}

BENCH_FN void bench_fill(void *buf, size_t n, uint64_t base)
{
	unsigned char *p = buf;
	size_t words = n / 8;
	for (size_t k = 0; k < words; k++) {
		uint64_t v = base + k;
		memcpy(p + 8 * k, &v, 8);
	}
	if (n % 8) {
		uint64_t v = base + words;
		memcpy(p + 8 * words, &v, n % 8);
	}
}

/* The offset of the first byte of buf that differs from the pattern, or SIZE_MAX if none. The
 * fast pass ORs the differences of whole words into four accumulators (no branch per word, about
 * memory speed); only a failure pays for a second pass to locate the byte. */
BENCH_FN size_t bench_check(const void *buf, size_t n, uint64_t base)
{
	const unsigned char *p = buf;
	size_t words = n / 8, k = 0;
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	for (; words - k >= 4; k += 4) {
		const unsigned char *q = p + 8 * k;
		uint64_t v = base + k;
		a0 |= bench_load64(q) ^ v;
		a1 |= bench_load64(q + 8) ^ (v + 1);
		a2 |= bench_load64(q + 16) ^ (v + 2);
		a3 |= bench_load64(q + 24) ^ (v + 3);
	}
	uint64_t diff = a0 | a1 | a2 | a3;
	for (; k < words; k++)
		diff |= bench_load64(p + 8 * k) ^ (base + k);
	if (n % 8) {
		uint64_t v = base + words, x = v;
		memcpy(&x, p + 8 * words, n % 8);
		diff |= x ^ v;
	}
	if (diff == 0)
		return SIZE_MAX;
	unsigned char want[8];
	for (size_t i = 0; i < n; i++) {
		uint64_t v = base + i / 8;
		memcpy(want, &v, 8);
		if (p[i] != want[i % 8])
			return i;
	}
	return SIZE_MAX; /* unreachable: diff said something differs */
}

/* Describes the first bad byte of a payload that bench_check refused (at off). */
BENCH_FN void bench_mismatch(char *msg, size_t len, const char *what, uint64_t round, const void *buf, size_t n,
			     uint64_t base, size_t off)
{
	uint64_t v = base + off / 8;
	unsigned char want[8];
	memcpy(want, &v, 8);
	snprintf(msg, len, "%s of round %" PRIu64 ": wrong data at byte %zu of %zu: 0x%02x, want 0x%02x", what, round, off,
		 n, ((const unsigned char *)buf)[off], want[off % 8]);
}

/* Fails, naming the first bad byte, unless buf holds the pattern of base. */
BENCH_FN void bench_verify(const char *what, uint64_t round, const void *buf, size_t n, uint64_t base)
{
	size_t off = bench_check(buf, n, base);
	if (off == SIZE_MAX)
		return;
	char msg[256];
	bench_mismatch(msg, sizeof msg, what, round, buf, n, base, off);
	bench_fail("%s", msg);
}

BENCH_FN void *bench_alloc(size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, n ? n : 1) != 0)
		bench_fail("out of memory for %zu bytes", n);
	memset(p, 0, n); /* fault the pages in now, not in a timed loop */
	return p;
}

/* ---- names and raw shared memory ----------------------------------------------------------- */

/* A name of this process for tag: bench-TAG-PID. */
BENCH_FN void bench_name(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "bench-%s-%d", tag, (int)getpid());
}

/* The directory regions live in: $MMIPC_DIR, else /dev/shm, as for mmipc. */
BENCH_FN const char *bench_dir(void)
{
	const char *d = getenv("MMIPC_DIR");
	return d && *d ? d : "/dev/shm";
}

/* The file of a region name (mmipc's rule, and shm_open's for /dev/shm). */
BENCH_FN void bench_path(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", bench_dir(), name) >= len)
		bench_fail("path too long: %s/%s", bench_dir(), name);
}

/* shm_open for the raw baselines, in the directory mmipc uses, so that both sit on the same file
 * system: glibc's shm_open is exactly open("/dev/shm/NAME", oflag | O_NOFOLLOW | O_CLOEXEC). */
BENCH_FN int bench_raw_open(const char *name, int oflag, mode_t mode)
{
	char path[PATH_MAX];
	bench_path(path, sizeof path, name);
	return open(path, oflag | O_NOFOLLOW | O_CLOEXEC, mode);
}

/* shm_unlink's equivalent. */
BENCH_FN int bench_raw_unlink(const char *name)
{
	char path[PATH_MAX];
	bench_path(path, sizeof path, name);
	return unlink(path);
}

/* A log line naming the region directory and its file system: mmipc and the raw baselines
 * compare fairly only in memory (tmpfs). */
BENCH_FN void bench_log_dir(void)
{
	struct statfs fs;
	const char *d = bench_dir();
	if (statfs(d, &fs) != 0)
		bench_fail("region directory %s: %s", d, strerror(errno));
	int tmpfs = fs.f_type == 0x01021994; /* TMPFS_MAGIC */
	printf("# region dir %s (%s)\n", d, tmpfs ? "tmpfs" : "NOT tmpfs: regions are disk-backed");
}

/* ---- the peer process ---------------------------------------------------------------------- */

/* Starts argv (argv[0] a path) as the peer: fork, pin to cpu (if >= 0), die with us
 * (PR_SET_PDEATHSIG), keep the descriptors keep[0..nkeep-1] open across exec, exec. Only system
 * calls between fork and exec: a forked child of a program that loaded libmmipc.so may not call
 * into the library (the fork rule), and exec starts it anew. */
BENCH_FN pid_t bench_spawn_peer(char *const argv[], int cpu, const int *keep, int nkeep)
{
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (cpu >= 0 && bench_pin(cpu) != 0) {
			dprintf(2, "%s: FAIL: peer: pin to CPU %d: %s\n", bench_prog, cpu, strerror(errno));
			_exit(1);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1); /* the parent died before prctl */
		for (int i = 0; i < nkeep; i++) {
			int fl = fcntl(keep[i], F_GETFD);
			if (fl < 0 || fcntl(keep[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
				_exit(1);
		}
		execv(argv[0], argv);
		dprintf(2, "%s: FAIL: exec %s: %s\n", bench_prog, argv[0], strerror(errno));
		_exit(127);
	}
	bench_peer_pid = pid;
	bench_watch_peer_exit = 1;
	return pid;
}

/* Waits (at most BENCH_TIMEOUT_S) for the peer to exit and requires status 0. */
BENCH_FN void bench_wait_peer(void)
{
	pid_t pid = bench_peer_pid;
	if (pid <= 0)
		return;
	uint64_t deadline = bench_now_ns() + (uint64_t)BENCH_TIMEOUT_S * 1000000000u;
	int status;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			bench_fail("waitpid %d: %s", (int)pid, strerror(errno));
		if (bench_now_ns() > deadline)
			bench_fail("the peer %d did not exit within %d s after the last operation", (int)pid, BENCH_TIMEOUT_S);
		bench_progress();
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	bench_watch_peer_exit = 0;
	bench_peer_pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char why[128];
		bench_fail("the peer %s", bench_describe_status(status, why, sizeof why));
	}
}

/* Whole reads and writes on a stream (pipe, socket); EOF or an error fails the engine. */
BENCH_FN void bench_write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			bench_fail("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

BENCH_FN void bench_read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			bench_fail("read: %s", strerror(errno));
		}
		if (r == 0)
			bench_fail("read: the peer closed the stream (%zu bytes missing)", n);
		p += r;
		n -= (size_t)r;
	}
}

#endif /* BENCH_H */
