/*
 * test_regions.c - the semantics of named regions through the C API: sizes, zeros, alignment and
 * file size; permissions; MMIPC_DIR read at each call; paths; read-only attachments; unlink while
 * attached; NULL handles; the version.
 *
 * Run by tests/c_regions_test.go with MMIPC_DIR (and the working directory) set to a fresh
 * directory. The forked child of the read-only check uses only mmipc_data (fork-safe).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include "check.h"
#include "testutil.h"

static long page;

/* The index of the first byte of p[0..n) that is not `want`, or n. */
static size_t first_not(const unsigned char *p, size_t n, unsigned char want)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != want)
			return i;
	return n;
}

static unsigned char pattern(size_t i, size_t seed)
{
	return (unsigned char)(i * 7 + seed * 13 + 1);
}

/* ---------------------------------------------------------------------------------------------
 */

static void test_sizes(void)
{
	const size_t sizes[] = {1, 4095, 4096, 4097, (size_t)1 << 20};
	printf("# sizes, zeros, alignment, file size\n");
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t s = sizes[k];
		char name[32], p[PATH_MAX];
		snprintf(name, sizeof name, "size_%zu", s);
		join(p, test_dir, name);
		mmipc_region *r = mmipc_create(name, s, 0);
		if (!check(r != NULL, "mmipc_create(\"%s\", %zu) [%s]", name, s, r ? "" : mmipc_last_error()))
			continue;
		unsigned char *d = mmipc_data(r);
		check(mmipc_size(r) == s, "create %zu: mmipc_size %zu, want %zu", s, mmipc_size(r), s);
		check(d != NULL && (uintptr_t)d % (uintptr_t)page == 0, "create %zu: mmipc_data %p is page-aligned (page %ld)",
		      s, (void *)d, page);
		size_t nz = first_not(d, s, 0);
		check(nz == s, "create %zu: a new region reads as zeros: first non-zero byte at %zu", s, nz);

		struct stat st = {0};
		int sr = stat(p, &st);
		off_t want = region_file_size(s);
		check(sr == 0 && S_ISREG(st.st_mode) && st.st_size == want,
		      "create %zu: the file %s has %lld bytes, want %lld (a page + the size rounded up to a page)", s,
		      p, (long long)st.st_size, (long long)want);

		for (size_t i = 0; i < s; i++)
			d[i] = pattern(i, s);
		mmipc_region *o = mmipc_open(name, 0);
		if (check(o != NULL, "mmipc_open(\"%s\") [%s]", name, o ? "" : mmipc_last_error())) {
			unsigned char *e = mmipc_data(o);
			check(mmipc_size(o) == s, "open %zu: mmipc_size %zu, want %zu (from the header)", s, mmipc_size(o), s);
			check(e != NULL && (uintptr_t)e % (uintptr_t)page == 0, "open %zu: mmipc_data %p is page-aligned", s,
			      (void *)e);
			check(e != d, "open %zu: the second attachment is a separate mapping", s);
			check(memcmp(e, d, s) == 0, "open %zu: the opener sees the creator's bytes", s);
			/* and the other way: the same edits on a private copy give the expected bytes */
			unsigned char *want_b = malloc(s);
			if (want_b == NULL)
				die("malloc");
			memcpy(want_b, d, s);
			size_t at[] = {0, s / 2, s - 1};
			for (int j = 0; j < 3; j++) {
				e[at[j]] ^= (unsigned char)(0x5a + j);
				want_b[at[j]] ^= (unsigned char)(0x5a + j);
			}
			check(memcmp(d, want_b, s) == 0 && d[0] != pattern(0, s),
			      "open %zu: the creator sees the opener's writes (first, middle, last byte)", s);
			free(want_b);
			check(memcmp(e, d, s) == 0, "open %zu: both attachments hold the same bytes", s);
			mmipc_detach(o);
		}
		/* The bytes outlive every attachment. */
		unsigned char first = d[0], mid = d[s / 2];
		mmipc_detach(r);
		o = mmipc_open(name, MMIPC_RDONLY);
		if (check(o != NULL, "reopen \"%s\" read-only after every detach [%s]", name, o ? "" : mmipc_last_error())) {
			unsigned char *e = mmipc_data(o);
			check(mmipc_size(o) == s && e[0] == first && e[s / 2] == mid,
			      "reopen %zu: size %zu and bytes kept after every handle detached", s, mmipc_size(o));
			mmipc_detach(o);
		}
		int u = mmipc_unlink(name);
		check(u == 0 && !exists(p), "mmipc_unlink(\"%s\") removes %s: got %d [%s]", name, p, u,
		      u ? mmipc_last_error() : "");
	}
}

static void test_permissions(void)
{
	struct {
		const char *name;
		unsigned mode, want;
	} cases[] = {
		{"perm_default", 0, 0600}, {"perm_0640", 0640, 0640}, {"perm_0666", 0666, 0666},
		{"perm_0777", 0777, 0777}, {"perm_0444", 0444, 0444}, {"perm_0604", 0604, 0604},
	};
	printf("# permissions, with umask(077)\n");
	mode_t old = umask(077);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char p[PATH_MAX];
		join(p, test_dir, cases[i].name);
		mmipc_region *r = mmipc_create(cases[i].name, 4096, cases[i].mode);
		check(r != NULL, "mmipc_create(\"%s\", 4096, %#o) [%s]", cases[i].name, cases[i].mode,
		      r ? "" : mmipc_last_error());
		struct stat st = {0};
		int sr = stat(p, &st);
		check(sr == 0 && (st.st_mode & 07777) == cases[i].want,
		      "mode %#o under umask 077: the file's mode is %#o, want %#o", cases[i].mode,
		      (unsigned)(st.st_mode & 07777), cases[i].want);
		if (r) {
			/* the creator's attachment is read-write whatever the mode */
			((volatile unsigned char *)mmipc_data(r))[0] = 1;
			mmipc_detach(r);
		}
		mmipc_unlink(cases[i].name);
	}
	umask(old);
}

static void test_mmipc_dir(void)
{
	char other[PATH_MAX], p[PATH_MAX];
	printf("# MMIPC_DIR is read at each call\n");
	join(other, test_dir, "otherdir");
	if (mkdir(other, 0700) != 0)
		die("mkdir otherdir");

	set_dir_env(other);
	mmipc_region *r = mmipc_create("moved", 100, 0);
	check(r != NULL, "create after setenv(MMIPC_DIR) [%s]", r ? "" : mmipc_last_error());
	join(p, other, "moved");
	check(exists(p), "the region was created in the new MMIPC_DIR (%s)", p);
	join(p, test_dir, "moved");
	check(!exists(p), "and not in the old one (%s)", p);
	if (r)
		memcpy(mmipc_data(r), "moved", 6);
	mmipc_region *o = mmipc_open("moved", 0);
	check(o != NULL && memcmp(mmipc_data(o), "moved", 6) == 0, "open finds it in the new MMIPC_DIR [%s]",
	      o ? "" : mmipc_last_error());
	mmipc_detach(o);

	set_dir_env(test_dir);
	errno = 0;
	o = mmipc_open("moved", 0);
	check(o == NULL && errno == ENOENT, "after setenv back, open looks in the old directory: got %p errno %d (%s)",
	      (void *)o, errno, strerror(errno));
	mmipc_detach(o);
	errno = 0;
	int u = mmipc_unlink("moved");
	check(u == -1 && errno == ENOENT, "after setenv back, unlink looks in the old directory: got %d errno %d", u,
	      errno);

	set_dir_env(other);
	u = mmipc_unlink("moved");
	join(p, other, "moved");
	check(u == 0 && !exists(p), "unlink after setenv(MMIPC_DIR) removes %s: got %d [%s]", p, u,
	      u ? mmipc_last_error() : "");
	mmipc_detach(r);
	set_dir_env(test_dir);

	/* Unset, or set to "", means /dev/shm. */
	struct stat st;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0) {
		char name[64], shm[PATH_MAX];
		snprintf(name, sizeof name, "mmipc-test-regions-%ld", (long)getpid());
		join(shm, "/dev/shm", name);
		const char *how[] = {"unset", "empty"};
		for (int i = 0; i < 2; i++) {
			if (i == 0)
				unsetenv("MMIPC_DIR");
			else
				set_dir_env("");
			r = mmipc_create(name, 10, 0);
			int there = exists(shm);
			o = mmipc_open(name, 0);
			u = mmipc_unlink(name);
			int gone = !exists(shm);
			set_dir_env(test_dir);
			int ok = r != NULL && there && o != NULL && u == 0 && gone;
			check(ok,
			      "MMIPC_DIR %s: create/open/unlink use /dev/shm: create %p, file there %d, open %p, unlink %d, "
			      "gone %d [%s]",
			      how[i], (void *)r, there, (void *)o, u, gone, ok ? "" : mmipc_last_error());
			mmipc_detach(o);
			mmipc_detach(r);
			if (!gone)
				unlink(shm);
		}
	} else {
		printf("# skipped the default-directory case: /dev/shm is not a writable directory\n");
	}
}

static void test_paths(void)
{
	char other[PATH_MAX], p[PATH_MAX];
	printf("# a name with '/' is a path relative to the working directory\n");
	if (mkdir("sub", 0700) != 0)
		die("mkdir sub");
	/* MMIPC_DIR elsewhere: a path must ignore it. */
	join(other, test_dir, "pathdir");
	if (mkdir(other, 0700) != 0)
		die("mkdir pathdir");
	set_dir_env(other);

	mmipc_region *r = mmipc_create("./sub/region", 100, 0);
	check(r != NULL, "mmipc_create(\"./sub/region\") [%s]", r ? "" : mmipc_last_error());
	struct stat st = {0};
	int sr = stat("sub/region", &st);
	check(sr == 0 && S_ISREG(st.st_mode) && st.st_size == region_file_size(100),
	      "the file is sub/region under the working directory, %lld bytes", (long long)st.st_size);
	join(p, other, "sub");
	check(!exists(p), "nothing was made under MMIPC_DIR (%s)", p);
	if (r)
		memcpy(mmipc_data(r), "on disk", 8);
	mmipc_region *o = mmipc_open("./sub/region", 0);
	check(o != NULL && mmipc_size(o) == 100 && memcmp(mmipc_data(o), "on disk", 8) == 0,
	      "mmipc_open(\"./sub/region\") sees the bytes [%s]", o ? "" : mmipc_last_error());
	mmipc_detach(o);
	o = mmipc_open("sub/region", MMIPC_RDONLY);
	check(o != NULL && memcmp(mmipc_data(o), "on disk", 8) == 0, "mmipc_open(\"sub/region\") too [%s]",
	      o ? "" : mmipc_last_error());
	mmipc_detach(o);
	join(p, test_dir, "sub/region");
	o = mmipc_open(p, 0);
	check(o != NULL && memcmp(mmipc_data(o), "on disk", 8) == 0, "and by absolute path %s [%s]", p,
	      o ? "" : mmipc_last_error());
	mmipc_detach(o);
	int sy = r ? mmipc_sync(r) : -1;
	check(sy == 0, "mmipc_sync on a path region returns 0: got %d [%s]", sy, sy ? mmipc_last_error() : "");
	int u = mmipc_unlink("./sub/region");
	check(u == 0 && !exists("sub/region"), "mmipc_unlink(\"./sub/region\") removes it: got %d [%s]", u,
	      u ? mmipc_last_error() : "");
	mmipc_detach(r);
	set_dir_env(test_dir);
}

static void test_rdonly(void)
{
	printf("# read-only attachments\n");
	mmipc_region *w = mmipc_create("ro", 8192, 0);
	mmipc_region *r = mmipc_open("ro", MMIPC_RDONLY);
	if (!check(w && r, "create + open read-only [%s]", w && r ? "" : mmipc_last_error())) {
		mmipc_detach(w);
		mmipc_detach(r);
		return;
	}
	unsigned char *wd = mmipc_data(w);
	const volatile unsigned char *rd = mmipc_data(r);
	check(mmipc_size(r) == 8192, "the read-only attachment's size is %zu, want 8192", mmipc_size(r));
	check(rd[0] == 0 && rd[8191] == 0, "the read-only attachment reads zeros");
	memcpy(wd, "hello", 6);
	wd[8191] = 0x77;
	check(memcmp((const void *)rd, "hello", 6) == 0 && rd[8191] == 0x77,
	      "the read-only attachment sees the read-write one's writes");
	memcpy(wd, "world", 6);
	check(memcmp((const void *)rd, "world", 6) == 0, "and later writes too: got \"%.5s\"", (const char *)rd);
	expect_write_faults("the read-only attachment", mmipc_data(r));
	check(memcmp(wd, "world", 6) == 0, "the bytes are unchanged after the faulting write: got \"%.5s\"",
	      (char *)wd);
	int sy = mmipc_sync(r);
	check(sy == 0, "mmipc_sync on a read-only attachment returns 0: got %d [%s]", sy, sy ? mmipc_last_error() : "");
	mmipc_detach(r);
	mmipc_detach(w);
	mmipc_unlink("ro");
}

static void test_unlink_attached(void)
{
	printf("# unlink while attached\n");
	char p[PATH_MAX];
	join(p, test_dir, "ul");
	mmipc_region *a = mmipc_create("ul", 4096, 0);
	mmipc_region *b = mmipc_open("ul", 0);
	if (!check(a && b, "create + open [%s]", a && b ? "" : mmipc_last_error())) {
		mmipc_detach(a);
		mmipc_detach(b);
		return;
	}
	unsigned char *ad = mmipc_data(a), *bd = mmipc_data(b);
	memcpy(ad, "before", 7);
	int u = mmipc_unlink("ul");
	check(u == 0, "mmipc_unlink while two handles are attached: got %d [%s]", u, u ? mmipc_last_error() : "");
	check(!exists(p), "the name is gone (%s)", p);
	check(memcmp(bd, "before", 7) == 0, "the handles still read the bytes written before the unlink");
	memcpy(bd, "after!", 7);
	check(memcmp(ad, "after!", 7) == 0, "a write through one handle after the unlink is seen by the other");
	ad[4095] = 0x42;
	check(bd[4095] == 0x42, "and the other way, at the last byte");
	errno = 0;
	mmipc_region *o = mmipc_open("ul", 0);
	check(o == NULL && errno == ENOENT, "open after the unlink: got %p errno %d (%s), want NULL ENOENT [%s]",
	      (void *)o, errno, strerror(errno), mmipc_last_error());
	mmipc_detach(o);

	mmipc_region *c = mmipc_create("ul", 4096, 0);
	if (check(c != NULL, "the name can be created again at once [%s]", c ? "" : mmipc_last_error())) {
		unsigned char *cd = mmipc_data(c);
		size_t nz = first_not(cd, 4096, 0);
		check(nz == 4096, "the new region reads as zeros (first non-zero at %zu)", nz);
		check(cd != ad && cd != bd, "the new region is another mapping");
		memcpy(cd, "new", 4);
		check(memcmp(ad, "after!", 7) == 0 && memcmp(bd, "after!", 7) == 0,
		      "writing the new region does not touch the old one");
		memcpy(ad, "old!!", 6);
		check(memcmp(cd, "new", 4) == 0, "writing the old region does not touch the new one");
		mmipc_region *d = mmipc_open("ul", 0);
		check(d != NULL && memcmp(mmipc_data(d), "new", 4) == 0 && ((unsigned char *)mmipc_data(d))[4095] == 0,
		      "open now finds the new region [%s]", d ? "" : mmipc_last_error());
		mmipc_detach(d);
		mmipc_detach(c);
		int u2 = mmipc_unlink("ul");
		check(u2 == 0, "unlink the new region: got %d [%s]", u2, u2 ? mmipc_last_error() : "");
	}
	mmipc_detach(a);
	mmipc_detach(b);
}

static void test_null_and_sync(void)
{
	printf("# NULL handles, mmipc_sync\n");
	check(mmipc_detach(NULL) == 0, "mmipc_detach(NULL) == 0");
	check(mmipc_data(NULL) == NULL, "mmipc_data(NULL) == NULL");
	check(mmipc_size(NULL) == 0, "mmipc_size(NULL) == 0");
	EXPECT_FAIL(mmipc_sync(NULL), EINVAL);
	check(strstr(mmipc_last_error(), "mmipc_sync") != NULL, "the last error names mmipc_sync: \"%s\"",
	      mmipc_last_error());
	mmipc_region *r = mmipc_create("syncme", 5000, 0);
	if (check(r != NULL, "create [%s]", r ? "" : mmipc_last_error())) {
		memset(mmipc_data(r), 1, 5000);
		EXPECT_ZERO(mmipc_sync(r));
		EXPECT_ZERO(mmipc_sync(r));
		EXPECT_ZERO(mmipc_detach(r));
	}
	mmipc_unlink("syncme");
	mmipc_region *a = mmipc_anon(4096);
	if (check(a != NULL, "mmipc_anon(4096) [%s]", a ? "" : mmipc_last_error())) {
		EXPECT_ZERO(mmipc_sync(a));
		EXPECT_ZERO(mmipc_detach(a));
	}
}

static void test_version(void)
{
	char want[32];
	printf("# version\n");
	const char *v = mmipc_version();
	check(v != NULL && strcmp(v, MMIPC_VERSION) == 0, "mmipc_version() \"%s\" == MMIPC_VERSION \"%s\"",
	      v ? v : "(NULL)", MMIPC_VERSION);
	check(MMIPC_VERSION_NUMBER ==
		      MMIPC_VERSION_MAJOR * 1000000 + MMIPC_VERSION_MINOR * 1000 + MMIPC_VERSION_PATCH,
	      "MMIPC_VERSION_NUMBER %d == MAJOR*1000000 + MINOR*1000 + PATCH (%d.%d.%d)", MMIPC_VERSION_NUMBER,
	      MMIPC_VERSION_MAJOR, MMIPC_VERSION_MINOR, MMIPC_VERSION_PATCH);
	snprintf(want, sizeof want, "%d.%d.%d", MMIPC_VERSION_MAJOR, MMIPC_VERSION_MINOR, MMIPC_VERSION_PATCH);
	check(strcmp(MMIPC_VERSION, want) == 0, "MMIPC_VERSION \"%s\" == \"MAJOR.MINOR.PATCH\" \"%s\"", MMIPC_VERSION,
	      want);
}

/* mmipc.h promises every function is thread-safe: threads creating, opening, writing, failing and
 * unlinking at once must each see their own regions' bytes and their own last error. */
#define THREADS 8
#define THREAD_ROUNDS 200

struct thread_result {
	int index;
	int failures;
	char first_failure[300];
};

static void *thread_worker(void *arg)
{
	struct thread_result *res = arg;
	char name[64], missing[64];
	for (int round = 0; round < THREAD_ROUNDS; round++) {
		snprintf(name, sizeof name, "thread-%d", res->index);
		snprintf(missing, sizeof missing, "missing-%d-%d", res->index, round);
		size_t size = 100 + (size_t)res->index * 1000 + (size_t)round;
		const char *why = NULL;
		mmipc_region *r = mmipc_create(name, size, 0600);
		mmipc_region *o = r ? mmipc_open(name, MMIPC_RDONLY) : NULL;
		if (r == NULL || o == NULL) {
			why = "create/open failed";
		} else {
			unsigned char *w = mmipc_data(r);
			const unsigned char *rd = mmipc_data(o);
			memset(w, res->index + 1, size);
			if (mmipc_size(o) != size || rd[0] != res->index + 1 || rd[size - 1] != res->index + 1)
				why = "the second handle does not see this thread's bytes";
		}
		/* A failure names this thread's missing region, whatever other threads fail at. */
		if (why == NULL && (mmipc_open(missing, 0) != NULL || errno != ENOENT ||
				    strstr(mmipc_last_error(), missing) == NULL))
			why = "the last error is not this thread's";
		if (mmipc_detach(o) != 0 || mmipc_detach(r) != 0 || (r != NULL && mmipc_unlink(name) != 0))
			why = why ? why : "detach/unlink failed";
		if (why != NULL && res->failures++ == 0)
			snprintf(res->first_failure, sizeof res->first_failure, "round %d: %s [%s]", round, why,
				 mmipc_last_error());
	}
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[THREADS];
	struct thread_result res[THREADS];
	for (int i = 0; i < THREADS; i++) {
		res[i] = (struct thread_result){.index = i};
		if (pthread_create(&th[i], NULL, thread_worker, &res[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < THREADS; i++)
		check(res[i].failures == 0, "thread %d, %d rounds alongside %d other threads: got %d failures, want 0 %s",
		      i, THREAD_ROUNDS, THREADS - 1, res[i].failures, res[i].first_failure);
}

int main(void)
{
	page = sysconf(_SC_PAGESIZE);
	setup_dir("/dev/shm/mmipc-test-regions-XXXXXX");
	test_version();
	test_null_and_sync();
	test_sizes();
	test_permissions();
	test_mmipc_dir();
	test_paths();
	test_rdonly();
	test_unlink_attached();
	test_threads();
	expect_no_temp_files(test_dir);
	expect_no_temp_files("sub");
	return check_exit();
}
