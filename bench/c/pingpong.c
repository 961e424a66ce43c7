/*
 * pingpong.c - round-trip latency between two processes (bench/ENGINES.md, "pingpong").
 *
 *   pingpong --mech M --size BYTES --iters N --warmup W --runs R [--cpus A,B] [--peer PATH] [--id ID]
 *   pingpong respond --mech M --name NAME --size BYTES --count TOTAL [--fds R,W] [--corrupt-at K]
 *
 * M: mmipc-spin, raw-spin, mmipc-futex, raw-futex (a shared region), uds, pipe (a byte stream),
 * mq (POSIX message queues). The initiator forks and execs itself (or --peer PATH, the Go peer)
 * as the responder; each round trip moves BYTES each way, and both sides verify every byte they
 * receive. Every mechanism runs through chan_send/chan_recv below: only the transport differs.
 *
 * Region layout of the shared-memory mechanisms: u32 ping_seq at 0, u32 pong_seq at 64, ping
 * payload at 128, pong payload at 128 + round_up(BYTES, 64).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <mqueue.h>
#include <sys/socket.h>

#include "mmipc.h"

enum kind { K_SHM, K_STREAM, K_MQ };

struct mech {
	const char *name;
	enum kind kind;
	int mmipc; /* K_SHM: an mmipc region (else shm_open + mmap) */
	int futex; /* K_SHM: sleep on a futex after the spin (else yield) */
};

static const struct mech mechs[] = {
	{"mmipc-spin", K_SHM, 1, 0}, {"raw-spin", K_SHM, 0, 0}, {"mmipc-futex", K_SHM, 1, 1},
	{"raw-futex", K_SHM, 0, 1},  {"uds", K_STREAM, 0, 0},  {"pipe", K_STREAM, 0, 0},
	{"mq", K_MQ, 0, 0},
};

enum { PING = 0, PONG = 1 };

struct chan {
	const struct mech *m;
	size_t size;
	mmipc_region *region; /* K_SHM, mmipc */
	void *map;	      /* K_SHM, raw */
	size_t map_len;
	uint32_t *seq[2];
	unsigned char *payload[2];
	int rfd, wfd; /* K_STREAM: descriptors; K_MQ: queue descriptors */
};

static const struct mech *find_mech(const char *name)
{
	for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
		if (name && strcmp(mechs[i].name, name) == 0)
			return &mechs[i];
	bench_usage("--mech %s: want mmipc-spin, raw-spin, mmipc-futex, raw-futex, uds, pipe or mq", name ? name : "(none)");
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Usable bytes the region needs, rounded to a page. */
static size_t shm_bytes(size_t size) { return (128 + 2 * round64(size) + 4095) & ~(size_t)4095; }

static void shm_layout(struct chan *c, unsigned char *base)
{
	c->seq[PING] = (uint32_t *)base;
	c->seq[PONG] = (uint32_t *)(base + 64);
	c->payload[PING] = base + 128;
	c->payload[PONG] = base + 128 + round64(c->size);
}

/* Sends one message of c->size bytes from src; for shared memory, seq publishes it. */
static inline void chan_send(struct chan *c, int dir, uint32_t seq, const void *src)
{
	switch (c->m->kind) {
	case K_SHM:
		memcpy(c->payload[dir], src, c->size);
		if (c->m->futex)
			bench_futex_store_wake(c->seq[dir], seq);
		else
			__atomic_store_n(c->seq[dir], seq, __ATOMIC_RELEASE);
		break;
	case K_STREAM:
		bench_write_full(c->wfd, src, c->size);
		break;
	case K_MQ:
		if (mq_send(c->wfd, src, c->size, 0) != 0)
			bench_fail("mq_send: %s", strerror(errno));
		break;
	}
}

/* Receives message seq into dst (c->size bytes). */
static inline void chan_recv(struct chan *c, int dir, uint32_t seq, void *dst)
{
	switch (c->m->kind) {
	case K_SHM: {
		uint32_t v = c->m->futex ? bench_futex_wait(c->seq[dir], seq) : bench_spin_wait(c->seq[dir], seq);
		if (v != seq)
			bench_fail("%s sequence word is %#x, want %u", dir == PING ? "ping" : "pong", v, seq);
		memcpy(dst, c->payload[dir], c->size);
		break;
	}
	case K_STREAM:
		bench_read_full(c->rfd, dst, c->size);
		break;
	case K_MQ: {
		ssize_t n = mq_receive(c->rfd, dst, c->size, NULL);
		if (n < 0)
			bench_fail("mq_receive: %s", strerror(errno));
		if ((size_t)n != c->size)
			bench_fail("mq_receive: a message of %zd bytes, want %zu", n, c->size);
		break;
	}
	}
}

static void shm_detach(struct chan *c)
{
	if (c->region)
		mmipc_detach(c->region);
	if (c->map)
		munmap(c->map, c->map_len);
	c->region = NULL;
	c->map = NULL;
}

/* Maps an existing region (the responder's side). */
static void shm_attach(struct chan *c, const char *name)
{
	size_t need = shm_bytes(c->size);
	unsigned char *base;
	size_t have;
	if (c->m->mmipc) {
		c->region = mmipc_open(name, 0);
		if (c->region == NULL)
			bench_fail("%s", mmipc_last_error());
		base = mmipc_data(c->region);
		have = mmipc_size(c->region);
	} else {
		int fd = bench_raw_open(name, O_RDWR, 0);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0)
			bench_fail("open %s/%s: %s", bench_dir(), name, strerror(errno));
		have = (size_t)st.st_size;
		if (have < need)
			bench_fail("region %s has %zu bytes, want %zu", name, have, need);
		c->map_len = have;
		c->map = mmap(NULL, have, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		close(fd);
		if (c->map == MAP_FAILED)
			bench_fail("mmap: %s", strerror(errno));
		base = c->map;
	}
	if (have < need)
		bench_fail("region %s has %zu bytes, want %zu", name, have, need);
	shm_layout(c, base);
}

/* ---- the responder ------------------------------------------------------------------------- */

static int respond(int argc, char **argv)
{
	bench_prog = "pingpong respond";
	const char *mech = NULL, *name = NULL, *fds = NULL;
	uint64_t size = 0, count = 0, corrupt_at = 0, spin = bench_spin_limit;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--name", &name),
		BENCH_STR("--fds", &fds),
		BENCH_NUM("--size", &size, 1, 1 << 30),
		BENCH_NUM("--count", &count, 1, UINT32_MAX - 1),
		BENCH_NUM("--corrupt-at", &corrupt_at, 1, UINT32_MAX - 1),
		BENCH_NUM("--spin", &spin, 0, 1000000),
	};
	bench_parse_flags(argc, argv, 2, flags, BENCH_LEN(flags), "respond: unknown argument %s");
	bench_spin_limit = (unsigned)spin; /* an unsigned: parsed as a uint64_t, then stored */
	struct chan c = {.m = find_mech(mech), .size = size, .rfd = -1, .wfd = -1};
	if (size == 0 || count == 0)
		bench_usage("respond: --size and --count are required");
	if (c.m->kind == K_SHM) {
		if (name == NULL)
			bench_usage("respond: --name is required for %s", c.m->name);
		shm_attach(&c, name);
	} else if (fds == NULL || sscanf(fds, "%d,%d", &c.rfd, &c.wfd) != 2) {
		bench_usage("respond: --fds R,W is required for %s", c.m->name);
	}
	unsigned char *in = bench_alloc(size), *out = bench_alloc(size);
	for (uint64_t round = 1; round <= count; round++) {
		/* The reply is ready before the ping arrives, as a server's would be. */
		bench_fill(out, size, bench_base(round, BENCH_SALT_PONG));
		if (round == corrupt_at)
			out[size / 2] ^= 1;
		chan_recv(&c, PING, (uint32_t)round, in);
		chan_send(&c, PONG, (uint32_t)round, out);
		bench_progress();
		/* After the reply, off the initiator's clock: a real server would use the data now. */
		bench_verify("ping", round, in, size, bench_base(round, BENCH_SALT_PING));
	}
	shm_detach(&c);
	return 0;
}

/* ---- the initiator ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	bench_init("pingpong");
	if (argc > 1 && !strcmp(argv[1], "respond"))
		return respond(argc, argv);

	const char *mech = NULL, *peer = NULL, *cpus = NULL, *id = NULL, *spin = NULL;
	uint64_t size = 0, iters = 2000, warmup = 200, runs = 1, corrupt_ping = 0, corrupt_pong = 0;
	uint64_t spin_n = bench_spin_limit;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--peer", &peer),
		BENCH_STR("--cpus", &cpus),
		BENCH_STR("--id", &id),
		BENCH_NUM("--size", &size, 1, 1 << 30),
		BENCH_NUM("--iters", &iters, 1, 100000000),
		BENCH_NUM("--warmup", &warmup, 1, 100000000),
		BENCH_NUM("--runs", &runs, 1, 1000),
		BENCH_NUM("--corrupt-ping", &corrupt_ping, 1, UINT32_MAX - 1),
		BENCH_NUM("--corrupt-pong", &corrupt_pong, 1, UINT32_MAX - 1),
		/* The text too: the responder gets --spin only when it was asked for. */
		BENCH_STR_NUM("--spin", &spin, &spin_n, 0, 1000000),
	};
	bench_parse_flags(argc, argv, 1, flags, BENCH_LEN(flags),
			  "pingpong --mech M --size BYTES --iters N --warmup W --runs R [--cpus A,B] "
			  "[--peer PATH] [--id ID] (unknown argument %s)");
	bench_spin_limit = (unsigned)spin_n; /* an unsigned: parsed as a uint64_t, then stored */
	struct chan c = {.m = find_mech(mech), .size = size, .rfd = -1, .wfd = -1};
	if (size == 0)
		bench_usage("--size is required");
	uint64_t total = warmup + iters * runs;
	if (total >= UINT32_MAX - 1)
		bench_usage("warmup + iters * runs must stay below 2^32 - 1");
	if (peer && strcmp(c.m->name, "mmipc-spin") != 0)
		bench_usage("--peer (the Go peer) supports --mech mmipc-spin only");
	int cpu_a = -1, cpu_b = -1;
	if (cpus)
		bench_parse_cpus(cpus, &cpu_a, &cpu_b);
	const char *placement = bench_placement(cpu_a, cpu_b);
	char label[64], param[32], idbuf[160];
	snprintf(label, sizeof label, "%s%s", c.m->name, peer ? "-gopeer" : "");
	snprintf(param, sizeof param, "%" PRIu64, size);
	if (id == NULL) {
		snprintf(idbuf, sizeof idbuf, "pingpong/%s/%s/%s", label, param, placement);
		id = idbuf;
	}
	if (cpu_a >= 0 && bench_pin(cpu_a) != 0)
		bench_fail("pin to CPU %d: %s", cpu_a, strerror(errno));

	/* The transport, and the peer's end of it. */
	char name[64], path[PATH_MAX], mq_ping[NAME_MAX], mq_pong[NAME_MAX];
	bench_name(name, sizeof name, "pp");
	int keep[2] = {-1, -1}, nkeep = 0;
	if (c.m->kind == K_SHM) {
		bench_log_dir();
		size_t len = shm_bytes(size);
		bench_path(path, sizeof path, name);
		if (c.m->mmipc) {
			c.region = mmipc_create(name, len, 0600);
			if (c.region == NULL)
				bench_fail("%s", mmipc_last_error());
			bench_cleanup_add_path(path);
			shm_layout(&c, mmipc_data(c.region));
		} else {
			int fd = bench_raw_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
			if (fd < 0)
				bench_fail("create %s: %s", path, strerror(errno));
			bench_cleanup_add_path(path);
			if (ftruncate(fd, (off_t)len) != 0)
				bench_fail("ftruncate %s: %s", path, strerror(errno));
			c.map_len = len;
			c.map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (c.map == MAP_FAILED)
				bench_fail("mmap: %s", strerror(errno));
			shm_layout(&c, c.map);
		}
	} else if (!strcmp(c.m->name, "uds")) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			bench_fail("socketpair: %s", strerror(errno));
		c.rfd = c.wfd = sv[0];
		keep[nkeep++] = sv[1];
		keep[nkeep++] = sv[1];
	} else if (!strcmp(c.m->name, "pipe")) {
		int ping[2], pong[2];
		if (pipe2(ping, O_CLOEXEC) != 0 || pipe2(pong, O_CLOEXEC) != 0)
			bench_fail("pipe: %s", strerror(errno));
		c.wfd = ping[1];
		c.rfd = pong[0];
		keep[nkeep++] = ping[0];
		keep[nkeep++] = pong[1];
	} else { /* mq */
		struct mq_attr attr = {.mq_maxmsg = 1, .mq_msgsize = (long)size};
		snprintf(mq_ping, sizeof mq_ping, "/%s-ping", name);
		snprintf(mq_pong, sizeof mq_pong, "/%s-pong", name);
		mqd_t a = mq_open(mq_ping, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
		if (a != (mqd_t)-1)
			bench_cleanup_add_mq(mq_ping);
		mqd_t b = a == (mqd_t)-1 ? a : mq_open(mq_pong, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
		if (b != (mqd_t)-1)
			bench_cleanup_add_mq(mq_pong);
		if (a == (mqd_t)-1 || b == (mqd_t)-1)
			bench_fail("mq_open (message size %" PRIu64 "; the limit is /proc/sys/fs/mqueue/msgsize_max): %s", size,
				   strerror(errno));
		c.wfd = a;
		c.rfd = b;
		keep[nkeep++] = a;
		keep[nkeep++] = b;
	}

	char s_size[32], s_total[32], s_fds[32], s_corrupt[32], s_spin[32], s_spin_ns[32];
	snprintf(s_spin, sizeof s_spin, "%u", bench_spin_limit);
	double pause_ns = bench_pause_ns();
	snprintf(s_spin_ns, sizeof s_spin_ns, "%.0f", pause_ns * bench_spin_limit);
	snprintf(s_size, sizeof s_size, "%" PRIu64, size);
	snprintf(s_total, sizeof s_total, "%" PRIu64, total);
	snprintf(s_fds, sizeof s_fds, "%d,%d", keep[0], keep[1]);
	snprintf(s_corrupt, sizeof s_corrupt, "%" PRIu64, corrupt_pong);
	char *pargv[20];
	int n = 0;
	pargv[n++] = (char *)(peer ? peer : "/proc/self/exe");
	pargv[n++] = "respond";
	pargv[n++] = "--mech";
	pargv[n++] = (char *)c.m->name;
	pargv[n++] = "--size";
	pargv[n++] = s_size;
	pargv[n++] = "--count";
	pargv[n++] = s_total;
	if (c.m->kind == K_SHM) {
		pargv[n++] = "--name";
		pargv[n++] = name;
	} else {
		pargv[n++] = "--fds";
		pargv[n++] = s_fds;
	}
	if (corrupt_pong) {
		pargv[n++] = "--corrupt-at";
		pargv[n++] = s_corrupt;
	}
	if (spin) { /* only when asked: the spec's responder command line has no --spin */
		pargv[n++] = "--spin";
		pargv[n++] = s_spin;
	}
	if (peer) {
		/* Go has no pause instruction: it spins for as long as our spin phase lasts. */
		pargv[n++] = "--spin-ns";
		pargv[n++] = s_spin_ns;
	}
	pargv[n] = NULL;

	printf("# pingpong %s size=%" PRIu64 " placement=%s iters=%" PRIu64 " warmup=%" PRIu64 " runs=%" PRIu64
	       " spin=%u pause_ns=%.1f clock_overhead_ns=%.0f\n",
	       label, size, placement, iters, warmup, runs, bench_spin_limit, pause_ns, bench_clock_overhead_ns());
	bench_spawn_peer(pargv, cpu_b, keep, nkeep);
	if (c.m->kind == K_STREAM && keep[0] != c.rfd) {
		/* Our copies of the peer's ends: closed, so that its death reads as EOF here. */
		close(keep[0]);
		if (keep[1] != keep[0])
			close(keep[1]);
	}
	if (c.m->kind == K_MQ) {
		/* Both sides hold the queues now: the names can go. */
		mq_unlink(mq_ping);
		mq_unlink(mq_pong);
		bench_cleanup_forget_mq(mq_ping);
		bench_cleanup_forget_mq(mq_pong);
	}

	unsigned char *out = bench_alloc(size), *in = bench_alloc(size);
	double *samples = malloc(iters * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory for %" PRIu64 " samples", iters);
	for (uint64_t round = 1; round <= total; round++) {
		bench_fill(out, size, bench_base(round, BENCH_SALT_PING));
		if (round == corrupt_ping)
			out[size / 2] ^= 1;
		uint64_t t0 = bench_now_ns();
		chan_send(&c, PING, (uint32_t)round, out);
		chan_recv(&c, PONG, (uint32_t)round, in);
		uint64_t t1 = bench_now_ns();
		bench_progress();
		bench_verify("pong", round, in, size, bench_base(round, BENCH_SALT_PONG));
		if (round == 1 && c.m->kind == K_SHM) {
			/* The peer has attached: remove the name now, so that nothing is left behind
			 * whatever happens next (both mappings stay valid). */
			if (c.m->mmipc ? mmipc_unlink(name) : bench_raw_unlink(name))
				bench_fail("unlink %s: %s", name, c.m->mmipc ? mmipc_last_error() : strerror(errno));
			bench_cleanup_forget_path(path);
		}
		if (round <= warmup)
			continue;
		uint64_t k = (round - warmup - 1) % iters;
		samples[k] = (double)(t1 - t0);
		if (k == iters - 1) {
			struct bench_stats s = bench_stats_of(samples, iters);
			bench_result(id, "pingpong", label, param, placement, "ns", &s, 2 * size);
		}
	}
	bench_wait_peer();
	shm_detach(&c);
	free(samples);
	free(in);
	free(out);
	return 0;
}
