/* test_liveness.c - the liveness API of mmipc.h ("Liveness and cleanup"): mmipc_stat and mmipc_gc.
 *
 *   stat        every field of a fresh region (size, file size, creation time, creator, flags, mode,
 *               owner, attached, reserved zero), of a ring, and through a path; attached follows
 *               the attachments: create, open (read-write and read-only), attach_fd of another
 *               handle's descriptor, ring create/open, detach.
 *   fork        a forked child that inherits a handle keeps the region attached after the parent
 *               detaches; once the child is SIGKILLed the region is unattached and mmipc_gc removes
 *               it, and only it; mmipc_stat and mmipc_gc in a forked child are ENOTSUP at once.
 *   errors      each errno of mmipc_stat, info untouched, the message naming the call; mmipc_gc on a
 *               missing directory or a file.
 *   gc          exact counts with regions held in every way; files that are not regions, a
 *               symlink, invalid names and a directory are never touched; creation temporary files
 *               are removed only when their creator is dead and nobody holds them.
 *
 * The Go driver (tests/c_liveness_test.go) sets MMIPC_DIR to a fresh directory and the working
 * directory to it. Each test leaves it empty, and the gc tests check that it is empty first, so
 * every count of mmipc_gc is exact.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define PATTERN 0xA5 /* fills an mmipc_info before a call that must leave it untouched */

/* ---- helpers ---- */

static int64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fill_pattern(mmipc_info *info) { memset(info, PATTERN, sizeof *info); }

static int is_pattern(const mmipc_info *info)
{
	const unsigned char *p = (const unsigned char *)info;
	for (size_t i = 0; i < sizeof *info; i++)
		if (p[i] != PATTERN)
			return 0;
	return 1;
}

static int reserved_zero(const mmipc_info *info)
{
	for (size_t i = 0; i < sizeof info->reserved_ / sizeof info->reserved_[0]; i++)
		if (info->reserved_[i] != 0)
			return 0;
	return 1;
}

/* mmipc_stat(name).attached, or -1 when the stat fails (with errno and the message printed). */
static int attached_of(const char *name)
{
	mmipc_info info;
	fill_pattern(&info);
	if (mmipc_stat(name, &info) != 0) {
		printf("# mmipc_stat(\"%s\"): errno %d (%s) [%s]\n", name, errno, strerror(errno), mmipc_last_error());
		return -1;
	}
	return info.attached;
}

static void expect_attached(const char *name, int want, const char *when)
{
	int got = attached_of(name);
	check(got == want, "%s: mmipc_stat(\"%s\").attached: got %d, want %d", when, name, got, want);
}

/* The directory holds nothing: every gc count that follows is exact. */
static void expect_empty_dir(const char *when)
{
	char names[2048];
	int n = list_entries(".", ENTRIES_ALL, names, sizeof names);
	if (n < 0)
		die("listing MMIPC_DIR");
	check(n == 0, "%s: MMIPC_DIR is empty: got %d entries: %s", when, n, names);
}

/* mmipc_gc() must return want. */
static void expect_gc(int want, const char *when)
{
	errno = 0;
	int n = mmipc_gc();
	int err = errno;
	check(n == want, "%s: mmipc_gc(): got %d (errno %d %s) [%s], want %d", when, n, err, n < 0 ? strerror(err) : "",
	      n < 0 ? mmipc_last_error() : "", want);
}

/* A region of `size` bytes that nobody holds: created and detached. */
static void make_unattached(const char *name, size_t size)
{
	mmipc_region *r = mmipc_create(name, size, 0600);
	if (r == NULL)
		die(name);
	mmipc_detach(r);
}

/* A child that does nothing until it is killed (its alarm ends it if the parent never does). It
 * keeps the parent's open descriptors, so the regions the parent holds stay held by it too. */
static pid_t spawn_sleeper(void)
{
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		alarm(60);
		for (;;)
			pause();
	}
	if (pid < 0)
		die("fork");
	return pid;
}

/* The pid of a child that has exited and been reaped: a dead process's pid. */
static pid_t dead_pid(void)
{
	pid_t pid = fork_flushed();
	if (pid == 0)
		_exit(0);
	int st = 0;
	if (pid < 0 || wait_bounded(pid, 10, &st) != 1)
		die("a child that exits at once");
	return pid;
}

/* ---- stat of fresh regions ---- */

static void test_stat_fresh(void)
{
	mode_t old = umask(077); /* the mode is applied exactly: the umask must not show */
	int64_t before = realtime_ns();
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("fresh", 5000, 0640));
	int64_t after = realtime_ns();
	umask(old);
	if (r == NULL)
		return;

	mmipc_info info;
	fill_pattern(&info);
	EXPECT_ZERO(mmipc_stat("fresh", &info));
	struct stat st;
	if (lstat("fresh", &st) != 0)
		die("lstat fresh");
	check(info.size == 5000, "stat fresh: size: got %llu, want 5000", (unsigned long long)info.size);
	check(info.file_size == (uint64_t)region_file_size(5000) && info.file_size == (uint64_t)st.st_size,
	      "stat fresh: file_size: got %llu, want %lld (a header page + 5000 rounded up to pages; the file has %lld)",
	      (unsigned long long)info.file_size, (long long)region_file_size(5000), (long long)st.st_size);
	check(info.created_ns >= before - 1000000000LL && info.created_ns <= after + 1000000000LL,
	      "stat fresh: created_ns %lld within a second of the creation (%lld .. %lld)", (long long)info.created_ns,
	      (long long)before, (long long)after);
	check(info.creator_pid == (uint32_t)getpid(), "stat fresh: creator_pid: got %u, want getpid() %d",
	      info.creator_pid, (int)getpid());
	check(info.flags == 0, "stat fresh: flags: got %#x, want 0 (not a ring)", info.flags);
	check(info.mode == 0640, "stat fresh: mode: got %#o, want 0640 (as created, whatever the umask)", info.mode);
	check(info.uid == (uint32_t)geteuid(), "stat fresh: uid: got %u, want geteuid() %u", info.uid,
	      (unsigned)geteuid());
	check(info.attached == 1, "stat fresh: attached while the creator holds it: got %d, want 1", info.attached);
	check(reserved_zero(&info), "stat fresh: reserved_ all zero");

	/* The same region through paths: a name with '/' is a path. */
	char abs[PATH_MAX];
	path_of(abs, "fresh");
	const char *paths[] = {"./fresh", abs};
	for (int i = 0; i < 2; i++) {
		mmipc_info p;
		fill_pattern(&p);
		int rc = mmipc_stat(paths[i], &p);
		check(rc == 0 && p.size == info.size && p.created_ns == info.created_ns && p.attached == 1,
		      "stat \"%s\" (a path): got rc %d size %llu attached %d, want the region's [%s]", paths[i], rc,
		      (unsigned long long)p.size, p.attached, rc ? mmipc_last_error() : "");
	}

	/* stat does not attach: after the detach nobody is left. The header fields stay. */
	EXPECT_ZERO(mmipc_detach(r));
	mmipc_info later;
	fill_pattern(&later);
	EXPECT_ZERO(mmipc_stat("fresh", &later));
	check(later.attached == 0, "stat fresh after mmipc_detach: attached: got %d, want 0", later.attached);
	check(later.size == info.size && later.file_size == info.file_size && later.created_ns == info.created_ns &&
		      later.creator_pid == info.creator_pid && later.mode == info.mode && reserved_zero(&later),
	      "stat fresh after mmipc_detach: the other fields are unchanged");
	expect_attached("fresh", 0, "a second stat (stat itself holds nothing)");
	EXPECT_ZERO(mmipc_unlink("fresh"));

	/* Mode 0 means 0600. */
	mmipc_region *z = EXPECT_OK_PTR(mmipc_create("fresh0", 1, 0));
	fill_pattern(&info);
	EXPECT_ZERO(mmipc_stat("fresh0", &info));
	check(info.mode == 0600 && info.size == 1 && info.file_size == (uint64_t)region_file_size(1),
	      "stat of a 1-byte region created with mode 0: got mode %#o size %llu file_size %llu, want 0600 1 %lld",
	      info.mode, (unsigned long long)info.size, (unsigned long long)info.file_size,
	      (long long)region_file_size(1));
	mmipc_detach(z);
	EXPECT_ZERO(mmipc_unlink("fresh0"));
}

static void test_stat_ring(void)
{
	mmipc_ring *q = EXPECT_OK_PTR(mmipc_ring_create("ring", 4096, 0600));
	if (q == NULL)
		return;
	mmipc_info info;
	fill_pattern(&info);
	EXPECT_ZERO(mmipc_stat("ring", &info));
	check(info.flags == MMIPC_INFO_RING, "stat ring: flags: got %#x, want MMIPC_INFO_RING", info.flags);
	check(info.size >= 4096 && info.file_size == (uint64_t)region_file_size(info.size),
	      "stat ring: size %llu holds the 4096-byte buffer, file_size %llu is a header page + size in pages",
	      (unsigned long long)info.size, (unsigned long long)info.file_size);
	check(info.attached == 1 && info.creator_pid == (uint32_t)getpid() && info.mode == 0600 && reserved_zero(&info),
	      "stat ring: attached %d (want 1), creator_pid %u, mode %#o, reserved zero", info.attached,
	      info.creator_pid, info.mode);
	EXPECT_ZERO(mmipc_ring_close(q));
	expect_attached("ring", 0, "after mmipc_ring_close");
	mmipc_ring *o = EXPECT_OK_PTR(mmipc_ring_open("ring"));
	expect_attached("ring", 1, "while mmipc_ring_open's handle is open");
	mmipc_ring_close(o);
	expect_attached("ring", 0, "after closing the opened ring");
	EXPECT_ZERO(mmipc_unlink("ring"));
}

/* ---- attached follows every kind of attachment ---- */

static void test_attach_kinds(void)
{
	/* Read-only opens hold it too (a read lock needs only read access). */
	make_unattached("ro", 100);
	expect_attached("ro", 0, "created and detached");
	mmipc_region *a = EXPECT_OK_PTR(mmipc_open("ro", MMIPC_RDONLY));
	expect_attached("ro", 1, "one read-only open");
	mmipc_region *b = EXPECT_OK_PTR(mmipc_open("ro", MMIPC_RDONLY));
	mmipc_detach(a);
	expect_attached("ro", 1, "the second read-only open remains");
	mmipc_detach(b);
	expect_attached("ro", 0, "both read-only opens detached");
	mmipc_region *w = EXPECT_OK_PTR(mmipc_open("ro", 0));
	expect_attached("ro", 1, "a read-write open");
	mmipc_detach(w);
	expect_attached("ro", 0, "the read-write open detached");
	EXPECT_ZERO(mmipc_unlink("ro"));

	/* mmipc_attach_fd of another handle's descriptor keeps the region attached when that handle
	 * goes, read-write and read-only. */
	const int flags[] = {0, MMIPC_RDONLY};
	for (int i = 0; i < 2; i++) {
		mmipc_region *r = EXPECT_OK_PTR(mmipc_create("viafd", 100, 0600));
		if (r == NULL)
			return;
		mmipc_region *d = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(r), flags[i]));
		EXPECT_ZERO(mmipc_detach(r));
		char when[128];
		snprintf(when, sizeof when, "mmipc_attach_fd(mmipc_fd(r), %d), then r detached", flags[i]);
		expect_attached("viafd", 1, when);
		mmipc_detach(d);
		snprintf(when, sizeof when, "the mmipc_attach_fd(.., %d) handle detached too", flags[i]);
		expect_attached("viafd", 0, when);
		EXPECT_ZERO(mmipc_unlink("viafd"));
	}
}

/* ---- fork ---- */

static void test_fork_child_keeps(void)
{
	expect_empty_dir("before the fork test");
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("inherit", 4096, 0600));
	if (r == NULL)
		return;
	pid_t pid = spawn_sleeper(); /* inherits r's descriptor, so its open file and its lock */
	mmipc_region *held = EXPECT_OK_PTR(mmipc_create("held", 4096, 0600)); /* made after the fork: only ours */
	EXPECT_ZERO(mmipc_detach(r));
	expect_attached("inherit", 1, "the parent detached, the forked child still has the handle");
	expect_gc(0, "the child holds \"inherit\", the parent \"held\"");
	check(exists("inherit") && exists("held"), "both regions are still there after that gc");

	kill(pid, SIGKILL);
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(w == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child: got %s, want killed by SIGKILL",
	      describe(w, st, buf, sizeof buf));
	expect_attached("inherit", 0, "the child holding it was SIGKILLed");
	expect_attached("held", 1, "the parent still holds it");

	expect_gc(1, "after the child's death: exactly \"inherit\"");
	check(!exists("inherit"), "\"inherit\" was removed by mmipc_gc");
	check(exists("held"), "\"held\" (held by the parent) was kept");
	mmipc_region *o = mmipc_open("held", 0);
	check(o != NULL && mmipc_size(o) == 4096, "the kept region still opens [%s]", o ? "" : mmipc_last_error());
	mmipc_detach(o);
	mmipc_detach(held);
	EXPECT_ZERO(mmipc_unlink("held"));
	expect_empty_dir("after the fork test");
}

static void test_fork_refused(void)
{
	make_unattached("forked", 64);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL);
		child_begin(5); /* a hang kills the child: the parent reports it */
		double t0 = now_s();
		errno = 0;
		int n = mmipc_gc();
		int err = errno;
		double dt = now_s() - t0;
		const char *m = mmipc_last_error();
		check(n == -1 && err == ENOTSUP && dt < 0.5 && strstr(m, "mmipc_gc") && strstr(m, "fork"),
		      "mmipc_gc in a forked child: got %d errno %d (%s) after %.3f s [%s]; want -1 ENOTSUP at once, a "
		      "message naming the call and the fork",
		      n, err, strerror(err), dt, m);
		mmipc_info info;
		fill_pattern(&info);
		t0 = now_s();
		errno = 0;
		n = mmipc_stat("forked", &info);
		err = errno;
		dt = now_s() - t0;
		m = mmipc_last_error();
		check(n == -1 && err == ENOTSUP && dt < 0.5 && strstr(m, "mmipc_stat") && is_pattern(&info),
		      "mmipc_stat in a forked child: got %d errno %d (%s) after %.3f s [%s]; want -1 ENOTSUP at once, "
		      "info untouched",
		      n, err, strerror(err), dt, m);
		child_exit();
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st), "the forked child (mmipc_gc and mmipc_stat are ENOTSUP there): got %s, want exit 0",
	      describe(w, st, buf, sizeof buf));
	expect_attached("forked", 0, "the parent's mmipc_stat after the fork still works");
	EXPECT_ZERO(mmipc_unlink("forked"));
}

/* ---- errors ---- */

static void test_stat_errors(void)
{
	make_unattached("valid", 100);
	if (symlink("valid", "link") != 0)
		die("symlink");
	char text[4096];
	memset(text, 'x', sizeof text);
	if (write_file("plain", text, sizeof text, 0600) != 0 || write_file("empty", "", 0, 0600) != 0)
		die("ordinary files");
	if (mkdir("adir", 0700) != 0)
		die("mkdir adir");
	char long_name[202];
	memset(long_name, 'a', 201);
	long_name[201] = 0;

	mmipc_info info;
	struct {
		const char *name;
		mmipc_info *info;
		int want;
		const char *why;
	} cases[] = {
		{NULL, &info, EINVAL, "NULL name"},
		{"valid", NULL, EINVAL, "NULL info"},
		{"missing", &info, ENOENT, "no such region"},
		{"./no-such-dir/x", &info, ENOENT, "a path in a missing directory"},
		{"link", &info, ELOOP, "a symlink to a valid region"},
		{"plain", &info, EPROTO, "an ordinary file"},
		{"empty", &info, EPROTO, "an empty file"},
		{"adir", &info, EPROTO, "a directory"},
		{".hidden", &info, EINVAL, "a name starting with '.'"},
		{"", &info, EINVAL, "the empty name"},
		{"bad name", &info, EINVAL, "a name with a space"},
		{long_name, &info, EINVAL, "a 201-byte name"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fill_pattern(&info);
		errno = 0;
		int rc = mmipc_stat(cases[i].name, cases[i].info);
		int err = errno;
		const char *m = mmipc_last_error();
		check(rc == -1 && err == cases[i].want && is_pattern(&info) && strstr(m, "mmipc_stat") != NULL,
		      "mmipc_stat, %s: got %d errno %d (%s), info %s [%s]; want -1 errno %d (%s), info untouched, a "
		      "message naming mmipc_stat",
		      cases[i].why, rc, err, strerror(err), is_pattern(&info) ? "untouched" : "WRITTEN", m,
		      cases[i].want, strerror(cases[i].want));
	}
	/* The failures changed nothing: the region behind the symlink is intact, nobody holds it. */
	expect_attached("valid", 0, "after the failed calls");
	unlink("link");
	unlink("plain");
	unlink("empty");
	rmdir("adir");
	EXPECT_ZERO(mmipc_unlink("valid"));
}

static void test_gc_dir_errors(void)
{
	if (write_file("not-a-dir", "x", 1, 0600) != 0)
		die("not-a-dir");
	char missing[PATH_MAX], file[PATH_MAX];
	path_of(missing, "no-such-dir");
	path_of(file, "not-a-dir");
	set_dir_env(missing);
	EXPECT_FAIL(mmipc_gc(), ENOENT);
	check(strstr(mmipc_last_error(), "mmipc_gc") != NULL, "mmipc_gc on a missing MMIPC_DIR: the message names "
							      "mmipc_gc [%s]",
	      mmipc_last_error());
	mmipc_info info;
	fill_pattern(&info);
	EXPECT_FAIL(mmipc_stat("anything", &info), ENOENT);
	set_dir_env(file);
	EXPECT_FAIL(mmipc_gc(), ENOTDIR);
	set_dir_env(test_dir);
	check(exists("not-a-dir"), "mmipc_gc with MMIPC_DIR naming a file left the file alone");
	unlink("not-a-dir");
	expect_gc(0, "MMIPC_DIR restored, nothing in it");
}

/* ---- gc ---- */

static void test_gc_counts(void)
{
	expect_empty_dir("before the gc count test");
	mmipc_region *held = EXPECT_OK_PTR(mmipc_create("held", 100, 0600)); /* its creator holds it */
	make_unattached("roheld", 100);
	mmipc_region *ro = EXPECT_OK_PTR(mmipc_open("roheld", MMIPC_RDONLY)); /* read-only only */
	mmipc_region *tmp = EXPECT_OK_PTR(mmipc_create("fdheld", 100, 0600));
	mmipc_region *fdh = EXPECT_OK_PTR(mmipc_attach_fd(mmipc_fd(tmp), 0)); /* only through attach_fd */
	mmipc_detach(tmp);
	mmipc_ring *q = EXPECT_OK_PTR(mmipc_ring_create("ringheld", 1024, 0600));
	make_unattached("gone1", 100);
	make_unattached("gone2", 5 << 20);
	mmipc_ring *qg = EXPECT_OK_PTR(mmipc_ring_create("ringgone", 1024, 0600));
	mmipc_ring_close(qg);

	expect_gc(3, "4 regions held (create, read-only open, attach_fd, ring) and 3 released");
	const char *kept[] = {"held", "roheld", "fdheld", "ringheld"};
	const char *gone[] = {"gone1", "gone2", "ringgone"};
	for (int i = 0; i < 4; i++)
		check(exists(kept[i]), "the held region \"%s\" was kept", kept[i]);
	for (int i = 0; i < 3; i++)
		check(!exists(gone[i]), "the released region \"%s\" was removed", gone[i]);
	expect_gc(0, "a second gc: everything left is held");

	/* A collected name is free again. */
	mmipc_region *again = EXPECT_OK_PTR(mmipc_create("gone1", 10, 0600));
	mmipc_detach(again);

	mmipc_detach(held);
	mmipc_detach(ro);
	mmipc_detach(fdh);
	mmipc_ring_close(q);
	expect_gc(5, "every handle detached (the 4 and the re-created \"gone1\")");
	expect_empty_dir("after the last gc");
}

static void test_gc_leaves_non_regions(void)
{
	expect_empty_dir("before the non-region test");
	char buf[8192];
	memset(buf, 'z', sizeof buf);
	if (write_file("plain", buf, sizeof buf, 0600) != 0 || write_file("empty", "", 0, 0600) != 0)
		die("ordinary files");
	/* A region whose file was truncated: not a valid region any more. */
	make_unattached("truncated", 3 * 4096);
	if (truncate("truncated", (off_t)(sysconf(_SC_PAGESIZE) + 100)) != 0)
		die("truncate");
	/* Valid regions under names that are not region names: never collected by name. */
	char long_name[202];
	memset(long_name, 'b', 201);
	long_name[201] = 0;
	make_unattached("tmp1", 100);
	make_unattached("tmp2", 100);
	make_unattached("tmp3", 100);
	if (rename("tmp1", ".hidden") != 0 || rename("tmp2", "bad name") != 0 || rename("tmp3", long_name) != 0)
		die("rename");
	/* A directory holding an unattached region, and a symlink to that region. */
	if (mkdir("adir", 0700) != 0)
		die("mkdir adir");
	make_unattached("adir/inner", 100);
	if (symlink("adir/inner", "link") != 0)
		die("symlink");

	expect_gc(0, "only non-regions, invalid names, a directory and a symlink");
	const char *left[] = {"plain", "empty", "truncated", ".hidden", "bad name", long_name, "adir", "adir/inner", "link"};
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		check(exists(left[i]), "mmipc_gc left \"%.40s\" alone", left[i]);
	struct stat st;
	check(lstat("link", &st) == 0 && S_ISLNK(st.st_mode), "\"link\" is still a symlink");
	check(lstat("plain", &st) == 0 && st.st_size == (off_t)sizeof buf, "\"plain\" still has its %zu bytes",
	      sizeof buf);
	/* They are intact, unattached regions (stat through a path, which any name may be). */
	expect_attached("./.hidden", 0, "a valid region under an invalid name, kept by gc");
	expect_attached("./adir/inner", 0, "a region inside a directory, kept by gc");

	/* The control: an unattached region beside them is removed, and only it. */
	make_unattached("victim", 100);
	expect_gc(1, "one unattached region among the non-regions");
	check(!exists("victim"), "\"victim\" was removed");
	for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
		check(exists(left[i]), "the second mmipc_gc left \"%.40s\" alone", left[i]);

	unlink("link");
	unlink("adir/inner");
	rmdir("adir");
	unlink(".hidden");
	unlink("bad name");
	unlink(long_name);
	unlink("truncated");
	unlink("plain");
	unlink("empty");
	expect_empty_dir("after the non-region test");
}

static void test_gc_temp_files(void)
{
	expect_empty_dir("before the temporary-file test");
	pid_t dead = dead_pid();
	char dead_tmp[64], dead_held[64], alive_tmp[64], short_hex[64], no_suffix[64];
	snprintf(dead_tmp, sizeof dead_tmp, ".mmipc-%d-0123456789abcdef.tmp", (int)dead);
	snprintf(dead_held, sizeof dead_held, ".mmipc-%d-fedcba9876543210.tmp", (int)dead);
	snprintf(alive_tmp, sizeof alive_tmp, ".mmipc-%d-0123456789abcdef.tmp", (int)getpid());
	snprintf(short_hex, sizeof short_hex, ".mmipc-%d-0123456789abcde.tmp", (int)dead); /* 15 hex digits */
	snprintf(no_suffix, sizeof no_suffix, ".mmipc-%d-0123456789abcdef", (int)dead);
	/* What a creator killed mid-creation leaves: a file of zeros (the header not written yet). */
	char zeros[4096] = {0};
	const char *all[] = {dead_tmp, dead_held, alive_tmp, short_hex, no_suffix};
	for (int i = 0; i < 5; i++)
		if (write_file(all[i], zeros, sizeof zeros, 0600) != 0)
			die(all[i]);
	/* dead_held is held as an attached process holds a region: shared, on byte 0. */
	int hfd = open(dead_held, O_RDWR | O_CLOEXEC);
	struct flock lk = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (hfd < 0 || fcntl(hfd, F_OFD_SETLK, &lk) != 0)
		die("locking the held temporary file");

	expect_gc(1, "temporary files: one of a dead creator, unheld");
	check(!exists(dead_tmp), "the dead creator's temporary file %s was removed", dead_tmp);
	check(exists(dead_held), "a dead creator's temporary file that a process holds was kept");
	check(exists(alive_tmp), "the temporary file of a live creator (this process) was kept");
	check(exists(short_hex) && exists(no_suffix), "names that are not the temporary-file pattern were kept");

	close(hfd);
	expect_gc(1, "the held temporary file released");
	check(!exists(dead_held), "the released temporary file was removed");
	check(exists(alive_tmp) && exists(short_hex) && exists(no_suffix), "the others are still kept");
	unlink(alive_tmp);
	unlink(short_hex);
	unlink(no_suffix);
	expect_empty_dir("after the temporary-file test");
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: %s (no arguments)\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup_dir("/dev/shm/mmipc-liveness-XXXXXX");
	test_stat_fresh();
	test_stat_ring();
	test_attach_kinds();
	test_fork_child_keeps();
	test_fork_refused();
	test_stat_errors();
	test_gc_dir_errors();
	test_gc_counts();
	test_gc_leaves_non_regions();
	test_gc_temp_files();
	return check_exit();
}
