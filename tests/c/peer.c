/* peer.c - the C side of the cross-language process-pair tests (tests/pairs_test.go).
 *
 * Same command line as the Go peer, tests/gopeer/main.go, so that the test matrix can put either
 * language in either role. The exchange protocol (the words at the start of the region, the
 * deterministic payload, the checksum, the polling) and every command are specified once, in the
 * comment at the top of tests/gopeer/main.go. In short: state at 0, ack at 4, len at 8, sum at 12,
 * counter at 16, payload at 64; a writer publishes with a release store of state, a reader polls
 * it with acquire loads and trusts nothing it reads.
 *
 * fork-watch is C only (Go cannot fork). Its forked child uses only mmipc_data, plain memory and
 * mmipc_detach (the fork rule); so does the child that proves a read-only mapping faults.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/resource.h>

#include "check.h"
#include "testutil.h"
#include "peerutil.h"

#define OFF_STATE 0
#define OFF_ACK 4
#define OFF_LEN 8
#define OFF_SUM 12
#define OFF_COUNTER 16
#define OFF_PAYLOAD 64
#define MAX_PAYLOAD 65536

#define STATE_PING 1u
#define STATE_PONG 2u
#define SEED_PING 1u
#define SEED_PONG 2u

#define POLL_US 100
#define WAIT_LIMIT_S 10.0

static double seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end != 0 || !(v > 0)) {
		fprintf(stderr, "bad seconds \"%s\"\n", s);
		exit(2);
	}
	return v;
}

/* The 32-bit word at off (aligned: off is a multiple of 4 and the data is page-aligned). */
static uint32_t *word(unsigned char *b, size_t off) { return (uint32_t *)(void *)(b + off); }

static size_t payload_len(size_t size)
{
	size_t n = size - OFF_PAYLOAD;
	return n < MAX_PAYLOAD ? n : MAX_PAYLOAD;
}

static void gen_payload(unsigned char *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)(x >> 24);
	}
}

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

static unsigned char pattern(size_t i) { return (unsigned char)((i * 31 + 7) | 1); }

/* Writes a payload from seed and publishes it as state. */
static void write_msg(unsigned char *b, size_t size, uint32_t state, uint32_t seed)
{
	size_t n = payload_len(size);
	gen_payload(b + OFF_PAYLOAD, n, seed);
	*word(b, OFF_LEN) = (uint32_t)n;
	*word(b, OFF_SUM) = fnv1a(b + OFF_PAYLOAD, n);
	__atomic_store_n(word(b, OFF_STATE), state, __ATOMIC_RELEASE);
}

/* The anon-parent's child, so that a wait can give up as soon as it dies. */
static pid_t child_pid = -1;
static int child_status, child_reaped;

/* Polls the word at off until it holds want; fails after WAIT_LIMIT_S, or at once when the child
 * (if any) has exited. */
static void wait_word(unsigned char *b, size_t off, uint32_t want, const char *what)
{
	double deadline = now_s() + WAIT_LIMIT_S;
	for (;;) {
		uint32_t got = __atomic_load_n(word(b, off), __ATOMIC_ACQUIRE);
		if (got == want)
			return;
		if (child_pid > 0 && !child_reaped && waitpid(child_pid, &child_status, WNOHANG) == child_pid) {
			child_reaped = 1;
			char buf[128];
			/* It may have stored the word just before exiting. */
			if (__atomic_load_n(word(b, off), __ATOMIC_ACQUIRE) != want)
				fail("waiting for %s: the child %s before storing it", what,
				     describe(1, child_status, buf, sizeof buf));
		}
		if (now_s() > deadline)
			fail("waiting for %s: the word at %zu is %u after %.0f s, want %u", what, off, got, WAIT_LIMIT_S,
			     want);
		usleep(POLL_US);
	}
}

/* Checks the payload published under seed, trusting nothing it reads. */
static void verify_msg(unsigned char *b, size_t size, uint32_t seed, const char *what)
{
	uint32_t n = __atomic_load_n(word(b, OFF_LEN), __ATOMIC_RELAXED); /* once: a peer may change it */
	if (n > size - OFF_PAYLOAD)
		fail("%s: hostile len %u: the region (%zu bytes) has room for %zu payload bytes", what, n, size,
		     size - OFF_PAYLOAD);
	if (n != payload_len(size))
		fail("%s: len: got %u, want %zu", what, n, payload_len(size));
	unsigned char *want = malloc(n);
	if (want == NULL)
		die("malloc");
	gen_payload(want, n, seed);
	const unsigned char *got = b + OFF_PAYLOAD;
	for (size_t i = 0; i < n; i++)
		if (got[i] != want[i])
			fail("%s: payload byte %zu: got 0x%02x, want 0x%02x (seed %u)", what, i, got[i], want[i], seed);
	uint32_t sum = __atomic_load_n(word(b, OFF_SUM), __ATOMIC_RELAXED), want_sum = fnv1a(want, n);
	free(want);
	if (sum != want_sum)
		fail("%s: sum: got 0x%08x, want 0x%08x", what, sum, want_sum);
}

static unsigned char *check_size(mmipc_region *r, size_t want)
{
	size_t size = mmipc_size(r);
	if (want > 0 && size != want)
		fail("region size: got %zu, want %zu", size, want);
	if (size <= OFF_PAYLOAD)
		fail("region size %zu: the protocol needs more than %d bytes", size, OFF_PAYLOAD);
	return mmipc_data(r);
}

static mmipc_region *create(const char *name, size_t size)
{
	mmipc_region *r = mmipc_create(name, size, 0600);
	if (r == NULL)
		fail("mmipc_create(\"%s\", %zu): %s [%s]", name, size, strerror(errno), mmipc_last_error());
	return r;
}

/* Opens name, retrying ENOENT until the deadline: the peer may not have created it yet. */
static mmipc_region *open_retry(const char *name, int flags)
{
	double deadline = now_s() + WAIT_LIMIT_S;
	for (;;) {
		errno = 0;
		mmipc_region *r = mmipc_open(name, flags);
		if (r != NULL)
			return r;
		if (errno != ENOENT || now_s() > deadline)
			fail("mmipc_open(\"%s\", %d): %s [%s]", name, flags, strerror(errno), mmipc_last_error());
		usleep(1000);
	}
}

static void unlink_region(const char *name)
{
	if (mmipc_unlink(name) != 0)
		fail("mmipc_unlink(\"%s\"): %s [%s]", name, strerror(errno), mmipc_last_error());
}

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{"ENOENT", ENOENT}, {"EPROTO", EPROTO}, {"EACCES", EACCES}, {"ELOOP", ELOOP},
	{"EINVAL", EINVAL}, {"EEXIST", EEXIST}, {"EBADF", EBADF},   {"ENOTSUP", ENOTSUP},
};

static const char *errno_name(int e, char *buf, size_t n)
{
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (errnos[i].value == e)
			return errnos[i].name;
	snprintf(buf, n, "errno %d", e);
	return buf;
}

/* ---- commands ---- */

static int cmd_create(const char *name, size_t size)
{
	mmipc_region *r = create(name, size);
	unsigned char *b = check_size(r, size);
	write_msg(b, size, STATE_PING, SEED_PING);
	wait_word(b, OFF_STATE, STATE_PONG, "the pong");
	verify_msg(b, size, SEED_PONG, "pong");
	mmipc_detach(r);
	unlink_region(name);
	ok(" size=%zu", size);
	return 0;
}

/* The pong side of an exchange on an attached region of the expected size: wait for the ping,
 * verify it, answer with the pong, detach. */
static int respond(mmipc_region *r, size_t want_size)
{
	unsigned char *b = check_size(r, want_size);
	size_t size = mmipc_size(r);
	wait_word(b, OFF_STATE, STATE_PING, "the ping");
	verify_msg(b, size, SEED_PING, "ping");
	write_msg(b, size, STATE_PONG, SEED_PONG);
	mmipc_detach(r);
	ok(" size=%zu", size);
	return 0;
}

static int cmd_open(const char *name, size_t want_size)
{
	mmipc_region *r = open_retry(name, 0);
	return respond(r, want_size);
}

static int cmd_fill(const char *name, size_t size)
{
	mmipc_region *r = create(name, size);
	unsigned char *b = check_size(r, size);
	write_msg(b, size, STATE_PING, SEED_PING);
	printf("ready\n");
	fflush(stdout);
	double deadline = now_s() + 30;
	for (;;) {
		int ms = (int)((deadline - now_s()) * 1000);
		if (ms <= 0)
			fail("stdin still open after 30 s");
		struct pollfd p = {.fd = 0, .events = POLLIN};
		int n = poll(&p, 1, ms);
		if (n < 0 && errno != EINTR)
			fail("poll stdin: %s", strerror(errno));
		if (n <= 0)
			continue;
		char buf[256];
		ssize_t got = read(0, buf, sizeof buf);
		if (got == 0)
			break;
		if (got < 0 && errno != EINTR && errno != EAGAIN)
			fail("read stdin: %s", strerror(errno));
	}
	uint32_t st = __atomic_load_n(word(b, OFF_STATE), __ATOMIC_ACQUIRE);
	if (st != STATE_PING)
		fail("state after the reader: got %u, want %u", st, STATE_PING);
	verify_msg(b, size, SEED_PING, "ping after the read-only peer");
	mmipc_detach(r);
	unlink_region(name);
	ok(" size=%zu", size);
	return 0;
}

static int cmd_read_only(const char *name, size_t want_size)
{
	mmipc_region *r = open_retry(name, MMIPC_RDONLY);
	unsigned char *b = check_size(r, want_size);
	size_t size = mmipc_size(r);
	wait_word(b, OFF_STATE, STATE_PING, "the ping");
	verify_msg(b, size, SEED_PING, "ping");
	volatile unsigned char *p = b + OFF_PAYLOAD; /* taken before fork: the child calls no mmipc code */
	pid_t pid = fork_flushed();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The default action, not the Go runtime's or a sanitizer's handler, and no core file. */
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGSEGV, SIG_DFL);
		*p ^= 0xff; /* a changed byte, so that a write that went through shows in the ping too */
		_exit(3);
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, WAIT_LIMIT_S, &st);
	if (!(w == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV))
		fail("a child writing through the read-only mapping: got %s, want killed by SIGSEGV (exit 3 = the "
		     "write went through)",
		     describe(w, st, buf, sizeof buf));
	verify_msg(b, size, SEED_PING, "ping after the faulting write");
	mmipc_detach(r);
	ok(" size=%zu fault=SIGSEGV", size);
	return 0;
}

/* anon-parent SIZE CHILD ARGS...: argv[2] is SIZE, argv[3] CHILD (also the child's argv[0]). */
static int cmd_anon_parent(char **argv)
{
	size_t size = number(argv[2]);
	mmipc_region *r = mmipc_anon(size);
	if (r == NULL)
		fail("mmipc_anon(%zu): %s [%s]", size, strerror(errno), mmipc_last_error());
	unsigned char *b = check_size(r, size);
	write_msg(b, size, STATE_PING, SEED_PING);
	int fd = mmipc_fd(r);
	if (fd < 0)
		fail("mmipc_fd: %s", strerror(errno));
	pid_t pid = fork_flushed();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* Plain system calls only, then exec. dup2 clears close-on-exec on the copy; when the
		 * descriptor already is 3 there is no copy, so clear the flag itself. */
		if (fd == 3) {
			int fl = fcntl(3, F_GETFD);
			if (fl < 0 || fcntl(3, F_SETFD, fl & ~FD_CLOEXEC) < 0)
				_exit(126);
		} else if (dup2(fd, 3) < 0) {
			_exit(126);
		}
		execv(argv[3], &argv[3]);
		_exit(127);
	}
	child_pid = pid;
	wait_word(b, OFF_STATE, STATE_PONG, "the pong");
	verify_msg(b, size, SEED_PONG, "pong");
	char buf[128];
	int w = child_reaped ? 1 : wait_bounded(pid, WAIT_LIMIT_S, &child_status);
	if (!exited_zero(w, child_status))
		fail("the child %s: %s, want exit 0 (126: no fd 3, 127: exec failed)", argv[3],
		     describe(w, child_status, buf, sizeof buf));
	mmipc_detach(r);
	ok(" size=%zu", size);
	return 0;
}

static int cmd_fd_child(const char *fd_s, size_t want_size)
{
	int fd = (int)number(fd_s);
	mmipc_region *r = mmipc_attach_fd(fd, 0);
	if (r == NULL)
		fail("mmipc_attach_fd(%d, 0): %s [%s]", fd, strerror(errno), mmipc_last_error());
	close(fd); /* the handle has its own duplicate */
	return respond(r, want_size);
}

static int cmd_write_file(const char *path, size_t size)
{
	mmipc_region *r = create(path, size);
	unsigned char *b = check_size(r, size);
	write_msg(b, size, STATE_PING, SEED_PING);
	if (mmipc_sync(r) != 0)
		fail("mmipc_sync: %s [%s]", strerror(errno), mmipc_last_error());
	mmipc_detach(r);
	ok(" size=%zu", size);
	return 0;
}

static int cmd_read_file(const char *path, size_t want_size)
{
	mmipc_region *r = mmipc_open(path, 0);
	if (r == NULL)
		fail("mmipc_open(\"%s\", 0): %s [%s]", path, strerror(errno), mmipc_last_error());
	unsigned char *b = check_size(r, want_size);
	size_t size = mmipc_size(r);
	uint32_t st = __atomic_load_n(word(b, OFF_STATE), __ATOMIC_ACQUIRE);
	if (st != STATE_PING)
		fail("state: got %u, want %u (the writer has exited: it must be there already)", st, STATE_PING);
	verify_msg(b, size, SEED_PING, "ping");
	mmipc_detach(r);
	unlink_region(path);
	ok(" size=%zu", size);
	return 0;
}

static int cmd_churn(const char *name, size_t size, double secs)
{
	long cycles = 0;
	for (double end = now_s() + secs; now_s() < end; cycles++) {
		mmipc_region *r = create(name, size);
		unsigned char *b = check_size(r, size);
		for (size_t i = 0; i < size; i++)
			b[i] = pattern(i);
		mmipc_detach(r);
		unlink_region(name);
	}
	ok(" cycles=%ld", cycles);
	return 0;
}

static int cmd_open_loop(const char *name, size_t size, double secs)
{
	long opened = 0, enoent = 0, bad = 0;
	double end = now_s() + secs;
	for (long n = 0; now_s() < end; n++) {
		int flags = (n & 1) ? MMIPC_RDONLY : 0;
		errno = 0;
		mmipc_region *r = mmipc_open(name, flags);
		int err = errno;
		if (r == NULL) {
			if (err == ENOENT)
				enoent++;
			else if (++bad <= 5)
				printf("mmipc_open(\"%s\", %d): %s, want success or ENOENT [%s]\n", name, flags,
				       strerror(err), mmipc_last_error());
			continue;
		}
		const unsigned char *b = mmipc_data(r);
		size_t got = mmipc_size(r), bad_at = (size_t)-1;
		if (got == size) {
			for (size_t i = 0; i < got; i++) {
				if (b[i] != 0 && b[i] != pattern(i)) {
					bad_at = i;
					break;
				}
			}
		}
		if (got != size || bad_at != (size_t)-1) {
			if (++bad <= 5)
				printf("opened a region of %zu bytes (want %zu), first wrong byte at %zd\n", got, size,
				       (ssize_t)bad_at);
		} else {
			opened++;
		}
		mmipc_detach(r);
	}
	if (bad > 0)
		fail("%ld opens were neither ENOENT nor the whole region (%ld opened, %ld ENOENT)", bad, opened, enoent);
	ok(" opened=%ld enoent=%ld", opened, enoent);
	return 0;
}

static int cmd_expect_open_errno(const char *name, const char *want_name)
{
	int want = -1;
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (strcmp(errnos[i].name, want_name) == 0)
			want = errnos[i].value;
	if (want < 0) {
		fprintf(stderr, "unknown errno name \"%s\"\n", want_name);
		return 2;
	}
	errno = 0;
	mmipc_region *r = mmipc_open(name, 0);
	int got = errno;
	if (r != NULL) {
		mmipc_detach(r);
		fail("mmipc_open(\"%s\", 0): got success, want %s", name, want_name);
	}
	char buf[32];
	printf("got %s want %s: %s\n", errno_name(got, buf, sizeof buf), want_name, mmipc_last_error());
	if (got != want)
		fail("mmipc_open(\"%s\", 0): got %s, want %s", name, errno_name(got, buf, sizeof buf), want_name);
	ok(" %s", want_name);
	return 0;
}

/* Waits until the counter reaches n, only growing; the shared part of watch. */
static void watch_counter(unsigned char *b, uint32_t n)
{
	double deadline = now_s() + WAIT_LIMIT_S;
	uint32_t last = 0;
	while (last != n) {
		uint32_t c = __atomic_load_n(word(b, OFF_COUNTER), __ATOMIC_ACQUIRE);
		if (c < last || c > n)
			fail("counter went from %u to %u; it must only grow, up to %u", last, c, n);
		last = c;
		if (now_s() > deadline)
			fail("counter is %u after %.0f s, want %u", c, WAIT_LIMIT_S, n);
		usleep(POLL_US);
	}
}

static int cmd_watch(const char *name, size_t size, uint32_t n)
{
	mmipc_region *r = open_retry(name, 0);
	unsigned char *b = check_size(r, size);
	watch_counter(b, n);
	wait_word(b, OFF_STATE, STATE_PING, "the ping");
	verify_msg(b, size, SEED_PING, "ping");
	__atomic_store_n(word(b, OFF_ACK), 1u, __ATOMIC_RELEASE);
	mmipc_detach(r);
	ok(" count=%u", n);
	return 0;
}

static int cmd_fork_watch(const char *name, size_t size, uint32_t n)
{
	mmipc_region *r = create(name, size);
	unsigned char *b = check_size(r, size);
	write_msg(b, size, STATE_PING, SEED_PING);
	printf("ready\n");
	pid_t pid = fork_flushed();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The fork rule: mmipc_data (already taken), plain memory and mmipc_detach only. */
		for (uint32_t i = 1; i <= n; i++) {
			__atomic_store_n(word(b, OFF_COUNTER), i, __ATOMIC_RELEASE);
			usleep(1000);
		}
		double deadline = now_s() + WAIT_LIMIT_S;
		while (__atomic_load_n(word(b, OFF_ACK), __ATOMIC_ACQUIRE) != 1) {
			if (now_s() > deadline) {
				printf("FAIL fork-watch: the forked child got no ack in %.0f s\n", WAIT_LIMIT_S);
				fflush(stdout);
				mmipc_detach(r);
				_exit(1);
			}
			usleep(POLL_US);
		}
		mmipc_detach(r);
		_exit(0);
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, WAIT_LIMIT_S + 5, &st);
	if (!exited_zero(w, st))
		fail("the forked child: %s, want exit 0", describe(w, st, buf, sizeof buf));
	uint32_t ack = __atomic_load_n(word(b, OFF_ACK), __ATOMIC_ACQUIRE);
	uint32_t count = __atomic_load_n(word(b, OFF_COUNTER), __ATOMIC_ACQUIRE);
	if (ack != 1 || count != n)
		fail("after the child: ack %u counter %u, want 1 and %u", ack, count, n);
	verify_msg(b, size, SEED_PING, "ping after the watch");
	mmipc_detach(r);
	unlink_region(name);
	ok(" count=%u", n);
	return 0;
}

int main(int argc, char **argv)
{
	int nargs;
	char **a = peer_begin(argc, argv, 0, "peer", "tests/gopeer/main.go", &nargs);
#define NEED(lo, hi)                                                                                      \
	do {                                                                                              \
		if (nargs < (lo) || ((hi) >= 0 && nargs > (hi)))                                          \
			peer_usage("peer", "tests/gopeer/main.go");                                                                          \
	} while (0)
#define OPT_SIZE(i) (nargs > (i) ? number(a[i]) : 0)
	if (strcmp(command, "create") == 0) {
		NEED(2, 2);
		return cmd_create(a[0], number(a[1]));
	} else if (strcmp(command, "open") == 0) {
		NEED(1, 2);
		return cmd_open(a[0], OPT_SIZE(1));
	} else if (strcmp(command, "fill") == 0) {
		NEED(2, 2);
		return cmd_fill(a[0], number(a[1]));
	} else if (strcmp(command, "read-only") == 0) {
		NEED(1, 2);
		return cmd_read_only(a[0], OPT_SIZE(1));
	} else if (strcmp(command, "anon-parent") == 0) {
		NEED(2, -1);
		return cmd_anon_parent(argv);
	} else if (strcmp(command, "fd-child") == 0) {
		NEED(1, 2);
		return cmd_fd_child(a[0], OPT_SIZE(1));
	} else if (strcmp(command, "write-file") == 0) {
		NEED(2, 2);
		return cmd_write_file(a[0], number(a[1]));
	} else if (strcmp(command, "read-file") == 0) {
		NEED(1, 2);
		return cmd_read_file(a[0], OPT_SIZE(1));
	} else if (strcmp(command, "churn") == 0) {
		NEED(3, 3);
		return cmd_churn(a[0], number(a[1]), seconds(a[2]));
	} else if (strcmp(command, "open-loop") == 0) {
		NEED(3, 3);
		return cmd_open_loop(a[0], number(a[1]), seconds(a[2]));
	} else if (strcmp(command, "expect-open-errno") == 0) {
		NEED(2, 2);
		return cmd_expect_open_errno(a[0], a[1]);
	} else if (strcmp(command, "watch") == 0) {
		NEED(3, 3);
		return cmd_watch(a[0], number(a[1]), (uint32_t)number(a[2]));
	} else if (strcmp(command, "fork-watch") == 0) {
		NEED(3, 3);
		return cmd_fork_watch(a[0], number(a[1]), (uint32_t)number(a[2]));
	}
	peer_usage("peer", "tests/gopeer/main.go");
}
