/*
 * engine.h - what the C/C++ peer engines of bench/peers share (bench/peers/README.md): the
 * command line, the round-trip and one-way throughput loops, the message format, the peer process
 * and the RESULT lines (through bench/c/bench.h: statistics, watchdog, clean-up, data pattern).
 *
 * An engine #defines T_MECH (the mechanism name of its ids) and T_TAG (a short tag for the names
 * of its resources), includes this file, defines the transport functions declared below, and
 * calls engine_main. Only the transport differs between the engines, as in pingpong.c.
 *
 *   ENGINE --mode rt|tput --size 64 --iters N --runs R --warmup W [--cpus A,B] [--batch B]
 *          [--depth D] [--spin N] [--id ID] [--corrupt K]
 *   ENGINE peer --mode rt|tput --size S --count TOTAL --depth D --name NAME --done-fd FD
 *          [--corrupt K] [--spin N]                                      (internal: the peer)
 *
 * Start of tput: the peer sends message 1 and waits for a byte on the done pipe, which the engine
 * writes when it has received message 1, so the stream starts with every connection complete.
 *
 * Roles. rt: this process is the initiator (pinned to A), the peer the responder (B). tput: the
 * peer is the sender (A), this process the receiver (B), which measures and prints the RESULT
 * lines. Directions: DOWN from this process to the peer (the ping), UP from the peer to this
 * process (the pong, and every tput message).
 *
 * Message of sequence number i (1, 2, ...), SIZE bytes: the native-endian u64 i at offset 0, then
 * bench.h's pattern of bench_base(i, salt) in the remaining SIZE - 8 bytes (salts PING, PONG and
 * BULK). The receiver checks the number first (lost, duplicate or reordered message) and then
 * every byte of the pattern.
 */
#ifndef PEERS_ENGINE_H
#define PEERS_ENGINE_H

#include "../c/bench.h"

#if !defined(T_MECH) || !defined(T_TAG)
#error "define T_MECH and T_TAG before including engine.h"
#endif

enum { MODE_RT, MODE_TPUT };
enum { DOWN = 0, UP = 1 };

/* The default depth of the one-way queues (messages in flight): the same for every peer. */
#define ENGINE_DEPTH 256

struct opts {
	int mode;
	size_t size;
	uint64_t iters, runs, warmup, batch, depth, corrupt;
	uint64_t count; /* messages (tput) or round trips (rt) in all: warm-up + runs * iters */
	int cpu_a, cpu_b;
	const char *placement, *id;
	int peer;	    /* this process is the peer */
	char name[64];	    /* base name of the transport's resources: bench-TAG-PID of the engine */
	int done_fd;	    /* peer: EOF on it when the engine has received everything */
	int spin_given;	    /* --spin was on the command line: passed on to the peer */
};

/* ---- the transport: each engine defines these -------------------------------------------- */

/* Creates (engine) or opens (peer) this side's endpoints; o->peer tells which. The engine's
 * resources exist when it returns, so that the peer can open them. */
static void t_open(struct opts *o);
/* Waits (bounded) until the other side is connected, where the transport needs that for a message
 * not to be lost (publish-subscribe discovery). */
static void t_connected(struct opts *o);
/* Engine only, after the first message went both ways (rt) or arrived (tput): the peer holds
 * everything it needs, so the names can go. */
static void t_first_done(struct opts *o);
/* Copies o->size bytes from buf into the transport and sends them in direction dir. */
static inline void t_send(int dir, const void *buf);
/* Receives the next message of direction dir and copies its o->size bytes into buf. */
static inline void t_recv(int dir, void *buf);
static void t_close(struct opts *o);
/* One log line's worth about the transport (library version, queue settings). */
static void t_describe(const struct opts *o, char *buf, size_t len);

/* ---- messages ----------------------------------------------------------------------------- */

static inline void msg_fill(unsigned char *buf, size_t n, uint64_t seq, uint64_t salt)
{
	memcpy(buf, &seq, 8);
	bench_fill(buf + 8, n - 8, bench_base(seq, salt));
}

/* Fails unless buf is message seq of salt. */
static inline void msg_verify(const char *what, const unsigned char *buf, size_t n, uint64_t seq, uint64_t salt)
{
	uint64_t got;
	memcpy(&got, buf, 8);
	if (got != seq)
		bench_fail("%s: sequence number %" PRIu64 ", want %" PRIu64 " (%s)", what, got, seq,
			   got < seq ? "a duplicate or stale message" : "a lost or reordered message");
	size_t off = bench_check(buf + 8, n - 8, bench_base(seq, salt));
	if (off != SIZE_MAX) {
		char msg[256];
		bench_mismatch(msg, sizeof msg, what, seq, buf + 8, n - 8, bench_base(seq, salt), off);
		bench_fail("%s (byte offsets after the 8-byte sequence number)", msg);
	}
}

/* ---- the peer ------------------------------------------------------------------------------ */

static const char *mode_name(int mode) { return mode == MODE_RT ? "rt" : "tput"; }

static int parse_mode(const char *v)
{
	if (v && !strcmp(v, "rt"))
		return MODE_RT;
	if (v && !strcmp(v, "tput"))
		return MODE_TPUT;
	bench_usage("--mode %s: want rt or tput", v ? v : "(none)");
}

/* tput: blocks until the engine writes the start byte on the done pipe (it has message 1). */
static void peer_wait_start(int fd)
{
	char c;
	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r == 1)
			return;
		if (r == 0)
			bench_fail("the engine closed the done pipe before the start");
		if (errno != EINTR)
			bench_fail("read the done pipe: %s", strerror(errno));
	}
}

/* Blocks until the engine closes the done pipe (it has every message; the transport may go). */
static void peer_wait_done(int fd)
{
	char c;
	for (;;) {
		ssize_t r = read(fd, &c, 1);
		if (r == 0)
			return;
		if (r < 0 && errno != EINTR)
			bench_fail("read the done pipe: %s", strerror(errno));
	}
}

static int peer_main(int argc, char **argv)
{
	bench_prog = T_MECH " peer";
	struct opts o = {.mode = -1, .done_fd = -1, .peer = 1};
	const char *name = NULL;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--mode"))
			o.mode = parse_mode(v);
		else if (!strcmp(a, "--size"))
			o.size = bench_parse_u64(a, v, 16, 1 << 20);
		else if (!strcmp(a, "--count"))
			o.count = bench_parse_u64(a, v, 1, UINT64_MAX / 2);
		else if (!strcmp(a, "--depth"))
			o.depth = bench_parse_u64(a, v, 1, 1 << 20);
		else if (!strcmp(a, "--name"))
			name = v;
		else if (!strcmp(a, "--done-fd"))
			o.done_fd = (int)bench_parse_u64(a, v, 0, INT_MAX);
		else if (!strcmp(a, "--corrupt"))
			o.corrupt = bench_parse_u64(a, v, 1, UINT64_MAX / 2);
		else if (!strcmp(a, "--spin"))
			bench_spin_limit = (unsigned)bench_parse_u64(a, v, 0, 1000000);
		else
			bench_usage("peer: unknown argument %s", a);
		i++;
	}
	if (o.mode < 0 || o.size == 0 || o.count == 0 || o.depth == 0 || name == NULL || o.done_fd < 0)
		bench_usage("peer: --mode, --size, --count, --depth, --name and --done-fd are required");
	snprintf(o.name, sizeof o.name, "%s", name);
	t_open(&o);
	t_connected(&o);
	unsigned char *in = bench_alloc(o.size), *out = bench_alloc(o.size);
	if (o.mode == MODE_RT) {
		for (uint64_t round = 1; round <= o.count; round++) {
			/* The reply is ready before the ping arrives, as a server's would be. */
			msg_fill(out, o.size, round, BENCH_SALT_PONG);
			if (round == o.corrupt)
				out[o.size / 2] ^= 1;
			t_recv(DOWN, in);
			t_send(UP, out);
			bench_progress();
			/* Off the initiator's clock: a real server would use the data now. */
			msg_verify("ping", in, o.size, round, BENCH_SALT_PING);
		}
	} else {
		for (uint64_t m = 1; m <= o.count; m++) {
			msg_fill(out, o.size, m, BENCH_SALT_BULK);
			if (m == o.corrupt)
				out[o.size / 2] ^= 1;
			t_send(UP, out);
			bench_progress();
			/* The stream starts once the engine has message 1: every connection is complete
			 * then (iceoryx2 drops samples sent into a full buffer before its subscriber's
			 * first receive; the C engines keep the same start for the same shape). */
			if (m == 1)
				peer_wait_start(o.done_fd);
		}
	}
	peer_wait_done(o.done_fd);
	t_close(&o);
	free(in);
	free(out);
	return 0;
}

/* ---- the engine --------------------------------------------------------------------------- */

/* Parses the engine's command line into o (exit 2 on a bad one). */
static void engine_parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.mode = -1, .iters = 0, .runs = 1, .warmup = 0, .batch = 10000, .depth = ENGINE_DEPTH,
			   .cpu_a = -1, .cpu_b = -1, .done_fd = -1};
	const char *cpus = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--mode"))
			o->mode = parse_mode(v);
		else if (!strcmp(a, "--size"))
			o->size = bench_parse_u64(a, v, 16, 1 << 20);
		else if (!strcmp(a, "--iters"))
			o->iters = bench_parse_u64(a, v, 1, 1000000000);
		else if (!strcmp(a, "--runs"))
			o->runs = bench_parse_u64(a, v, 1, 1000);
		else if (!strcmp(a, "--warmup"))
			o->warmup = bench_parse_u64(a, v, 1, 1000000000);
		else if (!strcmp(a, "--batch"))
			o->batch = bench_parse_u64(a, v, 1, 1000000000);
		else if (!strcmp(a, "--depth"))
			o->depth = bench_parse_u64(a, v, 1, 1 << 20);
		else if (!strcmp(a, "--cpus"))
			cpus = v;
		else if (!strcmp(a, "--id"))
			o->id = v;
		else if (!strcmp(a, "--corrupt"))
			o->corrupt = bench_parse_u64(a, v, 1, UINT64_MAX / 2);
		else if (!strcmp(a, "--spin")) {
			bench_spin_limit = (unsigned)bench_parse_u64(a, v, 0, 1000000);
			o->spin_given = 1;
		} else
			bench_usage("%s --mode rt|tput --size BYTES --iters N --runs R --warmup W [--cpus A,B] [--batch B] "
				    "[--depth D] [--spin N] [--id ID] [--corrupt K] (unknown argument %s)",
				    T_MECH, a);
		i++;
	}
	if (o->mode < 0 || o->size == 0)
		bench_usage("--mode and --size are required");
	if (o->iters == 0)
		o->iters = o->mode == MODE_RT ? 2000 : 100000;
	if (o->warmup == 0)
		o->warmup = o->mode == MODE_RT ? 200 : 10000;
	if (o->mode == MODE_TPUT && o->iters % o->batch != 0)
		bench_usage("--iters %" PRIu64 " must be a multiple of --batch %" PRIu64 " (one sample per batch)", o->iters,
			    o->batch);
	if (o->mode == MODE_RT)
		o->depth = 1; /* strict alternation: one message in flight each way */
	o->count = o->warmup + o->iters * o->runs;
	if (cpus)
		bench_parse_cpus(cpus, &o->cpu_a, &o->cpu_b);
	o->placement = bench_placement(o->cpu_a, o->cpu_b);
}

static void engine_result(const struct opts *o, double *samples, size_t n)
{
	char param[32], idbuf[160];
	snprintf(param, sizeof param, "%zu", o->size);
	const char *id = o->id;
	if (id == NULL) {
		snprintf(idbuf, sizeof idbuf, "ring-%s/%s/%s/%s", mode_name(o->mode), T_MECH, param, o->placement);
		id = idbuf;
	}
	struct bench_stats s = bench_stats_of(samples, n);
	bench_result(id, "ring", T_MECH, param, o->placement, "ns", &s,
		     o->mode == MODE_RT ? 2 * (uint64_t)o->size : (uint64_t)o->size);
}

/* The engine after its command line was parsed: argv[0] of the process is re-run as the peer. */
static int engine_run(struct opts *o)
{
	int self_cpu = o->mode == MODE_RT ? o->cpu_a : o->cpu_b;
	int peer_cpu = o->mode == MODE_RT ? o->cpu_b : o->cpu_a;
	if (self_cpu >= 0 && bench_pin(self_cpu) != 0)
		bench_fail("pin to CPU %d: %s", self_cpu, strerror(errno));
	bench_name(o->name, sizeof o->name, T_TAG);
	t_open(o);

	int done[2];
	if (pipe2(done, O_CLOEXEC) != 0)
		bench_fail("pipe: %s", strerror(errno));
	char s_size[32], s_count[32], s_depth[32], s_fd[32], s_corrupt[32], s_spin[32];
	snprintf(s_size, sizeof s_size, "%zu", o->size);
	snprintf(s_count, sizeof s_count, "%" PRIu64, o->count);
	snprintf(s_depth, sizeof s_depth, "%" PRIu64, o->depth);
	snprintf(s_fd, sizeof s_fd, "%d", done[0]);
	snprintf(s_corrupt, sizeof s_corrupt, "%" PRIu64, o->corrupt);
	snprintf(s_spin, sizeof s_spin, "%u", bench_spin_limit);
	char *pargv[24];
	int n = 0;
	pargv[n++] = "/proc/self/exe";
	pargv[n++] = "peer";
	pargv[n++] = "--mode";
	pargv[n++] = (char *)mode_name(o->mode);
	pargv[n++] = "--size";
	pargv[n++] = s_size;
	pargv[n++] = "--count";
	pargv[n++] = s_count;
	pargv[n++] = "--depth";
	pargv[n++] = s_depth;
	pargv[n++] = "--name";
	pargv[n++] = o->name;
	pargv[n++] = "--done-fd";
	pargv[n++] = s_fd;
	if (o->corrupt) {
		pargv[n++] = "--corrupt";
		pargv[n++] = s_corrupt;
	}
	if (o->spin_given) {
		pargv[n++] = "--spin";
		pargv[n++] = s_spin;
	}
	pargv[n] = NULL;

	char about[512];
	t_describe(o, about, sizeof about);
	if (o->mode == MODE_RT)
		printf("# ring-rt %s size=%zu placement=%s (initiator cpu %d, responder cpu %d) iters=%" PRIu64
		       " warmup=%" PRIu64 " runs=%" PRIu64 " spin=%u clock_overhead_ns=%.0f\n",
		       T_MECH, o->size, o->placement, o->cpu_a, o->cpu_b, o->iters, o->warmup, o->runs, bench_spin_limit,
		       bench_clock_overhead_ns());
	else
		printf("# ring-tput %s size=%zu placement=%s (sender cpu %d, receiver cpu %d) iters=%" PRIu64
		       " batch=%" PRIu64 " warmup=%" PRIu64 " runs=%" PRIu64 " depth=%" PRIu64
		       " spin=%u clock_overhead_ns=%.0f\n",
		       T_MECH, o->size, o->placement, o->cpu_a, o->cpu_b, o->iters, o->batch, o->warmup, o->runs, o->depth,
		       bench_spin_limit, bench_clock_overhead_ns());
	printf("# %s\n", about);

	bench_spawn_peer(pargv, peer_cpu, &done[0], 1);
	close(done[0]);
	t_connected(o);

	unsigned char *out = bench_alloc(o->size), *in = bench_alloc(o->size);
	size_t per_run = o->mode == MODE_RT ? o->iters : o->iters / o->batch;
	double *samples = malloc(per_run * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory for %zu samples", per_run);
	if (o->mode == MODE_RT) {
		for (uint64_t round = 1; round <= o->count; round++) {
			msg_fill(out, o->size, round, BENCH_SALT_PING);
			uint64_t t0 = bench_now_ns();
			t_send(DOWN, out);
			t_recv(UP, in);
			uint64_t t1 = bench_now_ns();
			bench_progress();
			msg_verify("pong", in, o->size, round, BENCH_SALT_PONG);
			if (round == 1)
				t_first_done(o);
			if (round <= o->warmup)
				continue;
			uint64_t k = (round - o->warmup - 1) % o->iters;
			samples[k] = (double)(t1 - t0);
			if (k == o->iters - 1)
				engine_result(o, samples, per_run);
		}
	} else {
		uint64_t prev = 0;
		for (uint64_t m = 1; m <= o->count; m++) {
			t_recv(UP, in);
			msg_verify("message", in, o->size, m, BENCH_SALT_BULK);
			bench_progress();
			if (m == 1) {
				t_first_done(o);
				if (write(done[1], "s", 1) != 1)
					bench_fail("write the start byte: %s", strerror(errno));
			}
			if (m < o->warmup)
				continue;
			if (m == o->warmup) {
				prev = bench_now_ns();
				continue;
			}
			if ((m - o->warmup) % o->batch != 0)
				continue;
			uint64_t now = bench_now_ns();
			uint64_t k = ((m - o->warmup) / o->batch - 1) % per_run;
			samples[k] = (double)(now - prev) / (double)o->batch;
			prev = now;
			if (k == per_run - 1)
				engine_result(o, samples, per_run);
		}
	}
	close(done[1]); /* the peer may close its transport now */
	bench_wait_peer();
	t_close(o);
	free(samples);
	free(in);
	free(out);
	return 0;
}

/* main of an engine without a supervisor: `peer ...` runs the peer, anything else the engine. */
static int engine_main(int argc, char **argv)
{
	bench_init(T_MECH);
	if (argc > 1 && !strcmp(argv[1], "peer"))
		return peer_main(argc, argv);
	struct opts o;
	engine_parse(argc, argv, &o);
	return engine_run(&o);
}

#endif /* PEERS_ENGINE_H */
