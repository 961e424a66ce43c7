/* hostile_peer.c - the C side of the hardening tests (tests/hardening_scribble_test.go,
 * tests/hardening_attack_test.go).
 *
 * Same command line and output as the Go peer, tests/hostilepeer/main.go, for its commands hostile
 * and expect, which are specified there once, plus:
 *
 *   truncate PATH SIZE   ftruncate the file PATH (any file: this is the hostile process that shrinks a
 *                        region under its peers) to SIZE bytes. Prints "ok truncate PATH SIZE".
 *   lockhog PATH         open the file PATH read-write and take the exclusive liveness lock a
 *                        cleaner takes (docs/PROTOCOL.md "Liveness": an OFD write lock on byte 0),
 *                        print "hogging", and keep it until stdin ends (60 s at most); then print
 *                        "ok lockhog".
 *
 * The checks of the C API under attack (symlinks, truncation) are in tests/c/test_attacks.c.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdint.h>

#include "check.h"
#include "testutil.h"
#include "peerutil.h"

#define WORK_MESSAGES 100
#define WORK_TIMEOUT_NS INT64_C(5000000000)
#define MS INT64_C(1000000)

static uint64_t rng_state;

/* xorshift64*: the peer's random choices, seeded from the pid (no need for quality). */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* Waits up to secs for the line want on stdin. */
static void await_line(const char *want, int secs)
{
	struct pollfd p = {.fd = 0, .events = POLLIN};
	int r;
	do
		r = poll(&p, 1, secs * 1000);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		fail("no \"%s\" on stdin within %d s", want, secs);
	char line[64];
	if (fgets(line, sizeof line, stdin) == NULL)
		fail("stdin ended; want \"%s\"", want);
	line[strcspn(line, "\n")] = 0;
	if (strcmp(line, want) != 0)
		fail("stdin: got \"%s\", want \"%s\"", line, want);
}

struct counts {
	unsigned long open_ok, open_eproto, ring_ok, ring_eproto, ring_again;
};

static void print_counts(const char *prefix, const struct counts *c, const char *suffix)
{
	printf("%sopen_ok=%lu open_eproto=%lu ring_ok=%lu ring_eproto=%lu ring_again=%lu%s\n", prefix, c->open_ok,
	       c->open_eproto, c->ring_ok, c->ring_eproto, c->ring_again, suffix);
	fflush(stdout);
}

/* Counts a ring call's outcome (failed: the call failed with err); anything mmipc.h does not
 * document for a damaged ring is a failure. */
static void tally(struct counts *c, const char *what, int failed, int err)
{
	if (!failed)
		c->ring_ok++;
	else if (err == EPROTO)
		c->ring_eproto++;
	else if (err == EAGAIN || err == ETIMEDOUT)
		c->ring_again++;
	else
		fail("%s: errno %d (%s) [%s]", what, err, strerror(err), mmipc_last_error());
}

static int cmd_hostile(const char *plain, size_t size, const char *ring, const char *back, unsigned long secs,
		       const char *lang)
{
	rng_state = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL | 1;
	mmipc_region *p = mmipc_open(plain, 0);
	if (p == NULL || mmipc_size(p) != size)
		fail("mmipc_open(\"%s\"): %s, size %zu, want %zu [%s]", plain, p ? "ok" : strerror(errno),
		     mmipc_size(p), size, mmipc_last_error());
	mmipc_detach(p);
	mmipc_ring *q = mmipc_ring_open(ring);
	if (q == NULL)
		fail("mmipc_ring_open(\"%s\"): %s [%s]", ring, strerror(errno), mmipc_last_error());
	printf("ready\n");
	fflush(stdout);
	await_line("start", 30);

	struct counts c = {0};
	size_t max = mmipc_ring_max_message(q);
	/* Exactly the largest message: under the sanitizers, any overrun of these buffers is caught. */
	unsigned char *msg = malloc(max), *buf = malloc(max);
	if (msg == NULL || buf == NULL)
		fail("malloc");
	memset(msg, 0x5A, max);
	const int64_t timeouts[3] = {0, 1 * MS, 3 * MS};
	for (double end = now_s() + (double)secs; now_s() < end;) {
		errno = 0;
		mmipc_region *r = mmipc_open(plain, 0);
		if (r != NULL) {
			if (mmipc_size(r) != size)
				fail("mmipc_open(\"%s\") succeeded with %zu bytes, want %zu: a lying header was accepted",
				     plain, mmipc_size(r), size);
			mmipc_detach(r);
			c.open_ok++;
		} else if (errno == EPROTO) {
			c.open_eproto++;
		} else {
			fail("mmipc_open(\"%s\"): %s [%s]", plain, strerror(errno), mmipc_last_error());
		}
		errno = 0;
		int s = mmipc_ring_send(q, msg, (size_t)(rnd() % (max + 1)), timeouts[rnd() % 3]);
		tally(&c, "mmipc_ring_send", s != 0, errno);
		errno = 0;
		ssize_t n = mmipc_ring_recv(q, buf, max, timeouts[rnd() % 3]);
		int err = errno;
		if (n > (ssize_t)max)
			fail("mmipc_ring_recv returned %zd bytes into %zu", n, max);
		tally(&c, "mmipc_ring_recv", n < 0, err);
		if (rnd() % 16 == 0) {
			size_t len = (size_t)(rnd() % (max + 1));
			errno = 0;
			unsigned char *w = mmipc_ring_reserve(q, len, 1 * MS);
			tally(&c, "mmipc_ring_reserve", w == NULL, errno);
			if (w != NULL) {
				memset(w, 0x5A, len);
				errno = 0;
				int cm = mmipc_ring_commit(q, len);
				tally(&c, "mmipc_ring_commit", cm != 0, errno);
			}
			size_t plen = 0;
			errno = 0;
			const unsigned char *m = mmipc_ring_peek(q, &plen, 1 * MS);
			tally(&c, "mmipc_ring_peek", m == NULL, errno);
			if (m != NULL) {
				if (plen > max)
					fail("mmipc_ring_peek returned %zu bytes; the largest message is %zu", plen, max);
				errno = 0;
				int rl = mmipc_ring_release(q);
				tally(&c, "mmipc_ring_release", rl != 0, errno);
			}
		}
	}
	mmipc_ring_close(q);
	print_counts("hostile ", &c, "");
	await_line("go", 60);

	p = mmipc_open(plain, 0);
	if (p == NULL || mmipc_size(p) != size)
		fail("work: mmipc_open(\"%s\"): %s, size %zu, want %zu [%s]", plain, p ? "ok" : strerror(errno),
		     mmipc_size(p), size, mmipc_last_error());
	const unsigned char *d = mmipc_data(p);
	for (size_t i = 0; i < size; i++)
		if (d[i] != (unsigned char)(i * 7 + 3))
			fail("work: \"%s\" byte %zu is %#x, want %#x", plain, i, d[i], (unsigned char)(i * 7 + 3));
	mmipc_detach(p);
	q = mmipc_ring_open(ring);
	if (q == NULL)
		fail("work: mmipc_ring_open(\"%s\"): %s [%s]", ring, strerror(errno), mmipc_last_error());
	for (int i = 0; i < WORK_MESSAGES; i++) {
		char m[64];
		int len = snprintf(m, sizeof m, "%s %d", lang, i);
		if (mmipc_ring_send(q, m, (size_t)len, WORK_TIMEOUT_NS) != 0)
			fail("work: send %d: %s [%s]", i, strerror(errno), mmipc_last_error());
	}
	mmipc_ring_close(q);
	mmipc_ring *bq = mmipc_ring_open(back);
	if (bq == NULL)
		fail("work: mmipc_ring_open(\"%s\"): %s [%s]", back, strerror(errno), mmipc_last_error());
	for (int i = 0; i < WORK_MESSAGES; i++) {
		char want[64];
		snprintf(want, sizeof want, "back %d", i);
		ssize_t n = mmipc_ring_recv(bq, buf, max, WORK_TIMEOUT_NS);
		if (n < 0 || (size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0)
			fail("work: recv %d: %zd bytes (%s) [%s], want \"%s\"", i, n, n < 0 ? strerror(errno) : "",
			     n < 0 ? mmipc_last_error() : "", want);
	}
	mmipc_ring_close(bq);
	free(msg);
	free(buf);
	char done[64];
	snprintf(done, sizeof done, " sent=%d received=%d", WORK_MESSAGES, WORK_MESSAGES);
	print_counts("ok hostile ", &c, done);
	return 0;
}

static int cmd_truncate(const char *path, unsigned long long size)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	if (ftruncate(fd, (off_t)size) != 0)
		fail("ftruncate %s to %llu: %s", path, size, strerror(errno));
	close(fd);
	ok(" %s %llu", path, size);
	return 0;
}

static const struct {
	const char *name;
	int err;
} errnos[] = {{"0", 0},          {"ENOENT", ENOENT}, {"EEXIST", EEXIST}, {"ELOOP", ELOOP}, {"EPROTO", EPROTO},
	      {"EACCES", EACCES}, {"EINVAL", EINVAL}, {"EPERM", EPERM},   {"EBUSY", EBUSY}};

/* One call of "expect": OP on NAME must end with the errno called want ("0": success). */
static void expect_one(const char *op, const char *name, const char *want)
{
	int w = -1;
	for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
		if (strcmp(errnos[i].name, want) == 0)
			w = errnos[i].err;
	if (w < 0)
		peer_usage("hostile_peer", "tests/hostilepeer/main.go");
	int failed, err;
	char extra[128] = "";
	errno = 0;
	if (strcmp(op, "open") == 0 || strcmp(op, "open_ro") == 0) {
		mmipc_region *r = mmipc_open(name, strcmp(op, "open") == 0 ? 0 : MMIPC_RDONLY);
		err = errno;
		failed = r == NULL;
		mmipc_detach(r);
	} else if (strcmp(op, "ring_open") == 0) {
		mmipc_ring *q = mmipc_ring_open(name);
		err = errno;
		failed = q == NULL;
		mmipc_ring_close(q);
	} else if (strcmp(op, "create") == 0) {
		mmipc_region *r = mmipc_create(name, 4096, 0600);
		err = errno;
		failed = r == NULL;
		mmipc_detach(r);
	} else if (strcmp(op, "unlink") == 0) {
		failed = mmipc_unlink(name) != 0;
		err = errno;
	} else if (strcmp(op, "stat") == 0) {
		mmipc_info info;
		failed = mmipc_stat(name, &info) != 0;
		err = errno;
		if (!failed)
			snprintf(extra, sizeof extra, " size=%llu attached=%d uid=%u", (unsigned long long)info.size,
				 info.attached, info.uid);
	} else {
		peer_usage("hostile_peer", "tests/hostilepeer/main.go");
	}
	if (failed ? err != w : w != 0)
		fail("%s \"%s\": %s, want %s [%s]", op, name, failed ? strerror(err) : "success", want,
		     failed ? mmipc_last_error() : "");
	printf("expect %s %s %s%s\n", op, name, want, extra);
}

static int cmd_lockhog(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		fail("open %s: %s", path, strerror(errno));
	struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (fcntl(fd, F_OFD_SETLK, &lk) != 0)
		fail("F_OFD_SETLK F_WRLCK on %s: %s", path, strerror(errno));
	printf("hogging\n");
	fflush(stdout);
	struct pollfd p = {.fd = 0, .events = POLLIN};
	char buf[64];
	for (double end = now_s() + 60; now_s() < end;)
		if (poll(&p, 1, 100) > 0 && read(0, buf, sizeof buf) <= 0)
			break;
	close(fd);
	printf("ok lockhog\n");
	return 0;
}

int main(int argc, char **argv)
{
	int nargs;
	char **a = peer_begin(argc, argv, 0, "hostile_peer", "tests/hostilepeer/main.go", &nargs);
	if (strcmp(command, "hostile") == 0 && nargs == 6)
		return cmd_hostile(a[0], (size_t)number(a[1]), a[2], a[3], (unsigned long)number(a[4]), a[5]);
	if (strcmp(command, "truncate") == 0 && nargs == 2)
		return cmd_truncate(a[0], number(a[1]));
	if (strcmp(command, "lockhog") == 0 && nargs == 1)
		return cmd_lockhog(a[0]);
	if (strcmp(command, "expect") == 0 && nargs > 0 && nargs % 3 == 0) {
		for (int i = 0; i < nargs; i += 3)
			expect_one(a[i], a[i + 1], a[i + 2]);
		ok(" %d", nargs / 3);
		return 0;
	}
	peer_usage("hostile_peer", "tests/hostilepeer/main.go");
}
