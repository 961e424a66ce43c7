/* test_attacks.c - the C API under the attacks of issue 7's hardening suite (the Go and Python
 * sides are in tests/hardening_attack_test.go).
 *
 *   symlinks   a symlink planted at a region's name, pointing at a region outside the directory, at
 *              an ordinary file, at nothing, and at a region in the directory that a process holds:
 *              mmipc_create, mmipc_ring_create, mmipc_open (both modes), mmipc_ring_open,
 *              mmipc_unlink and mmipc_stat give ELOOP and follow nothing (no file appears at a
 *              dangling link's target, the targets keep their bytes); mmipc_gc removes neither the
 *              links nor their targets; once the held region is released, mmipc_gc removes it (and
 *              only it), which shows that it would have removed what it could.
 *   truncate   a region (and a ring) whose file another process truncated: opening it by name
 *              (mmipc_open, mmipc_ring_open) and mmipc_stat give EPROTO; mmipc_gc leaves the file
 *              alone (not a region); and a C process reading the lost pages dies of SIGBUS, as
 *              mmipc.h documents: a re-executed child of this program (a whole C program with the
 *              library and its Go runtime loaded) truncates its attached region to 0, or to half,
 *              and reads: the first page of a half-truncated region still reads, the last one kills
 *              it with SIGBUS.
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "check.h"
#include "testutil.h"

/* An ordinary file that looks like /etc/passwd, which a link may point at. */
static const char passwd_text[] = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n";

static void setup_ok(int ok, const char *what)
{
	if (!ok)
		die(what);
}

/* The calls that take a name, each of which must refuse the link with ELOOP. */
static void expect_eloop(const char *name)
{
	EXPECT_NULL(mmipc_create(name, 100, 0600), ELOOP);
	EXPECT_NULL(mmipc_ring_create(name, 1024, 0600), ELOOP);
	EXPECT_NULL(mmipc_open(name, 0), ELOOP);
	EXPECT_NULL(mmipc_open(name, MMIPC_RDONLY), ELOOP);
	EXPECT_NULL(mmipc_ring_open(name), ELOOP);
	EXPECT_FAIL(mmipc_unlink(name), ELOOP);
	mmipc_info info;
	memset(&info, 0xAB, sizeof info);
	EXPECT_FAIL(mmipc_stat(name, &info), ELOOP);
	unsigned char untouched[sizeof info];
	memset(untouched, 0xAB, sizeof untouched);
	check(memcmp(&info, untouched, sizeof info) == 0, "mmipc_stat(\"%s\") left info untouched on failure", name);
}

static int is_link(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static void part_symlinks(void)
{
	char sub[PATH_MAX], outside[PATH_MAX], passwd[PATH_MAX], nowhere[PATH_MAX];
	printf("# symlinks\n");
	join(sub, test_dir, "sub");
	join(outside, sub, "real");
	join(passwd, sub, "passwd");
	join(nowhere, sub, "nowhere");
	setup_ok(mkdir(sub, 0755) == 0, "mkdir sub");
	/* An unattached region outside the collected directory: gc would remove it if it followed. */
	mmipc_region *r = mmipc_create(outside, 100, 0600);
	setup_ok(r != NULL, "create sub/real");
	memcpy(mmipc_data(r), "outside", 8);
	mmipc_detach(r);
	setup_ok(write_file(passwd, passwd_text, sizeof passwd_text - 1, 0644) == 0, "write sub/passwd");
	/* A region in the directory that this process holds, and links to each target. */
	mmipc_region *held = mmipc_create("held", 100, 0600);
	setup_ok(held != NULL, "create held");
	memcpy(mmipc_data(held), "held", 5);
	setup_ok(symlink(outside, "link-region") == 0, "symlink link-region");
	setup_ok(symlink(passwd, "link-passwd") == 0, "symlink link-passwd");
	setup_ok(symlink(nowhere, "link-dangling") == 0, "symlink link-dangling");
	setup_ok(symlink("held", "link-held") == 0, "symlink link-held");

	const char *links[] = {"link-region", "link-passwd", "link-dangling", "link-held"};
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
		expect_eloop(links[i]);
		char full[PATH_MAX];
		join(full, test_dir, links[i]);
		expect_eloop(full); /* the same link as a path */
	}
	check(!exists(nowhere), "no create made a file at the dangling link's target");

	errno = 0;
	int n = mmipc_gc();
	check(n == 0, "mmipc_gc with links, a held region and a region behind a link: removed %d, want 0 (%s) [%s]", n,
	      n < 0 ? strerror(errno) : "", n < 0 ? mmipc_last_error() : "");
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		check(is_link(links[i]), "%s is still a symlink after everything", links[i]);
	mmipc_info info;
	int sr = mmipc_stat(outside, &info);
	check(sr == 0 && info.size == 100 && info.attached == 0, "sub/real (the target) is intact and unattached: %d [%s]", sr,
	      sr ? mmipc_last_error() : "");
	r = mmipc_open(outside, MMIPC_RDONLY);
	check(r != NULL && memcmp(mmipc_data(r), "outside", 8) == 0, "sub/real kept its bytes");
	mmipc_detach(r);
	char got[sizeof passwd_text] = {0};
	int fd = open(passwd, O_RDONLY | O_CLOEXEC);
	ssize_t rd = fd >= 0 ? read(fd, got, sizeof got) : -1;
	if (fd >= 0)
		close(fd);
	check(rd == (ssize_t)sizeof passwd_text - 1 && memcmp(got, passwd_text, sizeof passwd_text - 1) == 0,
	      "the ordinary file behind link-passwd is unchanged (%zd bytes)", rd);
	sr = mmipc_stat("held", &info);
	check(sr == 0 && info.attached == 1, "held is attached: %d attached=%d", sr, sr == 0 ? info.attached : -1);

	/* Released, the region in the directory is garbage: gc removes it, and nothing else. */
	mmipc_detach(held);
	n = mmipc_gc();
	check(n == 1 && !exists("held"), "mmipc_gc after the holder detached: removed %d, want 1 (held), held %s", n,
	      exists("held") ? "still there" : "gone");
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		check(is_link(links[i]), "%s is still a symlink after the second gc", links[i]);
	check(mmipc_stat(outside, &info) == 0, "sub/real is still there after the second gc");
}

/* ---- truncation ---- */

static void truncate_file(const char *name, off_t size)
{
	char path[PATH_MAX];
	path_of(path, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || ftruncate(fd, size) != 0)
		die("truncate");
	close(fd);
}

/* The re-executed child: attach NAME, truncate its file to 0 or to half (HOW), read the first byte
 * (which must still be there when half is left), report it on stdout, then read the last byte, which
 * must kill the process with SIGBUS. Exit 3 means the read survived. */
static int role_sigbus(const char *name, const char *how)
{
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	alarm(20);
	mmipc_region *r = mmipc_open(name, 0);
	if (r == NULL) {
		printf("open failed: %s [%s]\n", strerror(errno), mmipc_last_error());
		return 4;
	}
	const volatile unsigned char *d = mmipc_data(r);
	size_t size = mmipc_size(r);
	off_t file = region_file_size(size);
	truncate_file(name, strcmp(how, "zero") == 0 ? 0 : file / 2);
	if (strcmp(how, "half") == 0) {
		unsigned char first = d[0];
		printf("first byte read: %u\n", first);
		fflush(stdout);
	}
	unsigned char last = d[size - 1];
	printf("the last byte read: %u (no fault)\n", last);
	return 3;
}

static void part_truncate(void)
{
	printf("# truncate\n");
	const size_t size = 4 * 4096;
	char buf[256];
	/* Under AddressSanitizer (./build.sh check), its SIGBUS handler would turn the signal into a
	 * report and exit 1: the re-executed children keep the signal's default outcome. */
	const char *asan = getenv("ASAN_OPTIONS");
	char opts[1024];
	snprintf(opts, sizeof opts, "%s%shandle_sigbus=0", asan ? asan : "", asan && asan[0] ? ":" : "");
	setup_ok(setenv("ASAN_OPTIONS", opts, 1) == 0, "setenv ASAN_OPTIONS");
	for (int k = 0; k < 2; k++) {
		const char *how = k == 0 ? "zero" : "half";
		char name[32];
		snprintf(name, sizeof name, "trunc-%s", how);
		mmipc_region *r = mmipc_create(name, size, 0600);
		setup_ok(r != NULL, "create trunc");
		mmipc_detach(r);
		int pfd[2];
		setup_ok(pipe(pfd) == 0, "pipe");
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			dup2(pfd[1], 1);
			close(pfd[0]);
			char *args[] = {self_argv0, "sigbus", name, (char *)how, NULL};
			execv(self_exe, args);
			_exit(127);
		}
		close(pfd[1]);
		int st = 0, w = wait_bounded(pid, 30, &st);
		char out[512] = {0};
		ssize_t got = read(pfd[0], out, sizeof out - 1);
		close(pfd[0]);
		out[got > 0 ? got : 0] = 0;
		check(w == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
		      "a C program reading its region truncated to %s dies of SIGBUS: got %s; its output: %s", how,
		      describe(w, st, buf, sizeof buf), out);
		if (k == 1)
			check(strstr(out, "first byte read: 0") != NULL, "with half the file left, the first page still reads: %s",
			      out);
		/* By name, the damage is seen before any mapping. */
		EXPECT_NULL(mmipc_open(name, 0), EPROTO);
		EXPECT_NULL(mmipc_open(name, MMIPC_RDONLY), EPROTO);
		mmipc_info info;
		EXPECT_FAIL(mmipc_stat(name, &info), EPROTO);
	}
	/* A ring truncated to its header page: the control block is gone. */
	mmipc_ring *q = mmipc_ring_create("trunc-ring", 4096, 0600);
	setup_ok(q != NULL, "create trunc-ring");
	mmipc_ring_close(q);
	truncate_file("trunc-ring", 4096);
	EXPECT_NULL(mmipc_ring_open("trunc-ring"), EPROTO);
	mmipc_info info;
	EXPECT_FAIL(mmipc_stat("trunc-ring", &info), EPROTO);
	/* gc leaves files that are not regions alone, truncated regions included. */
	errno = 0;
	int n = mmipc_gc();
	check(n == 0 && exists("trunc-zero") && exists("trunc-half") && exists("trunc-ring"),
	      "mmipc_gc removed %d (want 0) and left the truncated files [%s]", n, n < 0 ? mmipc_last_error() : "");
	EXPECT_FAIL(mmipc_unlink("trunc-ring"), EPROTO);
}

int main(int argc, char **argv)
{
	find_self(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && strcmp(argv[1], "sigbus") == 0) {
		setup_dir("/dev/shm/mmipc-test-attacks-XXXXXX");
		return role_sigbus(argv[2], argv[3]);
	}
	if (argc > 1) {
		fprintf(stderr, "usage: test_attacks (no arguments)\n");
		return 2;
	}
	setup_dir("/dev/shm/mmipc-test-attacks-XXXXXX");
	alarm(120);
	part_symlinks();
	part_truncate();
	return check_exit();
}
