/*
 * ring.c - the message ring (mmipc_ring_*) between two processes: round trips through two rings
 * and one-way throughput, next to the raw baselines (bench/ENGINES.md, "ring").
 *
 *   ring rt   --size BYTES --iters N --warmup W --runs R [--mech mmipc-ring] [--cpus A,B]
 *             [--peer PATH] [--capacity BYTES] [--id ID] [--corrupt-ping K] [--corrupt-pong K]
 *   ring tput --mech mmipc-ring|raw-spsc|uds --size BYTES --batch B --batches N --warmup W --runs R
 *             [--cpus A,B] [--peer PATH --peer-role send|recv] [--capacity BYTES] [--id ID]
 *             [--corrupt-at K] [--drop-at K]
 * internal (the peer this program execs):
 *   ring respond --ping NAME --pong NAME --size BYTES --count TOTAL [--corrupt-at K]
 *   ring send --mech M (--name NAME | --fds R,W) --size BYTES --count TOTAL [--corrupt-at K] [--drop-at K]
 *
 * rt: the initiator sends round i's ping through ring A (mmipc_ring_send, timeout -1: the
 * library's adaptive spin, then a futex sleep) and receives the pong through ring B; the
 * responder (this program, or the Go peer with --peer) receives the ping and sends the pong.
 * One sample = one round trip, both messages verified.
 *
 * tput: a sender process sends TOTAL = W + R*N*B messages of BYTES, each holding message i's
 * pattern; the receiver verifies every one (length, pattern: a message of another round is
 * reported as lost, duplicated or reordered) and reads the clock after message W and after
 * every B messages: one sample = ns per message over a batch of B.
 *   mmipc-ring  mmipc_ring_send / mmipc_ring_recv, timeout -1, one sender, one receiver.
 *   raw-spsc    the hardware limit: a Lamport single-producer single-consumer ring of fixed
 *               round_up(BYTES, 64)-byte slots over shared memory (shm_open + mmap), the producer
 *               caching head and the consumer caching tail, spinning (pause, then sched_yield
 *               after 100 checks, as the raw-spin round trips do); no sleeping, no length, no
 *               framing. It copies in and out of the caller's buffers as send/recv do.
 *   uds         a socketpair (SOCK_STREAM), one write of BYTES per message, read back whole.
 * The initiator is the receiver, the sender its peer; --cpus A,B pins the sender to A and the
 * receiver to B (as bench/peers' engines do). With --peer PATH (the Go peer, mmipc-ring only) --peer-role send makes the Go program the sender (mechanism mmipc-ring-go2c), --peer-role
 * recv makes it the receiver (mmipc-ring-c2go): it then writes its batch times (u64 ns each,
 * native-endian) to the pipe --report-fd when it is done, and this program prints them.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sys/socket.h>

#include "mmipc.h"

#define DEFAULT_CAPACITY 65536
/* The raw SPSC ring's control lines, then its slots at this offset. */
#define SPSC_DATA 4096

static const uint64_t golden = UINT64_C(0x9E3779B97F4A7C15);

/* The inverse of the golden multiplier mod 2^64 (Newton's iteration: it is odd): it recovers the
 * round of a payload from its first word, to tell a lost or reordered message from garbage. */
static uint64_t golden_inverse(void)
{
	uint64_t x = golden;
	for (int i = 0; i < 6; i++)
		x *= 2 - golden * x;
	return x;
}

/* Fails unless buf holds n == size bytes of round want's pattern. A payload that is another
 * round's is a sequencing error (lost, duplicated, reordered), named as such. */
static void verify_msg(const char *what, uint64_t want, const void *buf, size_t n, size_t size, uint64_t salt)
{
	if (n != size)
		bench_fail("%s %" PRIu64 ": %zu bytes, want %zu", what, want, n, size);
	uint64_t base = bench_base(want, salt);
	size_t off = bench_check(buf, n, base);
	if (off == SIZE_MAX)
		return;
	if (n >= 8) {
		uint64_t j = ((bench_load64(buf) ^ salt) * golden_inverse()) - 1;
		if (j != want && bench_check(buf, n, bench_base(j, salt)) == SIZE_MAX)
			bench_fail("%s %" PRIu64 ": got message %" PRIu64 " instead: a message was lost, duplicated or reordered",
				   what, want, j);
	}
	char msg[256];
	bench_mismatch(msg, sizeof msg, what, want, buf, n, base, off);
	bench_fail("%s", msg);
}

static mmipc_ring *ring_open(const char *name)
{
	mmipc_ring *q = mmipc_ring_open(name);
	if (q == NULL)
		bench_fail("mmipc_ring_open %s: %s", name, mmipc_last_error());
	return q;
}

static void ring_send(mmipc_ring *q, const void *msg, size_t n)
{
	if (mmipc_ring_send(q, msg, n, MMIPC_FOREVER) != 0)
		bench_fail("mmipc_ring_send: %s (%s)", strerror(errno), mmipc_last_error());
}

static size_t ring_recv(mmipc_ring *q, void *buf, size_t cap)
{
	ssize_t n = mmipc_ring_recv(q, buf, cap, MMIPC_FOREVER);
	if (n < 0)
		bench_fail("mmipc_ring_recv: %s (%s)", strerror(errno), mmipc_last_error());
	return (size_t)n;
}

/* ---- the raw SPSC ring ------------------------------------------------------------------------ */

/* Layout: u64 tail at 0 (the producer's), u64 head at 64 (the consumer's), slots at SPSC_DATA. */
struct spsc {
	void *map;
	size_t map_len, slot, nslots;
	uint64_t *tail, *head;
	unsigned char *slots;
	uint64_t pos;	/* our next position: tail for the producer, head for the consumer */
	uint64_t other; /* the peer's index as last read: head (producer) or tail (consumer) */
};

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t spsc_bytes(size_t size, size_t capacity) { return SPSC_DATA + capacity / round64(size) * round64(size); }

static void spsc_map(struct spsc *q, int fd, size_t len, size_t size, size_t capacity)
{
	q->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (q->map == MAP_FAILED)
		bench_fail("mmap: %s", strerror(errno));
	q->map_len = len;
	q->slot = round64(size);
	q->nslots = capacity / q->slot;
	q->tail = (uint64_t *)q->map;
	q->head = (uint64_t *)((char *)q->map + 64);
	q->slots = (unsigned char *)q->map + SPSC_DATA;
}

/* Waits until the word at w differs from old (pause, then sched_yield: raw-spin's wait). */
static inline uint64_t spsc_wait(const uint64_t *w, uint64_t old)
{
	for (unsigned spins = 0;; spins++) {
		uint64_t v = __atomic_load_n(w, __ATOMIC_ACQUIRE);
		if (v != old)
			return v;
		if (spins < bench_spin_limit)
			bench_cpu_relax();
		else
			sched_yield();
	}
}

static inline void spsc_send(struct spsc *q, const void *msg, size_t size)
{
	uint64_t t = q->pos;
	while (t - q->other >= q->nslots) { /* full as far as we know: re-read head */
		q->other = spsc_wait(q->head, q->other);
		if (q->other > t)
			bench_fail("raw-spsc: head %" PRIu64 " is past tail %" PRIu64, q->other, t);
	}
	memcpy(q->slots + (t % q->nslots) * q->slot, msg, size);
	__atomic_store_n(q->tail, t + 1, __ATOMIC_RELEASE);
	q->pos = t + 1;
}

static inline void spsc_recv(struct spsc *q, void *buf, size_t size)
{
	uint64_t h = q->pos;
	while (h == q->other) { /* empty as far as we know: re-read tail */
		q->other = spsc_wait(q->tail, q->other);
		if (q->other - h > q->nslots)
			bench_fail("raw-spsc: tail %" PRIu64 " is out of range (head %" PRIu64 ")", q->other, h);
	}
	memcpy(buf, q->slots + (h % q->nslots) * q->slot, size);
	__atomic_store_n(q->head, h + 1, __ATOMIC_RELEASE);
	q->pos = h + 1;
}

/* ---- mechanisms of tput ---------------------------------------------------------------------- */

enum mech { M_RING, M_SPSC, M_UDS };
static const char *mech_names[] = {"mmipc-ring", "raw-spsc", "uds"};

static enum mech find_mech(const char *name)
{
	for (int m = 0; m < 3; m++)
		if (name && !strcmp(name, mech_names[m]))
			return (enum mech)m;
	bench_usage("--mech %s: want mmipc-ring, raw-spsc or uds", name ? name : "(none)");
}

/* One end of a tput channel. */
struct chan {
	enum mech m;
	size_t size, cap;
	mmipc_ring *q;
	struct spsc s;
	int fd;
};

static inline void chan_send(struct chan *c, const void *msg)
{
	switch (c->m) {
	case M_RING:
		ring_send(c->q, msg, c->size);
		break;
	case M_SPSC:
		spsc_send(&c->s, msg, c->size);
		break;
	case M_UDS:
		bench_write_full(c->fd, msg, c->size);
		break;
	}
}

/* Returns the length received. */
static inline size_t chan_recv(struct chan *c, void *buf)
{
	switch (c->m) {
	case M_RING:
		return ring_recv(c->q, buf, c->cap);
	case M_SPSC:
		spsc_recv(&c->s, buf, c->size);
		return c->size;
	case M_UDS:
		bench_read_full(c->fd, buf, c->size);
		return c->size;
	}
	return 0;
}

/* Sends messages 1..count, message i holding pattern i (BULK). Shared by the peer and by the
 * initiator when a Go peer receives. */
static void send_all(struct chan *c, uint64_t count, uint64_t corrupt_at, uint64_t drop_at)
{
	unsigned char *out = bench_alloc(c->size);
	for (uint64_t i = 1; i <= count; i++) {
		bench_fill(out, c->size, bench_base(i, BENCH_SALT_BULK));
		if (i == corrupt_at)
			out[c->size / 2] ^= 1;
		if (i != drop_at) /* a self-test: the receiver must notice the gap */
			chan_send(c, out);
		if ((i & 1023) == 0)
			bench_progress();
	}
	bench_progress();
	free(out);
}

/* ---- the peers ------------------------------------------------------------------------------- */

static int respond(int argc, char **argv)
{
	bench_prog = "ring respond";
	const char *ping_name = NULL, *pong_name = NULL;
	uint64_t size = 0, count = 0, corrupt_at = 0;
	const struct bench_flag flags[] = {
		BENCH_STR("--ping", &ping_name),
		BENCH_STR("--pong", &pong_name),
		BENCH_NUM("--size", &size, 1, 1 << 30),
		BENCH_NUM("--count", &count, 1, UINT64_C(1) << 40),
		BENCH_NUM("--corrupt-at", &corrupt_at, 1, UINT64_C(1) << 40),
	};
	bench_parse_flags(argc, argv, 2, flags, BENCH_LEN(flags), "respond: unknown argument %s");
	if (!ping_name || !pong_name || size == 0 || count == 0)
		bench_usage("respond: --ping, --pong, --size and --count are required");
	mmipc_ring *ping = ring_open(ping_name), *pong = ring_open(pong_name);
	size_t cap = size + 64; /* room to see a message of the wrong length */
	unsigned char *in = bench_alloc(cap), *out = bench_alloc(size);
	for (uint64_t round = 1; round <= count; round++) {
		/* The reply is ready before the ping arrives, as a server's would be. */
		bench_fill(out, size, bench_base(round, BENCH_SALT_PONG));
		if (round == corrupt_at)
			out[size / 2] ^= 1;
		size_t n = ring_recv(ping, in, cap);
		ring_send(pong, out, size);
		bench_progress();
		/* After the reply, off the initiator's clock. */
		verify_msg("ping", round, in, n, size, BENCH_SALT_PING);
	}
	mmipc_ring_close(ping);
	mmipc_ring_close(pong);
	return 0;
}

static int sender(int argc, char **argv)
{
	bench_prog = "ring send";
	const char *mech = NULL, *name = NULL, *fds = NULL;
	uint64_t size = 0, count = 0, corrupt_at = 0, drop_at = 0, capacity = DEFAULT_CAPACITY;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--name", &name),
		BENCH_STR("--fds", &fds),
		BENCH_NUM("--size", &size, 1, 1 << 20),
		BENCH_NUM("--count", &count, 1, UINT64_C(1) << 40),
		BENCH_NUM("--capacity", &capacity, 1024, 1 << 30),
		BENCH_NUM("--corrupt-at", &corrupt_at, 1, UINT64_C(1) << 40),
		BENCH_NUM("--drop-at", &drop_at, 1, UINT64_C(1) << 40),
	};
	bench_parse_flags(argc, argv, 2, flags, BENCH_LEN(flags), "send: unknown argument %s");
	struct chan c = {.m = find_mech(mech), .size = size, .fd = -1};
	if (size == 0 || count == 0)
		bench_usage("send: --size and --count are required");
	if (c.m == M_UDS) {
		int r, w;
		if (fds == NULL || sscanf(fds, "%d,%d", &r, &w) != 2)
			bench_usage("send: --fds R,W is required for uds");
		c.fd = w;
	} else if (name == NULL) {
		bench_usage("send: --name is required for %s", mech_names[c.m]);
	} else if (c.m == M_RING) {
		c.q = ring_open(name);
	} else {
		int fd = bench_raw_open(name, O_RDWR, 0);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0)
			bench_fail("open %s/%s: %s", bench_dir(), name, strerror(errno));
		size_t need = spsc_bytes(size, capacity);
		if ((size_t)st.st_size != need)
			bench_fail("region %s has %zu bytes, want %zu", name, (size_t)st.st_size, need);
		spsc_map(&c.s, fd, need, size, capacity);
		close(fd);
	}
	send_all(&c, count, corrupt_at, drop_at);
	if (c.q)
		mmipc_ring_close(c.q);
	return 0;
}

/* ---- command line of the measurements --------------------------------------------------------- */

struct opts {
	const char *mech, *peer, *peer_role, *cpus, *id;
	uint64_t size, iters, warmup, runs, batch, batches, capacity;
	uint64_t corrupt_ping, corrupt_pong, corrupt_at, drop_at;
};

static void parse_opts(int argc, char **argv, struct opts *o)
{
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &o->mech),
		BENCH_STR("--peer", &o->peer),
		BENCH_STR("--peer-role", &o->peer_role),
		BENCH_STR("--cpus", &o->cpus),
		BENCH_STR("--id", &o->id),
		BENCH_NUM("--size", &o->size, 1, 1 << 20),
		BENCH_NUM("--iters", &o->iters, 1, 100000000),
		BENCH_NUM("--warmup", &o->warmup, 1, 1000000000),
		BENCH_NUM("--runs", &o->runs, 1, 1000),
		BENCH_NUM("--batch", &o->batch, 1, 100000000),
		BENCH_NUM("--batches", &o->batches, 1, 100000),
		BENCH_NUM("--capacity", &o->capacity, 1024, 1 << 30),
		BENCH_NUM("--corrupt-ping", &o->corrupt_ping, 1, UINT64_C(1) << 40),
		BENCH_NUM("--corrupt-pong", &o->corrupt_pong, 1, UINT64_C(1) << 40),
		BENCH_NUM("--corrupt-at", &o->corrupt_at, 1, UINT64_C(1) << 40),
		BENCH_NUM("--drop-at", &o->drop_at, 1, UINT64_C(1) << 40),
	};
	bench_parse_flags(argc, argv, 2, flags, BENCH_LEN(flags),
			  "ring rt|tput: unknown argument %s (see bench/ENGINES.md)");
	if (o->size == 0)
		bench_usage("--size is required");
}

/* A ring for the initiator: created, its file registered for clean-up. */
static mmipc_ring *ring_make(const char *name, uint64_t capacity, size_t size, char *path, size_t path_len)
{
	bench_path(path, path_len, name);
	mmipc_ring *q = mmipc_ring_create(name, capacity, 0600);
	if (q == NULL)
		bench_fail("mmipc_ring_create %s: %s", name, mmipc_last_error());
	bench_cleanup_add_path(path);
	if (mmipc_ring_max_message(q) < size)
		bench_fail("a ring of %zu bytes takes messages up to %zu bytes, not %zu: raise --capacity",
			   mmipc_ring_capacity(q), mmipc_ring_max_message(q), size);
	return q;
}

static void unlink_ring(const char *name, const char *path)
{
	if (mmipc_unlink(name) != 0)
		bench_fail("unlink %s: %s", name, mmipc_last_error());
	bench_cleanup_forget_path(path);
}

/* ---- rt: round trips through two rings -------------------------------------------------------- */

static int run_rt(int argc, char **argv)
{
	bench_prog = "ring rt";
	struct opts o = {.iters = 2000, .warmup = 200, .runs = 1, .capacity = DEFAULT_CAPACITY};
	parse_opts(argc, argv, &o);
	if (o.mech && strcmp(o.mech, "mmipc-ring") != 0)
		bench_usage("rt: --mech mmipc-ring is the only mechanism (the baselines are pingpong's)");
	uint64_t total = o.warmup + o.iters * o.runs;
	int cpu_a = -1, cpu_b = -1;
	if (o.cpus)
		bench_parse_cpus(o.cpus, &cpu_a, &cpu_b);
	const char *placement = bench_placement(cpu_a, cpu_b);
	char label[64], param[32], idbuf[160];
	snprintf(label, sizeof label, "mmipc-ring%s", o.peer ? "-gopeer" : "");
	snprintf(param, sizeof param, "%" PRIu64, o.size);
	if (o.id == NULL) {
		snprintf(idbuf, sizeof idbuf, "ring-rt/%s/%s/%s", label, param, placement);
		o.id = idbuf;
	}
	if (cpu_a >= 0 && bench_pin(cpu_a) != 0)
		bench_fail("pin to CPU %d: %s", cpu_a, strerror(errno));
	bench_log_dir();

	char name_a[64], name_b[64], path_a[PATH_MAX], path_b[PATH_MAX];
	bench_name(name_a, sizeof name_a, "rr-ping");
	bench_name(name_b, sizeof name_b, "rr-pong");
	mmipc_ring *ping = ring_make(name_a, o.capacity, o.size, path_a, sizeof path_a);
	mmipc_ring *pong = ring_make(name_b, o.capacity, o.size, path_b, sizeof path_b);

	char s_size[32], s_total[32], s_corrupt[32];
	snprintf(s_size, sizeof s_size, "%" PRIu64, o.size);
	snprintf(s_total, sizeof s_total, "%" PRIu64, total);
	snprintf(s_corrupt, sizeof s_corrupt, "%" PRIu64, o.corrupt_pong);
	char *pargv[16];
	int n = 0;
	pargv[n++] = (char *)(o.peer ? o.peer : "/proc/self/exe");
	pargv[n++] = o.peer ? "ring-respond" : "respond";
	pargv[n++] = "--ping";
	pargv[n++] = name_a;
	pargv[n++] = "--pong";
	pargv[n++] = name_b;
	pargv[n++] = "--size";
	pargv[n++] = s_size;
	pargv[n++] = "--count";
	pargv[n++] = s_total;
	if (o.corrupt_pong) {
		pargv[n++] = "--corrupt-at";
		pargv[n++] = s_corrupt;
	}
	pargv[n] = NULL;

	printf("# ring rt %s size=%" PRIu64 " placement=%s capacity=%zu iters=%" PRIu64 " warmup=%" PRIu64 " runs=%" PRIu64
	       " timeout=forever clock_overhead_ns=%.0f\n",
	       label, o.size, placement, mmipc_ring_capacity(ping), o.iters, o.warmup, o.runs, bench_clock_overhead_ns());
	bench_spawn_peer(pargv, cpu_b, NULL, 0);

	size_t cap = o.size + 64;
	unsigned char *out = bench_alloc(o.size), *in = bench_alloc(cap);
	double *samples = malloc(o.iters * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory for %" PRIu64 " samples", o.iters);
	for (uint64_t round = 1; round <= total; round++) {
		bench_fill(out, o.size, bench_base(round, BENCH_SALT_PING));
		if (round == o.corrupt_ping)
			out[o.size / 2] ^= 1;
		uint64_t t0 = bench_now_ns();
		ring_send(ping, out, o.size);
		size_t got = ring_recv(pong, in, cap);
		uint64_t t1 = bench_now_ns();
		bench_progress();
		verify_msg("pong", round, in, got, o.size, BENCH_SALT_PONG);
		if (round == 1) {
			/* The peer has both rings open: the names can go (the mappings stay). */
			unlink_ring(name_a, path_a);
			unlink_ring(name_b, path_b);
		}
		if (round <= o.warmup)
			continue;
		uint64_t k = (round - o.warmup - 1) % o.iters;
		samples[k] = (double)(t1 - t0);
		if (k == o.iters - 1) {
			struct bench_stats s = bench_stats_of(samples, o.iters);
			bench_result(o.id, "ring", label, param, placement, "ns", &s, 2 * o.size);
		}
	}
	bench_wait_peer();
	mmipc_ring_close(ping);
	mmipc_ring_close(pong);
	free(samples);
	free(in);
	free(out);
	return 0;
}

/* ---- tput: one-way throughput ----------------------------------------------------------------- */

/* Per-run statistics of batch times (ns per batch of `batch` messages), printed as ns/message. */
static void report_runs(const struct opts *o, const char *label, const char *param, const char *placement,
			const uint64_t *batch_ns)
{
	double *samples = malloc(o->batches * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory");
	for (uint64_t r = 0; r < o->runs; r++) {
		for (uint64_t k = 0; k < o->batches; k++)
			samples[k] = (double)batch_ns[r * o->batches + k] / (double)o->batch;
		struct bench_stats s = bench_stats_of(samples, o->batches);
		bench_result(o->id, "ring", label, param, placement, "ns", &s, o->size);
	}
	free(samples);
}

static int run_tput(int argc, char **argv)
{
	bench_prog = "ring tput";
	struct opts o = {.warmup = 10000, .runs = 1, .batch = 10000, .batches = 20, .capacity = DEFAULT_CAPACITY};
	parse_opts(argc, argv, &o);
	struct chan c = {.m = find_mech(o.mech), .size = o.size, .cap = o.size + 64, .fd = -1};
	int go_recv = 0;
	if (o.peer) {
		if (c.m != M_RING)
			bench_usage("--peer (the Go peer) supports --mech mmipc-ring only");
		if (o.peer_role == NULL || (strcmp(o.peer_role, "send") && strcmp(o.peer_role, "recv")))
			bench_usage("--peer needs --peer-role send (Go sends, we receive) or recv (we send, Go receives)");
		go_recv = !strcmp(o.peer_role, "recv");
	} else if (o.peer_role) {
		bench_usage("--peer-role goes with --peer");
	}
	uint64_t nbatches = o.runs * o.batches;
	uint64_t total = o.warmup + nbatches * o.batch;
	if (go_recv && nbatches > 4096)
		bench_usage("runs * batches must stay at most 4096 with a Go receiver (its report fits a pipe)");
	int cpu_a = -1, cpu_b = -1;
	if (o.cpus)
		bench_parse_cpus(o.cpus, &cpu_a, &cpu_b);
	const char *placement = bench_placement(cpu_a, cpu_b);
	char label[64], param[32], idbuf[160];
	snprintf(label, sizeof label, "%s%s", mech_names[c.m], !o.peer ? "" : go_recv ? "-c2go" : "-go2c");
	snprintf(param, sizeof param, "%" PRIu64, o.size);
	if (o.id == NULL) {
		snprintf(idbuf, sizeof idbuf, "ring-tput/%s/%s/%s", label, param, placement);
		o.id = idbuf;
	}
	if (!go_recv) {
		/* The sender runs on A and the receiver on B, as in the competitors' engines
		 * (bench/peers): we receive here, so we take B and the peer A. */
		int t = cpu_a;
		cpu_a = cpu_b;
		cpu_b = t;
	}
	if (cpu_a >= 0 && bench_pin(cpu_a) != 0)
		bench_fail("pin to CPU %d: %s", cpu_a, strerror(errno));

	char name[64], path[PATH_MAX];
	bench_name(name, sizeof name, "rtp");
	int keep[2] = {-1, -1}, nkeep = 0, report_fd = -1, report_peer_fd = -1;
	if (c.m == M_RING) {
		bench_log_dir();
		c.q = ring_make(name, o.capacity, o.size, path, sizeof path);
	} else if (c.m == M_SPSC) {
		bench_log_dir();
		bench_path(path, sizeof path, name);
		int fd = bench_raw_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			bench_fail("create %s: %s", path, strerror(errno));
		bench_cleanup_add_path(path);
		size_t len = spsc_bytes(o.size, o.capacity);
		if (o.capacity / round64(o.size) < 2)
			bench_usage("--capacity %" PRIu64 " holds fewer than 2 slots of %zu bytes", o.capacity, round64(o.size));
		if (ftruncate(fd, (off_t)len) != 0)
			bench_fail("ftruncate %s: %s", path, strerror(errno));
		spsc_map(&c.s, fd, len, o.size, o.capacity);
		close(fd);
	} else {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			bench_fail("socketpair: %s", strerror(errno));
		c.fd = sv[0];
		keep[nkeep++] = sv[1];
	}
	if (go_recv) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) != 0)
			bench_fail("pipe: %s", strerror(errno));
		report_fd = p[0];
		report_peer_fd = p[1];
		keep[nkeep++] = p[1];
	}

	char s_size[32], s_total[32], s_fds[32], s_corrupt[32], s_drop[32], s_cap[32], s_warm[32], s_batch[32], s_rep[32];
	snprintf(s_size, sizeof s_size, "%" PRIu64, o.size);
	snprintf(s_total, sizeof s_total, "%" PRIu64, total);
	snprintf(s_fds, sizeof s_fds, "%d,%d", keep[0], keep[0]);
	snprintf(s_corrupt, sizeof s_corrupt, "%" PRIu64, o.corrupt_at);
	snprintf(s_drop, sizeof s_drop, "%" PRIu64, o.drop_at);
	snprintf(s_cap, sizeof s_cap, "%" PRIu64, o.capacity);
	snprintf(s_warm, sizeof s_warm, "%" PRIu64, o.warmup);
	snprintf(s_batch, sizeof s_batch, "%" PRIu64, o.batch);
	snprintf(s_rep, sizeof s_rep, "%d", report_peer_fd);
	char *pargv[24];
	int n = 0;
	if (o.peer) {
		pargv[n++] = (char *)o.peer;
		pargv[n++] = go_recv ? "ring-recv" : "ring-send";
	} else {
		pargv[n++] = "/proc/self/exe";
		pargv[n++] = "send";
		pargv[n++] = "--mech";
		pargv[n++] = (char *)mech_names[c.m];
		pargv[n++] = "--capacity";
		pargv[n++] = s_cap;
	}
	pargv[n++] = "--size";
	pargv[n++] = s_size;
	pargv[n++] = "--count";
	pargv[n++] = s_total;
	if (c.m == M_UDS) {
		pargv[n++] = "--fds";
		pargv[n++] = s_fds;
	} else {
		pargv[n++] = "--name";
		pargv[n++] = name;
	}
	if (go_recv) {
		pargv[n++] = "--warmup";
		pargv[n++] = s_warm;
		pargv[n++] = "--batch";
		pargv[n++] = s_batch;
		pargv[n++] = "--report-fd";
		pargv[n++] = s_rep;
	} else {
		if (o.corrupt_at) {
			pargv[n++] = "--corrupt-at";
			pargv[n++] = s_corrupt;
		}
		if (o.drop_at && !o.peer) {
			pargv[n++] = "--drop-at";
			pargv[n++] = s_drop;
		}
	}
	pargv[n] = NULL;

	printf("# ring tput %s size=%" PRIu64 " placement=%s capacity=%" PRIu64 " batch=%" PRIu64 " batches=%" PRIu64
	       " warmup=%" PRIu64 " runs=%" PRIu64 " spin=%u clock_overhead_ns=%.0f\n",
	       label, o.size, placement, c.m == M_RING ? (uint64_t)mmipc_ring_capacity(c.q) : o.capacity, o.batch,
	       o.batches, o.warmup, o.runs, bench_spin_limit, bench_clock_overhead_ns());
	bench_spawn_peer(pargv, cpu_b, keep, nkeep);
	for (int i = 0; i < nkeep; i++)
		close(keep[i]); /* the peer's ends: closed here, so that its death reads as EOF */

	uint64_t *batch_ns = calloc(nbatches, sizeof *batch_ns);
	if (batch_ns == NULL)
		bench_fail("out of memory for %" PRIu64 " batches", nbatches);
	if (go_recv) {
		/* We send; the Go peer receives, times and reports. */
		send_all(&c, total, o.corrupt_at, o.drop_at);
		uint64_t *raw = malloc(nbatches * 8);
		if (raw == NULL)
			bench_fail("out of memory");
		for (size_t got = 0; got < nbatches * 8;) {
			ssize_t r = read(report_fd, (char *)raw + got, nbatches * 8 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				bench_wait_peer(); /* fails with the peer's exit status if it failed */
				bench_fail("the Go receiver's report has %zu bytes, want %" PRIu64, got, nbatches * 8);
			}
			got += (size_t)r;
		}
		memcpy(batch_ns, raw, nbatches * 8);
		free(raw);
		close(report_fd);
		bench_wait_peer();
		unlink_ring(name, path);
	} else {
		unsigned char *in = bench_alloc(c.cap);
		uint64_t t_prev = 0, k = 0;
		for (uint64_t i = 1; i <= total; i++) {
			size_t got = chan_recv(&c, in);
			if (i >= o.warmup) {
				uint64_t d = i - o.warmup;
				if (d == 0 || d % o.batch == 0) {
					uint64_t t = bench_now_ns();
					if (d > 0)
						batch_ns[k++] = t - t_prev;
					t_prev = t;
				}
			}
			if ((i & 1023) == 0)
				bench_progress();
			verify_msg("message", i, in, got, o.size, BENCH_SALT_BULK);
			if (i == 1 && c.m != M_UDS) {
				/* The sender has attached: the name can go. */
				if (c.m == M_RING)
					unlink_ring(name, path);
				else if (bench_raw_unlink(name) != 0)
					bench_fail("unlink %s: %s", path, strerror(errno));
				bench_cleanup_forget_path(path);
			}
		}
		bench_progress();
		free(in);
		bench_wait_peer();
	}
	report_runs(&o, label, param, placement, batch_ns);
	free(batch_ns);
	if (c.q)
		mmipc_ring_close(c.q);
	if (c.s.map)
		munmap(c.s.map, c.s.map_len);
	return 0;
}

int main(int argc, char **argv)
{
	bench_init("ring");
	const char *cmd = argc > 1 ? argv[1] : "";
	if (!strcmp(cmd, "rt"))
		return run_rt(argc, argv);
	if (!strcmp(cmd, "tput"))
		return run_tput(argc, argv);
	if (!strcmp(cmd, "respond"))
		return respond(argc, argv);
	if (!strcmp(cmd, "send"))
		return sender(argc, argv);
	bench_usage("ring rt|tput ... (see bench/ENGINES.md, \"ring\")");
}
