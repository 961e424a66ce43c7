/* test_fork.c - the fork rule (DESIGN.md): in a forked child, grandchildren included, every call
 * that needs the Go runtime fails at once with ENOTSUP and has no side effect, while mmipc_data,
 * mmipc_size, mmipc_fd, mmipc_sync, mmipc_detach, mmipc_last_error and mmipc_version work.
 *
 * The three situations in which entering Go after fork() was seen to hang:
 *   startup      fork() as the very first statement of main, while the Go runtime of the .so may
 *                still be initialising; the child and a grandchild try every Go-needing call.
 *                Each run is a fresh exec of this program (role "startup"), STARTUP_RUNS times.
 *   busy parent  a parent thread creates/opens/detaches/unlinks in a loop (inside Go, allocating)
 *                while the main thread forks BUSY_CHILDREN children.
 *   child work   a child of a parent holding an anonymous, a named and a file region works on all
 *                three with the fork-safe calls and tries the others WORK_LOOPS times.
 * Every wait for a child is bounded (alarm() in the child, a deadline in the parent), so a hang is
 * a failed check, not a stuck test.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define STARTUP_RUNS 20
#define BUSY_CHILDREN 50
#define WORK_LOOPS 1000


/* Reads up to n bytes of path with read(2) (not through a mapping); returns the count or -1. */
static ssize_t read_file(const char *path, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	size_t got = 0;
	ssize_t r;
	while (got < n && (r = read(fd, (char *)buf + got, n - got)) > 0)
		got += (size_t)r;
	close(fd);
	return (ssize_t)got;
}

/* A Go-needing call made in a forked child must fail at once with ENOTSUP and a message that names
 * the call and the fork. */
#define REFUSED(who, fname, failed, call)                                                                     \
	do {                                                                                                  \
		double t0_ = now_s();                                                                         \
		errno = 0;                                                                                    \
		int failed_ = (failed)(call);                                                                 \
		int err_ = errno;                                                                             \
		double dt_ = now_s() - t0_;                                                                   \
		const char *msg_ = mmipc_last_error();                                                        \
		qcheck(failed_ && err_ == ENOTSUP && dt_ < 1.0 && strstr(msg_, "fork") != NULL &&             \
			       strstr(msg_, fname) != NULL,                                                   \
		       "%s: %s: got %s errno %d (%s) after %.3f s, message \"%s\"; want a failure with errno " \
		       "ENOTSUP at once, the message naming %s and the fork",                                \
		       who, #call, failed_ ? "a failure" : "SUCCESS", err_, strerror(err_), dt_, msg_, fname); \
	} while (0)

static int ptr_failed(void *p) { return p == NULL; }
static int int_failed(int r) { return r == -1; }

/* The six Go-needing calls, each on something that would otherwise succeed and leave a trace:
 * `create_name` would be created, "keep" opened or removed, `copy_dst` written. */
static void expect_all_refused(const char *who, const char *create_name, const char *copy_dst)
{
	REFUSED(who, "mmipc_create", ptr_failed, mmipc_create(create_name, 4096, 0600));
	REFUSED(who, "mmipc_open", ptr_failed, mmipc_open("keep", 0));
	REFUSED(who, "mmipc_open", ptr_failed, mmipc_open("keep", MMIPC_RDONLY));
	REFUSED(who, "mmipc_anon", ptr_failed, mmipc_anon(4096));
	REFUSED(who, "mmipc_map_file", ptr_failed, mmipc_map_file("fork.dat", 1));
	REFUSED(who, "mmipc_unlink", int_failed, mmipc_unlink("keep"));
	REFUSED(who, "mmipc_copy_file", int_failed, mmipc_copy_file("fork.dat", copy_dst));
}

/* The fork-safe calls on NULL, in a forked child. */
static void expect_fork_safe_basics(const char *who)
{
	const char *v = mmipc_version();
	qcheck(v != NULL && strcmp(v, MMIPC_VERSION) == 0, "%s: mmipc_version(): got \"%s\", want \"%s\"", who,
	       v ? v : "(null)", MMIPC_VERSION);
	qcheck(mmipc_data(NULL) == NULL && mmipc_size(NULL) == 0 && mmipc_detach(NULL) == 0,
	       "%s: mmipc_data/size/detach(NULL): got %p, %zu, %d; want NULL, 0, 0", who, mmipc_data(NULL),
	       mmipc_size(NULL), mmipc_detach(NULL));
	errno = 0;
	int s = mmipc_sync(NULL);
	int err = errno;
	qcheck(s == -1 && err == EINVAL, "%s: mmipc_sync(NULL): got %d errno %d (%s), want -1 EINVAL", who, s, err,
	       strerror(err));
}

/* ---- startup: the process forks as the first thing it does ---- */

static int role_startup(pid_t pid, char **argv)
{
	const char *run = argv[2];
	char child_name[64], grand_name[64], child_copy[64], grand_copy[64], who[64];
	snprintf(child_name, sizeof child_name, "startup-%s-child", run);
	snprintf(grand_name, sizeof grand_name, "startup-%s-grandchild", run);
	snprintf(child_copy, sizeof child_copy, "startup-%s-child.copy", run);
	snprintf(grand_copy, sizeof grand_copy, "startup-%s-grandchild.copy", run);
	char buf[160];

	if (pid < 0) {
		check(0, "startup %s: fork at start-up: %s", run, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		alarm(8);
		snprintf(who, sizeof who, "startup %s child", run);
		expect_all_refused(who, child_name, child_copy);
		expect_fork_safe_basics(who);
		pid_t g = fork_flushed();
		if (g == 0) {
			alarm(8);
			check_failed = 0;
			snprintf(who, sizeof who, "startup %s grandchild", run);
			expect_all_refused(who, grand_name, grand_copy);
			expect_fork_safe_basics(who);
			child_exit();
		}
		int st = 0, w = wait_bounded(g, 6, &st);
		check(exited_zero(w, st), "startup %s: the grandchild: got %s, want exit 0", run,
		      describe(w, st, buf, sizeof buf));
		child_exit();
	}

	/* The parent, which forked at start-up, checks that the child had no side effect and that the
	 * library works here (the fork must not have broken the parent's runtime). */
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "startup %s: the child (and its grandchild): got %s, want exit 0", run,
	      describe(w, st, buf, sizeof buf));
	check(!exists(child_name) && !exists(grand_name), "startup %s: no region created by the children: \"%s\" %s, \"%s\" %s",
	      run, child_name, exists(child_name) ? "EXISTS" : "absent", grand_name, exists(grand_name) ? "EXISTS" : "absent");
	check(!exists(child_copy) && !exists(grand_copy), "startup %s: no copy made by the children: \"%s\" %s, \"%s\" %s",
	      run, child_copy, exists(child_copy) ? "EXISTS" : "absent", grand_copy, exists(grand_copy) ? "EXISTS" : "absent");
	mmipc_region *keep = mmipc_open("keep", MMIPC_RDONLY);
	check(keep != NULL && strcmp(mmipc_data(keep), "kept") == 0,
	      "startup %s: \"keep\" survives the children's mmipc_unlink and opens in the parent: got %s \"%.16s\" [%s]",
	      run, keep ? "a handle" : "NULL", keep ? (char *)mmipc_data(keep) : "", keep ? "" : mmipc_last_error());
	mmipc_detach(keep);
	char data[32] = "";
	ssize_t n = read_file("fork.dat", data, sizeof data - 1);
	check(n == 17 && memcmp(data, "fork.dat contents", 17) == 0,
	      "startup %s: fork.dat unchanged: got %zd bytes \"%s\", want 17 \"fork.dat contents\"", run, n, data);
	char temps[256];
	int t = list_entries(".", ENTRIES_TEMP, temps, sizeof temps);
	check(t == 0, "startup %s: temporary files: got %d (%s), want 0", run, t, temps);
	printf("# startup %s: %d checks, %d failed\n", run, check_count, check_failed);
	return check_failed ? 1 : 0;
}

static void test_startup(void)
{
	mmipc_region *keep = EXPECT_OK_PTR(mmipc_create("keep", 4096, 0600));
	if (keep == NULL)
		return;
	strcpy(mmipc_data(keep), "kept");
	mmipc_detach(keep);
	check(write_file("fork.dat", "fork.dat contents", 17, 0600) == 0, "startup: writing fork.dat");

	int passed = 0;
	char buf[160];
	for (int run = 0; run < STARTUP_RUNS; run++) {
		char run_s[16];
		snprintf(run_s, sizeof run_s, "%d", run);
		const char *args[] = {"startup", run_s, NULL};
		pid_t pid = spawn_self(args);
		int st = 0, w = wait_bounded(pid, 20, &st);
		passed += check(exited_zero(w, st),
				"startup run %d (fork as main's first statement, child + grandchild): got %s, want exit 0",
				run, describe(w, st, buf, sizeof buf));
		if (run + 1 - passed >= 3)
			break; /* three failed runs tell the story; do not wait out every alarm */
	}
	check(passed == STARTUP_RUNS, "startup: %d of %d runs passed", passed, STARTUP_RUNS);
	EXPECT_ZERO(mmipc_unlink("keep"));
}

/* ---- busy parent: a thread works in Go while the main thread forks ---- */

static atomic_int busy_stop;
static atomic_long busy_iters, busy_errors;

static void *busy_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&busy_stop)) {
		mmipc_region *r = mmipc_create("busy", 64 * 1024, 0);
		if (r == NULL) {
			if (atomic_fetch_add(&busy_errors, 1) < 5)
				printf("# busy thread: mmipc_create: %s [%s]\n", strerror(errno), mmipc_last_error());
			usleep(1000);
			continue;
		}
		memset(mmipc_data(r), 0x5a, 64 * 1024);
		mmipc_region *o = mmipc_open("busy", MMIPC_RDONLY);
		if (o == NULL && atomic_fetch_add(&busy_errors, 1) < 5)
			printf("# busy thread: mmipc_open: %s [%s]\n", strerror(errno), mmipc_last_error());
		mmipc_detach(o);
		mmipc_detach(mmipc_anon(8192));
		errno = 0;
		mmipc_region *dup = mmipc_create("busy", 4096, 0); /* EEXIST: an error path allocates too */
		if ((dup != NULL || errno != EEXIST) && atomic_fetch_add(&busy_errors, 1) < 5)
			printf("# busy thread: second mmipc_create: got %p errno %d, want EEXIST\n", (void *)dup, errno);
		mmipc_detach(dup);
		mmipc_detach(r);
		if (mmipc_unlink("busy") != 0 && atomic_fetch_add(&busy_errors, 1) < 5)
			printf("# busy thread: mmipc_unlink: %s [%s]\n", strerror(errno), mmipc_last_error());
		atomic_fetch_add(&busy_iters, 1);
	}
	return NULL;
}

static void busy_child(mmipc_region *shared, int i)
{
	alarm(10);
	check_failed = 0;
	quiet = 1;
	char who[48];
	snprintf(who, sizeof who, "busy parent: child %d", i);
	REFUSED(who, "mmipc_create", ptr_failed, mmipc_create("busy-child", 4096, 0600));
	volatile uint32_t *slots = mmipc_data(shared);
	qcheck(slots != NULL && mmipc_size(shared) == BUSY_CHILDREN * sizeof(uint32_t),
	       "%s: the anonymous region: got %p size %zu, want size %zu", who, (void *)slots, mmipc_size(shared),
	       BUSY_CHILDREN * sizeof(uint32_t));
	if (slots != NULL)
		slots[i] = 0xC0DE0000u + (uint32_t)i;
	int d = mmipc_detach(shared);
	qcheck(d == 0, "%s: mmipc_detach of the anonymous region: got %d, want 0", who, d);
	child_exit();
}

static void test_busy_parent(void)
{
	mmipc_region *shared = EXPECT_OK_PTR(mmipc_anon(BUSY_CHILDREN * sizeof(uint32_t)));
	if (shared == NULL)
		return;
	pthread_t th;
	if (!check(pthread_create(&th, NULL, busy_loop, NULL) == 0, "busy parent: starting the busy thread"))
		return;
	double until = now_s() + 10;
	while (atomic_load(&busy_iters) < 20 && now_s() < until)
		usleep(1000);
	check(atomic_load(&busy_iters) >= 20, "busy parent: the thread is busy before the forks: %ld iterations",
	      atomic_load(&busy_iters));

	pid_t pids[BUSY_CHILDREN];
	unsigned seed = (unsigned)getpid();
	for (int i = 0; i < BUSY_CHILDREN; i++) {
		pids[i] = fork_flushed();
		if (pids[i] == 0)
			busy_child(shared, i); /* does not return */
		if (pids[i] < 0)
			check(0, "busy parent: fork %d: %s", i, strerror(errno));
		usleep(rand_r(&seed) % 3000); /* land the forks at different points of the thread's work */
	}
	long iters_at_forks = atomic_load(&busy_iters);

	int good = 0;
	char buf[160];
	double deadline = now_s() + 20;
	for (int i = 0; i < BUSY_CHILDREN; i++) {
		int st = 0, w = wait_until(pids[i], deadline, &st);
		if (exited_zero(w, st))
			good++;
		else
			check(0, "busy parent: child %d: got %s, want exit 0", i, describe(w, st, buf, sizeof buf));
	}
	check(good == BUSY_CHILDREN, "busy parent: %d of %d children (forked while a thread works in Go) exited 0 in time",
	      good, BUSY_CHILDREN);
	atomic_store(&busy_stop, 1);
	pthread_join(th, NULL);
	check(atomic_load(&busy_errors) == 0 && iters_at_forks > 20,
	      "busy parent: the busy thread: %ld errors (want 0), %ld iterations by the last fork", atomic_load(&busy_errors),
	      iters_at_forks);

	const uint32_t *slots = mmipc_data(shared);
	int seen = 0, first_missing = -1;
	for (int i = 0; i < BUSY_CHILDREN; i++) {
		if (slots[i] == 0xC0DE0000u + (uint32_t)i)
			seen++;
		else if (first_missing < 0)
			first_missing = i;
	}
	check(seen == BUSY_CHILDREN, "busy parent: children's writes seen by the parent: got %d of %d (first missing: %d)",
	      seen, BUSY_CHILDREN, first_missing);
	check(!exists("busy-child"), "busy parent: the children's mmipc_create left nothing");
	EXPECT_ZERO(mmipc_detach(shared));
}

/* ---- child work: a child uses its parent's regions with the fork-safe calls only ---- */

#define WORK_ANON_SIZE (3 * 4096 + 5)
#define WORK_NAMED_SIZE 10000
#define WORK_FILE_SIZE (2 * 4096 + 100)

static void work_child(mmipc_region *regs[3], void *parent_data[3])
{
	static const char *const kinds[3] = {"anon", "named", "file"};
	static const size_t sizes[3] = {WORK_ANON_SIZE, WORK_NAMED_SIZE, WORK_FILE_SIZE};
	alarm(20);
	check_failed = 0;
	for (int k = 0; k < 3; k++) {
		char *p = mmipc_data(regs[k]);
		size_t n = mmipc_size(regs[k]);
		check(p == parent_data[k] && n == sizes[k], "child work: %s region in the child: data %p size %zu, want %p %zu",
		      kinds[k], (void *)p, n, parent_data[k], sizes[k]);
		int fd = mmipc_fd(regs[k]);
		check(fd >= 0 && fcntl(fd, F_GETFD) != -1, "child work: mmipc_fd of the %s region in the child: got %d, an open descriptor",
		      kinds[k], fd);
		if (p == NULL || n != sizes[k])
			continue;
		char want[32];
		snprintf(want, sizeof want, "parent %s", kinds[k]);
		check(strcmp(p, want) == 0, "child work: %s region: the parent's bytes: got \"%.31s\", want \"%s\"", kinds[k], p,
		      want);
		snprintf(p + 100, 32, "child %s", kinds[k]);
		p[n - 1] = 'Z';
		int s = mmipc_sync(regs[k]);
		check(s == 0, "child work: mmipc_sync of the %s region in the child: got %d (%s), want 0", kinds[k], s,
		      s ? mmipc_last_error() : "ok");
	}

	quiet = 1;
	int before = check_failed;
	for (int i = 0; i < WORK_LOOPS; i++) {
		const char *who = "child work";
		REFUSED(who, "mmipc_create", ptr_failed, mmipc_create("work-child", 4096, 0));
		REFUSED(who, "mmipc_open", ptr_failed, mmipc_open("work", 0));
		REFUSED(who, "mmipc_anon", ptr_failed, mmipc_anon(4096));
		REFUSED(who, "mmipc_map_file", ptr_failed, mmipc_map_file("work.dat", 0));
		REFUSED(who, "mmipc_unlink", int_failed, mmipc_unlink("work"));
		REFUSED(who, "mmipc_copy_file", int_failed, mmipc_copy_file("work.dat", "work-child.copy"));
		REFUSED(who, "mmipc_attach_fd", ptr_failed, mmipc_attach_fd(mmipc_fd(regs[i % 3]), 0));
		if (check_failed - before > 10)
			break; /* enough said */
	}
	quiet = 0;
	check(check_failed == before, "child work: %d rounds of the seven Go-needing calls: all refused with ENOTSUP at once",
	      WORK_LOOPS);

	for (int k = 0; k < 3; k++) {
		int d = mmipc_detach(regs[k]);
		check(d == 0, "child work: mmipc_detach of the %s region in the child: got %d, want 0", kinds[k], d);
	}
	child_exit();
}

static void test_child_work(void)
{
	char filebuf[WORK_FILE_SIZE];
	memset(filebuf, '.', sizeof filebuf);
	check(write_file("work.dat", filebuf, sizeof filebuf, 0600) == 0, "child work: writing work.dat");
	mmipc_region *regs[3];
	regs[0] = EXPECT_OK_PTR(mmipc_anon(WORK_ANON_SIZE));
	regs[1] = EXPECT_OK_PTR(mmipc_create("work", WORK_NAMED_SIZE, 0));
	regs[2] = EXPECT_OK_PTR(mmipc_map_file("work.dat", 1));
	if (regs[0] == NULL || regs[1] == NULL || regs[2] == NULL)
		return;
	static const char *const kinds[3] = {"anon", "named", "file"};
	void *pdata[3];
	for (int k = 0; k < 3; k++) {
		pdata[k] = mmipc_data(regs[k]);
		snprintf(pdata[k], 32, "parent %s", kinds[k]);
	}

	pid_t pid = fork_flushed();
	if (pid == 0)
		work_child(regs, pdata); /* does not return */
	char buf[160];
	int st = 0, w = wait_bounded(pid, 30, &st);
	check(exited_zero(w, st), "child work: the child: got %s, want exit 0", describe(w, st, buf, sizeof buf));

	for (int k = 0; k < 3; k++) {
		char *p = pdata[k], want[32];
		snprintf(want, sizeof want, "child %s", kinds[k]);
		size_t n = mmipc_size(regs[k]);
		check(strcmp(p + 100, want) == 0 && p[n - 1] == 'Z',
		      "child work: the parent sees the child's writes in the %s region: got \"%.31s\" and last byte %#x, want "
		      "\"%s\" and 'Z'",
		      kinds[k], p + 100, p[n - 1], want);
	}
	mmipc_region *again = mmipc_open("work", MMIPC_RDONLY);
	check(again != NULL && strcmp((char *)mmipc_data(again) + 100, "child named") == 0,
	      "child work: a new handle on \"work\" sees the child's write: got \"%.31s\" [%s]",
	      again ? (char *)mmipc_data(again) + 100 : "(open failed)", again ? "" : mmipc_last_error());
	mmipc_detach(again);

	EXPECT_ZERO(mmipc_sync(regs[2]));
	EXPECT_ZERO(mmipc_detach(regs[2]));
	ssize_t n = read_file("work.dat", filebuf, sizeof filebuf);
	check(n == WORK_FILE_SIZE && strcmp(filebuf + 100, "child file") == 0 && filebuf[WORK_FILE_SIZE - 1] == 'Z',
	      "child work: work.dat on disk (read(2)) has the child's writes: got %zd bytes, \"%.31s\", last byte %#x; want "
	      "%d bytes, \"child file\", 'Z'",
	      n, n > 100 ? filebuf + 100 : "", n == WORK_FILE_SIZE ? filebuf[WORK_FILE_SIZE - 1] : 0, WORK_FILE_SIZE);
	check(!exists("work-child") && !exists("work-child.copy"),
	      "child work: the refused calls left nothing: work-child %s, work-child.copy %s",
	      exists("work-child") ? "EXISTS" : "absent", exists("work-child.copy") ? "EXISTS" : "absent");
	EXPECT_ZERO(mmipc_detach(regs[0]));
	EXPECT_ZERO(mmipc_detach(regs[1]));
	EXPECT_ZERO(mmipc_unlink("work"));
	char temps[256];
	int t = list_entries(".", ENTRIES_TEMP, temps, sizeof temps);
	check(t == 0, "fork tests: temporary files at the end: got %d (%s), want 0", t, temps);
}

int main(int argc, char **argv)
{
	/* Role "startup": fork() before anything else, while the library's Go runtime may still be
	 * starting. Nothing above this line runs before the fork. */
	if (argc >= 3 && strcmp(argv[1], "startup") == 0)
		return role_startup(fork(), argv);

	if (argc > 1) {
		fprintf(stderr, "usage: %s (no arguments; the roles are internal)\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	find_self(argv[0]);
	test_startup();
	test_busy_parent();
	test_child_work();
	return check_exit();
}
