/*
 * iceoryx.c - peer engine: iceoryx (classic, the Debian packages, 2.0.x) publish-subscribe through
 * its C binding, busy-polling receive (bench/peers/README.md; the shape is engine.h's).
 *
 * Three processes. The program the driver starts is a supervisor: it starts the daemon iox-roudi
 * (output to a log file in a private temporary directory), waits until it says it is ready (at
 * most 10 s), runs itself again as the engine (`--supervised ...`, which runs the peer as usual),
 * waits for it, then stops RouDi (SIGTERM, at most 10 s, then SIGKILL) and reaps it, whatever
 * the engine's outcome, and exits with the engine's status. RouDi gets PR_SET_PDEATHSIG, so it
 * dies with the supervisor; a RouDi that was killed leaves /dev/shm/iceoryx_mgmt and
 * /dev/shm/<user> behind, which the next RouDi takes over. Only one RouDi can run on a machine:
 * the supervisor fails (exit 1) if another one is running.
 *
 * Ports: service "bench", instance bench-iox-PID, events "down" (engine -> peer) and "up" (peer ->
 * engine). rt: queue capacity 1, the default DISCARD_OLDEST policies (strict alternation never
 * fills a queue). tput: one "up" queue of --depth chunks (at most 256 in the stock build),
 * queueFullPolicy BLOCK_PRODUCER and subscriberTooSlowPolicy WAIT_FOR_CONSUMER: a full queue
 * makes the publisher wait. Send: loan a chunk, copy the message in, publish. Receive: take a chunk
 * (spin, then sched_yield between tries: bench.h's spin policy), copy the message out, release.
 */
#define _GNU_SOURCE
#define T_MECH "iceoryx"
#define T_TAG "iox"
#include "engine.h"

#include <dirent.h>
#include <pwd.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>

/* The build passes the version of the headers (their directory is /usr/include/iceoryx/vX.Y.Z):
 * iceoryx_versions.hpp, which has it, is C++. */
#ifndef IOX_VERSION
#define IOX_VERSION "2.x"
#endif

#define IOX_QUEUE_MAX 256 /* MAX_SUBSCRIBER_QUEUE_CAPACITY of the stock build */

static iox_pub_storage_t pub_storage[2];
static iox_sub_storage_t sub_storage[2];
static iox_pub_t pub[2];
static iox_sub_t sub[2];
static size_t isize;

static const char *event_name(int d) { return d == DOWN ? "down" : "up"; }

static void t_open(struct opts *o)
{
	isize = o->size;
	if (o->depth > IOX_QUEUE_MAX)
		bench_usage("--depth %" PRIu64 ": iceoryx queues hold at most %d chunks", o->depth, IOX_QUEUE_MAX);
	char app[100];
	snprintf(app, sizeof app, "%s%s", o->name, o->peer ? "-peer" : "");
	/* Warnings and errors only: the registration's debug lines would fill stderr. */
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(app);
	int tput = o->mode == MODE_TPUT;
	for (int d = DOWN; d <= UP; d++) {
		if (tput && d == DOWN)
			continue;
		int publishes = (d == DOWN) == !o->peer;
		if (publishes) {
			iox_pub_options_t po;
			iox_pub_options_init(&po);
			po.historyCapacity = 0;
			if (tput)
				po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
			pub[d] = iox_pub_init(&pub_storage[d], "bench", o->name, event_name(d), &po);
			if (pub[d] == NULL)
				bench_fail("iox_pub_init %s failed", event_name(d));
		} else {
			iox_sub_options_t so;
			iox_sub_options_init(&so);
			so.queueCapacity = o->depth;
			so.historyRequest = 0;
			if (tput)
				so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
			sub[d] = iox_sub_init(&sub_storage[d], "bench", o->name, event_name(d), &so);
			if (sub[d] == NULL)
				bench_fail("iox_sub_init %s failed", event_name(d));
		}
	}
}

/* RouDi connects the ports in its discovery loop (every ~100 ms): wait for it, at most 10 s, before
 * the first message (history 0: a chunk published earlier would reach nobody). */
static void t_connected(struct opts *o)
{
	(void)o;
	uint64_t deadline = bench_now_ns() + 10 * UINT64_C(1000000000);
	for (;;) {
		int ready = 1;
		for (int d = DOWN; d <= UP; d++) {
			if (pub[d] != NULL && !iox_pub_has_subscribers(pub[d]))
				ready = 0;
			if (sub[d] != NULL && iox_sub_get_subscription_state(sub[d]) != SubscribeState_SUBSCRIBED)
				ready = 0;
		}
		if (ready)
			return;
		if (bench_now_ns() > deadline)
			bench_fail("the ports were not connected within 10 s (is RouDi running?)");
		bench_progress();
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

/* Nothing to remove: RouDi owns every name. */
static void t_first_done(struct opts *o) { (void)o; }

static inline void t_send(int dir, const void *buf)
{
	void *p = NULL;
	enum iox_AllocationResult r = iox_pub_loan_chunk(pub[dir], &p, (uint32_t)isize);
	if (r != AllocationResult_SUCCESS)
		bench_fail("iox_pub_loan_chunk: result %d", (int)r);
	memcpy(p, buf, isize);
	iox_pub_publish_chunk(pub[dir], p);
}

static inline void t_recv(int dir, void *buf)
{
	const void *p = NULL;
	unsigned spins = 0;
	for (;;) {
		enum iox_ChunkReceiveResult r = iox_sub_take_chunk(sub[dir], &p);
		if (r == ChunkReceiveResult_SUCCESS)
			break;
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			bench_fail("iox_sub_take_chunk: result %d", (int)r);
		if (spins < bench_spin_limit) {
			spins++;
			bench_cpu_relax();
		} else {
			sched_yield();
		}
	}
	memcpy(buf, p, isize);
	iox_sub_release_chunk(sub[dir], p);
}

/* The ports go; the runtime unregisters from RouDi when the process exits. */
static void t_close(struct opts *o)
{
	(void)o;
	for (int d = DOWN; d <= UP; d++) {
		if (pub[d] != NULL)
			iox_pub_deinit(pub[d]);
		if (sub[d] != NULL)
			iox_sub_deinit(sub[d]);
		pub[d] = NULL;
		sub[d] = NULL;
	}
}

static void t_describe(const struct opts *o, char *buf, size_t len)
{
	snprintf(buf, len,
		 "iceoryx %s C binding, RouDi iox-roudi, service bench/%s/{down,up}, queue capacity %" PRIu64
		 ", %s, receive busy-polls",
		 IOX_VERSION, o->name, o->depth,
		 o->mode == MODE_TPUT ? "BLOCK_PRODUCER + WAIT_FOR_CONSUMER" : "history 0");
}

/* ---- the supervisor: RouDi's lifetime ------------------------------------------------------ */

static volatile sig_atomic_t sup_signal;
static void sup_on_signal(int sig) { sup_signal = sig; }

static double elapsed_ms(uint64_t t0) { return (double)(bench_now_ns() - t0) / 1e6; }

/* Whether the file holds s (RouDi's log is small: read it whole). */
static int file_has(const char *path, const char *s)
{
	char buf[16384];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, s) != NULL;
}

static void print_file(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (write(2, buf, (size_t)n) < 0)
			break;
	close(fd);
}

/* fork + exec with the signals unblocked and PR_SET_PDEATHSIG (the child dies with us). out >= 0:
 * the child's stdout and stderr. */
static pid_t sup_spawn(char *const argv[], const sigset_t *mask, int out, int search_path)
{
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "iceoryx: FAIL: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (out >= 0 && (dup2(out, 1) < 0 || dup2(out, 2) < 0))
			_exit(1);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		sigprocmask(SIG_SETMASK, mask, NULL);
		if (search_path)
			execvp(argv[0], argv);
		else
			execv(argv[0], argv);
		dprintf(2, "iceoryx: FAIL: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Waits up to ms for pid; returns 1 and its status if it exited. */
static int sup_wait(pid_t pid, int *status, int ms)
{
	for (int i = 0;; i++) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return 1; /* not our child any more: nothing to wait for */
		if (i >= ms)
			return 0;
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
}

/* Removes the directory dir and the files in it (RouDi's log). */
static void rm_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *e;
		char p[PATH_MAX];
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Files of an iceoryx run that a dead process leaves behind: each application's socket and lock
 * (/tmp/NAME, /tmp/NAME.lock; removed by the runtime at a normal exit, not by _exit), and, when
 * RouDi did not exit cleanly, RouDi's own (its sockets and locks in /tmp, its two shared-memory
 * segments: iceoryx_mgmt and the one named after the user). Only one RouDi runs on a machine and
 * ours is gone when this runs, so these are ours. */
static void sup_remove_leftovers(pid_t engine_pid, int roudi_clean)
{
	char p[PATH_MAX];
	static const char *const app_files[] = {"", ".lock", "-peer", "-peer.lock"};
	for (size_t i = 0; engine_pid > 0 && i < sizeof app_files / sizeof app_files[0]; i++) {
		snprintf(p, sizeof p, "/tmp/bench-iox-%d%s", (int)engine_pid, app_files[i]);
		unlink(p);
	}
	if (roudi_clean)
		return;
	static const char *const roudi_files[] = {"/tmp/roudi", "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock",
						  "/dev/shm/iceoryx_mgmt"};
	for (size_t i = 0; i < sizeof roudi_files / sizeof roudi_files[0]; i++)
		unlink(roudi_files[i]);
	struct passwd *pw = getpwuid(geteuid());
	if (pw != NULL && pw->pw_name[0] && strchr(pw->pw_name, '/') == NULL) {
		snprintf(p, sizeof p, "/dev/shm/%s", pw->pw_name);
		unlink(p);
	}
}

static int supervise(int argc, char **argv)
{
	bench_prog = "iceoryx";
	struct opts o;
	engine_parse(argc, argv, &o); /* a bad command line exits 2 before RouDi starts */
	if (o.depth > IOX_QUEUE_MAX)
		bench_usage("--depth %" PRIu64 ": iceoryx queues hold at most %d chunks", o.depth, IOX_QUEUE_MAX);
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Signals are taken synchronously (a flag, then the loops below act on it): the engine is
	 * killed, RouDi is still stopped properly. */
	sigset_t old;
	struct sigaction sa = {0};
	sa.sa_handler = sup_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigprocmask(SIG_SETMASK, NULL, &old);

	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX - 16], log[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/bench-iox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "iceoryx: FAIL: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(log, sizeof log, "%s/roudi.log", dir);
	int logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (logfd < 0) {
		fprintf(stderr, "iceoryx: FAIL: %s: %s\n", log, strerror(errno));
		rm_dir(dir);
		return 1;
	}
	const char *roudi_bin = getenv("IOX_ROUDI");
	char *rargv[] = {(char *)(roudi_bin && *roudi_bin ? roudi_bin : "iox-roudi"), "--log-level", "info",
			 "--kill-delay", "2", NULL};
	uint64_t t0 = bench_now_ns();
	pid_t roudi = sup_spawn(rargv, &old, logfd, 1);
	close(logfd);
	int status = 0, rc = 1, roudi_clean = 0;
	pid_t engine = -1, engine_pid = -1;
	if (roudi < 0)
		goto out;
	/* Ready: RouDi prints this once its shared memory is set up and its socket listens. */
	for (;;) {
		if (file_has(log, "RouDi is ready for clients"))
			break;
		if (sup_wait(roudi, &status, 0)) {
			fprintf(stderr, "iceoryx: FAIL: iox-roudi exited before it was ready (another RouDi running?); its log:\n");
			print_file(log);
			roudi = -1;
			roudi_clean = 1; /* the files in /tmp and /dev/shm may be another RouDi's: leave them */
			goto out;
		}
		if (sup_signal || elapsed_ms(t0) > 10000) {
			fprintf(stderr, "iceoryx: FAIL: %s; its log:\n",
				sup_signal ? "interrupted while iox-roudi started" : "iox-roudi not ready within 10 s");
			print_file(log);
			goto out;
		}
		nanosleep(&(struct timespec){0, 2000000}, NULL);
	}
	printf("# iox-roudi pid %d ready in %.0f ms (log %s)\n", (int)roudi, elapsed_ms(t0), log);

	char **eargv = calloc((size_t)argc + 2, sizeof *eargv);
	if (eargv == NULL)
		goto out;
	eargv[0] = "/proc/self/exe";
	eargv[1] = "--supervised";
	for (int i = 1; i < argc; i++)
		eargv[i + 1] = argv[i];
	engine = engine_pid = sup_spawn(eargv, &old, -1, 0);
	free(eargv);
	if (engine < 0)
		goto out;
	/* The engine's watchdog bounds its run (20 s without progress); RouDi's death ends it too. */
	for (;;) {
		if (sup_wait(engine, &status, 10)) {
			engine = -1;
			if (WIFEXITED(status))
				rc = WEXITSTATUS(status);
			else
				fprintf(stderr, "iceoryx: FAIL: the engine was killed by signal %d\n", WTERMSIG(status));
			break;
		}
		int rs;
		if (sup_wait(roudi, &rs, 0)) {
			roudi = -1;
			fprintf(stderr, "iceoryx: FAIL: iox-roudi died during the run; its log:\n");
			print_file(log);
			break;
		}
		if (sup_signal) {
			fprintf(stderr, "iceoryx: FAIL: killed by signal %d; stopping RouDi\n", (int)sup_signal);
			break;
		}
	}
out:
	if (engine > 0) {
		kill(engine, SIGKILL);
		sup_wait(engine, &status, 2000);
		rc = 1;
	}
	if (roudi > 0) {
		uint64_t t1 = bench_now_ns();
		kill(roudi, SIGTERM);
		if (!sup_wait(roudi, &status, 10000)) {
			fprintf(stderr, "iceoryx: FAIL: iox-roudi did not stop within 10 s of SIGTERM; killed\n");
			kill(roudi, SIGKILL);
			sup_wait(roudi, &status, 2000);
			rc = 1;
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			roudi_clean = 1;
			printf("# iox-roudi stopped in %.0f ms\n", elapsed_ms(t1));
		} else {
			/* iceoryx 2.0.3's RouDi aborts at shutdown when a registered application died without
			 * unregistering (kill(2) fails: POSH__ROUDI_PROCESS_SHUTDOWN_FAILED), which is how a
			 * failed engine ends: its files are removed below. */
			char why[128];
			fprintf(stderr, "iceoryx: iox-roudi %s at shutdown (expected after a failure); removing its files\n",
				bench_describe_status(status, why, sizeof why));
		}
	}
	sup_remove_leftovers(engine_pid, roudi_clean);
	rm_dir(dir);
	if (sup_signal) {
		signal(sup_signal, SIG_DFL);
		raise(sup_signal);
	}
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--supervised")) {
		argv[1] = argv[0];
		return engine_main(argc - 1, argv + 1);
	}
	if (argc > 1 && !strcmp(argv[1], "peer"))
		return engine_main(argc, argv);
	return supervise(argc, argv);
}
