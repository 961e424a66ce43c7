/*
 * bandwidth.c - bulk transfer between two processes (bench/ENGINES.md, "bandwidth").
 *
 *   bandwidth --mech M --size BYTES --iters N --runs R [--warmup W] [--cpus A,B] [--peer PATH] [--id ID]
 *   bandwidth consume --mech M --name NAME --size BYTES --count TOTAL [--fds R,W] [--spin-ns D]
 *
 * One transfer, timed from the producer's first byte to the consumer's acknowledgement:
 *   mmipc   the producer copies BYTES from its source buffer into an mmipc region and publishes
 *           them (release store of seq); the consumer verifies every word in place and stores ack.
 *   uds     the producer writes BYTES into a socketpair; the consumer reads them into its buffer,
 *           verifies every word and writes a one-byte ack.
 *   memcpy  one process: memcpy BYTES from the source buffer to a destination buffer, then verify
 *           every word of the destination: the limit of the two above on one core.
 * The source buffer holds transfer i's pattern (every word changes from one transfer to the next),
 * written before the clock starts. --peer PATH runs the Go consumer (mmipc only).
 *
 * Region layout (mmipc): u32 seq at 0, u32 ack at 64, data at 4096.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sys/socket.h>

#include "mmipc.h"

#define DATA_OFF 4096
#define ACK_OK 'K'
#define ACK_BAD 'E'

enum mech { M_MMIPC, M_UDS, M_MEMCPY };

static enum mech find_mech(const char *name)
{
	if (name && !strcmp(name, "mmipc"))
		return M_MMIPC;
	if (name && !strcmp(name, "uds"))
		return M_UDS;
	if (name && !strcmp(name, "memcpy"))
		return M_MEMCPY;
	bench_usage("--mech %s: want mmipc, uds or memcpy", name ? name : "(none)");
}

static const char *mech_name[] = {"mmipc", "uds", "memcpy"};

/* ---- the consumer -------------------------------------------------------------------------- */

static int consume(int argc, char **argv)
{
	bench_prog = "bandwidth consume";
	const char *mech = "mmipc", *name = NULL, *fds = NULL;
	uint64_t size = 0, count = 0, spin = bench_spin_limit;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--name", &name),
		BENCH_STR("--fds", &fds),
		BENCH_NUM("--size", &size, 1, UINT64_C(1) << 40),
		BENCH_NUM("--count", &count, 1, UINT32_MAX - 1),
		BENCH_NUM("--spin", &spin, 0, 1000000),
	};
	bench_parse_flags(argc, argv, 2, flags, BENCH_LEN(flags), "consume: unknown argument %s");
	bench_spin_limit = (unsigned)spin; /* an unsigned: parsed as a uint64_t, then stored */
	enum mech m = find_mech(mech);
	if (size == 0 || count == 0 || m == M_MEMCPY)
		bench_usage("consume: --mech mmipc|uds, --size and --count are required");
	if (m == M_MMIPC) {
		if (name == NULL)
			bench_usage("consume: --name is required");
		mmipc_region *r = mmipc_open(name, 0);
		if (r == NULL)
			bench_fail("%s", mmipc_last_error());
		if (mmipc_size(r) < DATA_OFF + size)
			bench_fail("region %s has %zu bytes, want %" PRIu64, name, mmipc_size(r), DATA_OFF + size);
		unsigned char *base = mmipc_data(r);
		uint32_t *seq = (uint32_t *)base, *ack = (uint32_t *)(base + 64);
		for (uint64_t round = 1; round <= count; round++) {
			uint32_t v = bench_spin_wait(seq, (uint32_t)round);
			if (v != round)
				bench_fail("sequence word is %#x, want %" PRIu64, v, round);
			/* In place: the consumer reads the producer's bytes where they are. */
			uint64_t want = bench_base(round, BENCH_SALT_BULK);
			size_t off = bench_check(base + DATA_OFF, size, want);
			if (off != SIZE_MAX) {
				/* The message first: the producer kills us as soon as it sees the error. */
				char msg[256];
				bench_mismatch(msg, sizeof msg, "transfer", round, base + DATA_OFF, size, want, off);
				fprintf(stderr, "%s: FAIL: %s\n", bench_prog, msg);
				__atomic_store_n(ack, BENCH_SEQ_ERR, __ATOMIC_RELEASE);
				_exit(1);
			}
			__atomic_store_n(ack, (uint32_t)round, __ATOMIC_RELEASE);
			bench_progress();
		}
		mmipc_detach(r);
		return 0;
	}
	int rfd, wfd;
	if (fds == NULL || sscanf(fds, "%d,%d", &rfd, &wfd) != 2)
		bench_usage("consume: --fds R,W is required for uds");
	unsigned char *buf = bench_alloc(size);
	for (uint64_t round = 1; round <= count; round++) {
		bench_read_full(rfd, buf, size);
		uint64_t want = bench_base(round, BENCH_SALT_BULK);
		size_t off = bench_check(buf, size, want);
		if (off != SIZE_MAX) {
			char msg[256], a = ACK_BAD;
			bench_mismatch(msg, sizeof msg, "transfer", round, buf, size, want, off);
			fprintf(stderr, "%s: FAIL: %s\n", bench_prog, msg);
			bench_write_full(wfd, &a, 1);
			_exit(1);
		}
		char a = ACK_OK;
		bench_write_full(wfd, &a, 1);
		bench_progress();
	}
	free(buf);
	return 0;
}

/* ---- the producer -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	bench_init("bandwidth");
	if (argc > 1 && !strcmp(argv[1], "consume"))
		return consume(argc, argv);

	const char *mech = NULL, *peer = NULL, *cpus = NULL, *id = NULL;
	uint64_t size = 0, iters = 10, warmup = 0, runs = 1, corrupt_at = 0;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--peer", &peer),
		BENCH_STR("--cpus", &cpus),
		BENCH_STR("--id", &id),
		BENCH_NUM("--size", &size, 1, UINT64_C(1) << 40),
		BENCH_NUM("--iters", &iters, 1, 100000000),
		BENCH_NUM("--warmup", &warmup, 1, 100000000),
		BENCH_NUM("--runs", &runs, 1, 1000),
		BENCH_NUM("--corrupt-at", &corrupt_at, 1, UINT32_MAX - 1),
	};
	bench_parse_flags(argc, argv, 1, flags, BENCH_LEN(flags),
			  "bandwidth --mech mmipc|uds|memcpy --size BYTES --iters N --runs R [--warmup W] "
			  "[--cpus A,B] [--peer PATH] [--id ID] (unknown argument %s)");
	enum mech m = find_mech(mech);
	if (size == 0)
		bench_usage("--size is required");
	if (warmup == 0) /* enough to fault every page in and warm the caches */
		warmup = size >= (16u << 20) ? 1 : 10;
	uint64_t total = warmup + iters * runs;
	if (total >= UINT32_MAX - 1)
		bench_usage("warmup + iters * runs must stay below 2^32 - 1");
	if (peer && m != M_MMIPC)
		bench_usage("--peer (the Go consumer) supports --mech mmipc only");
	int cpu_a = -1, cpu_b = -1;
	if (cpus)
		bench_parse_cpus(cpus, &cpu_a, &cpu_b);
	const char *placement = bench_placement(cpu_a, cpu_b);
	char label[64], param[32], idbuf[160];
	snprintf(label, sizeof label, "%s%s", mech_name[m], peer ? "-gopeer" : "");
	snprintf(param, sizeof param, "%" PRIu64, size);
	if (id == NULL) {
		snprintf(idbuf, sizeof idbuf, "bandwidth/%s/%s", label, param);
		id = idbuf;
	}
	if (cpu_a >= 0 && bench_pin(cpu_a) != 0)
		bench_fail("pin to CPU %d: %s", cpu_a, strerror(errno));

	char name[64], path[PATH_MAX];
	bench_name(name, sizeof name, "bw");
	bench_path(path, sizeof path, name);
	mmipc_region *r = NULL;
	unsigned char *region = NULL, *dst = NULL;
	uint32_t *seq = NULL, *ack = NULL;
	int fd = -1, peer_fd = -1;
	if (m == M_MMIPC) {
		bench_log_dir();
		r = mmipc_create(name, DATA_OFF + size, 0600);
		if (r == NULL)
			bench_fail("%s", mmipc_last_error());
		bench_cleanup_add_path(path);
		region = mmipc_data(r);
		seq = (uint32_t *)region;
		ack = (uint32_t *)(region + 64);
	} else if (m == M_UDS) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			bench_fail("socketpair: %s", strerror(errno));
		fd = sv[0];
		peer_fd = sv[1];
		int sndbuf = 0;
		socklen_t len = sizeof sndbuf;
		getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
		printf("# uds: default socket buffers (SO_SNDBUF %d bytes)\n", sndbuf);
	} else {
		dst = bench_alloc(size);
	}
	double pause_ns = bench_pause_ns();
	printf("# bandwidth %s size=%" PRIu64 " placement=%s iters=%" PRIu64 " warmup=%" PRIu64 " runs=%" PRIu64
	       " pause_ns=%.1f clock_overhead_ns=%.0f\n",
	       label, size, placement, iters, warmup, runs, pause_ns, bench_clock_overhead_ns());

	if (m != M_MEMCPY) {
		char s_size[32], s_total[32], s_fds[32], s_spin_ns[32];
		snprintf(s_size, sizeof s_size, "%" PRIu64, size);
		snprintf(s_total, sizeof s_total, "%" PRIu64, total);
		snprintf(s_fds, sizeof s_fds, "%d,%d", peer_fd, peer_fd);
		snprintf(s_spin_ns, sizeof s_spin_ns, "%.0f", pause_ns * bench_spin_limit);
		char *pargv[16];
		int n = 0;
		pargv[n++] = (char *)(peer ? peer : "/proc/self/exe");
		pargv[n++] = "consume";
		if (!peer) {
			pargv[n++] = "--mech";
			pargv[n++] = (char *)mech_name[m];
		}
		pargv[n++] = "--size";
		pargv[n++] = s_size;
		pargv[n++] = "--count";
		pargv[n++] = s_total;
		if (m == M_MMIPC) {
			pargv[n++] = "--name";
			pargv[n++] = name;
		} else {
			pargv[n++] = "--fds";
			pargv[n++] = s_fds;
		}
		if (peer) {
			pargv[n++] = "--spin-ns";
			pargv[n++] = s_spin_ns;
		}
		pargv[n] = NULL;
		bench_spawn_peer(pargv, cpu_b, &peer_fd, m == M_UDS);
		if (m == M_UDS)
			close(peer_fd); /* the peer's death then reads as EOF here */
	}

	unsigned char *src = bench_alloc(size);
	double *samples = malloc(iters * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory for %" PRIu64 " samples", iters);
	for (uint64_t round = 1; round <= total; round++) {
		uint64_t base = bench_base(round, BENCH_SALT_BULK);
		bench_fill(src, size, base);
		if (round == corrupt_at)
			src[size / 2] ^= 1;
		uint64_t t0 = bench_now_ns();
		switch (m) {
		case M_MMIPC:
			memcpy(region + DATA_OFF, src, size);
			__atomic_store_n(seq, (uint32_t)round, __ATOMIC_RELEASE);
			if (bench_spin_wait(ack, (uint32_t)round) != round)
				bench_fail("the consumer found wrong data in transfer %" PRIu64, round);
			break;
		case M_UDS: {
			char a = 0;
			bench_write_full(fd, src, size);
			bench_read_full(fd, &a, 1);
			if (a != ACK_OK)
				bench_fail("the consumer found wrong data in transfer %" PRIu64, round);
			break;
		}
		case M_MEMCPY:
			memcpy(dst, src, size);
			if (bench_check(dst, size, base) != SIZE_MAX)
				bench_verify("transfer", round, dst, size, base);
			break;
		}
		uint64_t t1 = bench_now_ns();
		bench_progress();
		if (round == 1 && m == M_MMIPC) {
			/* The consumer has attached: the name can go now. */
			if (mmipc_unlink(name) != 0)
				bench_fail("%s", mmipc_last_error());
			bench_cleanup_forget_path(path);
		}
		if (round <= warmup)
			continue;
		uint64_t k = (round - warmup - 1) % iters;
		samples[k] = (double)(t1 - t0);
		if (k == iters - 1) {
			struct bench_stats s = bench_stats_of(samples, iters);
			bench_result(id, "bandwidth", label, param, placement, "ns", &s, size);
		}
	}
	bench_wait_peer();
	if (r)
		mmipc_detach(r);
	free(samples);
	free(src);
	free(dst);
	return 0;
}
