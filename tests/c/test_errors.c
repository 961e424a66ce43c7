/*
 * test_errors.c - every row of the errno table of DESIGN.md, through the C API. Each failing call
 * is checked for its errno and for a mmipc_last_error() that names the call and the name.
 *
 * Run by tests/c_regions_test.go with MMIPC_DIR (and the working directory) set to a fresh 0700
 * directory. As root, the EACCES part re-executes this program as uid/gid 65534 (nobody) with
 * "--as-nobody DIR"; the forked child calls no mmipc function before its exec, and finds a copy of
 * libmmipc.so in DIR through LD_LIBRARY_PATH (the checkout may be unreadable to nobody). Its exit
 * status is counted as one check here: 0 passed, 42 its checks failed, anything else is explained.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define NOBODY 65534

static long page;

/* ---------------------------------------------------------------------------------------------
 * helpers
 */

/* The last error must name the call and (when given) the name. */
static void expect_msg(const char *what, const char *fn, const char *name)
{
	const char *m = mmipc_last_error();
	int ok = m != NULL && strstr(m, fn) != NULL && (name == NULL || strstr(m, name) != NULL);
	check(ok, "%s: last_error \"%s\": want it to name %s and %s", what, m ? m : "(NULL)", fn,
	      name ? name : "(no name)");
}

#define NULL_E(call, want, fn, name)                                                              \
	do {                                                                                      \
		EXPECT_NULL(call, want);                                                          \
		expect_msg(#call, fn, name);                                                      \
	} while (0)

#define FAIL_E(call, want, fn, name)                                                              \
	do {                                                                                      \
		EXPECT_FAIL(call, want);                                                          \
		expect_msg(#call, fn, name);                                                      \
	} while (0)

/* Setup: path holds exactly the n bytes of buf, mode 0644. */
static void write_file_or_die(const char *path, const void *buf, size_t n)
{
	if (write_file(path, buf, n, 0644) != 0)
		die(path);
}

static void pwrite_at(const char *path, off_t off, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, buf, n, off) != (ssize_t)n)
		die(path);
	close(fd);
}

static void pread_at(const char *path, off_t off, void *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, buf, n, off) != (ssize_t)n)
		die(path);
	close(fd);
}

/* CRC-32 IEEE (the one of zlib and Go's hash/crc32.ChecksumIEEE). */
static uint32_t crc32_ieee(const unsigned char *b, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= b[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

/* Recomputes the header CRC at offset 40 over bytes [0, 40), so that an edited field is checked
 * for its own sake and not only through the checksum. */
static void fix_crc(const char *path)
{
	unsigned char h[40];
	pread_at(path, 0, h, sizeof h);
	uint32_t c = crc32_ieee(h, sizeof h);
	pwrite_at(path, 40, &c, sizeof c);
}

/* Creates a valid region of `size` bytes filled with 0x5a, and detaches it. */
static void make_region(const char *name, size_t size, unsigned mode)
{
	mmipc_region *r = mmipc_create(name, size, mode);
	if (!check(r != NULL, "setup: mmipc_create(\"%s\", %zu, %#o) [%s]", name, size, mode,
		   r ? "" : mmipc_last_error()))
		return;
	memset(mmipc_data(r), 0x5a, size);
	mmipc_detach(r);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "not ok - a call blocked for 10 s (alarm): an opener must never block\n";
	ssize_t w = write(1, msg, sizeof msg - 1);
	(void)w;
	_exit(3);
}

/* Every opener and mmipc_unlink must refuse `name` with EPROTO, at once, and leave it in place. */
static void expect_not_region(const char *name, const char *why)
{
	char p[PATH_MAX];
	struct stat before, after;
	path_of(p, name);
	printf("# EPROTO: %s (%s)\n", why, name);
	if (lstat(p, &before) != 0)
		die(p);
	alarm(10);
	NULL_E(mmipc_open(name, 0), EPROTO, "mmipc_open", name);
	NULL_E(mmipc_open(name, MMIPC_RDONLY), EPROTO, "mmipc_open", name);
	FAIL_E(mmipc_unlink(name), EPROTO, "mmipc_unlink", name);
	alarm(0);
	int same = lstat(p, &after) == 0 && after.st_ino == before.st_ino &&
		   after.st_size == before.st_size && after.st_mode == before.st_mode;
	check(same, "%s (%s) is still there, unchanged, after the refused mmipc_unlink", p, why);
}

/* A valid region of 4096 bytes that the caller then damages. */
static void fresh_region(const char *name, char *p)
{
	make_region(name, 4096, 0);
	path_of(p, name);
}

/* Counts every entry of `d` but . and .. (there must be none). */
static void expect_empty_dir(const char *d)
{
	char left[1024];
	int n = list_entries(d, ENTRIES_ALL, left, sizeof left);
	if (n < 0)
		die(d);
	check(n == 0, "%s is empty after the failed create: got %d entries: %s", d, n, left);
}

/* ---------------------------------------------------------------------------------------------
 * EEXIST, ENOENT
 */

static void test_eexist(void)
{
	char p[PATH_MAX];
	printf("# EEXIST\n");
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("dup", 4096, 0));
	if (r)
		memcpy(mmipc_data(r), "first", 6);
	NULL_E(mmipc_create("dup", 4096, 0), EEXIST, "mmipc_create", "dup");
	NULL_E(mmipc_create("dup", 100, 0644), EEXIST, "mmipc_create", "dup");
	if (r) {
		check(memcmp(mmipc_data(r), "first", 6) == 0,
		      "the existing region's bytes survive the refused create: got \"%.5s\"",
		      (char *)mmipc_data(r));
		mmipc_detach(r);
	}
	mmipc_region *o = EXPECT_OK_PTR(mmipc_open("dup", 0));
	if (o) {
		check(mmipc_size(o) == 4096 && memcmp(mmipc_data(o), "first", 6) == 0,
		      "the existing region is intact: size %zu (want 4096)", mmipc_size(o));
		mmipc_detach(o);
	}
	/* Any existing file takes the name, and is left alone. */
	path_of(p, "plain_taken");
	write_file_or_die(p, "user data\n", 10);
	NULL_E(mmipc_create("plain_taken", 4096, 0), EEXIST, "mmipc_create", "plain_taken");
	char buf[16] = "";
	pread_at(p, 0, buf, 10);
	struct stat st = {0};
	int sr = stat(p, &st);
	check(sr == 0 && st.st_size == 10 && memcmp(buf, "user data\n", 10) == 0,
	      "an ordinary file at the name is untouched by the refused create (size %lld)",
	      (long long)st.st_size);
	/* The same through a path. */
	make_region("./dup_path", 10, 0);
	NULL_E(mmipc_create("./dup_path", 10, 0), EEXIST, "mmipc_create", "./dup_path");
}

static void test_enoent(void)
{
	char p[PATH_MAX];
	printf("# ENOENT\n");
	NULL_E(mmipc_open("missing", 0), ENOENT, "mmipc_open", "missing");
	NULL_E(mmipc_open("missing", MMIPC_RDONLY), ENOENT, "mmipc_open", "missing");
	FAIL_E(mmipc_unlink("missing"), ENOENT, "mmipc_unlink", "missing");
	NULL_E(mmipc_open("./missing_path", 0), ENOENT, "mmipc_open", "./missing_path");
	FAIL_E(mmipc_unlink("./missing_path"), ENOENT, "mmipc_unlink", "./missing_path");
	NULL_E(mmipc_create("no_such_dir/region", 4096, 0), ENOENT, "mmipc_create", "no_such_dir/region");
	check(!exists("no_such_dir"), "the failed create made no directory");
	NULL_E(mmipc_open("no_such_dir/region", 0), ENOENT, "mmipc_open", "no_such_dir/region");
	/* MMIPC_DIR naming a missing directory. */
	join(p, test_dir, "no_such_dir");
	set_dir_env(p);
	NULL_E(mmipc_create("region", 4096, 0), ENOENT, "mmipc_create", "region");
	NULL_E(mmipc_open("region", 0), ENOENT, "mmipc_open", "region");
	FAIL_E(mmipc_unlink("region"), ENOENT, "mmipc_unlink", "region");
	set_dir_env(test_dir);
	check(!exists(p), "the failed create made no directory %s", p);
}

/* ---------------------------------------------------------------------------------------------
 * EINVAL
 */

static void test_einval(void)
{
	char p[PATH_MAX];
	printf("# EINVAL: NULL arguments\n");
	NULL_E(mmipc_create(NULL, 4096, 0), EINVAL, "mmipc_create", NULL);
	NULL_E(mmipc_open(NULL, 0), EINVAL, "mmipc_open", NULL);
	NULL_E(mmipc_open(NULL, MMIPC_RDONLY), EINVAL, "mmipc_open", NULL);
	FAIL_E(mmipc_unlink(NULL), EINVAL, "mmipc_unlink", NULL);
	NULL_E(mmipc_map_file(NULL, 0), EINVAL, "mmipc_map_file", NULL);
	NULL_E(mmipc_map_file(NULL, 1), EINVAL, "mmipc_map_file", NULL);
	FAIL_E(mmipc_copy_file(NULL, "copy_dst"), EINVAL, "mmipc_copy_file", NULL);
	FAIL_E(mmipc_copy_file("copy_src", NULL), EINVAL, "mmipc_copy_file", NULL);
	FAIL_E(mmipc_copy_file(NULL, NULL), EINVAL, "mmipc_copy_file", NULL);

	printf("# EINVAL: bad names\n");
	char long201[202], long200[201];
	memset(long201, 'n', 201);
	long201[201] = 0;
	memset(long200, 'n', 200);
	long200[200] = 0;
	const char *bad[] = {"",     ".hidden", "a b", "a*",   ".",   "..",   "a\tb",
			     "a\nb", "a:b",     "a\\b", "\xc3\xa9", "a?", long201};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *n = bad[i];
		/* The message quotes the name; a name with a control character, a backslash or a
		 * non-ASCII byte may be shown escaped, and "" cannot be searched for. */
		const char *shown = n;
		for (const char *c = n; *c; c++)
			if (*c < 0x20 || *c > 0x7e || *c == '\\' || *c == '"')
				shown = NULL;
		if (n[0] == 0)
			shown = NULL;
		printf("# bad name [%zu] \"%.20s%s\"\n", i, n, strlen(n) > 20 ? "..." : "");
		NULL_E(mmipc_create(n, 4096, 0), EINVAL, "mmipc_create", shown);
		NULL_E(mmipc_open(n, 0), EINVAL, "mmipc_open", shown);
		NULL_E(mmipc_open(n, MMIPC_RDONLY), EINVAL, "mmipc_open", shown);
		FAIL_E(mmipc_unlink(n), EINVAL, "mmipc_unlink", shown);
		if (n[0] && strcmp(n, ".") && strcmp(n, "..") && strlen(n) < 200) {
			path_of(p, n);
			check(!exists(p), "no file was made for the bad name [%zu]", i);
		}
	}

	printf("# names at the edges of the pattern work\n");
	const char *good[] = {long200, "x", "-dash", "_under", "9", "a.b.c", "a..", "A-Z_0.9"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const char *n = good[i];
		mmipc_region *r = mmipc_create(n, 100, 0);
		check(r != NULL, "mmipc_create(\"%.20s%s\") (%zu chars) works [%s]", n,
		      strlen(n) > 20 ? "..." : "", strlen(n), r ? "" : mmipc_last_error());
		mmipc_detach(r);
		mmipc_region *o = mmipc_open(n, 0);
		check(o != NULL && mmipc_size(o) == 100, "mmipc_open(\"%.20s\") works: size %zu [%s]", n,
		      mmipc_size(o), o ? "" : mmipc_last_error());
		mmipc_detach(o);
		int u = mmipc_unlink(n);
		check(u == 0, "mmipc_unlink(\"%.20s\") works: got %d [%s]", n, u, u ? mmipc_last_error() : "");
		path_of(p, n);
		check(!exists(p), "\"%.20s\" is gone after mmipc_unlink", n);
	}

	printf("# EINVAL: sizes\n");
	NULL_E(mmipc_create("size0", 0, 0), EINVAL, "mmipc_create", "size0");
	NULL_E(mmipc_create("sizemax", SIZE_MAX, 0), EINVAL, "mmipc_create", "sizemax");
	NULL_E(mmipc_create("sizehalf", SIZE_MAX / 2 + 1, 0), EINVAL, "mmipc_create", "sizehalf");
	NULL_E(mmipc_create("sizei64", (size_t)INT64_MAX, 0), EINVAL, "mmipc_create", "sizei64");
	NULL_E(mmipc_create("sizei64p", (size_t)INT64_MAX - (size_t)page, 0), EINVAL, "mmipc_create",
	       "sizei64p");
	NULL_E(mmipc_create("./size0_path", 0, 0), EINVAL, "mmipc_create", "./size0_path");
	const char *sized[] = {"size0", "sizemax", "sizehalf", "sizei64", "sizei64p", "./size0_path"};
	for (size_t i = 0; i < sizeof sized / sizeof sized[0]; i++) {
		path_of(p, sized[i]);
		check(!exists(p), "no file %s after the refused create", p);
	}
	NULL_E(mmipc_anon(0), EINVAL, "mmipc_anon", NULL);
	NULL_E(mmipc_anon(SIZE_MAX), EINVAL, "mmipc_anon", NULL);
	NULL_E(mmipc_anon((size_t)INT64_MAX), EINVAL, "mmipc_anon", NULL);

	printf("# EINVAL: modes\n");
	unsigned modes[] = {01000, 02000, 04000, 04755, 02640, 010000, 0100644, 0x80000000u, UINT_MAX};
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char name[32];
		snprintf(name, sizeof name, "mode%o", modes[i]);
		printf("# mode %#o\n", modes[i]);
		NULL_E(mmipc_create(name, 4096, modes[i]), EINVAL, "mmipc_create", name);
		path_of(p, name);
		check(!exists(p), "no file %s after the refused mode %#o", p, modes[i]);
	}
	mmipc_region *r = mmipc_create("mode777", 4096, 0777);
	check(r != NULL, "mode 0777 (every permission bit) is accepted [%s]", r ? "" : mmipc_last_error());
	mmipc_detach(r);

	printf("# EINVAL: open flags\n");
	make_region("flags", 4096, 0);
	int flags[] = {2, -1, 3, 0x100, INT_MIN};
	for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
		printf("# flags %d\n", flags[i]);
		NULL_E(mmipc_open("flags", flags[i]), EINVAL, "mmipc_open", "flags");
	}
}

/* ---------------------------------------------------------------------------------------------
 * EPROTO
 */

static void test_eproto(void)
{
	char p[PATH_MAX];
	unsigned char buf[64];

	fresh_region("p_magic", p);
	memcpy(buf, "NOTMMIPC", 8);
	pwrite_at(p, 0, buf, 8);
	fix_crc(p);
	expect_not_region("p_magic", "bad magic, checksum recomputed");

	path_of(p, "p_junk");
	{
		char *junk = malloc(2 * page);
		memset(junk, 'A', 2 * page);
		write_file_or_die(p, junk, 2 * page);
		free(junk);
	}
	expect_not_region("p_junk", "a two-page file of 'A'");

	uint32_t v;
	fresh_region("p_version", p);
	pread_at(p, 8, &v, 4);
	check(v == MMIPC_PROTOCOL_VERSION, "a new region's version field is %u (want %u)", v,
	      MMIPC_PROTOCOL_VERSION);
	v++;
	pwrite_at(p, 8, &v, 4);
	fix_crc(p);
	expect_not_region("p_version", "version bumped, checksum recomputed");

	fresh_region("p_version0", p);
	v = 0;
	pwrite_at(p, 8, &v, 4);
	fix_crc(p);
	expect_not_region("p_version0", "version 0, checksum recomputed");

	fresh_region("p_version_raw", p);
	v = 0xffffffffu;
	pwrite_at(p, 8, &v, 4);
	expect_not_region("p_version_raw", "version 0xffffffff, checksum not recomputed");

	uint64_t ds;
	fresh_region("p_dsize", p);
	pread_at(p, 16, &ds, 8);
	check(ds == 4096, "a new region's data-size field is %llu (want 4096)", (unsigned long long)ds);
	ds += (uint64_t)page;
	pwrite_at(p, 16, &ds, 8);
	fix_crc(p);
	expect_not_region("p_dsize", "data size one page larger than the file, checksum recomputed");

	/* A data size that needs fewer pages than the file has: a region of two data pages whose
	 * header says 1 byte (which needs one data page). */
	make_region("p_dsize_small", 2 * page, 0);
	path_of(p, "p_dsize_small");
	ds = 1;
	pwrite_at(p, 16, &ds, 8);
	fix_crc(p);
	expect_not_region("p_dsize_small", "data size 1 in a file of two data pages, checksum recomputed");

	fresh_region("p_dsize0", p);
	ds = 0;
	pwrite_at(p, 16, &ds, 8);
	fix_crc(p);
	expect_not_region("p_dsize0", "data size 0, checksum recomputed");

	fresh_region("p_dsizemax", p);
	ds = UINT64_MAX;
	pwrite_at(p, 16, &ds, 8);
	fix_crc(p);
	expect_not_region("p_dsizemax", "data size UINT64_MAX, checksum recomputed");

	fresh_region("p_dsize_raw", p);
	ds = 8192 + (uint64_t)page;
	pwrite_at(p, 16, &ds, 8);
	expect_not_region("p_dsize_raw", "data size edited, checksum not recomputed");

	uint32_t hs;
	fresh_region("p_hsize", p);
	pread_at(p, 12, &hs, 4);
	check(hs == (uint32_t)page, "a new region's header-size field is %u (want the page size %ld)", hs, page);
	hs *= 2;
	pwrite_at(p, 12, &hs, 4);
	fix_crc(p);
	expect_not_region("p_hsize", "header size doubled, checksum recomputed");

	fresh_region("p_hsize_odd", p);
	hs = 1000;
	pwrite_at(p, 12, &hs, 4);
	fix_crc(p);
	expect_not_region("p_hsize_odd", "header size 1000, checksum recomputed");

	fresh_region("p_hsize0", p);
	hs = 0;
	pwrite_at(p, 12, &hs, 4);
	fix_crc(p);
	expect_not_region("p_hsize0", "header size 0, checksum recomputed");

	off_t fs = region_file_size(4096);
	struct {
		const char *name;
		off_t size;
		const char *why;
	} cut[] = {
		{"p_trunc_page", fs - page, "file truncated by a page"},
		{"p_trunc_1", fs - 1, "file truncated by a byte"},
		{"p_extend_page", fs + page, "file extended by a page"},
		{"p_extend_1", fs + 1, "file extended by a byte"},
		{"p_trunc_header", page, "file truncated to its header"},
		{"p_trunc_63", 63, "file truncated to 63 bytes"},
		{"p_trunc_64", 64, "file truncated to 64 bytes"},
		{"p_trunc_0", 0, "file truncated to 0 bytes"},
	};
	for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
		fresh_region(cut[i].name, p);
		struct stat st = {0};
		int sr = stat(p, &st);
		if (i == 0)
			check(sr == 0 && st.st_size == fs, "the region's file has %lld bytes (want %lld)",
			      (long long)st.st_size, (long long)fs);
		if (truncate(p, cut[i].size) != 0)
			die("truncate");
		expect_not_region(cut[i].name, cut[i].why);
	}

	int flips[] = {24, 27, 28, 31, 32, 39, 40, 43};
	for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
		char name[32], why[64];
		snprintf(name, sizeof name, "p_flip%d", flips[i]);
		snprintf(why, sizeof why, "header byte %d flipped (checksum mismatch)", flips[i]);
		fresh_region(name, p);
		unsigned char b;
		pread_at(p, flips[i], &b, 1);
		b ^= 0x01;
		pwrite_at(p, flips[i], &b, 1);
		expect_not_region(name, why);
	}

	path_of(p, "p_empty");
	write_file_or_die(p, "", 0);
	expect_not_region("p_empty", "an empty file");

	path_of(p, "p_short10");
	write_file_or_die(p, "0123456789", 10);
	expect_not_region("p_short10", "a 10-byte file");

	path_of(p, "p_short63");
	memset(buf, 0, sizeof buf);
	memcpy(buf, "MMIPCREG", 8);
	write_file_or_die(p, buf, 63);
	expect_not_region("p_short63", "63 bytes that start with the magic");

	path_of(p, "p_dir");
	if (mkdir(p, 0755) != 0)
		die("mkdir");
	expect_not_region("p_dir", "a directory");

	path_of(p, "p_fifo");
	if (mkfifo(p, 0600) != 0)
		die("mkfifo");
	expect_not_region("p_fifo", "a FIFO (must not block)");
	alarm(10);
	NULL_E(mmipc_create("p_fifo", 4096, 0), EEXIST, "mmipc_create", "p_fifo");
	alarm(0);

	path_of(p, "p_sock");
	{
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		if (s >= 0 && strlen(p) < sizeof a.sun_path) {
			strcpy(a.sun_path, p);
			if (bind(s, (struct sockaddr *)&a, sizeof a) == 0)
				expect_not_region("p_sock", "a Unix socket");
			else
				printf("# skipped the socket case: bind: %s\n", strerror(errno));
		} else {
			printf("# skipped the socket case: path too long or no socket\n");
		}
		if (s >= 0)
			close(s);
	}

	if (geteuid() == 0) {
		path_of(p, "p_chardev");
		if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) == 0) /* a /dev/null of our own */
			expect_not_region("p_chardev", "a character device");
		else
			printf("# skipped the device case: mknod: %s\n", strerror(errno));
	}
	alarm(10);
	NULL_E(mmipc_open("/dev/null", 0), EPROTO, "mmipc_open", "/dev/null");
	NULL_E(mmipc_open("/dev/null", MMIPC_RDONLY), EPROTO, "mmipc_open", "/dev/null");
	alarm(0);

	printf("# mmipc_unlink never deletes an ordinary file\n");
	path_of(p, "p_plain");
	write_file_or_die(p, "precious\n", 9);
	expect_not_region("p_plain", "an ordinary file (name)");
	write_file_or_die("p_plain_rel.txt", "precious\n", 9);
	expect_not_region("./p_plain_rel.txt", "an ordinary file (relative path)");
	if (mkdir("p_sub", 0755) != 0)
		die("mkdir p_sub");
	write_file_or_die("p_sub/notes.txt", "precious\n", 9);
	expect_not_region("p_sub/notes.txt", "an ordinary file (path in a subdirectory)");
	join(p, test_dir, "p_sub/notes.txt");
	expect_not_region(p, "an ordinary file (absolute path)");
	char got[16] = "";
	pread_at("p_sub/notes.txt", 0, got, 9);
	check(memcmp(got, "precious\n", 9) == 0, "the ordinary file's bytes are unchanged: got \"%.9s\"", got);
}

/* ---------------------------------------------------------------------------------------------
 * ELOOP
 */

static void test_eloop(void)
{
	char target[PATH_MAX], link_[PATH_MAX], dangling[PATH_MAX], nowhere[PATH_MAX];
	printf("# ELOOP\n");
	make_region("loop_target", 100, 0);
	mmipc_region *t = mmipc_open("loop_target", 0);
	if (t) {
		memcpy(mmipc_data(t), "target", 7);
		mmipc_detach(t);
	}
	path_of(target, "loop_target");
	path_of(link_, "loop_link");
	if (symlink("loop_target", link_) != 0)
		die("symlink");

	NULL_E(mmipc_open("loop_link", 0), ELOOP, "mmipc_open", "loop_link");
	NULL_E(mmipc_open("loop_link", MMIPC_RDONLY), ELOOP, "mmipc_open", "loop_link");
	NULL_E(mmipc_create("loop_link", 100, 0), ELOOP, "mmipc_create", "loop_link");
	FAIL_E(mmipc_unlink("loop_link"), ELOOP, "mmipc_unlink", "loop_link");
	NULL_E(mmipc_open(link_, 0), ELOOP, "mmipc_open", link_);
	FAIL_E(mmipc_unlink(link_), ELOOP, "mmipc_unlink", link_);

	struct stat st = {0};
	check(lstat(link_, &st) == 0 && S_ISLNK(st.st_mode), "the symlink is still there");
	int sr = lstat(target, &st);
	check(sr == 0 && S_ISREG(st.st_mode) && st.st_size == region_file_size(100),
	      "the symlink's target survived (size %lld, want %lld)", (long long)st.st_size,
	      (long long)region_file_size(100));
	t = mmipc_open("loop_target", 0);
	check(t != NULL && mmipc_size(t) == 100 && memcmp(mmipc_data(t), "target", 7) == 0,
	      "the target is still the same valid region [%s]", t ? "" : mmipc_last_error());
	mmipc_detach(t);

	/* A dangling symlink at the name: create must not follow it to make its target. */
	path_of(dangling, "loop_dangling");
	path_of(nowhere, "loop_nowhere");
	if (symlink("loop_nowhere", dangling) != 0)
		die("symlink");
	NULL_E(mmipc_create("loop_dangling", 100, 0), ELOOP, "mmipc_create", "loop_dangling");
	check(!exists(nowhere), "create through a dangling symlink made no file at its target");
	NULL_E(mmipc_open("loop_dangling", 0), ELOOP, "mmipc_open", "loop_dangling");
	FAIL_E(mmipc_unlink("loop_dangling"), ELOOP, "mmipc_unlink", "loop_dangling");
	check(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode), "the dangling symlink is still there");
}

/* ---------------------------------------------------------------------------------------------
 * EACCES
 */

/* The part that runs as a user without rights on <d>/acc: as nobody (root re-executes itself), or
 * directly when the program is not root (then the files were chmod-ed by acc_setup). */
static void restricted_checks(const char *d)
{
	char acc[PATH_MAX], accw[PATH_MAX], p[PATH_MAX];
	join(acc, d, "acc");
	join(accw, d, "accw");
	printf("# EACCES as uid %d gid %d\n", (int)geteuid(), (int)getegid());
	set_dir_env(acc);
	NULL_E(mmipc_open("private", 0), EACCES, "mmipc_open", "private");
	NULL_E(mmipc_open("private", MMIPC_RDONLY), EACCES, "mmipc_open", "private");
	NULL_E(mmipc_create("newone", 4096, 0), EACCES, "mmipc_create", "newone");
	join(p, acc, "newone");
	check(!exists(p), "the refused create left no file");
	join(p, acc, "newpath");
	NULL_E(mmipc_create(p, 4096, 0), EACCES, "mmipc_create", p);
	FAIL_E(mmipc_unlink("victim"), EACCES, "mmipc_unlink", "victim");
	join(p, acc, "victim");
	check(exists(p), "the region survives the refused unlink");
	/* The raw-file calls refuse the same way: an unreadable file cannot be mapped or copied, and a
	 * copy cannot be written into a directory that refuses it. */
	char priv[PATH_MAX], pub[PATH_MAX];
	join(priv, acc, "private");
	join(pub, acc, "public");
	NULL_E(mmipc_map_file(priv, 0), EACCES, "mmipc_map_file", priv);
	NULL_E(mmipc_map_file(priv, 1), EACCES, "mmipc_map_file", priv);
	join(p, accw, "copy-of-private");
	FAIL_E(mmipc_copy_file(priv, p), EACCES, "mmipc_copy_file", priv);
	check(!exists(p), "the refused copy of an unreadable file created nothing");
	join(p, acc, "copy-into-closed-dir");
	FAIL_E(mmipc_copy_file(pub, p), EACCES, "mmipc_copy_file", pub);
	check(!exists(p), "the refused copy into an unwritable directory created nothing");
	mmipc_region *r = mmipc_open("public", 0);
	check(r != NULL && mmipc_size(r) == 4096,
	      "a 0666 region of another user opens read-write: size %zu [%s]", mmipc_size(r),
	      r ? "" : mmipc_last_error());
	if (r) {
		memcpy(mmipc_data(r), "written by nobody", 18);
		mmipc_detach(r);
	}
	set_dir_env(accw);
	r = mmipc_create("mine", 4096, 0640);
	check(r != NULL, "creating in a writable directory works [%s]", r ? "" : mmipc_last_error());
	mmipc_detach(r);
	set_dir_env(d);
}

static void acc_setup(int root)
{
	char acc[PATH_MAX], accw[PATH_MAX], p[PATH_MAX];
	join(acc, test_dir, "acc");
	join(accw, test_dir, "accw");
	if (mkdir(acc, 0755) != 0 || chmod(acc, 0755) != 0)
		die("mkdir acc");
	if (mkdir(accw, 0777) != 0 || chmod(accw, 0777) != 0)
		die("mkdir accw");
	/* The test directory is 0700: let the other user traverse it. */
	if (root && chmod(test_dir, 0755) != 0)
		die("chmod the test directory");
	set_dir_env(acc);
	make_region("private", 4096, 0600);
	make_region("public", 4096, 0666);
	make_region("victim", 4096, 0644);
	set_dir_env(test_dir);
	if (!root) {
		join(p, acc, "private");
		if (chmod(p, 0) != 0 || chmod(acc, 0555) != 0)
			die("chmod");
	}
}

static void acc_verify(int root)
{
	char acc[PATH_MAX], p[PATH_MAX];
	join(acc, test_dir, "acc");
	if (!root) {
		join(p, acc, "private");
		if (chmod(acc, 0755) != 0 || chmod(p, 0600) != 0)
			die("chmod back");
	}
	set_dir_env(acc);
	mmipc_region *r = mmipc_open("public", 0);
	check(r != NULL && memcmp(mmipc_data(r), "written by nobody", 18) == 0,
	      "the other user's write reached the 0666 region: got \"%.17s\" [%s]",
	      r ? (char *)mmipc_data(r) : "", r ? "" : mmipc_last_error());
	mmipc_detach(r);
	set_dir_env(test_dir);
	join(p, test_dir, "accw/mine");
	struct stat st = {0};
	uid_t want = root ? NOBODY : geteuid();
	int sr = stat(p, &st);
	check(sr == 0 && st.st_uid == want && (st.st_mode & 07777) == 0640,
	      "the other user's region is theirs with mode 0640: uid %d mode %#o (want %d, 0640)",
	      (int)st.st_uid, (unsigned)(st.st_mode & 07777), (int)want);
}

extern char **environ;

/* Copies the file src to dst (mode 0644) with read/write: test plumbing, not the library's copy. */
static void plain_copy(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0)
		die(in < 0 ? src : dst);
	char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, n) != n)
			die(dst);
	if (n < 0)
		die(src);
	close(in);
	close(out);
	if (chmod(dst, 0644) != 0)
		die(dst);
}

/* The library may live where uid 65534 cannot read it (a checkout under a 0700 home): copy the
 * loaded libmmipc.so into <dir>/nobody_lib, which the re-executed child finds via LD_LIBRARY_PATH
 * (searched before the binary's RUNPATH). Returns the environment for the child. */
static char **nobody_environment(void)
{
	static char libdir[PATH_MAX], var[PATH_MAX + 32];
	char dst[PATH_MAX];
	Dl_info info;
	if (dladdr((void *)mmipc_version, &info) == 0 || info.dli_fname == NULL) {
		errno = ENOENT;
		die("dladdr(mmipc_version): where is libmmipc.so?");
	}
	join(libdir, test_dir, "nobody_lib");
	if (mkdir(libdir, 0755) != 0 || chmod(libdir, 0755) != 0)
		die(libdir);
	join(dst, libdir, "libmmipc.so");
	plain_copy(info.dli_fname, dst);
	snprintf(var, sizeof var, "LD_LIBRARY_PATH=%s", libdir);
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof *env);
	if (env == NULL)
		die("calloc");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_LIBRARY_PATH=", 16) != 0)
			env[k++] = environ[i];
	env[k++] = var;
	env[k] = NULL;
	return env;
}

static void test_eacces(void)
{
	if (geteuid() != 0) {
		printf("# EACCES: not root, checking against files chmod-ed here\n");
		acc_setup(0);
		restricted_checks(test_dir);
		acc_verify(0);
		return;
	}
	printf("# EACCES: root bypasses permissions, so re-run as uid/gid %d\n", NOBODY);
	acc_setup(1);
	/* Re-execute this program: self_exe was resolved by find_self in main, before any fork. */
	char **env = nobody_environment();
	pid_t pid = fork_flushed();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* No mmipc call here: exec first. */
		if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
			dprintf(2, "test_errors child: dropping to uid %d: %s\n", NOBODY, strerror(errno));
			_exit(125);
		}
		char *args[] = {self_argv0, "--as-nobody", test_dir, NULL};
		execve(self_exe, args, env);
		dprintf(2, "test_errors child: execv %s as uid %d: %s\n", self_exe, NOBODY, strerror(errno));
		_exit(126);
	}
	int st = 0, w = wait_bounded(pid, 60, &st);
	free(env);
	char why[PATH_MAX + 128];
	if (exited_with(w, st, 125))
		snprintf(why, sizeof why, "exit 125: it could not drop to uid %d", NOBODY);
	else if (exited_with(w, st, 126))
		snprintf(why, sizeof why, "exit 126: it could not exec %s", self_exe);
	else if (exited_with(w, st, 127))
		snprintf(why, sizeof why, "exit 127: the program or its library could not be loaded as uid %d", NOBODY);
	else if (exited_with(w, st, 42))
		snprintf(why, sizeof why, "exit 42: some of its checks failed (above)");
	else
		describe(w, st, why, sizeof why);
	check(exited_zero(w, st), "the uid-%d part (a re-executed child) passed: got %s", NOBODY, why);
	acc_verify(1);
}

static int nobody_main(const char *d)
{
	snprintf(test_dir, sizeof test_dir, "%s", d);
	check(geteuid() != 0, "the --as-nobody part runs without root: euid %d", (int)geteuid());
	restricted_checks(d);
	/* A distinct status, so that the parent tells failed checks from a child that did not run. */
	return check_exit() ? 42 : 0;
}

/* ---------------------------------------------------------------------------------------------
 * ENOSPC / ENOMEM / EFBIG
 */

static void test_enospc(void)
{
	char big[PATH_MAX];
	const size_t huge = (size_t)1 << 50;
	printf("# ENOSPC/ENOMEM/EFBIG: a 1 PiB region\n");
	join(big, test_dir, "big");
	if (mkdir(big, 0700) != 0)
		die("mkdir big");
	set_dir_env(big);
	errno = 0;
	mmipc_region *r = mmipc_create("huge", huge, 0);
	int err = errno;
	set_dir_env(test_dir);
	check(r == NULL && (err == ENOSPC || err == ENOMEM || err == EFBIG),
	      "mmipc_create(\"huge\", 1<<50): got %p errno %d (%s), want NULL with ENOSPC, ENOMEM or EFBIG [%s]",
	      (void *)r, err, strerror(err), mmipc_last_error());
	expect_msg("mmipc_create(\"huge\", 1<<50)", "mmipc_create", "huge");
	mmipc_detach(r);
	expect_empty_dir(big);

	if (mkdir("bigpath", 0700) != 0)
		die("mkdir bigpath");
	errno = 0;
	r = mmipc_create("bigpath/huge", huge, 0600);
	err = errno;
	check(r == NULL && (err == ENOSPC || err == ENOMEM || err == EFBIG),
	      "mmipc_create(\"bigpath/huge\", 1<<50): got %p errno %d (%s), want NULL with ENOSPC, ENOMEM or EFBIG [%s]",
	      (void *)r, err, strerror(err), mmipc_last_error());
	expect_msg("mmipc_create(\"bigpath/huge\", 1<<50)", "mmipc_create", "bigpath/huge");
	mmipc_detach(r);
	expect_empty_dir("bigpath");
}

/* ---------------------------------------------------------------------------------------------
 * mmipc_last_error
 */

struct thread_report {
	char initial[1100];
	char after[1100];
	int got_null, err;
};

static void *thread_b(void *arg)
{
	struct thread_report *t = arg;
	snprintf(t->initial, sizeof t->initial, "%s", mmipc_last_error());
	errno = 0;
	mmipc_region *r = mmipc_open("thread_b_missing", 0);
	t->err = errno;
	t->got_null = r == NULL;
	mmipc_detach(r);
	snprintf(t->after, sizeof t->after, "%s", mmipc_last_error());
	return NULL;
}

static void test_last_error(void)
{
	printf("# mmipc_last_error\n");
	NULL_E(mmipc_open("thread_a_missing", 0), ENOENT, "mmipc_open", "thread_a_missing");
	char a[1100];
	snprintf(a, sizeof a, "%s", mmipc_last_error());

	mmipc_region *r = mmipc_create("le_success", 4096, 0);
	check(r != NULL, "a successful create [%s]", r ? "" : mmipc_last_error());
	mmipc_detach(r);
	r = mmipc_open("le_success", 0);
	check(r != NULL, "a successful open");
	mmipc_detach(r);
	check(mmipc_unlink("le_success") == 0, "a successful unlink");
	check(strcmp(mmipc_last_error(), a) == 0, "successes do not clear the last error: got \"%s\", want \"%s\"",
	      mmipc_last_error(), a);

	struct thread_report t = {.got_null = 0};
	pthread_t th;
	if (pthread_create(&th, NULL, thread_b, &t) != 0)
		die("pthread_create");
	pthread_join(th, NULL);
	check(strcmp(t.initial, "") == 0, "a fresh thread's last error is \"\": got \"%s\"", t.initial);
	check(t.got_null && t.err == ENOENT, "thread B's open failed with ENOENT: got null=%d errno %d (%s)",
	      t.got_null, t.err, strerror(t.err));
	check(strstr(t.after, "mmipc_open") && strstr(t.after, "thread_b_missing"),
	      "thread B's last error names its own failure: got \"%s\"", t.after);
	check(strcmp(mmipc_last_error(), a) == 0,
	      "thread B's failure did not change thread A's message: got \"%s\", want \"%s\"", mmipc_last_error(), a);
}

/* ---------------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
	page = sysconf(_SC_PAGESIZE);
	struct sigaction sa = {.sa_handler = on_alarm};
	sigaction(SIGALRM, &sa, NULL);
	if (argc == 3 && strcmp(argv[1], "--as-nobody") == 0)
		return nobody_main(argv[2]);
	find_self(argv[0]); /* before any fork: test_eacces re-executes this program */

	check(strcmp(mmipc_last_error(), "") == 0, "before any failure the last error is \"\": got \"%s\"",
	      mmipc_last_error());
	setup_dir("/dev/shm/mmipc-test-errors-XXXXXX");
	test_last_error();
	test_eexist();
	test_enoent();
	test_einval();
	test_eproto();
	test_eloop();
	test_eacces();
	test_enospc();
	expect_no_temp_files(test_dir);
	expect_no_temp_files("p_sub");
	return check_exit();
}
