/* test_files.c - mmipc_map_file, mmipc_anon and mmipc_copy_file against real files.
 *
 *   map_file   the classic scenario (a child writes into a mapped file, the parent reads it back
 *              and finds it on disk after mmipc_sync), read-only maps (writes fault), the error
 *              cases (missing, empty, directory, FIFO, device), symlinks followed, two handles.
 *   anon       exact size, zeros, page-aligned, shared with a forked child in both directions.
 *   copy_file  large files byte-identical with the source's mode (under umask 077), empty files,
 *              replacing a destination, self-copies refused, missing/directory/FIFO sources, and no
 *              temporary file left behind.
 * Forked children here use only fork-safe calls (mmipc_data, mmipc_detach) or none at all.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

/* ---- helpers ---- */

/* A call that could block (a FIFO) runs under alarm(): if it blocks, this handler reports it. */
static const char *volatile blocking_call = "";

static void on_alarm(int sig)
{
	(void)sig;
	static const char a[] = "not ok - ", b[] = ": blocked (the 5 s alarm fired), want an immediate failure\n";
	if (write(1, a, sizeof a - 1) < 0 || write(1, blocking_call, strlen(blocking_call)) < 0 ||
	    write(1, b, sizeof b - 1) < 0)
		_exit(1);
	_exit(1);
}

#define BOUNDED(call)                                                                                         \
	({                                                                                                    \
		blocking_call = #call;                                                                        \
		alarm(5);                                                                                     \
		__typeof__(call) r_ = (call);                                                                 \
		int e_ = errno;                                                                               \
		alarm(0);                                                                                     \
		errno = e_;                                                                                   \
		r_;                                                                                           \
	})

/* A setup step that must work; errno is shown only when it failed. */
#define SETUP(expr, what)                                                                                     \
	do {                                                                                                  \
		errno = 0;                                                                                    \
		int ok_ = (expr);                                                                             \
		int e_ = errno;                                                                               \
		check(ok_, "setup: %s%s%s", what, ok_ ? "" : ": ", ok_ ? "" : strerror(e_));                  \
	} while (0)

/* Reads the whole file with read(2) into a malloc'd buffer (NUL-terminated); *n gets its size. */
static char *slurp(const char *path, size_t *n)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	ssize_t r = 0;
	while (buf != NULL && got < (size_t)st.st_size && (r = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)r;
	close(fd);
	if (buf != NULL)
		buf[got] = 0;
	*n = got;
	return buf;
}

static int file_is(const char *path, const char *want)
{
	size_t n = 0;
	char *got = slurp(path, &n);
	int ok = got != NULL && n == strlen(want) && memcmp(got, want, n) == 0;
	free(got);
	return ok;
}

/* ---- mmipc_map_file ---- */

#define CLASSIC_TEXT "hello from the child process"

static void test_map_file_classic(void)
{
	char init[64];
	memset(init, '-', sizeof init);
	memcpy(init, "this line is overwritten by the child", 37);
	init[63] = '\n';
	check(write_file("test.txt", init, sizeof init, 0644) == 0, "classic: writing test.txt");

	mmipc_region *m = EXPECT_OK_PTR(mmipc_map_file("test.txt", 1));
	if (m == NULL)
		return;
	check(mmipc_size(m) == sizeof init, "classic: mmipc_size: got %zu, want %zu", mmipc_size(m), sizeof init);
	char *p = mmipc_data(m);
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL); /* a hang kills the child: the parent reports it */
		alarm(5);
		strcpy(mmipc_data(m), CLASSIC_TEXT);
		_exit(mmipc_detach(m) == 0 ? 0 : 1);
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st),
	      "classic: the child (strcpy into the mapping, mmipc_detach): got %s, want exit 0", describe(w, st, buf, sizeof buf));
	check(strcmp(p, CLASSIC_TEXT) == 0, "classic: the parent reads the child's text: got \"%.63s\", want \"%s\"", p,
	      CLASSIC_TEXT);
	EXPECT_ZERO(mmipc_sync(m));
	EXPECT_ZERO(mmipc_detach(m));

	char want[64];
	memcpy(want, init, sizeof want);
	memcpy(want, CLASSIC_TEXT, sizeof CLASSIC_TEXT); /* with its NUL, as strcpy wrote it */
	size_t n = 0;
	char *disk = slurp("test.txt", &n);
	check(disk != NULL && n == sizeof want && memcmp(disk, want, sizeof want) == 0,
	      "classic: test.txt on disk (read(2)) after mmipc_sync + detach: got %zu bytes starting \"%.40s\", want 64 "
	      "bytes starting \"%s\\0%.10s\"",
	      n, disk ? disk : "(unreadable)", CLASSIC_TEXT, init + sizeof CLASSIC_TEXT);
	free(disk);
}

static void test_map_file_readonly(void)
{
	const char text[] = "read-only mapping: these bytes must come back exactly\n";
	check(write_file("ro.txt", text, sizeof text - 1, 0644) == 0, "read-only: writing ro.txt");
	mmipc_region *r = EXPECT_OK_PTR(mmipc_map_file("ro.txt", 0));
	if (r == NULL)
		return;
	check(mmipc_size(r) == sizeof text - 1, "read-only: mmipc_size == the file's size: got %zu, want %zu", mmipc_size(r),
	      sizeof text - 1);
	check(mmipc_size(r) == sizeof text - 1 && memcmp(mmipc_data(r), text, sizeof text - 1) == 0,
	      "read-only: the mapping holds the file's bytes: got \"%.*s\"", (int)(sizeof text - 2), (char *)mmipc_data(r));

	expect_write_faults("read-only map_file", mmipc_data(r));
	EXPECT_ZERO(mmipc_detach(r));
	check(file_is("ro.txt", text), "read-only: ro.txt unchanged on disk");
}

static void test_map_file_errors(void)
{
	EXPECT_NULL(mmipc_map_file("missing.txt", 0), ENOENT);
	EXPECT_NULL(mmipc_map_file("missing.txt", 1), ENOENT);
	EXPECT_NULL(mmipc_map_file("no-such-dir/file.txt", 1), ENOENT);
	EXPECT_NULL(mmipc_map_file(NULL, 0), EINVAL);

	check(write_file("empty.txt", "", 0, 0644) == 0, "errors: creating empty.txt");
	EXPECT_NULL(mmipc_map_file("empty.txt", 0), EINVAL);
	EXPECT_NULL(mmipc_map_file("empty.txt", 1), EINVAL);
	struct stat st;
	check(stat("empty.txt", &st) == 0 && st.st_size == 0, "errors: empty.txt is still empty");

	SETUP(mkdir("adir", 0755) == 0, "mkdir adir");
	EXPECT_NULL(mmipc_map_file("adir", 0), EPROTO);
	EXPECT_NULL(mmipc_map_file("adir", 1), EPROTO);

	SETUP(mkfifo("afifo", 0600) == 0, "mkfifo afifo");
	/* Nobody has the FIFO open: opening it the ordinary way would block forever. */
	EXPECT_NULL(BOUNDED(mmipc_map_file("afifo", 0)), EPROTO);
	EXPECT_NULL(BOUNDED(mmipc_map_file("afifo", 1)), EPROTO);

	EXPECT_NULL(BOUNDED(mmipc_map_file("/dev/null", 0)), EPROTO);

	SETUP(symlink("missing.txt", "dangling.lnk") == 0, "symlink dangling.lnk -> missing.txt");
	EXPECT_NULL(mmipc_map_file("dangling.lnk", 0), ENOENT);
}

static void test_map_file_symlink_and_handles(void)
{
	const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	check(write_file("shared.txt", text, sizeof text - 1, 0644) == 0, "symlink: writing shared.txt");
	SETUP(symlink("shared.txt", "shared.lnk") == 0, "symlink shared.lnk -> shared.txt");

	mmipc_region *l = EXPECT_OK_PTR(mmipc_map_file("shared.lnk", 1));
	if (l != NULL) {
		check(mmipc_size(l) == sizeof text - 1 && memcmp(mmipc_data(l), text, sizeof text - 1) == 0,
		      "symlink: mapping through a symlink maps the target: size %zu, want %zu", mmipc_size(l), sizeof text - 1);
		((char *)mmipc_data(l))[0] = 'L';
		EXPECT_ZERO(mmipc_sync(l));
		EXPECT_ZERO(mmipc_detach(l));
		size_t n = 0;
		char *disk = slurp("shared.txt", &n);
		check(disk != NULL && disk[0] == 'L', "symlink: a write through the link's mapping reaches the target: got '%c'",
		      disk ? disk[0] : '?');
		free(disk);
		struct stat st;
		check(lstat("shared.lnk", &st) == 0 && S_ISLNK(st.st_mode), "symlink: the link is still a link");
	}

	mmipc_region *a = EXPECT_OK_PTR(mmipc_map_file("shared.txt", 1));
	mmipc_region *b = EXPECT_OK_PTR(mmipc_map_file("shared.txt", 1));
	mmipc_region *c = EXPECT_OK_PTR(mmipc_map_file("shared.txt", 0));
	if (a != NULL && b != NULL && c != NULL) {
		char *pa = mmipc_data(a), *pb = mmipc_data(b), *pc = mmipc_data(c);
		check(pa != pb && pa != pc, "two handles: distinct mappings (%p, %p, %p)", (void *)pa, (void *)pb, (void *)pc);
		memcpy(pa + 1, "AAAA", 4);
		check(memcmp(pb + 1, "AAAA", 4) == 0 && memcmp(pc + 1, "AAAA", 4) == 0,
		      "two handles: a write through the first is seen by the second and the read-only one: got \"%.4s\", \"%.4s\"",
		      pb + 1, pc + 1);
		memcpy(pb + 10, "BBBB", 4);
		check(memcmp(pa + 10, "BBBB", 4) == 0 && memcmp(pc + 10, "BBBB", 4) == 0,
		      "two handles: a write through the second is seen by the first and the read-only one: got \"%.4s\", \"%.4s\"",
		      pa + 10, pc + 10);
	}
	EXPECT_ZERO(mmipc_detach(a));
	EXPECT_ZERO(mmipc_detach(c));
	/* The last handle still works after the others are gone. */
	if (b != NULL)
		check(memcmp((char *)mmipc_data(b) + 1, "AAAA", 4) == 0, "two handles: the remaining handle still reads");
	EXPECT_ZERO(mmipc_detach(b));
	check(file_is("shared.txt", "LAAAA56789BBBBefghijklmnopqrstuvwxyz"),
	      "two handles: shared.txt holds both handles' writes");
}

/* ---- mmipc_anon ---- */

#define ANON_SIZE 12345

static void test_anon(void)
{
	mmipc_region *r = EXPECT_OK_PTR(mmipc_anon(ANON_SIZE));
	if (r == NULL)
		return;
	unsigned char *p = mmipc_data(r);
	check(mmipc_size(r) == ANON_SIZE, "anon: mmipc_size: got %zu, want %d", mmipc_size(r), ANON_SIZE);
	check(((uintptr_t)p % (uintptr_t)sysconf(_SC_PAGESIZE)) == 0, "anon: data is page-aligned: %p", (void *)p);
	size_t nonzero = 0;
	for (size_t i = 0; i < ANON_SIZE; i++)
		nonzero += p[i] != 0;
	check(nonzero == 0, "anon: a new region reads as zeros: got %zu non-zero bytes of %d", nonzero, ANON_SIZE);
	EXPECT_ZERO(mmipc_sync(r));

	mmipc_region *other = EXPECT_OK_PTR(mmipc_anon(ANON_SIZE));
	if (other != NULL) {
		memset(p, 0x11, 64);
		check(((unsigned char *)mmipc_data(other))[0] == 0, "anon: two anonymous regions are distinct memory");
		memset(p, 0, 64);
	}
	EXPECT_ZERO(mmipc_detach(other));

	/* Shared both ways with a forked child, with writes made after the fork on each side:
	 *   parent writes "to child" at 0 and sets flag[0]; the child waits for it, checks, writes
	 *   "to parent" at 4096 (second page) and the last byte, sets flag[1]; the parent checks. */
	_Atomic uint32_t *flag = (_Atomic uint32_t *)(p + 2048);
	strcpy((char *)p + 1024, "before fork");
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL); /* a hang kills the child: the parent reports it */
		alarm(5);
		int bad = strcmp((char *)p + 1024, "before fork") != 0;
		while (atomic_load(&flag[0]) == 0)
			; /* the alarm bounds this */
		bad |= strcmp((char *)p, "to child") != 0;
		strcpy((char *)p + 4096, "to parent");
		p[ANON_SIZE - 1] = 0x7e;
		atomic_store(&flag[1], 1);
		bad |= mmipc_detach(r) != 0;
		_exit(bad);
	}
	strcpy((char *)p, "to child");
	atomic_store(&flag[0], 1);
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(exited_zero(w, st),
	      "anon: the child saw the parent's writes (before and after the fork) and detached: got %s, want exit 0",
	      describe(w, st, buf, sizeof buf));
	check(atomic_load(&flag[1]) == 1 && strcmp((char *)p + 4096, "to parent") == 0 && p[ANON_SIZE - 1] == 0x7e,
	      "anon: the parent sees the child's writes: got flag %u, \"%.15s\", last byte %#x; want 1, \"to parent\", 0x7e",
	      atomic_load(&flag[1]), (char *)p + 4096, p[ANON_SIZE - 1]);
	EXPECT_ZERO(mmipc_detach(r));

	EXPECT_NULL(mmipc_anon(0), EINVAL);
	EXPECT_NULL(mmipc_anon((size_t)-1), EINVAL);
}

/* ---- mmipc_copy_file ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* Writes n pseudo-random bytes to path with the exact mode. */
static int write_random(const char *path, size_t n, mode_t mode)
{
	char *buf = malloc(n ? n : 1);
	if (buf == NULL)
		return -1;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = rng();
		memcpy(buf + i, &v, n - i < 8 ? n - i : 8);
	}
	int rc = write_file(path, buf, n, mode);
	free(buf);
	return rc;
}

/* Compares two files with read(2); returns -1 if identical, else the first differing offset. */
static long long first_difference(const char *a, const char *b)
{
	size_t na = 0, nb = 0;
	char *pa = slurp(a, &na), *pb = slurp(b, &nb);
	long long diff = -1;
	if (pa == NULL || pb == NULL) {
		diff = 0;
	} else {
		size_t n = na < nb ? na : nb;
		for (size_t i = 0; i < n; i++) {
			if (pa[i] != pb[i]) {
				diff = (long long)i;
				break;
			}
		}
		if (diff < 0 && na != nb)
			diff = (long long)n;
	}
	free(pa);
	free(pb);
	return diff;
}

static void check_copy(const char *what, const char *src, const char *dst, mode_t mode)
{
	struct stat ss, ds;
	errno = 0;
	int rc = mmipc_copy_file(src, dst);
	int err = errno;
	check(rc == 0, "copy %s: mmipc_copy_file(\"%s\", \"%s\"): got %d (%s), want 0 [%s]", what, src, dst, rc,
	      rc ? strerror(err) : "ok", rc ? mmipc_last_error() : "");
	int have = stat(src, &ss) == 0 && lstat(dst, &ds) == 0;
	check(have && S_ISREG(ds.st_mode) && ds.st_size == ss.st_size,
	      "copy %s: the destination is a regular file of the source's size: got %lld bytes, want %lld", what,
	      have ? (long long)ds.st_size : -1LL, have ? (long long)ss.st_size : -1LL);
	check(have && (ds.st_mode & 07777) == mode, "copy %s: the destination's mode: got %#o, want %#o (the source's)", what,
	      have ? (unsigned)(ds.st_mode & 07777) : 0u, (unsigned)mode);
	long long d = first_difference(src, dst);
	check(d < 0, "copy %s: the destination is byte-identical to the source: first difference at %lld", what, d);
}

static void test_copy_file(void)
{
	mode_t old_umask = umask(077);
	SETUP(mkdir("cp", 0700) == 0 && mkdir("cp/subdir", 0700) == 0, "mkdir cp, cp/subdir");

	/* Large files of pseudo-random bytes; the second is larger than one 64 MiB copy window. */
	check(write_random("cp/big.src", (24 << 20) + 123, 0640) == 0, "copy: writing a 24 MiB + 123 byte source");
	check_copy("24 MiB + 123 bytes, mode 0640 under umask 077", "cp/big.src", "cp/big.dst", 0640);
	unlink("cp/big.dst");
	unlink("cp/big.src");
	check(write_random("cp/huge.src", (64 << 20) + 5000, 0604) == 0, "copy: writing a 64 MiB + 5000 byte source");
	check_copy("64 MiB + 5000 bytes, mode 0604", "cp/huge.src", "cp/huge.dst", 0604);
	unlink("cp/huge.dst");
	unlink("cp/huge.src");
	check(write_random("cp/odd.src", 4097, 0751) == 0, "copy: writing a 4097 byte source");
	check_copy("4097 bytes, mode 0751", "cp/odd.src", "cp/odd.dst", 0751);

	check(write_file("cp/empty.src", "", 0, 0644) == 0, "copy: writing an empty source");
	check_copy("of an empty file", "cp/empty.src", "cp/empty.dst", 0644);

	/* An existing destination, longer and of another mode, is replaced. */
	check(write_file("cp/small.src", "new", 3, 0640) == 0 &&
		      write_file("cp/old.dst", "old contents, longer than the new ones", 38, 0600) == 0,
	      "copy: writing cp/small.src and cp/old.dst");
	check_copy("over an existing destination", "cp/small.src", "cp/old.dst", 0640);
	check(file_is("cp/old.dst", "new"), "copy: the replaced destination holds exactly the new bytes");

	/* A destination that is a symlink is replaced; its target is untouched. */
	check(write_file("cp/target.txt", "target", 6, 0600) == 0 && symlink("target.txt", "cp/link.dst") == 0,
	      "copy: cp/link.dst -> cp/target.txt");
	check_copy("over a symlink", "cp/small.src", "cp/link.dst", 0640);
	check(file_is("cp/target.txt", "target"), "copy: the symlink's old target is untouched");

	/* Copying a file onto itself: same path, and via a hard link. */
	EXPECT_FAIL(mmipc_copy_file("cp/small.src", "cp/small.src"), EINVAL);
	check(file_is("cp/small.src", "new"), "copy: a self-copy (same path) leaves the file intact");
	SETUP(link("cp/small.src", "cp/small.hard") == 0, "hard link cp/small.hard");
	EXPECT_FAIL(mmipc_copy_file("cp/small.src", "cp/small.hard"), EINVAL);
	EXPECT_FAIL(mmipc_copy_file("cp/small.hard", "cp/small.src"), EINVAL);
	struct stat a, b;
	check(file_is("cp/small.src", "new") && file_is("cp/small.hard", "new") && stat("cp/small.src", &a) == 0 &&
		      stat("cp/small.hard", &b) == 0 && a.st_ino == b.st_ino && a.st_nlink == 2,
	      "copy: a self-copy via a hard link leaves both names on the same intact file");

	/* Failing sources: nothing is created, an existing destination is left as it was. */
	EXPECT_FAIL(mmipc_copy_file("cp/missing", "cp/missing.dst"), ENOENT);
	check(!exists("cp/missing.dst"), "copy: a missing source creates no destination");
	EXPECT_FAIL(mmipc_copy_file("cp/missing", "cp/old.dst"), ENOENT);
	check(file_is("cp/old.dst", "new"), "copy: a failed copy leaves the existing destination intact");
	EXPECT_FAIL(mmipc_copy_file("cp/subdir", "cp/dir.dst"), EPROTO);
	check(!exists("cp/dir.dst"), "copy: a directory source creates no destination");
	SETUP(mkfifo("cp/fifo", 0600) == 0, "mkfifo cp/fifo");
	EXPECT_FAIL(BOUNDED(mmipc_copy_file("cp/fifo", "cp/fifo.dst")), EPROTO);
	check(!exists("cp/fifo.dst"), "copy: a FIFO source creates no destination");
	EXPECT_FAIL(mmipc_copy_file("cp/small.src", "cp/subdir"), EISDIR);
	struct stat sd;
	check(lstat("cp/subdir", &sd) == 0 && S_ISDIR(sd.st_mode), "copy: a directory destination is left a directory");
	EXPECT_FAIL(mmipc_copy_file(NULL, "cp/null.dst"), EINVAL);
	EXPECT_FAIL(mmipc_copy_file("cp/small.src", NULL), EINVAL);

	char names[512];
	int n = list_entries("cp", ENTRIES_HIDDEN, names, sizeof names);
	check(n == 0, "copy: temporary files beside the destinations: got %d (%s), want 0", n, names);
	n = list_entries("cp/subdir", ENTRIES_HIDDEN, names, sizeof names);
	check(n == 0, "copy: temporary files in cp/subdir: got %d (%s), want 0", n, names);
	n = list_entries(".", ENTRIES_HIDDEN, names, sizeof names);
	check(n == 0, "copy: temporary files in the working directory: got %d (%s), want 0", n, names);
	umask(old_umask);
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: test_files (no arguments)\n");
		return 2;
	}
	signal(SIGALRM, on_alarm);
	test_map_file_classic();
	test_map_file_readonly();
	test_map_file_errors();
	test_map_file_symlink_and_handles();
	test_anon();
	test_copy_file();
	return check_exit();
}
