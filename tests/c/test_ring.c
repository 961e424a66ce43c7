/* test_ring.c - the message ring (docs/PROTOCOL.md "Ring"; mmipc.h mmipc_ring_*).
 *
 * Parts (argv[1]; each is one Go test, see tests/c_sync_test.go):
 *   api      create/open errno table (EEXIST, ENOENT, EINVAL capacities, EPROTO for a plain region
 *            and for damaged control blocks, ENOTSUP in a forked child), capacity rounding and the
 *            control block's bytes, every size 0..max, padding at every buffer offset, EMSGSIZE
 *            both ways, EAGAIN/ETIMEDOUT, reserve/commit, peek/release, close with a pending
 *            reservation or peek, sides (exclusive, given back on close, shared after a second
 *            handle), EPROTO from each data call for each damaged word (and recovery after the
 *            repair), waking (the sleeper counts: counted in, swapped to 0 by one waker per
 *            sleep, senders woken only at half full yet always, the largest message included),
 *            waits on a shared CPU (they yield, an idle one sleeps; the cpu word follows a side
 *            that moved), and a long randomized run with checksums.
 *   spsc     a parent and a forked child: 1e6 messages (sequence numbers, checksums) through a
 *            1 KiB ring, with pauses on both sides that force the other side to sleep.
 *   mpmc     4 sender and 3 receiver processes (exec'd, opening the ring by name), 200k messages:
 *            no loss, no duplicate, per-sender order; both sides end shared.
 *   death    an exclusive sender killed between reserve and commit (its message never comes; a
 *            new sender takes the side over); a live idle owner revoked; a live owner holding a
 *            reservation (others time out, then proceed); a shared-side sender killed holding the
 *            lock; a receiver killed between peek and release; a handle used across fork.
 *   hostile  a process scribbles random values over tail, head and record headers while a sender
 *            and a receiver run: every call returns a valid message or EPROTO/EAGAIN/ETIMEDOUT,
 *            nothing crashes (run under ASan too) and everything ends in bounded time.
 *   nomembarrier  a forked child denied membarrier(2) by seccomp talks to its parent: the
 *            fallbacks (fenced publishing, a bounded first sleep, revocation by waiting).
 * Internal roles: "mpmc-send ID COUNT" and "mpmc-recv ID".
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define MS 1000000LL
#define SEC (1000 * MS)

/* The control block, as PROTOCOL.md lays it out; the tests read it through a plain attachment of
 * the ring's region (mmipc_open works on any named region). */
#define OFF_MAGIC 0
#define OFF_VERSION 8
#define OFF_CONTROL_SIZE 12
#define OFF_CAPACITY 16
#define OFF_CRC 28
#define OFF_TAIL 64
#define OFF_RECV_SLEEPERS 72
#define OFF_HEAD 128
#define OFF_SEND_SLEEPERS 136
#define OFF_SEND_SIDE 192
#define OFF_RECV_SIDE 256
#define OFF_SEND_LOCK 320
#define OFF_RECV_LOCK 384
#define SIDE_OWNER 0
#define SIDE_HANDLE 8
#define SIDE_IN_OP 12
#define SIDE_REVOKE 16
#define SIDE_CPU 20
#define SHARED_OWNER UINT64_MAX


static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint32_t fnv1a(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* ---- messages that prove themselves: sender, seq, length and a checksum ---- */

#define MSG_HEADER 16

/* Fills buf with message (sender, seq) of len >= MSG_HEADER bytes. */
static void make_msg(unsigned char *buf, size_t len, uint32_t sender, uint32_t seq)
{
	for (size_t i = MSG_HEADER; i < len; i++)
		buf[i] = (unsigned char)(seq * 31 + i * 7 + sender);
	uint32_t l = (uint32_t)len, sum = fnv1a(buf + MSG_HEADER, len - MSG_HEADER) ^ sender ^ seq ^ l;
	memcpy(buf, &sender, 4);
	memcpy(buf + 4, &seq, 4);
	memcpy(buf + 8, &l, 4);
	memcpy(buf + 12, &sum, 4);
}

/* 1 when buf (len bytes) is an intact message; its sender and seq. */
static int msg_ok(const unsigned char *buf, size_t len, uint32_t *sender, uint32_t *seq)
{
	if (len < MSG_HEADER)
		return 0;
	uint32_t l, sum;
	memcpy(sender, buf, 4);
	memcpy(seq, buf + 4, 4);
	memcpy(&l, buf + 8, 4);
	memcpy(&sum, buf + 12, 4);
	if (l != len || sum != (fnv1a(buf + MSG_HEADER, len - MSG_HEADER) ^ *sender ^ *seq ^ l))
		return 0;
	for (size_t i = MSG_HEADER; i < len; i++)
		if (buf[i] != (unsigned char)(*seq * 31 + i * 7 + *sender))
			return 0;
	return 1;
}

/* A pattern payload of any length (0 too), derived from k. */
static void fill_pattern(unsigned char *buf, size_t len, uint32_t k)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(k * 13 + i * 5 + 1);
}

static int pattern_ok(const unsigned char *buf, size_t len, uint32_t k)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (unsigned char)(k * 13 + i * 5 + 1))
			return 0;
	return 1;
}

/* ---- the control block, through a plain attachment ---- */

struct view {
	mmipc_region *r;
	unsigned char *d;
};

static struct view view_open(const char *name)
{
	struct view v = {mmipc_open(name, 0), NULL};
	if (v.r == NULL)
		die("mmipc_open (plain view of a ring)");
	v.d = mmipc_data(v.r);
	return v;
}

static _Atomic uint64_t *w64(struct view v, size_t off) { return (_Atomic uint64_t *)(void *)(v.d + off); }
static _Atomic uint32_t *w32(struct view v, size_t off) { return (_Atomic uint32_t *)(void *)(v.d + off); }
static uint64_t tail_of(struct view v) { return atomic_load(w64(v, OFF_TAIL)); }
static uint64_t head_of(struct view v) { return atomic_load(w64(v, OFF_HEAD)); }
static uint64_t owner_of(struct view v, size_t side) { return atomic_load(w64(v, side + SIDE_OWNER)); }

/* This process's identity, pid | starttime << 32, read as the protocol says. */
static uint64_t identity_of(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		die("fopen /proc/<pid>/stat");
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		die("parsing /proc/<pid>/stat");
	return (uint64_t)(uint32_t)pid | (uint64_t)(uint32_t)strtoull(p + 1, NULL, 10) << 32;
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* 1 when [p, p + len) lies inside the buffer of the ring mapping that contains p (found in
 * /proc/self/maps: the mapping starts with the header page, then the control block); data_size is
 * 512 + capacity. */
static int buffer_holds(const void *p, size_t len, size_t data_size)
{
	char *maps = read_maps();
	if (maps == NULL)
		die("reading /proc/self/maps");
	uintptr_t a = (uintptr_t)p, lo = 0, hi = 0;
	for (char *line = maps; line != NULL && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		unsigned long s0, e0;
		if (sscanf(line, "%lx-%lx", &s0, &e0) == 2 && a >= s0 && a < e0) {
			lo = s0;
			hi = e0;
			break;
		}
	}
	free(maps);
	uintptr_t buf = lo + page_size() + 512, end = lo + page_size() + data_size;
	return lo != 0 && end <= hi + page_size() && a >= buf && a + len <= end;
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

/* Patches bytes of a region file at `off` (from the file's start), through pwrite. */
static void patch_file(const char *name, off_t off, const void *bytes, size_t n)
{
	char path[PATH_MAX];
	path_of(path, name);
	int fd = open(path, O_RDWR);
	if (fd < 0 || pwrite(fd, bytes, n, off) != (ssize_t)n)
		die("patching a ring file");
	close(fd);
}

static void read_file_at(const char *name, off_t off, void *bytes, size_t n)
{
	char path[PATH_MAX];
	path_of(path, name);
	int fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, bytes, n, off) != (ssize_t)n)
		die("reading a ring file");
	close(fd);
}

/* Sends (k, pattern) messages: the small-message helpers of the api tests. */
static int send_k(mmipc_ring *q, uint32_t k, size_t len, int64_t t)
{
	unsigned char buf[1 << 16];
	fill_pattern(buf, len, k);
	return mmipc_ring_send(q, buf, len, t);
}

static int recv_k(mmipc_ring *q, uint32_t k, size_t len, int64_t t)
{
	unsigned char buf[1 << 16];
	ssize_t n = mmipc_ring_recv(q, buf, sizeof buf, t);
	return n == (ssize_t)len && pattern_ok(buf, len, k);
}

/* ======================= api ======================= */

static void test_create_open_errors(void)
{
	EXPECT_NULL(mmipc_ring_create(NULL, 1024, 0600), EINVAL);
	EXPECT_NULL(mmipc_ring_create("cap0", 0, 0600), EINVAL);
	EXPECT_NULL(mmipc_ring_create("capbig", ((size_t)1 << 30) + 1, 0600), EINVAL);
	EXPECT_NULL(mmipc_ring_create("capmax", SIZE_MAX, 0600), EINVAL);
	check(!exists("cap0") && !exists("capbig") && !exists("capmax"), "no file for a refused capacity");
	mmipc_ring *q = EXPECT_OK_PTR(mmipc_ring_create("r1", 1024, 0600));
	EXPECT_NULL(mmipc_ring_create("r1", 1024, 0600), EEXIST);
	check(strstr(mmipc_last_error(), "r1") != NULL, "EEXIST names the ring: \"%s\"", mmipc_last_error());
	EXPECT_NULL(mmipc_ring_open("nope"), ENOENT);
	EXPECT_NULL(mmipc_ring_open(NULL), EINVAL);
	EXPECT_NULL(mmipc_ring_open("bad name"), EINVAL);
	mmipc_ring *o = EXPECT_OK_PTR(mmipc_ring_open("r1"));
	check(mmipc_ring_capacity(o) == 1024, "the opener sees capacity 1024: %zu", mmipc_ring_capacity(o));
	EXPECT_ZERO(mmipc_ring_close(o));
	EXPECT_ZERO(mmipc_ring_close(q));
	EXPECT_ZERO(mmipc_unlink("r1"));

	/* A plain region is not a ring. */
	mmipc_region *plain = EXPECT_OK_PTR(mmipc_create("plain", 512 + 1024, 0600));
	mmipc_detach(plain);
	EXPECT_NULL(mmipc_ring_open("plain"), EPROTO);
	check(strstr(mmipc_last_error(), "plain") != NULL, "EPROTO names the region: \"%s\"", mmipc_last_error());

	/* Damaged control blocks. */
	size_t hdr = page_size();
	struct {
		const char *what;
		size_t off;
		uint32_t value;
		int fix_crc;
	} damage[] = {
		{"magic", OFF_MAGIC, 0x21212121u, 0},
		{"ring_version 2", OFF_VERSION, 2, 1},
		{"control_size 256", OFF_CONTROL_SIZE, 256, 1},
		{"capacity 2048 (the data size says 1024)", OFF_CAPACITY, 2048, 1},
		{"capacity 1000 (not a power of two)", OFF_CAPACITY, 1000, 1},
		{"capacity 512 (below 1 KiB)", OFF_CAPACITY, 512, 1},
		{"ring_crc", OFF_CRC, 0x12345678u, 0},
		{"a byte under the crc", OFF_CAPACITY + 4, 1, 0},
	};
	for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		mmipc_ring *d = mmipc_ring_create("dmg", 1024, 0600);
		if (d == NULL)
			die("mmipc_ring_create dmg");
		mmipc_ring_close(d);
		patch_file("dmg", (off_t)(hdr + damage[i].off), &damage[i].value, 4);
		if (damage[i].fix_crc) {
			unsigned char ctl[28];
			read_file_at("dmg", (off_t)hdr, ctl, sizeof ctl);
			uint32_t crc = crc32_ieee(ctl, sizeof ctl);
			patch_file("dmg", (off_t)(hdr + OFF_CRC), &crc, 4);
		}
		errno = 0;
		mmipc_ring *got = mmipc_ring_open("dmg");
		int err = errno;
		check(got == NULL && err == EPROTO, "a ring with a damaged control block (%s): got %s errno %s, want EPROTO [%s]",
		      damage[i].what, got ? "a handle" : "NULL", strerror(err), mmipc_last_error());
		mmipc_ring_close(got);
		EXPECT_ZERO(mmipc_unlink("dmg"));
	}
	/* The header flag cleared (with a correct header checksum): a plain region, not a ring. */
	mmipc_ring *d = mmipc_ring_create("noflag", 1024, 0600);
	if (d == NULL)
		die("mmipc_ring_create noflag");
	mmipc_ring_close(d);
	unsigned char h[40];
	read_file_at("noflag", 0, h, sizeof h);
	uint32_t flags;
	memcpy(&flags, h + 28, 4);
	check(flags == 1, "a ring region's header flags: %u (want 1)", flags);
	flags = 0;
	memcpy(h + 28, &flags, 4);
	uint32_t crc = crc32_ieee(h, 40);
	patch_file("noflag", 28, &flags, 4);
	patch_file("noflag", 40, &crc, 4);
	mmipc_region *pr = mmipc_open("noflag", 0);
	check(pr != NULL, "with the flag cleared it still opens as a plain region [%s]", pr ? "" : mmipc_last_error());
	mmipc_detach(pr);
	EXPECT_NULL(mmipc_ring_open("noflag"), EPROTO);

	/* NULL handles and bad arguments. */
	unsigned char buf[8];
	size_t len = 0;
	EXPECT_FAIL(mmipc_ring_send(NULL, buf, 1, 0), EINVAL);
	EXPECT_FAIL((int)mmipc_ring_recv(NULL, buf, sizeof buf, 0), EINVAL);
	EXPECT_NULL(mmipc_ring_reserve(NULL, 1, 0), EINVAL);
	EXPECT_FAIL(mmipc_ring_commit(NULL, 0), EINVAL);
	EXPECT_NULL(mmipc_ring_peek(NULL, &len, 0), EINVAL);
	EXPECT_FAIL(mmipc_ring_release(NULL), EINVAL);
	check(mmipc_ring_capacity(NULL) == 0 && mmipc_ring_max_message(NULL) == 0 && mmipc_ring_close(NULL) == 0,
	      "capacity/max_message/close of NULL: 0");
	errno = EDOM;
	size_t c0 = mmipc_ring_capacity(NULL), m0 = mmipc_ring_max_message(NULL);
	int z0 = mmipc_ring_close(NULL);
	check(c0 == 0 && m0 == 0 && z0 == 0 && errno == EDOM, "capacity/max_message/close of NULL set no errno: %s",
	      strerror(errno));
	q = EXPECT_OK_PTR(mmipc_ring_create("args", 1024, 0600));
	EXPECT_FAIL(mmipc_ring_send(q, NULL, 1, 0), EINVAL);
	EXPECT_FAIL(mmipc_ring_send(q, buf, 1, -2), EINVAL);
	check(strstr(mmipc_last_error(), "mmipc_ring_send") != NULL, "the message names the call: \"%s\"",
	      mmipc_last_error());
	EXPECT_FAIL((int)mmipc_ring_recv(q, NULL, 1, 0), EINVAL);
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, -5), EINVAL);
	EXPECT_NULL(mmipc_ring_reserve(q, 1, INT64_MIN), EINVAL);
	EXPECT_NULL(mmipc_ring_peek(q, NULL, 0), EINVAL);
	EXPECT_NULL(mmipc_ring_peek(q, &len, -2), EINVAL);
	EXPECT_ZERO(mmipc_ring_send(q, NULL, 0, 0)); /* NULL with 0 bytes is fine */
	check(mmipc_ring_recv(q, NULL, 0, 0) == 0, "recv of a 0-byte message into (NULL, 0): 0");
	EXPECT_ZERO(mmipc_ring_close(q));

	/* In a forked child: ENOTSUP for the calls that need Go. */
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(10);
		EXPECT_NULL(mmipc_ring_create("child-ring", 1024, 0600), ENOTSUP);
		check(strstr(mmipc_last_error(), "fork") != NULL, "ENOTSUP explains the fork: \"%s\"", mmipc_last_error());
		EXPECT_NULL(mmipc_ring_open("args"), ENOTSUP);
		child_exit();
	}
	int st = 0, w = wait_bounded(pid, 10, &st);
	char dbuf[128];
	check(exited_zero(w, st), "ring_create/open in a forked child: %s", describe(w, st, dbuf, sizeof dbuf));
	check(!exists("child-ring"), "the child created nothing");
	EXPECT_ZERO(mmipc_unlink("args"));
}

static void test_capacity(void)
{
	struct {
		size_t asked, cap;
	} caps[] = {{1, 1024}, {1000, 1024}, {1024, 1024}, {1025, 2048}, {5000, 8192}, {65536, 65536}, {(1 << 20) + 1, 1 << 21}};
	for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
		mmipc_ring *q = mmipc_ring_create("cap", caps[i].asked, 0640);
		check(q != NULL && mmipc_ring_capacity(q) == caps[i].cap && mmipc_ring_max_message(q) == caps[i].cap / 2 - 8,
		      "capacity %zu: got capacity %zu, max message %zu (want %zu, %zu) [%s]", caps[i].asked,
		      mmipc_ring_capacity(q), mmipc_ring_max_message(q), caps[i].cap, caps[i].cap / 2 - 8,
		      q ? "" : mmipc_last_error());
		struct stat stt;
		char path[PATH_MAX];
		path_of(path, "cap");
		check(stat(path, &stt) == 0 && stt.st_size == region_file_size(512 + caps[i].cap) && (stt.st_mode & 0777) == 0640,
		      "capacity %zu: the file is a region of 512 + %zu data bytes, mode 0640", caps[i].asked, caps[i].cap);
		struct view v = view_open("cap");
		check(mmipc_size(v.r) == 512 + caps[i].cap, "the region's data size is 512 + capacity: %zu", mmipc_size(v.r));
		uint32_t ver, cs, crc, cpu_s, cpu_r;
		uint64_t c;
		memcpy(&ver, v.d + OFF_VERSION, 4);
		memcpy(&cs, v.d + OFF_CONTROL_SIZE, 4);
		memcpy(&c, v.d + OFF_CAPACITY, 8);
		memcpy(&crc, v.d + OFF_CRC, 4);
		memcpy(&cpu_s, v.d + OFF_SEND_SIDE + SIDE_CPU, 4);
		memcpy(&cpu_r, v.d + OFF_RECV_SIDE + SIDE_CPU, 4);
		check(memcmp(v.d, "MMIPCRNG", 8) == 0 && ver == 1 && cs == 512 && c == caps[i].cap && crc == crc32_ieee(v.d, 28),
		      "the control block's first line: magic, version 1, control size 512, capacity, crc");
		check(cpu_s == UINT32_MAX && cpu_r == UINT32_MAX && tail_of(v) == 0 && head_of(v) == 0 &&
			      owner_of(v, OFF_SEND_SIDE) == 0 && owner_of(v, OFF_RECV_SIDE) == 0,
		      "a new ring: tail = head = 0, sides unclaimed, cpu words unknown (0xFFFFFFFF)");
		mmipc_detach(v.r);
		mmipc_ring_close(q);
		mmipc_unlink("cap");
	}
	/* The largest capacity, 1 GiB, where memory allows. */
	errno = 0;
	mmipc_ring *big = mmipc_ring_create("big", (size_t)1 << 30, 0600);
	if (big == NULL && (errno == ENOSPC || errno == ENOMEM)) {
		printf("# 1 GiB ring skipped: %s\n", mmipc_last_error());
	} else {
		check(big != NULL && mmipc_ring_capacity(big) == ((size_t)1 << 30), "a 1 GiB ring: capacity %zu [%s]",
		      mmipc_ring_capacity(big), big ? "" : mmipc_last_error());
		size_t max = mmipc_ring_max_message(big);
		unsigned char *m = malloc(max + 1);
		if (m == NULL)
			die("malloc");
		fill_pattern(m, max, 3);
		check(big && mmipc_ring_send(big, m, max, 0) == 0, "a 1 GiB ring takes a message of max_message = %zu bytes", max);
		memset(m, 0, max);
		check(big && mmipc_ring_recv(big, m, max, 0) == (ssize_t)max && pattern_ok(m, max, 3), "and gives it back");
		free(m);
		mmipc_ring_close(big);
		mmipc_unlink("big");
	}
}

static void test_all_sizes(void)
{
	mmipc_ring *q = mmipc_ring_create("sizes", 1024, 0600);
	if (q == NULL)
		die("mmipc_ring_create sizes");
	size_t max = mmipc_ring_max_message(q);
	struct view v = view_open("sizes");
	unsigned char out[1024], in[1024];
	int bad = 0;
	quiet = 1;
	for (size_t len = 0; len <= max; len++) {
		fill_pattern(out, len, (uint32_t)len);
		uint64_t t0 = tail_of(v);
		int s = mmipc_ring_send(q, out, len, 0);
		uint64_t t1 = tail_of(v), off = t0 & 1023, rec = 8 + ((len + 7) & ~(size_t)7);
		uint64_t want = t0 + (off + rec > 1024 ? 1024 - off : 0) + rec;
		memset(in, 0xEE, sizeof in);
		ssize_t n = mmipc_ring_recv(q, in, max, 0);
		bad += !qcheck(s == 0 && t1 == want && n == (ssize_t)len && pattern_ok(in, len, (uint32_t)len) &&
				       head_of(v) == t1,
			       "size %zu at offset %llu: send %d, tail %llu -> %llu (want %llu), recv %zd, head %llu", len,
			       (unsigned long long)off, s, (unsigned long long)t0, (unsigned long long)t1,
			       (unsigned long long)want, n, (unsigned long long)head_of(v));
	}
	quiet = 0;
	check(bad == 0, "every size 0..%zu went through a 1 KiB ring intact (%d bad)", max, bad);

	/* Every 8-aligned offset: move the tail there with 0-byte messages (8-byte records), then send
	 * the largest message (it needs padding from every offset past the middle), a message that ends
	 * exactly at the buffer's end (no padding), and one a byte longer (the least padding). */
	int pads = 0;
	bad = 0;
	quiet = 1;
	for (uint64_t o = 0; o < 1024; o += 8) {
		for (int k = 0; k < 3; k++) {
			size_t len = k == 0 ? max : (size_t)(1024 - o - 8) + (k == 2);
			if (len > max)
				continue;
			while ((tail_of(v) & 1023) != o) {
				if (mmipc_ring_send(q, NULL, 0, 0) != 0 || mmipc_ring_recv(q, in, 0, 0) != 0) {
					bad++;
					break;
				}
			}
			uint64_t t0 = tail_of(v), off = t0 & 1023, rec = 8 + ((len + 7) & ~(size_t)7);
			int pad = off + rec > 1024;
			pads += pad;
			fill_pattern(out, len, (uint32_t)(o + k));
			int s = mmipc_ring_send(q, out, len, 0);
			uint64_t t1 = tail_of(v);
			if (pad && s == 0) {
				/* The padding record's header, as the protocol writes it. */
				uint32_t plen, ptag;
				memcpy(&plen, v.d + 512 + off, 4);
				memcpy(&ptag, v.d + 512 + off + 4, 4);
				bad += !qcheck(plen == 1024 - off - 8 && ptag == (2u | (uint32_t)(t0 >> 3) << 8),
					       "padding at offset %llu: len %u tag %#x", (unsigned long long)off, plen, ptag);
			}
			uint32_t mlen, mtag;
			uint64_t p = t0 + (pad ? 1024 - off : 0);
			memcpy(&mlen, v.d + 512 + (p & 1023), 4);
			memcpy(&mtag, v.d + 512 + (p & 1023) + 4, 4);
			ssize_t n = mmipc_ring_recv(q, in, sizeof in, 0);
			bad += !qcheck(s == 0 && t1 == p + rec && mlen == len && mtag == (1u | (uint32_t)(p >> 3) << 8) &&
					       n == (ssize_t)len && pattern_ok(in, len, (uint32_t)(o + k)) && head_of(v) == t1,
				       "message of %zu at offset %llu (padding %d): send %d, tail %llu (want %llu), header len %u "
				       "tag %#x, recv %zd",
				       len, (unsigned long long)off, pad, s, (unsigned long long)t1, (unsigned long long)(p + rec),
				       mlen, mtag, n);
		}
	}
	quiet = 0;
	/* Padding is possible from offsets 520..1016 (a record is at most 512 bytes): twice each. */
	check(bad == 0 && pads == 126, "messages at every 8-aligned offset, with padding wherever one would wrap: %d "
	      "paddings (want 126), %d bad", pads, bad);

	/* EMSGSIZE both ways. */
	EXPECT_FAIL(mmipc_ring_send(q, out, max + 1, 0), EMSGSIZE);
	check(strstr(mmipc_last_error(), "mmipc_ring_send") != NULL, "EMSGSIZE names the call: \"%s\"", mmipc_last_error());
	EXPECT_FAIL(mmipc_ring_send(q, out, SIZE_MAX, -1), EMSGSIZE);
	EXPECT_NULL(mmipc_ring_reserve(q, max + 1, 0), EMSGSIZE);
	fill_pattern(out, 100, 77);
	EXPECT_ZERO(mmipc_ring_send(q, out, 100, 0));
	EXPECT_FAIL((int)mmipc_ring_recv(q, in, 99, 0), EMSGSIZE);
	check(strstr(mmipc_last_error(), "100") != NULL, "EMSGSIZE tells the message's length: \"%s\"", mmipc_last_error());
	EXPECT_FAIL((int)mmipc_ring_recv(q, NULL, 0, 0), EMSGSIZE);
	size_t plen = 0;
	const void *pp = mmipc_ring_peek(q, &plen, 0);
	check(pp != NULL && plen == 100, "the message stays: peek says %zu bytes", plen);
	EXPECT_ZERO(mmipc_ring_release(q));
	EXPECT_FAIL((int)mmipc_ring_recv(q, in, sizeof in, 0), EAGAIN);
	EXPECT_ZERO(mmipc_ring_send(q, out, 100, 0));
	check(mmipc_ring_recv(q, in, 100, 0) == 100 && pattern_ok(in, 100, 77), "a buffer of exactly the size takes it");

	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_unlink("sizes");
}

static void test_timeouts(void)
{
	mmipc_ring *q = mmipc_ring_create("timeouts", 1024, 0600);
	if (q == NULL)
		die("mmipc_ring_create timeouts");
	unsigned char buf[512];
	size_t len;
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, 0), EAGAIN);
	EXPECT_NULL(mmipc_ring_peek(q, &len, 0), EAGAIN);
	long long tos[] = {1, 10 * MS, 60 * MS};
	for (size_t i = 0; i < 3; i++) {
		double t0 = now_s(), want = (double)tos[i] / 1e9;
		errno = 0;
		ssize_t n = mmipc_ring_recv(q, buf, sizeof buf, tos[i]);
		int err = errno;
		double dt = now_s() - t0;
		check(n == -1 && err == ETIMEDOUT && dt >= want * 0.99 && dt < want + 1.5,
		      "recv(%lld ns) on an empty ring: got %zd %s after %.4f s", tos[i], n, strerror(err), dt);
		t0 = now_s();
		errno = 0;
		const void *p = mmipc_ring_peek(q, &len, tos[i]);
		err = errno;
		dt = now_s() - t0;
		check(p == NULL && err == ETIMEDOUT && dt >= want * 0.99 && dt < want + 1.5,
		      "peek(%lld ns) on an empty ring: got %p %s after %.4f s", tos[i], p, strerror(err), dt);
	}
	/* Fill it: 8 messages of 120 bytes (128-byte records) fill 1 KiB exactly. */
	int sent = 0;
	while (send_k(q, (uint32_t)sent, 120, 0) == 0)
		sent++;
	check(sent == 8 && errno == EAGAIN, "a 1 KiB ring holds 8 records of 128 bytes; then EAGAIN: %d sent, %s", sent,
	      strerror(errno));
	EXPECT_FAIL(send_k(q, 99, 0, 0), EAGAIN);
	EXPECT_NULL(mmipc_ring_reserve(q, 0, 0), EAGAIN);
	for (size_t i = 0; i < 3; i++) {
		double t0 = now_s(), want = (double)tos[i] / 1e9;
		errno = 0;
		int r = send_k(q, 99, 120, tos[i]);
		int err = errno;
		double dt = now_s() - t0;
		check(r == -1 && err == ETIMEDOUT && dt >= want * 0.99 && dt < want + 1.5,
		      "send(%lld ns) into a full ring: got %d %s after %.4f s", tos[i], r, strerror(err), dt);
	}
	EXPECT_NULL(mmipc_ring_reserve(q, 10, 10 * MS), ETIMEDOUT);
	int got = 0;
	for (int i = 0; i < sent; i++)
		got += recv_k(q, (uint32_t)i, 120, 0);
	check(got == sent, "all %d come out in order after the timeouts: %d", sent, got);
	mmipc_ring_close(q);
	mmipc_unlink("timeouts");
}

static void test_zero_copy(void)
{
	mmipc_ring *q = mmipc_ring_create("zc", 4096, 0600);
	mmipc_ring *r = mmipc_ring_open("zc");
	if (q == NULL || r == NULL)
		die("zc ring");
	struct view v = view_open("zc");
	unsigned char buf[4096];
	size_t len = 0;

	EXPECT_FAIL(mmipc_ring_commit(q, 0), EINVAL);
	EXPECT_FAIL(mmipc_ring_release(r), EINVAL);
	unsigned char *p = mmipc_ring_reserve(q, 200, 0);
	check(p != NULL && buffer_holds(p, 200, 512 + 4096), "reserve(200): a pointer inside the ring's buffer");
	if (p == NULL)
		die("reserve");
	fill_pattern(p, 200, 5);
	check(pattern_ok(v.d + 512 + 8, 200, 5), "it points at the payload of the record at the tail (buffer offset 8)");
	EXPECT_FAIL(mmipc_ring_send(q, buf, 1, 0), EBUSY);
	EXPECT_NULL(mmipc_ring_reserve(q, 1, 0), EBUSY);
	check(strstr(mmipc_last_error(), "reserv") != NULL, "EBUSY says why: \"%s\"", mmipc_last_error());
	check(mmipc_ring_recv(r, buf, sizeof buf, 0) == -1 && errno == EAGAIN, "nothing to receive before the commit");
	check(owner_of(v, OFF_SEND_SIDE) == identity_of(getpid()) && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 1,
	      "between reserve and commit the side is held: owner is us, in_op 1");
	EXPECT_FAIL(mmipc_ring_commit(q, 201), EINVAL);
	EXPECT_ZERO(mmipc_ring_commit(q, 150)); /* shorter than reserved */
	check(atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 0, "after the commit in_op is 0");
	EXPECT_FAIL(mmipc_ring_commit(q, 150), EINVAL);
	check(mmipc_ring_recv(r, buf, sizeof buf, 0) == 150 && pattern_ok(buf, 150, 5), "the committed 150 bytes arrive");
	/* reserve(0)/commit(0) */
	p = mmipc_ring_reserve(q, 0, 0);
	check(p != NULL, "reserve(0) gives a pointer");
	EXPECT_ZERO(mmipc_ring_commit(q, 0));
	check(mmipc_ring_recv(r, buf, sizeof buf, 0) == 0, "an empty committed message arrives empty");

	/* peek/release */
	EXPECT_ZERO(send_k(q, 1, 33, 0));
	EXPECT_ZERO(send_k(q, 2, 44, 0));
	const unsigned char *m1 = mmipc_ring_peek(r, &len, 0);
	check(m1 != NULL && len == 33 && pattern_ok(m1, 33, 1), "peek: the first message in place (%zu bytes)", len);
	size_t len2 = 0;
	const unsigned char *m1b = mmipc_ring_peek(r, &len2, 0);
	check(m1b == m1 && len2 == 33, "peek again before release: the same message");
	EXPECT_FAIL((int)mmipc_ring_recv(r, buf, sizeof buf, 0), EBUSY);
	check(atomic_load(w32(v, OFF_RECV_SIDE + SIDE_IN_OP)) == 1, "while peeked the receive side is held (in_op 1)");
	EXPECT_ZERO(mmipc_ring_release(r));
	EXPECT_FAIL(mmipc_ring_release(r), EINVAL);
	check(recv_k(r, 2, 44, 0), "after the release the next message comes");

	/* Closing with a reservation pending delivers nothing; the next sender works. */
	mmipc_ring *s2 = mmipc_ring_open("zc");
	mmipc_ring_close(q); /* gives the send side back */
	check(owner_of(v, OFF_SEND_SIDE) == 0, "closing the exclusive sender gives the side back: owner %#llx",
	      (unsigned long long)owner_of(v, OFF_SEND_SIDE));
	p = mmipc_ring_reserve(s2, 64, 0);
	check(p != NULL, "a new sender reserves");
	if (p)
		fill_pattern(p, 64, 9);
	EXPECT_ZERO(mmipc_ring_close(s2));
	check(mmipc_ring_recv(r, buf, sizeof buf, 0) == -1 && errno == EAGAIN, "the abandoned reservation was never delivered");
	check(owner_of(v, OFF_SEND_SIDE) == 0 && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 0,
	      "and the side is free again");
	q = mmipc_ring_open("zc");
	EXPECT_ZERO(send_k(q, 10, 10, 0));
	check(recv_k(r, 10, 10, 0), "the next sender's message arrives");

	/* Closing with a peek pending consumes nothing. */
	EXPECT_ZERO(send_k(q, 11, 11, 0));
	const void *pk = mmipc_ring_peek(r, &len, 0);
	check(pk != NULL && len == 11, "peeked");
	mmipc_ring_close(r);
	r = mmipc_ring_open("zc");
	check(recv_k(r, 11, 11, 0), "a peek abandoned by close leaves the message for the next receiver");

	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_ring_close(r);
	mmipc_unlink("zc");
}

static void test_sides(void)
{
	mmipc_ring *a = mmipc_ring_create("sides", 1024, 0600);
	mmipc_ring *b = mmipc_ring_open("sides");
	mmipc_ring *rx = mmipc_ring_open("sides");
	if (a == NULL || b == NULL || rx == NULL)
		die("sides ring");
	struct view v = view_open("sides");
	uint64_t me = identity_of(getpid());
	EXPECT_ZERO(send_k(a, 0, 8, 0));
	check(owner_of(v, OFF_SEND_SIDE) == me && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_HANDLE)) != 0 &&
		      atomic_load(w32(v, OFF_SEND_SIDE + SIDE_REVOKE)) == 0,
	      "the first sender owns the send side exclusively: owner %#llx (us: %#llx)",
	      (unsigned long long)owner_of(v, OFF_SEND_SIDE), (unsigned long long)me);
	uint32_t cpu = atomic_load(w32(v, OFF_SEND_SIDE + SIDE_CPU));
	check(cpu != UINT32_MAX && cpu < 4096, "the send side records the CPU it ran on: %u", cpu);
	check(recv_k(rx, 0, 8, 0) && owner_of(v, OFF_RECV_SIDE) == me, "the receiver owns the receive side");
	/* A second sender: the side becomes shared, and stays correct in turns. */
	EXPECT_ZERO(send_k(b, 1, 16, 0));
	check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_REVOKE)) == 1,
	      "after a second sender the send side is shared (owner all ones, revoke 1): %#llx",
	      (unsigned long long)owner_of(v, OFF_SEND_SIDE));
	int ok = recv_k(rx, 1, 16, 0);
	for (uint32_t i = 2; i < 2000; i++) {
		mmipc_ring *s = (i % 3 == 0) ? a : b;
		if (send_k(s, i, i % 200, 0) != 0 || !recv_k(rx, i, i % 200, 0))
			ok = 0;
	}
	check(ok, "two senders in turns through the shared side: 2000 messages in order");
	mmipc_ring_close(a);
	check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER, "a shared side stays shared when a sender closes");
	mmipc_lock *sl = (mmipc_lock *)(void *)(v.d + OFF_SEND_LOCK);
	check(sl->owner == 0 && sl->state == 0, "the send lock is free between operations: owner %#llx state %u",
	      (unsigned long long)sl->owner, sl->state);
	/* Receivers too. */
	mmipc_ring *rx2 = mmipc_ring_open("sides");
	EXPECT_ZERO(send_k(b, 5000, 10, 0));
	EXPECT_ZERO(send_k(b, 5001, 10, 0));
	check(recv_k(rx2, 5000, 10, 0) && owner_of(v, OFF_RECV_SIDE) == SHARED_OWNER, "a second receiver shares the receive side");
	check(recv_k(rx, 5001, 10, 0), "and the first one still receives, in order");
	mmipc_ring_close(rx);
	rx = mmipc_ring_open("sides");
	EXPECT_ZERO(send_k(b, 5002, 10, 0));
	check(recv_k(rx, 5002, 10, 0), "a new receiver on a shared side works");
	mmipc_ring_close(b);
	mmipc_ring_close(rx);
	mmipc_ring_close(rx2);
	mmipc_detach(v.r);
	mmipc_unlink("sides");
}

/* EPROTO from each data call, one damaged word at a time (the hostile part shows that damage never
 * crashes; this shows each check is there): a misaligned or runaway tail, a record header with a
 * wrong position tag, kind or length, a tail moved under a reservation, a garbage or not
 * recoverable side lock. A failed call holds nothing, and once repaired the ring works again. */
static void expect_works(mmipc_ring *q, mmipc_ring *r, uint32_t k, const char *after)
{
	check(send_k(q, k, 10, 0) == 0 && recv_k(r, k, 10, 0), "repaired after %s: a message goes through [%s]", after,
	      mmipc_last_error());
}

static void test_damaged_ops(void)
{
	mmipc_ring *q = mmipc_ring_create("dmgops", 1024, 0600);
	mmipc_ring *r = mmipc_ring_open("dmgops");
	if (q == NULL || r == NULL)
		die("dmgops ring");
	struct view v = view_open("dmgops");
	unsigned char buf[1024];
	size_t len = 0;
	expect_works(q, r, 1, "nothing");
	uint64_t t = 0;

	/* The tail: misaligned, then more than a capacity ahead of the head. */
	uint64_t bad_tail_add[] = {3, 2048};
	for (size_t i = 0; i < 2; i++) {
		t = tail_of(v);
		atomic_store(w64(v, OFF_TAIL), t + bad_tail_add[i]);
		EXPECT_FAIL(send_k(q, 2, 10, 0), EPROTO);
		check(strstr(mmipc_last_error(), "mmipc_ring_send") != NULL &&
			      strstr(mmipc_last_error(), "protocol error") != NULL,
		      "EPROTO names the call and says why: \"%s\"", mmipc_last_error());
		EXPECT_NULL(mmipc_ring_reserve(q, 10, 0), EPROTO);
		EXPECT_FAIL((int)mmipc_ring_recv(r, buf, sizeof buf, 0), EPROTO);
		EXPECT_NULL(mmipc_ring_peek(r, &len, 0), EPROTO);
		check(atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 0 && atomic_load(w32(v, OFF_RECV_SIDE + SIDE_IN_OP)) == 0,
		      "a call that failed with EPROTO leaves its side (in_op 0)");
		atomic_store(w64(v, OFF_TAIL), t);
		expect_works(q, r, 3 + (uint32_t)i, i == 0 ? "a misaligned tail" : "a runaway tail");
	}

	/* The next record's header: a wrong position tag, an unknown kind, a length over the largest
	 * message, a length past the tail. */
	t = tail_of(v);
	EXPECT_ZERO(send_k(q, 5, 10, 0));
	_Atomic uint64_t *hdr = w64(v, 512 + (t & 1023));
	uint64_t good = atomic_load(hdr);
	uint64_t tag_pos = (uint64_t)(uint32_t)((t >> 3) << 8) << 32;
	uint64_t bad_hdrs[] = {
		10 | (uint64_t)(1u | (uint32_t)(((t + 8) >> 3) << 8)) << 32,
		10 | (tag_pos | (uint64_t)3 << 32),
		(1024 / 2 - 8 + 1) | (tag_pos | (uint64_t)1 << 32),
		100 | (tag_pos | (uint64_t)1 << 32),
	};
	check(good == (10 | (tag_pos | (uint64_t)1 << 32)), "the record header is len | (kind 1 | pos/8 << 8) << 32: %#llx",
	      (unsigned long long)good);
	for (size_t i = 0; i < sizeof bad_hdrs / sizeof bad_hdrs[0]; i++) {
		atomic_store(hdr, bad_hdrs[i]);
		EXPECT_FAIL((int)mmipc_ring_recv(r, buf, sizeof buf, 0), EPROTO);
		EXPECT_NULL(mmipc_ring_peek(r, &len, 0), EPROTO);
		check(head_of(v) == t, "a damaged record is not consumed");
	}
	atomic_store(hdr, good);
	check(recv_k(r, 5, 10, 0), "the repaired record arrives");

	/* The tail moved while a reservation held the send side: the commit publishes nothing. */
	t = tail_of(v);
	check(mmipc_ring_reserve(q, 10, 0) != NULL, "reserve before the tail moves");
	atomic_store(w64(v, OFF_TAIL), t + 8);
	EXPECT_FAIL(mmipc_ring_commit(q, 10), EPROTO);
	check(strstr(mmipc_last_error(), "mmipc_ring_commit") != NULL, "the commit's EPROTO names it: \"%s\"",
	      mmipc_last_error());
	check(tail_of(v) == t + 8 && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 0,
	      "the failed commit published nothing and left the side");
	EXPECT_FAIL(mmipc_ring_commit(q, 10), EINVAL); /* the reservation is gone */
	atomic_store(w64(v, OFF_TAIL), t);
	expect_works(q, r, 6, "a tail moved under a reservation");

	/* Shared sides whose lock is damaged: garbage state bits, then not recoverable. */
	mmipc_ring *q2 = mmipc_ring_open("dmgops");
	mmipc_ring *r2 = mmipc_ring_open("dmgops");
	if (q2 == NULL || r2 == NULL)
		die("dmgops second handles");
	EXPECT_ZERO(send_k(q2, 7, 10, 0));
	check(recv_k(r2, 7, 10, 0) && owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER && owner_of(v, OFF_RECV_SIDE) == SHARED_OWNER,
	      "a second sender and receiver make both sides shared");
	EXPECT_ZERO(send_k(q, 8, 10, 0));
	uint32_t states[] = {0x80, 2 /* NOTRECOVERABLE */};
	for (size_t i = 0; i < 2; i++) {
		atomic_store(w32(v, OFF_SEND_LOCK + 16), states[i]);
		atomic_store(w32(v, OFF_RECV_LOCK + 16), states[i]);
		EXPECT_FAIL(send_k(q, 9, 10, 0), EPROTO);
		check(strstr(mmipc_last_error(), "lock") != NULL, "a damaged side lock says so: \"%s\"", mmipc_last_error());
		EXPECT_NULL(mmipc_ring_reserve(q2, 10, 50 * MS), EPROTO);
		EXPECT_FAIL((int)mmipc_ring_recv(r, buf, sizeof buf, 0), EPROTO);
		EXPECT_NULL(mmipc_ring_peek(r2, &len, 50 * MS), EPROTO);
		check(atomic_load(w64(v, OFF_SEND_LOCK)) == 0 && atomic_load(w64(v, OFF_RECV_LOCK)) == 0,
		      "nobody holds a damaged lock (state %#x)", states[i]);
		atomic_store(w32(v, OFF_SEND_LOCK + 16), 0);
		atomic_store(w32(v, OFF_RECV_LOCK + 16), 0);
	}
	check(recv_k(r, 8, 10, 0), "the message sent before the damage is still there");
	expect_works(q, r2, 10, "a damaged side lock");

	mmipc_ring_close(q);
	mmipc_ring_close(q2);
	mmipc_ring_close(r);
	mmipc_ring_close(r2);
	mmipc_detach(v.r);
	mmipc_unlink("dmgops");
}

/* A sleeping receiver is woken by the send, and a sleeping sender by the receive that leaves the
 * ring half full: each waits far longer than any spin and the first (1 ms) sleep, with a deadline
 * of 3 s that only a lost wake-up would reach. (Which publish took the count is for the tests
 * below, whose sleepers cannot end a bounded sleep at the wrong moment.) */
static void test_wakeups(void)
{
	mmipc_ring *q = mmipc_ring_create("wake", 1024, 0600);
	if (q == NULL)
		die("mmipc_ring_create wake");
	struct view v = view_open("wake");
	unsigned char buf[1024];
	for (int trial = 0; trial < 3; trial++) {
		pid_t pid = fork_flushed();
		if (pid == 0) {
			child_begin(10);
			sleep_ms(150);
			_exit(send_k(q, (uint32_t)trial, 40, 0) == 0 ? 0 : 1);
		}
		double t0 = now_s();
		ssize_t n = mmipc_ring_recv(q, buf, sizeof buf, 3 * SEC);
		double dt = now_s() - t0;
		int st = 0, w = wait_bounded(pid, 10, &st);
		check(n == 40 && pattern_ok(buf, 40, (uint32_t)trial) && dt < 1.0 && exited_zero(w, st),
		      "a receiver asleep for 150 ms is woken by the send: got %zd after %.3f s", n, dt);
	}
	for (int trial = 0; trial < 3; trial++) {
		int full = 0;
		while (send_k(q, 1000, 120, 0) == 0)
			full++;
		pid_t pid = fork_flushed();
		if (pid == 0) {
			child_begin(10);
			sleep_ms(150);
			int ok = 1;
			while (ok && tail_of(v) - head_of(v) > 512)
				ok &= recv_k(q, 1000, 120, 0);
			_exit(ok ? 0 : 1);
		}
		double t0 = now_s();
		int r = send_k(q, 1000, 120, 3 * SEC);
		double dt = now_s() - t0;
		int st = 0, w = wait_bounded(pid, 10, &st);
		check(full >= 7 && r == 0 && dt < 1.0 && exited_zero(w, st), "a sender asleep for 150 ms on a full ring "
		      "is woken by the receive that leaves it half full: got %d after %.3f s", r, dt);
		while (recv_k(q, 1000, 120, 0))
			;
	}
	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_unlink("wake");
}

/* The sleeper counts (PROTOCOL "Sleeping and waking"): a sleeper counts itself in and never out, a
 * publish that finds a count swaps it to 0, a wait that never got to sleep leaves none, and a
 * receive wakes senders only when it leaves the ring at most half full. */
static void test_sleeper_counts(void)
{
	mmipc_ring *q = mmipc_ring_create("counts", 1024, 0600);
	if (q == NULL)
		die("mmipc_ring_create counts");
	struct view v = view_open("counts");
	_Atomic uint32_t *rs = w32(v, OFF_RECV_SLEEPERS), *ss = w32(v, OFF_SEND_SLEEPERS);
	unsigned char buf[512];
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, 0), EAGAIN);
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, 1), ETIMEDOUT);
	check(atomic_load(rs) == 0, "waits that expired before they could sleep (try-once, 1 ns) leave no count: %u",
	      atomic_load(rs));
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, 20 * MS), ETIMEDOUT);
	check(atomic_load(rs) == 1, "a sleeper that timed out stays counted (nobody woke it): %u", atomic_load(rs));
	EXPECT_FAIL((int)mmipc_ring_recv(q, buf, sizeof buf, 20 * MS), ETIMEDOUT);
	check(atomic_load(rs) == 2, "and a second one adds its own: %u", atomic_load(rs));
	EXPECT_ZERO(send_k(q, 1, 40, 0));
	check(atomic_load(rs) == 0, "the next publish swapped the count to 0: %u", atomic_load(rs));
	EXPECT_ZERO(send_k(q, 2, 40, 0));
	check(atomic_load(rs) == 0 && recv_k(q, 1, 40, 0) && recv_k(q, 2, 40, 0),
	      "later publishes find 0; both messages arrive");

	/* Space: 8 records of 128 bytes fill the ring. */
	int full = 0;
	while (send_k(q, 3, 120, 0) == 0)
		full++;
	EXPECT_FAIL(send_k(q, 3, 120, 20 * MS), ETIMEDOUT);
	check(full >= 7 && atomic_load(ss) == 1, "a sender that timed out on a full ring stays counted: %u",
	      atomic_load(ss));
	int ok = 1;
	for (int i = 1; i <= full; i++) {
		ok &= recv_k(q, 3, 120, 0);
		uint64_t used = tail_of(v) - head_of(v);
		uint32_t c = atomic_load(ss);
		ok &= qcheck(used > 512 ? c == 1 : c == 0, "receive %d leaves %llu of 1024 bytes: send_sleepers %u (want %s)",
			     i, (unsigned long long)used, c, used > 512 ? "1: no wake-up above half full" : "0: woken");
	}
	check(ok, "receives wake senders only once the ring is at most half full");
	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_unlink("counts");
}

/* Stops a child (SIGSTOP) and waits until it is stopped: 1, or 0 when it did not stop within 10 s. */
static int stop_child(pid_t pid)
{
	if (kill(pid, SIGSTOP) != 0)
		return 0;
	double end = now_s() + 10;
	for (;;) {
		int st = 0;
		pid_t w = waitpid(pid, &st, WUNTRACED | WNOHANG);
		if (w == pid)
			return WIFSTOPPED(st);
		if (w < 0 || now_s() > end)
			return 0;
		usleep(200);
	}
}

/* One wake-up per sleep: a receiver that sleeps counted (a forked child) is stopped, the way a
 * peer on a shared CPU does not run while the publisher does; the first publish takes its count
 * and wakes it, and the next ones find 0 and make no system call, however many follow before the
 * sleeper runs again. */
static void test_wake_once(void)
{
	enum { N = 50 };
	mmipc_ring *q = mmipc_ring_create("once", 8192, 0600);
	if (q == NULL)
		die("mmipc_ring_create once");
	struct view v = view_open("once");
	_Atomic uint32_t *rs = w32(v, OFF_RECV_SLEEPERS);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(30);
		for (uint32_t i = 0; i < N; i++)
			if (!recv_k(q, i, 40, 20 * SEC))
				_exit(1);
		_exit(0);
	}
	check(POLL_UNTIL(atomic_load(rs) >= 1, 10), "the receiver counted itself in as a sleeper");
	sleep_ms(20);
	int stopped = stop_child(pid);
	int zero = 0;
	for (uint32_t i = 0; i < N; i++) {
		if (send_k(q, i, 40, 0) != 0)
			break;
		zero += atomic_load(rs) == 0;
	}
	check(stopped && zero == N, "the first publish took the count, all %d found it 0 while the sleeper had not run "
	      "again: %d", N, zero);
	kill(pid, SIGCONT);
	int st = 0, w = wait_bounded(pid, 20, &st);
	char d[128];
	check(exited_zero(w, st), "the sleeper, woken once, receives all %d in order: %s", N, describe(w, st, d, sizeof d));
	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_unlink("once");
}

/* A sender waiting for space is woken only by a receive that leaves the ring at most half full, and
 * still always: a sender of the largest message (capacity / 2 - 8 bytes, a record of half the
 * ring) whose record needs padding before the buffer's end may not fit at half full; every later
 * receive wakes it again, until it fits (an empty ring fits any message). The sender is a forked
 * child, stopped around each receive, so that the count read right after a receive shows what the
 * receive did: kept (no wake-up) or swapped to 0 (woken). Ring of 1 KiB, records of 64 bytes, the
 * head and tail starting at `start`. */
static void test_space_hysteresis(void)
{
	static const uint64_t starts[] = {0, 576, 936};
	for (size_t k = 0; k < sizeof starts / sizeof starts[0]; k++) {
		mmipc_ring *q = mmipc_ring_create("hyst", 1024, 0600);
		mmipc_region *cr = mmipc_anon(4096);
		if (q == NULL || cr == NULL)
			die("hysteresis setup");
		_Atomic int *done = mmipc_data(cr);
		struct view v = view_open("hyst");
		_Atomic uint32_t *ss = w32(v, OFF_SEND_SLEEPERS);
		size_t big = mmipc_ring_max_message(q);
		unsigned char buf[1024];
		while (tail_of(v) < starts[k]) {
			size_t len = starts[k] - tail_of(v) >= 16 ? 8 : 0;
			if (send_k(q, 0, len, 0) != 0 || !recv_k(q, 0, len, 0))
				die("hysteresis: moving to the start");
		}
		int filled = 0;
		while (send_k(q, (uint32_t)filled, 56, 0) == 0)
			filled++;
		pid_t pid = fork_flushed();
		if (pid == 0) {
			child_begin(30);
			int r = send_k(q, 7777, big, 20 * SEC);
			atomic_store(done, 1);
			_exit(r == 0 ? 0 : 1);
		}
		int ok = 1, futile = 0, early = 0, fit_at = -1;
		quiet = 1;
		for (int i = 0; i < filled && ok; i++) {
			ok &= qcheck(POLL_UNTIL(atomic_load(ss) >= 1, 10), "the sender is counted as a sleeper");
			ok &= qcheck(stop_child(pid), "the sender stopped");
			early += atomic_load(done);
			ok &= recv_k(q, (uint32_t)i, 56, 0);
			uint64_t t = tail_of(v), used = t - head_of(v), off = t & 1023;
			uint64_t pad = off + 512 > 1024 ? 1024 - off : 0;
			int fits = 1024 - used >= pad + 512;
			uint32_t c = atomic_load(ss);
			ok &= qcheck(used > 512 ? c >= 1 : c == 0,
				     "start %llu, receive %d: %llu bytes left, send_sleepers %u (want %s)",
				     (unsigned long long)starts[k], i, (unsigned long long)used, c,
				     used > 512 ? "kept: no wake-up above half full" : "0: woken");
			futile += used <= 512 && !fits;
			kill(pid, SIGCONT);
			if (fits) {
				fit_at = i;
				ok &= qcheck(POLL_UNTIL(atomic_load(done), 10), "the sender is done once its message fits");
				break;
			}
		}
		quiet = 0;
		int st = 0, w = wait_bounded(pid, 20, &st);
		char d[128];
		int got = 0;
		for (int i = fit_at + 1; i < filled; i++)
			got += recv_k(q, (uint32_t)i, 56, 0);
		ssize_t n = mmipc_ring_recv(q, buf, sizeof buf, 0);
		check(ok && early == 0 && fit_at >= 0 && exited_zero(w, st) && got == filled - fit_at - 1 &&
			      n == (ssize_t)big && pattern_ok(buf, big, 7777) && (starts[k] == 0 || futile > 0),
		      "start %llu: a sender of the largest message (%zu bytes) on a ring full of %d records is woken "
		      "after receive %d, %d receives at or below half full woke it before its message fit: %s",
		      (unsigned long long)starts[k], big, filled, fit_at, futile, describe(w, st, d, sizeof d));
		mmipc_detach(v.r);
		mmipc_detach(cr);
		mmipc_ring_close(q);
		mmipc_unlink("hyst");
	}
}

/* This thread pinned to one CPU (the one it runs on); *saved gets the old mask. */
static int pin_here(cpu_set_t *saved)
{
	if (sched_getaffinity(0, sizeof *saved, saved) != 0)
		return -1;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	return sched_setaffinity(0, sizeof one, &one);
}

static int pin_to(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one);
}

/* The first token of /proc/<pid>/syscall: the number of the system call the process is blocked
 * in, -1 when blocked elsewhere, -2 when running or unreadable. */
static long blocked_in(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -2;
	long nr = -2;
	if (fgets(line, sizeof line, f) != NULL && strncmp(line, "running", 7) != 0)
		nr = strtol(line, NULL, 10);
	fclose(f);
	return nr;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On a shared CPU a waiter yields to its peer instead of spinning; but a peer that is idle (blocked
 * in something else, here nanosleep and waitpid) must not turn that into a yield loop: the wait
 * ends up asleep in the futex, counted, and burns almost no CPU for the 0.6 s it lasts. */
static void test_shared_cpu_idle(void)
{
	cpu_set_t saved;
	if (pin_here(&saved) != 0)
		die("pinning");
	mmipc_ring *q = mmipc_ring_create("idle", 1024, 0600);
	mmipc_region *cr = mmipc_anon(4096);
	if (q == NULL || cr == NULL)
		die("idle setup");
	struct report {
		_Atomic int err;
		_Atomic int64_t cpu_ns, wall_ns;
	} *rep = mmipc_data(cr);
	struct view v = view_open("idle");
	EXPECT_ZERO(send_k(q, 1, 40, 0)); /* the send side notes this CPU */
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		if (!recv_k(q, 1, 40, 0))
			_exit(1);
		double c0 = thread_cpu_s(), t0 = now_s();
		errno = 0;
		ssize_t n = mmipc_ring_recv(q, NULL, 0, 600 * MS);
		atomic_store(&rep->err, n < 0 ? errno : 0);
		atomic_store(&rep->cpu_ns, (int64_t)((thread_cpu_s() - c0) * 1e9));
		atomic_store(&rep->wall_ns, (int64_t)((now_s() - t0) * 1e9));
		_exit(0);
	}
	int counted = POLL_UNTIL(atomic_load(w32(v, OFF_RECV_SLEEPERS)) >= 1, 10);
	sleep_ms(100);
	long nr = blocked_in(pid);
	int same = atomic_load(w32(v, OFF_SEND_SIDE + SIDE_CPU)) == atomic_load(w32(v, OFF_RECV_SIDE + SIDE_CPU));
	int st = 0, w = wait_bounded(pid, 20, &st);
	double wall = (double)atomic_load(&rep->wall_ns) / 1e9, cpu = (double)atomic_load(&rep->cpu_ns) / 1e9;
	check(counted && same && nr == SYS_futex && exited_zero(w, st) && atomic_load(&rep->err) == ETIMEDOUT &&
		      wall >= 0.59 && cpu < 0.05,
	      "an idle receiver on its peer's CPU sleeps in the futex (blocked in syscall %ld, want %d), counted: "
	      "%s after %.3f s, %.4f s of CPU", nr, SYS_futex, strerror(atomic_load(&rep->err)), wall, cpu);
	mmipc_detach(v.r);
	mmipc_detach(cr);
	mmipc_ring_close(q);
	mmipc_unlink("idle");
	sched_setaffinity(0, sizeof saved, &saved);
}

static long voluntary_switches(void)
{
	struct rusage ru;
	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

/* A ping-pong of two processes pinned to one CPU, through two rings: each waits for the other,
 * which last ran on its CPU, so it yields instead of spinning or sleeping, and the peer, runnable
 * there, answers during the yield. Sleeping would show as a voluntary context switch per wait
 * (a yield is an involuntary one): few waits may end asleep. */
static void test_shared_cpu_yields(void)
{
	enum { N = 2000, WARM = 50 };
	cpu_set_t saved;
	if (pin_here(&saved) != 0)
		die("pinning");
	mmipc_ring *ping = mmipc_ring_create("yping", 1024, 0600), *pong = mmipc_ring_create("ypong", 1024, 0600);
	mmipc_region *cr = mmipc_anon(4096);
	if (ping == NULL || pong == NULL || cr == NULL)
		die("yield setup");
	_Atomic long *child_sleeps = mmipc_data(cr);
	atomic_store(child_sleeps, -1);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(60);
		long s0 = 0;
		for (uint32_t i = 0; i < N + WARM; i++) {
			if (i == WARM)
				s0 = voluntary_switches();
			if (!recv_k(ping, i, 40, 20 * SEC) || send_k(pong, i, 40, 20 * SEC) != 0)
				_exit(1);
		}
		atomic_store(child_sleeps, voluntary_switches() - s0);
		_exit(0);
	}
	int ok = 1;
	long s0 = 0;
	double t0 = 0;
	for (uint32_t i = 0; i < N + WARM && ok; i++) {
		if (i == WARM) {
			s0 = voluntary_switches();
			t0 = now_s();
		}
		ok &= send_k(ping, i, 40, 20 * SEC) == 0 && recv_k(pong, i, 40, 20 * SEC);
	}
	long sleeps = voluntary_switches() - s0;
	double dt = now_s() - t0;
	int st = 0, w = wait_bounded(pid, 30, &st);
	long cs = atomic_load(child_sleeps);
	check(ok && exited_zero(w, st) && sleeps < N / 4 && cs >= 0 && cs < N / 4,
	      "a ping-pong on one CPU yields rather than sleeps: %d round trips in %.3f s (%.2f us each), futex sleeps "
	      "%ld here and %ld in the peer", N, dt, dt / N * 1e6, sleeps, cs);
	mmipc_ring_close(ping);
	mmipc_ring_close(pong);
	mmipc_detach(cr);
	mmipc_unlink("yping");
	mmipc_unlink("ypong");
	sched_setaffinity(0, sizeof saved, &saved);
}

/* A side notes its CPU at its first publish after its thread yielded or slept, on any ring: a
 * ping-pong waits on one ring and publishes on the other, so the waits alone would leave the
 * publishing side's cpu word where it was claimed. */
static void test_cpu_noted_after_wait(void)
{
	cpu_set_t saved;
	if (sched_getaffinity(0, sizeof saved, &saved) != 0)
		die("sched_getaffinity");
	int a = -1, b = -1;
	for (int c = 0; c < CPU_SETSIZE && b < 0; c++)
		if (CPU_ISSET(c, &saved)) {
			if (a < 0)
				a = c;
			else
				b = c;
		}
	if (b < 0) {
		printf("# cpu word after a wait: skipped, this process may run on one CPU only\n");
		return;
	}
	mmipc_ring *p = mmipc_ring_create("cpu-p", 1024, 0600), *q = mmipc_ring_create("cpu-q", 1024, 0600);
	if (p == NULL || q == NULL)
		die("cpu rings");
	struct view vq = view_open("cpu-q");
	_Atomic uint32_t *word = w32(vq, OFF_SEND_SIDE + SIDE_CPU);
	if (pin_to(a) != 0)
		die("pinning");
	EXPECT_ZERO(send_k(q, 1, 8, 0));
	uint32_t claimed = atomic_load(word);
	if (pin_to(b) != 0)
		die("pinning");
	EXPECT_FAIL((int)mmipc_ring_recv(p, NULL, 0, 5 * MS), ETIMEDOUT); /* sleeps, on ring p */
	EXPECT_ZERO(send_k(q, 2, 8, 0));
	uint32_t after = atomic_load(word);
	check(claimed == (uint32_t)a && after == (uint32_t)b,
	      "ring q's send side: CPU %u when claimed on CPU %d, %u after a wait on ring p moved to CPU %d", claimed, a,
	      after, b);
	sched_setaffinity(0, sizeof saved, &saved);
	mmipc_detach(vq.r);
	mmipc_ring_close(p);
	mmipc_ring_close(q);
	mmipc_unlink("cpu-p");
	mmipc_unlink("cpu-q");
}

/* A long randomized run in one process: random sizes (0..max), bursts until full, drains of
 * random length, every message checked. */
static void test_random(void)
{
	mmipc_ring *s = mmipc_ring_create("random", 4096, 0600);
	mmipc_ring *r = mmipc_ring_open("random");
	if (s == NULL || r == NULL)
		die("random ring");
	size_t max = mmipc_ring_max_message(s);
	unsigned char out[4096], in[4096];
	uint32_t next_send = 0, next_recv = 0;
	long bad = 0, fulls = 0, empties = 0;
	size_t lens[1 << 12];
	double t0 = now_s();
	while (next_recv < 300000 && now_s() - t0 < 60) {
		int burst = (int)(rnd() % 40);
		for (int i = 0; i < burst; i++) {
			size_t len = rnd() % 4 == 0 ? rnd() % (max + 1) : MSG_HEADER + rnd() % 100;
			if (len < MSG_HEADER)
				len = MSG_HEADER;
			make_msg(out, len, 7, next_send);
			if (mmipc_ring_send(s, out, len, 0) != 0) {
				if (errno != EAGAIN)
					bad++;
				fulls++;
				break;
			}
			lens[next_send % (1 << 12)] = len;
			next_send++;
		}
		int drain = (int)(rnd() % 40);
		for (int i = 0; i < drain; i++) {
			ssize_t n = mmipc_ring_recv(r, in, sizeof in, 0);
			if (n < 0) {
				if (errno != EAGAIN || next_recv != next_send)
					bad++;
				empties++;
				break;
			}
			uint32_t snd, seq;
			if (!msg_ok(in, (size_t)n, &snd, &seq) || snd != 7 || seq != next_recv ||
			    (size_t)n != lens[next_recv % (1 << 12)])
				bad++;
			next_recv++;
		}
	}
	check(bad == 0 && next_recv >= 300000 && fulls > 0 && empties > 0,
	      "randomized: %u messages checked (sizes 0..%zu), %ld times full, %ld times empty, %ld bad, %.2f s", next_recv,
	      max, fulls, empties, bad, now_s() - t0);
	mmipc_ring_close(s);
	mmipc_ring_close(r);
	mmipc_unlink("random");
}

static void part_api(void)
{
	test_create_open_errors();
	test_capacity();
	test_all_sizes();
	test_timeouts();
	test_zero_copy();
	test_sides();
	test_damaged_ops();
	test_wakeups();
	test_sleeper_counts();
	test_wake_once();
	test_space_hysteresis();
	test_shared_cpu_idle();
	test_shared_cpu_yields();
	test_cpu_noted_after_wait();
	test_random();
}

/* ======================= spsc ======================= */

#define SPSC_COUNT 1000000u

/* Message i's length: mostly small, now and then up to the largest. */
static size_t spsc_len(uint32_t i, size_t max)
{
	uint32_t h = i * 2654435761u;
	return (h >> 28) == 0 ? MSG_HEADER + (h >> 8) % (max - MSG_HEADER + 1) : MSG_HEADER + (h >> 8) % 48;
}

static void part_spsc(void)
{
	mmipc_ring *q = mmipc_ring_create("spsc", 1024, 0600);
	if (q == NULL)
		die("mmipc_ring_create spsc");
	struct view v = view_open("spsc");
	size_t max = mmipc_ring_max_message(q);
	/* A third process samples the sleeper counts, to show that both sides really slept. */
	mmipc_region *sr = mmipc_anon(4096);
	if (sr == NULL)
		die("mmipc_anon");
	_Atomic uint32_t *seen = mmipc_data(sr); /* [0] stop, [1] a receiver slept, [2] a sender slept */
	pid_t sampler = fork_flushed();
	if (sampler == 0) {
		child_begin(150);
		while (!atomic_load(&seen[0])) {
			if (atomic_load(w32(v, OFF_RECV_SLEEPERS)) != 0)
				atomic_store(&seen[1], 1);
			if (atomic_load(w32(v, OFF_SEND_SLEEPERS)) != 0)
				atomic_store(&seen[2], 1);
			usleep(100);
		}
		_exit(0);
	}
	double t0 = now_s();
	pid_t pid = fork_flushed();
	if (pid == 0) {
		/* The sender, in the forked child, with the parent's handle. */
		child_begin(150);
		unsigned char m[1024];
		long failures = 0;
		for (uint32_t i = 0; i < SPSC_COUNT; i++) {
			size_t len = spsc_len(i, max);
			make_msg(m, len, 1, i);
			if (mmipc_ring_send(q, m, len, 10 * SEC) != 0 && failures++ < 5)
				printf("not ok - spsc sender: message %u: %s [%s]\n", i, strerror(errno), mmipc_last_error());
			/* Pauses that make the receiver find the ring empty long enough to sleep. */
			if (i % 100000 == 50000)
				sleep_ms(5);
			if (i % 20000 == 10000)
				usleep(200);
		}
		check(failures == 0, "spsc sender: %u messages sent, %ld failures", SPSC_COUNT, failures);
		child_exit();
	}
	unsigned char m[1024];
	long bad = 0, failures = 0;
	for (uint32_t i = 0; i < SPSC_COUNT; i++) {
		/* Pauses that make the sender find the ring full long enough to sleep. */
		if (i % 100000 == 0)
			sleep_ms(5);
		if (i % 20000 == 0)
			usleep(200);
		ssize_t n = mmipc_ring_recv(q, m, sizeof m, 10 * SEC);
		if (n < 0) {
			if (failures++ < 5)
				printf("not ok - spsc receiver: message %u: %s [%s]\n", i, strerror(errno), mmipc_last_error());
			if (failures > 5)
				break;
			continue;
		}
		uint32_t snd, seq;
		if ((!msg_ok(m, (size_t)n, &snd, &seq) || snd != 1 || seq != i || (size_t)n != spsc_len(i, max)) &&
		    bad++ < 5)
			printf("not ok - spsc receiver: message %u: %zd bytes, intact %d, seq %u\n", i, n,
			       msg_ok(m, (size_t)n, &snd, &seq), seq);
	}
	double dt = now_s() - t0;
	int st = 0, w = wait_bounded(pid, 60, &st);
	char buf[128];
	check(exited_zero(w, st), "spsc: the forked sender: %s", describe(w, st, buf, sizeof buf));
	atomic_store(&seen[0], 1);
	w = wait_bounded(sampler, 10, &st);
	check(exited_zero(w, st) && atomic_load(&seen[1]) && atomic_load(&seen[2]),
	      "spsc: both sides slept at times (seen: receiver %u, sender %u)", atomic_load(&seen[1]),
	      atomic_load(&seen[2]));
	mmipc_detach(sr);
	check(bad == 0 && failures == 0, "spsc through a 1 KiB ring across fork: %u messages in order and intact (%ld bad, "
	      "%ld failed receives), %.2f s (%.2f M msg/s)", SPSC_COUNT, bad, failures, dt, SPSC_COUNT / dt / 1e6);
	uint64_t me = identity_of(getpid()), so = owner_of(v, OFF_SEND_SIDE);
	check(owner_of(v, OFF_RECV_SIDE) == me && so != 0 && so != SHARED_OWNER && (uint32_t)so == (uint32_t)pid,
	      "spsc: each side stayed exclusively its one user's (lock-free all along): send %#llx recv %#llx",
	      (unsigned long long)so, (unsigned long long)owner_of(v, OFF_RECV_SIDE));
	check(atomic_load(w32(v, OFF_SEND_SLEEPERS)) == 0 && atomic_load(w32(v, OFF_RECV_SLEEPERS)) == 0,
	      "no sleeper left registered: send %u recv %u", atomic_load(w32(v, OFF_SEND_SLEEPERS)),
	      atomic_load(w32(v, OFF_RECV_SLEEPERS)));
	check(tail_of(v) == head_of(v), "drained: tail %llu = head %llu", (unsigned long long)tail_of(v),
	      (unsigned long long)head_of(v));
	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_unlink("spsc");
}

/* ======================= mpmc ======================= */

#define MPMC_SENDERS 4
#define MPMC_RECEIVERS 3
#define MPMC_PER_SENDER 50000u
#define MPMC_TOTAL (MPMC_SENDERS * MPMC_PER_SENDER)

struct mpmc_log {
	_Atomic uint32_t received;
	_Atomic uint32_t dups, bad, order, failures, senders_done;
	_Atomic uint32_t per_receiver[MPMC_RECEIVERS];
	_Atomic uint64_t seen[(MPMC_TOTAL + 63) / 64];
};

static struct mpmc_log *mpmc_attach(mmipc_region **r)
{
	*r = mmipc_open("mpmc-log", 0);
	if (*r == NULL)
		die("mmipc_open mpmc-log");
	return mmipc_data(*r);
}

static int role_mpmc_send(char **argv)
{
	alarm(150);
	uint32_t id = (uint32_t)atoi(argv[2]);
	mmipc_region *lr;
	struct mpmc_log *log = mpmc_attach(&lr);
	mmipc_ring *q = mmipc_ring_open("mpmc");
	if (q == NULL)
		die("mmipc_ring_open mpmc");
	rng_state ^= id * 0x9E3779B97F4A7C15ULL;
	unsigned char m[512];
	for (uint32_t i = 0; i < MPMC_PER_SENDER; i++) {
		size_t len = MSG_HEADER + rnd() % 200;
		make_msg(m, len, id, i);
		if (mmipc_ring_send(q, m, len, 20 * SEC) != 0) {
			printf("not ok - mpmc sender %u: message %u: %s [%s]\n", id, i, strerror(errno), mmipc_last_error());
			atomic_fetch_add(&log->failures, 1);
			break;
		}
	}
	atomic_fetch_add(&log->senders_done, 1);
	mmipc_ring_close(q);
	mmipc_detach(lr);
	return 0;
}

static int role_mpmc_recv(char **argv)
{
	alarm(150);
	uint32_t id = (uint32_t)atoi(argv[2]);
	mmipc_region *lr;
	struct mpmc_log *log = mpmc_attach(&lr);
	mmipc_ring *q = mmipc_ring_open("mpmc");
	if (q == NULL)
		die("mmipc_ring_open mpmc");
	int64_t last[MPMC_SENDERS];
	for (int i = 0; i < MPMC_SENDERS; i++)
		last[i] = -1;
	unsigned char m[512];
	double idle_since = now_s();
	while (atomic_load(&log->received) < MPMC_TOTAL) {
		ssize_t n = mmipc_ring_recv(q, m, sizeof m, 100 * MS);
		if (n < 0) {
			if (errno != ETIMEDOUT) {
				printf("not ok - mpmc receiver %u: %s [%s]\n", id, strerror(errno), mmipc_last_error());
				atomic_fetch_add(&log->failures, 1);
				break;
			}
			if (now_s() - idle_since > 30) {
				printf("not ok - mpmc receiver %u: nothing for 30 s at %u received\n", id,
				       atomic_load(&log->received));
				atomic_fetch_add(&log->failures, 1);
				break;
			}
			continue;
		}
		idle_since = now_s();
		uint32_t snd, seq;
		if (!msg_ok(m, (size_t)n, &snd, &seq) || snd >= MPMC_SENDERS || seq >= MPMC_PER_SENDER) {
			atomic_fetch_add(&log->bad, 1);
			continue;
		}
		if ((int64_t)seq <= last[snd])
			atomic_fetch_add(&log->order, 1);
		last[snd] = seq;
		uint32_t k = snd * MPMC_PER_SENDER + seq;
		if (atomic_fetch_or(&log->seen[k / 64], (uint64_t)1 << (k % 64)) & ((uint64_t)1 << (k % 64)))
			atomic_fetch_add(&log->dups, 1);
		atomic_fetch_add(&log->per_receiver[id], 1);
		atomic_fetch_add(&log->received, 1);
	}
	mmipc_ring_close(q);
	mmipc_detach(lr);
	return 0;
}

static void part_mpmc(void)
{
	mmipc_ring *q = mmipc_ring_create("mpmc", 4096, 0600);
	mmipc_region *lr = mmipc_create("mpmc-log", sizeof(struct mpmc_log), 0600);
	if (q == NULL || lr == NULL)
		die("mpmc setup");
	struct mpmc_log *log = mmipc_data(lr);
	double t0 = now_s();
	pid_t pids[MPMC_SENDERS + MPMC_RECEIVERS];
	for (int i = 0; i < MPMC_RECEIVERS; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *args[] = {"mpmc-recv", id, NULL};
		pids[i] = spawn_self(args);
	}
	for (int i = 0; i < MPMC_SENDERS; i++) {
		char id[16];
		snprintf(id, sizeof id, "%d", i);
		const char *args[] = {"mpmc-send", id, NULL};
		pids[MPMC_RECEIVERS + i] = spawn_self(args);
	}
	char buf[128];
	for (int i = 0; i < MPMC_SENDERS + MPMC_RECEIVERS; i++) {
		int st = 0, w = wait_bounded(pids[i], 160, &st);
		check(exited_zero(w, st), "mpmc %s %d: %s", i < MPMC_RECEIVERS ? "receiver" : "sender",
			       i < MPMC_RECEIVERS ? i : i - MPMC_RECEIVERS, describe(w, st, buf, sizeof buf));
	}
	double dt = now_s() - t0;
	uint32_t missing = 0;
	for (uint32_t k = 0; k < MPMC_TOTAL; k++)
		missing += !(atomic_load(&log->seen[k / 64]) >> (k % 64) & 1);
	check(atomic_load(&log->received) == MPMC_TOTAL && missing == 0 && atomic_load(&log->dups) == 0 &&
		      atomic_load(&log->bad) == 0 && atomic_load(&log->order) == 0 && atomic_load(&log->failures) == 0,
	      "mpmc: %d senders x %u messages to %d receivers: %u received, %u missing, %u duplicates, %u damaged, %u "
	      "out of order, %u failures, %.2f s",
	      MPMC_SENDERS, MPMC_PER_SENDER, MPMC_RECEIVERS, atomic_load(&log->received), missing, atomic_load(&log->dups),
	      atomic_load(&log->bad), atomic_load(&log->order), atomic_load(&log->failures), dt);
	printf("# mpmc: per receiver %u %u %u\n", atomic_load(&log->per_receiver[0]), atomic_load(&log->per_receiver[1]),
	       atomic_load(&log->per_receiver[2]));
	struct view v = view_open("mpmc");
	check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER && owner_of(v, OFF_RECV_SIDE) == SHARED_OWNER,
	      "mpmc: both sides ended shared: send %#llx recv %#llx", (unsigned long long)owner_of(v, OFF_SEND_SIDE),
	      (unsigned long long)owner_of(v, OFF_RECV_SIDE));
	check(tail_of(v) == head_of(v), "mpmc: drained");
	/* The shared ring still works for a newcomer. A count left by a wait that ended without a
	 * wake-up (a receiver that timed out at the end) is taken by the next publish. */
	EXPECT_ZERO(send_k(q, 42, 42, 0));
	check(atomic_load(w32(v, OFF_RECV_SLEEPERS)) == 0, "a publish leaves no receiver counted as a sleeper: %u",
	      atomic_load(w32(v, OFF_RECV_SLEEPERS)));
	check(recv_k(q, 42, 42, 0), "after the run the shared ring still carries a message");
	check(atomic_load(w32(v, OFF_SEND_SLEEPERS)) == 0,
	      "a consumption that empties the ring leaves no sender counted as a sleeper: %u",
	      atomic_load(w32(v, OFF_SEND_SLEEPERS)));
	mmipc_detach(v.r);
	mmipc_ring_close(q);
	mmipc_detach(lr);
	mmipc_unlink("mpmc");
	mmipc_unlink("mpmc-log");
}

/* ======================= death ======================= */

/* The page the parent and its forked children coordinate through. */
struct coord {
	_Atomic uint32_t step;
	_Atomic uint32_t go;
};

static struct coord *co;

static int wait_step(uint32_t want, double secs) { return POLL_UNTIL(atomic_load(&co->step) >= want, secs); }

static mmipc_ring *fresh_ring(const char *name)
{
	mmipc_unlink(name);
	mmipc_ring *q = mmipc_ring_create(name, 4096, 0600);
	if (q == NULL)
		die("mmipc_ring_create");
	return q;
}

static void reap_killed(pid_t pid, const char *what)
{
	kill(pid, SIGKILL);
	int st = 0, w = wait_bounded(pid, 10, &st);
	char buf[128];
	check(w == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s was killed: %s", what, describe(w, st, buf, sizeof buf));
}

static void test_killed_exclusive_sender(void)
{
	mmipc_ring *q = fresh_ring("killed");
	struct view v = view_open("killed");
	atomic_store(&co->step, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		send_k(q, 1, 20, 0); /* claims the send side */
		unsigned char *p = mmipc_ring_reserve(q, 100, 0);
		if (p != NULL)
			fill_pattern(p, 100, 666);
		atomic_store(&co->step, p != NULL ? 1 : 99);
		for (;;)
			pause();
	}
	check(wait_step(1, 10) && atomic_load(&co->step) == 1, "the child sent one message and reserved a second");
	uint64_t child_id = identity_of(pid);
	check(owner_of(v, OFF_SEND_SIDE) == child_id && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_IN_OP)) == 1,
	      "the child owns the send side exclusively, inside an operation");
	reap_killed(pid, "the exclusive sender, between reserve and commit");
	double t0 = now_s();
	int s = send_k(q, 2, 30, 1 * SEC);
	check(s == 0 && now_s() - t0 < 1.0, "a new sender takes the dead owner's side over: %d [%s]", s, s ? mmipc_last_error() : "");
	check(owner_of(v, OFF_SEND_SIDE) == identity_of(getpid()) && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_REVOKE)) == 0,
	      "taken over exclusively (not shared): owner %#llx", (unsigned long long)owner_of(v, OFF_SEND_SIDE));
	check(recv_k(q, 1, 20, 0), "the message sent before the death arrives");
	check(recv_k(q, 2, 30, 0), "the next message is the new sender's: the reserved one was never delivered");
	unsigned char buf[256];
	check(mmipc_ring_recv(q, buf, sizeof buf, 0) == -1 && errno == EAGAIN, "and nothing else");
	EXPECT_ZERO(send_k(q, 3, 40, 0));
	check(recv_k(q, 3, 40, 0), "the new owner keeps sending");
	mmipc_detach(v.r);
	mmipc_ring_close(q);
}

static void test_revoke_idle_owner(void)
{
	mmipc_ring *q = fresh_ring("revoke");
	struct view v = view_open("revoke");
	atomic_store(&co->step, 0);
	atomic_store(&co->go, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		int ok = send_k(q, 1, 10, 0) == 0;
		atomic_store(&co->step, 1);
		POLL_UNTIL(atomic_load(&co->go) == 1, 15); /* idle, alive, owning the side */
		ok &= send_k(q, 3, 30, 5 * SEC) == 0; /* revoked meanwhile: goes the shared way */
		atomic_store(&co->step, ok ? 2 : 98);
		_exit(ok ? 0 : 1);
	}
	wait_step(1, 10);
	check(owner_of(v, OFF_SEND_SIDE) == identity_of(pid), "the child owns the send side, idle");
	double t0 = now_s();
	int s = send_k(q, 2, 20, 5 * SEC);
	check(s == 0 && now_s() - t0 < 1.0, "another sender revokes the idle live owner's claim at once: %d after %.3f s [%s]", s,
	      now_s() - t0, s ? mmipc_last_error() : "");
	check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER && atomic_load(w32(v, OFF_SEND_SIDE + SIDE_REVOKE)) == 1,
	      "the side is shared now: owner %#llx", (unsigned long long)owner_of(v, OFF_SEND_SIDE));
	atomic_store(&co->go, 1);
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st) && atomic_load(&co->step) == 2, "the revoked owner sends again through the shared side");
	check(recv_k(q, 1, 10, 0) && recv_k(q, 2, 20, 0) && recv_k(q, 3, 30, 0), "all three messages, in order");
	mmipc_detach(v.r);
	mmipc_ring_close(q);
}

static void test_owner_holding_reservation(void)
{
	mmipc_ring *q = fresh_ring("holding");
	atomic_store(&co->step, 0);
	atomic_store(&co->go, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		unsigned char *p = mmipc_ring_reserve(q, 50, 0);
		if (p != NULL)
			fill_pattern(p, 50, 1);
		atomic_store(&co->step, 1);
		POLL_UNTIL(atomic_load(&co->go) == 1, 15);
		int ok = p != NULL && mmipc_ring_commit(q, 50) == 0;
		_exit(ok ? 0 : 1);
	}
	wait_step(1, 10);
	double t0 = now_s();
	errno = 0;
	int s = send_k(q, 2, 20, 50 * MS);
	int err = errno;
	double dt = now_s() - t0;
	check(s == -1 && err == ETIMEDOUT && dt >= 0.049 && dt < 2.0,
	      "while a live owner holds a reservation, another sender times out: %d %s after %.3f s", s, strerror(err), dt);
	EXPECT_FAIL(send_k(q, 2, 20, 0), EAGAIN);
	atomic_store(&co->go, 1);
	s = send_k(q, 2, 20, 5 * SEC);
	check(s == 0, "after the owner commits, the other sender proceeds: %d [%s]", s, s ? mmipc_last_error() : "");
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "the owner committed");
	check(recv_k(q, 1, 50, 0) && recv_k(q, 2, 20, 0), "the committed message, then the waiting sender's");
	mmipc_ring_close(q);
}

static void test_killed_shared_sender(void)
{
	mmipc_ring *q = fresh_ring("shared-killed");
	mmipc_ring *b = mmipc_ring_open("shared-killed");
	struct view v = view_open("shared-killed");
	/* Make the send side shared: two senders. */
	send_k(q, 1, 10, 0);
	send_k(b, 2, 10, 0);
	check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER, "the send side is shared");
	atomic_store(&co->step, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		unsigned char *p = mmipc_ring_reserve(q, 64, 0); /* holds the send lock */
		if (p != NULL)
			fill_pattern(p, 64, 666);
		atomic_store(&co->step, p ? 1 : 99);
		for (;;)
			pause();
	}
	check(wait_step(1, 10) && atomic_load(&co->step) == 1, "a sender on the shared side reserved");
	mmipc_lock *sl = (mmipc_lock *)(void *)(v.d + OFF_SEND_LOCK);
	check(sl->owner == identity_of(pid), "it holds the send lock");
	reap_killed(pid, "the shared-side sender, holding the lock between reserve and commit");
	int s = send_k(b, 3, 10, 5 * SEC);
	check(s == 0, "the next sender takes the dead holder's lock and sends: %d [%s]", s, s ? mmipc_last_error() : "");
	check(sl->owner == 0 && sl->state == 0, "the lock is free and consistent after it: state %u", sl->state);
	check(recv_k(q, 1, 10, 0) && recv_k(q, 2, 10, 0) && recv_k(q, 3, 10, 0), "1, 2, 3 arrive; the reserved message never");
	unsigned char buf[128];
	check(mmipc_ring_recv(q, buf, sizeof buf, 0) == -1 && errno == EAGAIN, "nothing else");
	mmipc_detach(v.r);
	mmipc_ring_close(b);
	mmipc_ring_close(q);
}

static void test_killed_peeker(void)
{
	mmipc_ring *q = fresh_ring("peeker");
	send_k(q, 1, 25, 0);
	send_k(q, 2, 26, 0);
	atomic_store(&co->step, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		size_t len;
		const void *p = mmipc_ring_peek(q, &len, 0);
		atomic_store(&co->step, p != NULL && len == 25 ? 1 : 99);
		for (;;)
			pause();
	}
	check(wait_step(1, 10) && atomic_load(&co->step) == 1, "a forked receiver peeked the first message");
	reap_killed(pid, "the receiver, between peek and release");
	check(recv_k(q, 1, 25, 1 * SEC) && recv_k(q, 2, 26, 0), "the peeked message stays for the next receiver, then the next");
	mmipc_ring_close(q);
}

static void test_fork_handle(void)
{
	mmipc_ring *q = fresh_ring("forked");
	struct view v = view_open("forked");
	EXPECT_ZERO(send_k(q, 1, 10, 0)); /* the parent owns the send side */
	atomic_store(&co->step, 0);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		/* The child does not inherit the claim: it must revoke, the side becomes shared. */
		EXPECT_ZERO(send_k(q, 2, 20, 5 * SEC));
		check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER, "child: after its send the side is shared: %#llx",
		      (unsigned long long)owner_of(v, OFF_SEND_SIDE));
		atomic_store(&co->step, 1);
		child_exit();
	}
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "a forked child sends with the parent's handle");
	EXPECT_ZERO(send_k(q, 3, 30, 0)); /* the parent's claim was revoked: shared path */
	check(recv_k(q, 1, 10, 0) && recv_k(q, 2, 20, 0) && recv_k(q, 3, 30, 0), "parent, child, parent: in order");

	/* A reservation pending at fork belongs to the parent: the child cannot commit it, and waits
	 * for the side like any other sender. */
	unsigned char *p = mmipc_ring_reserve(q, 40, 0);
	check(p != NULL, "the parent reserves");
	if (p)
		fill_pattern(p, 40, 4);
	atomic_store(&co->step, 0);
	pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		EXPECT_FAIL(mmipc_ring_commit(q, 40), EINVAL);
		EXPECT_FAIL(send_k(q, 5, 50, 30 * MS), ETIMEDOUT); /* the parent holds the (shared) side */
		atomic_store(&co->step, 1);
		EXPECT_ZERO(send_k(q, 5, 50, 5 * SEC));
		child_exit();
	}
	wait_step(1, 10);
	EXPECT_ZERO(mmipc_ring_commit(q, 40));
	st = 0;
	w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "the child could not commit the parent's reservation and sent after it");
	check(recv_k(q, 4, 40, 0) && recv_k(q, 5, 50, 1 * SEC), "the parent's committed message, then the child's");
	/* A forked receiver, with a handle the parent opened (and never used) before the fork. */
	mmipc_ring *r2 = mmipc_ring_open("forked");
	pid = fork_flushed();
	if (pid == 0) {
		child_begin(20);
		check(recv_k(r2, 6, 60, 5 * SEC), "a forked child receives with a handle made before the fork");
		EXPECT_ZERO(mmipc_ring_close(r2));
		child_exit();
	}
	EXPECT_ZERO(send_k(q, 6, 60, 0));
	st = 0;
	w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "the forked receiver got it and closed its handle");
	mmipc_ring_close(r2);
	mmipc_detach(v.r);
	mmipc_ring_close(q);
}

static void part_death(void)
{
	mmipc_region *cr = mmipc_anon(4096);
	if (cr == NULL)
		die("mmipc_anon");
	co = mmipc_data(cr);
	test_killed_exclusive_sender();
	test_revoke_idle_owner();
	test_owner_holding_reservation();
	test_killed_shared_sender();
	test_killed_peeker();
	test_fork_handle();
	mmipc_detach(cr);
}

/* ======================= nomembarrier ======================= */

/* Makes membarrier(2) fail with ENOSYS in this process (seccomp), as on a kernel without it. */
static int deny_membarrier(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* The fallbacks for a process that cannot use membarrier (a forked child denied it by seccomp):
 * its exclusive fast path stores in_op sequentially consistent, it fences between publishing and
 * reading the sleeper count, its first sleep of a wait is bounded to 1 ms, and as a revoker it
 * waits for the owner to convert the side itself. A ping-pong with pauses (so that both sides
 * sleep) and the two revocations check them against a parent that has membarrier. */
static void part_nomembarrier(void)
{
	mmipc_ring *ping = mmipc_ring_create("nomb-ping", 1024, 0600), *pong = mmipc_ring_create("nomb-pong", 1024, 0600);
	mmipc_ring *r3 = mmipc_ring_create("nomb-3", 1024, 0600), *r4 = mmipc_ring_create("nomb-4", 1024, 0600);
	mmipc_region *cr = mmipc_anon(4096);
	if (ping == NULL || pong == NULL || r3 == NULL || r4 == NULL || cr == NULL)
		die("nomembarrier setup");
	co = mmipc_data(cr);
	struct view v3 = view_open("nomb-3"), v4 = view_open("nomb-4");
	enum { N = 20000 };
	EXPECT_ZERO(send_k(r3, 1, 10, 0)); /* the parent owns r3's send side, and stays idle on it */
	pid_t pid = fork_flushed();
	if (pid == 0) {
		child_begin(60);
		errno = 0;
		long mb = syscall(SYS_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0);
		check(deny_membarrier() == 0 && mb >= 0 && syscall(SYS_membarrier, 0, 0, 0) == -1 && errno == ENOSYS,
		      "child: membarrier denied by seccomp (ENOSYS)");
		unsigned char m[512];
		long bad = 0;
		for (uint32_t i = 0; i < N; i++) {
			ssize_t n = mmipc_ring_recv(ping, m, sizeof m, 10 * SEC);
			uint32_t snd, seq;
			if (n < 0 || !msg_ok(m, (size_t)n, &snd, &seq) || seq != i) {
				bad++;
				break;
			}
			if (i % 1000 == 500)
				sleep_ms(2); /* the parent sleeps waiting for the reply */
			if (mmipc_ring_send(pong, m, (size_t)n, 10 * SEC) != 0) {
				bad++;
				break;
			}
		}
		check(bad == 0, "child without membarrier: %d messages echoed in order", N);
		/* As revoker: the parent owns r3's send side, alive and idle; without a membarrier the
		 * child cannot make its in_op visible, so it waits for the owner to convert. */
		double t0 = now_s();
		errno = 0;
		int r = send_k(r3, 2, 20, 50 * MS);
		int err = errno;
		check(r == -1 && err == ETIMEDOUT && now_s() - t0 >= 0.049,
		      "child without membarrier, revoking an idle live owner: got %d %s (want ETIMEDOUT: it waits for the "
		      "owner)", r, strerror(err));
		atomic_store(&co->step, 1);
		r = send_k(r3, 3, 30, 5 * SEC);
		check(r == 0, "once the owner operated again (and converted the side), the child sends: %d [%s]", r,
		      r ? mmipc_last_error() : "");
		/* As owner: claims r4's send side with a sequentially consistent in_op, then idles. */
		EXPECT_ZERO(send_k(r4, 1, 10, 0));
		atomic_store(&co->step, 2);
		POLL_UNTIL(atomic_load(&co->go) == 1, 20);
		EXPECT_ZERO(send_k(r4, 3, 30, 5 * SEC)); /* revoked meanwhile: the shared way */
		child_exit();
	}
	unsigned char m[512];
	long bad = 0;
	double t0 = now_s();
	for (uint32_t i = 0; i < N; i++) {
		size_t len = MSG_HEADER + i % 200;
		make_msg(m, len, 2, i);
		if (i % 1000 == 0)
			sleep_ms(2); /* the child sleeps waiting for the next message */
		if (mmipc_ring_send(ping, m, len, 10 * SEC) != 0) {
			bad++;
			break;
		}
		ssize_t n = mmipc_ring_recv(pong, m, sizeof m, 10 * SEC);
		uint32_t snd, seq;
		if (n != (ssize_t)len || !msg_ok(m, len, &snd, &seq) || seq != i) {
			bad++;
			break;
		}
	}
	double dt = now_s() - t0;
	check(bad == 0 && dt < 30, "ping-pong with a child that has no membarrier: %d round trips in %.2f s", N, dt);
	POLL_UNTIL(atomic_load(&co->step) >= 1, 20);
	EXPECT_ZERO(send_k(r3, 4, 40, 0)); /* the owner's next operation sees revoke and converts */
	check(owner_of(v3, OFF_SEND_SIDE) == SHARED_OWNER, "r3's send side is shared now");
	POLL_UNTIL(atomic_load(&co->step) >= 2, 20);
	check(owner_of(v4, OFF_SEND_SIDE) == (uint64_t)identity_of(pid), "the child owns r4's send side");
	t0 = now_s();
	int r = send_k(r4, 2, 20, 5 * SEC);
	check(r == 0 && now_s() - t0 < 1.0, "the parent revokes the child's claim (in_op stored sequentially consistent) "
	      "at once: %d after %.3f s", r, now_s() - t0);
	atomic_store(&co->go, 1);
	int st = 0, w = wait_bounded(pid, 30, &st);
	char buf[128];
	check(exited_zero(w, st), "the child without membarrier: %s", describe(w, st, buf, sizeof buf));
	check(recv_k(r3, 1, 10, 0) && recv_k(r3, 4, 40, 0) && recv_k(r3, 3, 30, 0), "r3: 1, then the owner's 4, then "
	      "the child's 3");
	check(recv_k(r4, 1, 10, 0) && recv_k(r4, 2, 20, 0) && recv_k(r4, 3, 30, 0), "r4: 1, 2, 3 in order");
	mmipc_detach(v3.r);
	mmipc_detach(v4.r);
	mmipc_ring_close(ping);
	mmipc_ring_close(pong);
	mmipc_ring_close(r3);
	mmipc_ring_close(r4);
	mmipc_detach(cr);
}

/* ======================= hostile ======================= */

struct hostile_stats {
	_Atomic uint32_t stop;
	_Atomic int other_errno; /* the last unexpected errno, for the report */
	_Atomic uint64_t ok, eproto, again, other, scribbles;
};

/* Scribbles random values over the ring until told to stop: tail and head (garbage, or plausible
 * positions over garbage), record headers (random, or well-formed but lying about the length), and
 * now and then a "repair" (tail = head) so that real traffic resumes and gets hit mid-flight. */
static void scribbler(unsigned char *d, size_t cap, struct hostile_stats *hs)
{
	_Atomic uint64_t *tail = (_Atomic uint64_t *)(void *)(d + OFF_TAIL);
	_Atomic uint64_t *head = (_Atomic uint64_t *)(void *)(d + OFF_HEAD);
	while (!atomic_load(&hs->stop)) {
		size_t off = (size_t)(rnd() % (cap / 8)) * 8;
		_Atomic uint64_t *rec = (_Atomic uint64_t *)(void *)(d + 512 + off);
		switch (rnd() % 10) {
		case 0:
			atomic_store(tail, rnd() % 2 ? rnd() : rnd() % (4 * cap));
			break;
		case 1:
			atomic_store(head, rnd() % 2 ? rnd() : rnd() % (4 * cap));
			break;
		case 2:
			atomic_store(tail, atomic_load(head) + 8 * (rnd() % (cap / 8 + 1)));
			break;
		case 3:
		case 4:
			atomic_store(rec, rnd());
			break;
		case 5: {
			uint32_t len = (uint32_t)(rnd() % (2 * cap)), tag = (uint32_t)(1 + rnd() % 2) | (uint32_t)(off >> 3) << 8;
			atomic_store(rec, (uint64_t)len | (uint64_t)tag << 32);
			break;
		}
		case 6:
			atomic_store(tail, atomic_load(head) & ~(uint64_t)7);
			atomic_store(head, atomic_load(tail));
			break;
		default:
			break;
		}
		atomic_fetch_add(&hs->scribbles, 1);
		usleep((useconds_t)(rnd() % 300));
	}
}

static void tally(struct hostile_stats *hs, int failed, int err)
{
	if (!failed)
		atomic_fetch_add(&hs->ok, 1);
	else if (err == EPROTO)
		atomic_fetch_add(&hs->eproto, 1);
	else if (err == EAGAIN || err == ETIMEDOUT)
		atomic_fetch_add(&hs->again, 1);
	else {
		atomic_fetch_add(&hs->other, 1);
		atomic_store(&hs->other_errno, err);
	}
}

static void part_hostile(void)
{
	const size_t cap = 4096;
	mmipc_ring *q = mmipc_ring_create("hostile", cap, 0600);
	mmipc_region *sr = mmipc_anon(4096);
	if (q == NULL || sr == NULL)
		die("hostile setup");
	struct view v = view_open("hostile");
	struct hostile_stats *hs = mmipc_data(sr);
	size_t max = mmipc_ring_max_message(q);
	const double run = 3.0;
	char buf[128];
	/* Rounds: exclusive sender and receiver; then both sides shared (two handles each). */
	for (int round = 0; round < 2; round++) {
		memset(hs, 0, sizeof *hs);
		mmipc_ring *q2 = NULL;
		if (round == 1) {
			q2 = mmipc_ring_open("hostile");
			atomic_store(w64(v, OFF_TAIL), 0);
			atomic_store(w64(v, OFF_HEAD), 0);
			send_k(q, 1, 1, 0);
			send_k(q2, 1, 1, 0);
			unsigned char tmp[8];
			mmipc_ring_recv(q, tmp, sizeof tmp, 0);
			mmipc_ring_recv(q2, tmp, sizeof tmp, 0);
			check(owner_of(v, OFF_SEND_SIDE) == SHARED_OWNER && owner_of(v, OFF_RECV_SIDE) == SHARED_OWNER,
			      "hostile round 2: both sides shared");
		}
		pid_t pids[3];
		for (int role = 0; role < 3; role++) {
			pids[role] = fork_flushed();
			if (pids[role] != 0)
				continue;
			child_begin(30);
			rng_state ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
			mmipc_ring *mine = (round == 1 && role == 1) ? q2 : q;
			double end = now_s() + run;
			if (role == 0) {
				scribbler(v.d, cap, hs);
			} else if (role == 1) {
				unsigned char *m = malloc(max); /* exactly the largest: ASan sees any overrun */
				if (m == NULL)
					_exit(3);
				uint32_t i = 0;
				while (now_s() < end) {
					size_t len = rnd() % (max + 1);
					fill_pattern(m, len, i++);
					errno = 0;
					int r = mmipc_ring_send(mine, m, len, (int64_t)(rnd() % 3) * 2 * MS);
					tally(hs, r != 0, errno);
					if (rnd() % 64 == 0) {
						unsigned char *p = mmipc_ring_reserve(mine, rnd() % (max + 1), 2 * MS);
						tally(hs, p == NULL, errno);
						if (p != NULL) {
							int c = mmipc_ring_commit(mine, 0); /* EPROTO if tail moved */
							tally(hs, c != 0, errno);
						}
					}
				}
				free(m);
			} else {
				size_t bufcap = max;
				unsigned char *m = malloc(bufcap);
				if (m == NULL)
					_exit(3);
				while (now_s() < end) {
					errno = 0;
					ssize_t n = mmipc_ring_recv(mine, m, bufcap, (int64_t)(rnd() % 3) * 2 * MS);
					int err = errno;
					if (n > (ssize_t)bufcap)
						atomic_fetch_add(&hs->other, 1000000);
					tally(hs, n < 0, n < 0 && err == EMSGSIZE ? EPROTO : err);
					if (rnd() % 64 == 0) {
						size_t len = 0;
						const unsigned char *p = mmipc_ring_peek(mine, &len, 2 * MS);
						int perr = errno;
						if (p != NULL && !buffer_holds(p, len, 512 + cap))
							atomic_fetch_add(&hs->other, 1000000); /* outside the buffer */
						tally(hs, p == NULL, perr);
						if (p != NULL) {
							int rl = mmipc_ring_release(mine);
							tally(hs, rl != 0, errno);
						}
					}
				}
				free(m);
			}
			_exit(0);
		}
		sleep_ms((int)(run * 1000) + 200);
		atomic_store(&hs->stop, 1);
		int ok = 1;
		for (int role = 0; role < 3; role++) {
			int st = 0, w = wait_bounded(pids[role], 15, &st);
			ok &= check(exited_zero(w, st), "hostile round %d: the %s ended by itself: %s", round + 1,
				    role == 0 ? "scribbler" : role == 1 ? "sender" : "receiver", describe(w, st, buf, sizeof buf));
		}
		check(ok && atomic_load(&hs->other) == 0 && atomic_load(&hs->eproto) > 100 && atomic_load(&hs->ok) > 100 &&
			      atomic_load(&hs->scribbles) > 1000,
		      "hostile round %d: %llu scribbles; calls: %llu ok, %llu EPROTO (or EMSGSIZE for a lying length), %llu "
		      "EAGAIN/ETIMEDOUT, %llu other (want 0; last errno %d), every message within bounds",
		      round + 1, (unsigned long long)atomic_load(&hs->scribbles), (unsigned long long)atomic_load(&hs->ok),
		      (unsigned long long)atomic_load(&hs->eproto), (unsigned long long)atomic_load(&hs->again),
		      (unsigned long long)atomic_load(&hs->other), atomic_load(&hs->other_errno));
		if (q2 != NULL)
			mmipc_ring_close(q2);
	}
	/* Repaired by hand (tail = head), the ring works again. */
	atomic_store(w64(v, OFF_TAIL), 4096 * 8);
	atomic_store(w64(v, OFF_HEAD), 4096 * 8);
	EXPECT_ZERO(send_k(q, 77, 77, 0));
	check(recv_k(q, 77, 77, 0), "with tail and head repaired the ring carries messages again");
	mmipc_detach(v.r);
	mmipc_detach(sr);
	mmipc_ring_close(q);
	mmipc_unlink("hostile");
}

int main(int argc, char **argv)
{
	find_self(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "mpmc-send") == 0)
		return role_mpmc_send(argv);
	if (argc >= 3 && strcmp(argv[1], "mpmc-recv") == 0)
		return role_mpmc_recv(argv);
	setup_dir("/dev/shm/mmipc-test-ring-XXXXXX");
	alarm(170); /* the whole part; the Go driver allows 3 minutes */
	const char *part = argc >= 2 ? argv[1] : "api";
	if (strcmp(part, "api") == 0)
		part_api();
	else if (strcmp(part, "spsc") == 0)
		part_spsc();
	else if (strcmp(part, "mpmc") == 0)
		part_mpmc();
	else if (strcmp(part, "death") == 0)
		part_death();
	else if (strcmp(part, "hostile") == 0)
		part_hostile();
	else if (strcmp(part, "nomembarrier") == 0)
		part_nomembarrier();
	else {
		printf("unknown part %s\n", part);
		return 2;
	}
	return check_exit();
}
