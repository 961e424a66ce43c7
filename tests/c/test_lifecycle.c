/* test_lifecycle.c - resources across many lifecycles, and one large region.
 *
 *   cycles   CYCLES rounds of create / write / open / detach / unlink (plus an anonymous region, a
 *            mapped file, a file copy, a disk-path region and two failing calls) must leave the
 *            number of open descriptors (/proc/self/fd) and of shared mappings (every mapping the
 *            library makes is MAP_SHARED; nothing else here makes one) exactly unchanged, and the
 *            number of all mappings (/proc/self/maps) unchanged but for a few private ones the Go
 *            runtime adds or splits as its heap grows (measured: 0 to 6 after 2000 cycles, and no
 *            more after 20000, so not a leak). All are counted after a warm-up of WARMUP cycles.
 *   256 MiB  a region of 256 MiB: a distinct value in every page, checked page by page through a
 *            second handle.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define WARMUP 50
#define CYCLES 2000
#define MAPS_TOLERANCE 8 /* extra private mappings allowed for the Go heap (see test_cycles) */

/* Entries of a /proc/self directory: descriptors (fd) or threads (task). */
static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n; /* for fd, this includes the descriptor of the open directory, every time */
}

/* Prints the lines of `after` that are not in `before` (the new mappings), at most 20. */
static void print_new_lines(const char *before, const char *after)
{
	int shown = 0;
	const char *line = after;
	while (line && *line && shown < 20) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, len);
		if (copy != NULL && strstr(before, copy) == NULL) {
			printf("#   new mapping: %s\n", copy);
			shown++;
		}
		free(copy);
		line = end ? end + 1 : NULL;
	}
}

static int cycle_failures;

__attribute__((format(printf, 3, 4))) static void fail_cycle(int i, const char *what, const char *fmt, ...)
{
	if (cycle_failures++ >= 10)
		return; /* the first ones tell the story */
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	check(0, "cycle %d: %s: %s [errno %d (%s); %s]", i, what, msg, errno, strerror(errno), mmipc_last_error());
}

/* One lifecycle of every kind of region; any failure is reported through fail_cycle. */
static void cycle(int i)
{
	size_t size = 4096 + (size_t)(i % 7) * 1000;
	unsigned char v = (unsigned char)(i * 13 + 1);
	mmipc_region *r = mmipc_create("cycle", size, 0600);
	if (r == NULL) {
		fail_cycle(i, "mmipc_create(\"cycle\")", "got NULL");
		return;
	}
	unsigned char *p = mmipc_data(r);
	memset(p, v, size);

	mmipc_region *o = mmipc_open("cycle", (i & 1) ? MMIPC_RDONLY : 0);
	if (o == NULL)
		fail_cycle(i, "mmipc_open(\"cycle\")", "got NULL");
	else if (mmipc_size(o) != size || ((unsigned char *)mmipc_data(o))[0] != v ||
		 ((unsigned char *)mmipc_data(o))[size - 1] != v)
		fail_cycle(i, "second handle", "size %zu (want %zu) or bytes differ", mmipc_size(o), size);
	if (mmipc_detach(o) != 0)
		fail_cycle(i, "mmipc_detach(open handle)", "not 0");

	errno = 0;
	mmipc_region *dup = mmipc_create("cycle", size, 0600);
	if (dup != NULL || errno != EEXIST)
		fail_cycle(i, "mmipc_create of an existing name", "got %p, want NULL EEXIST", (void *)dup);
	mmipc_detach(dup);
	errno = 0;
	mmipc_region *missing = mmipc_open("no-such-region", 0);
	if (missing != NULL || errno != ENOENT)
		fail_cycle(i, "mmipc_open of a missing name", "got %p, want NULL ENOENT", (void *)missing);
	mmipc_detach(missing);

	mmipc_region *a = mmipc_anon(8192 + (size_t)(i % 3) * 4096);
	if (a == NULL)
		fail_cycle(i, "mmipc_anon", "got NULL");
	else
		memset(mmipc_data(a), v, mmipc_size(a));
	if (mmipc_detach(a) != 0)
		fail_cycle(i, "mmipc_detach(anon)", "not 0");

	mmipc_region *f = mmipc_map_file("cycle.dat", 1);
	if (f == NULL)
		fail_cycle(i, "mmipc_map_file(\"cycle.dat\")", "got NULL");
	else
		((unsigned char *)mmipc_data(f))[i % mmipc_size(f)] = v;
	if (mmipc_detach(f) != 0)
		fail_cycle(i, "mmipc_detach(file)", "not 0");

	if (mmipc_copy_file("cycle.dat", "cycle.copy") != 0)
		fail_cycle(i, "mmipc_copy_file", "not 0");

	mmipc_region *d = mmipc_create("./cycle-disk.region", 100, 0);
	if (d == NULL)
		fail_cycle(i, "mmipc_create(\"./cycle-disk.region\")", "got NULL");
	if (mmipc_detach(d) != 0)
		fail_cycle(i, "mmipc_detach(disk region)", "not 0");
	if (d != NULL && mmipc_unlink("./cycle-disk.region") != 0)
		fail_cycle(i, "mmipc_unlink(\"./cycle-disk.region\")", "not 0");

	if (mmipc_detach(r) != 0)
		fail_cycle(i, "mmipc_detach(created handle)", "not 0");
	if (mmipc_unlink("cycle") != 0)
		fail_cycle(i, "mmipc_unlink(\"cycle\")", "not 0");
}

static void test_cycles(void)
{
	char buf[10000];
	memset(buf, 'c', sizeof buf);
	if (!check(write_file("cycle.dat", buf, sizeof buf, 0600) == 0, "writing cycle.dat"))
		return;
	for (int i = 0; i < WARMUP; i++)
		cycle(i);
	int fds0 = count_fds(), threads0 = count_entries("/proc/self/task");
	char *maps0 = read_maps();
	int nmaps0 = count_lines(maps0), shared0 = count_shared(maps0);

	for (int i = WARMUP; i < WARMUP + CYCLES; i++)
		cycle(i);
	int fds1 = count_fds(), threads1 = count_entries("/proc/self/task");
	char *maps1 = read_maps();
	int nmaps1 = count_lines(maps1), shared1 = count_shared(maps1);

	check(cycle_failures == 0, "%d cycles of create/write/open/detach/unlink (+ anon, map_file, copy_file, disk path, "
				   "EEXIST, ENOENT): got %d failures, want 0",
	      WARMUP + CYCLES, cycle_failures);
	check(fds0 > 0 && fds1 == fds0, "open descriptors after %d more cycles: got %d, want %d (as after the warm-up)",
	      CYCLES, fds1, fds0);
	int ok = check(maps0 != NULL && maps1 != NULL && shared1 == shared0,
		       "shared mappings (regions) after %d more cycles: got %d, want %d (as after the warm-up)", CYCLES,
		       shared1, shared0);
	/* The Go runtime may start threads meanwhile: each brings a stack and its guard page, and
	 * perhaps a malloc arena (two mappings each). */
	int new_threads = threads1 > threads0 ? threads1 - threads0 : 0;
	int allowed = nmaps0 + MAPS_TOLERANCE + 4 * new_threads;
	ok &= check(maps0 != NULL && maps1 != NULL && nmaps1 <= allowed,
		    "all mappings after %d more cycles: got %d, want at most %d (%d after the warm-up, + %d for the Go "
		    "heap's growth, + 4 for each of the %d threads started meanwhile)",
		    CYCLES, nmaps1, allowed, nmaps0, MAPS_TOLERANCE, new_threads);
	printf("# descriptors %d -> %d, mappings %d -> %d, shared mappings %d -> %d, threads %d -> %d\n", fds0, fds1,
	       nmaps0, nmaps1, shared0, shared1, threads0, threads1);
	if (!ok && maps0 != NULL && maps1 != NULL)
		print_new_lines(maps0, maps1);
	free(maps0);
	free(maps1);

	/* The shared-mapping count does see a region: one attached region is one more. */
	mmipc_region *r = mmipc_create("cycle", 4096, 0);
	char *maps2 = read_maps();
	int shared2 = count_shared(maps2);
	check(r != NULL && shared2 == shared1 + 1, "an attached region is one more shared mapping: got %d, want %d [%s]",
	      shared2, shared1 + 1, r ? "" : mmipc_last_error());
	free(maps2);
	mmipc_detach(r);
	mmipc_unlink("cycle");
	struct stat st;
	check(lstat("cycle", &st) != 0 && lstat("./cycle-disk.region", &st) != 0, "the cycle regions are gone at the end");
	unlink("cycle.copy");
	unlink("cycle.dat");
}

static void test_big_region(void)
{
	const size_t size = (size_t)256 << 20;
	const size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	const size_t pages = size / ps;
	mmipc_region *r = EXPECT_OK_PTR(mmipc_create("big", size, 0600));
	if (r == NULL)
		return;
	check(mmipc_size(r) == size, "256 MiB region: mmipc_size: got %zu, want %zu", mmipc_size(r), size);
	unsigned char *p = mmipc_data(r);
	for (size_t pg = 0; pg < pages; pg++) {
		uint64_t v = (pg + 1) * 0x9E3779B97F4A7C15ull;
		memcpy(p + pg * ps, &v, sizeof v);
		v = ~v;
		memcpy(p + pg * ps + ps - sizeof v, &v, sizeof v);
	}

	mmipc_region *o = EXPECT_OK_PTR(mmipc_open("big", 0));
	if (o != NULL) {
		check(mmipc_size(o) == size, "256 MiB region: second handle's size: got %zu, want %zu", mmipc_size(o), size);
		const unsigned char *q = mmipc_data(o);
		size_t bad = 0, first_bad = 0, nonzero = 0;
		for (size_t pg = 0; pg < pages && mmipc_size(o) == size; pg++) {
			uint64_t want = (pg + 1) * 0x9E3779B97F4A7C15ull, got, got_end, mid;
			memcpy(&got, q + pg * ps, sizeof got);
			memcpy(&got_end, q + pg * ps + ps - sizeof got, sizeof got);
			memcpy(&mid, q + pg * ps + ps / 2, sizeof mid);
			if (got != want || got_end != ~want) {
				if (bad++ == 0)
					first_bad = pg;
			}
			nonzero += mid != 0;
		}
		check(bad == 0, "256 MiB region: every one of %zu pages holds its value through the second handle: got %zu "
				"wrong (first: page %zu)",
		      pages, bad, first_bad);
		check(nonzero == 0, "256 MiB region: the unwritten middle of every page reads as zero: got %zu non-zero",
		      nonzero);
		/* And the other way: a write through the second handle is seen by the first. */
		((unsigned char *)mmipc_data(o))[size - 1] = 0xAB;
		check(p[size - 1] == 0xAB, "256 MiB region: the last byte written through the second handle: got %#x via "
					   "the first, want 0xab",
		      p[size - 1]);
	}
	EXPECT_ZERO(mmipc_detach(o));
	EXPECT_ZERO(mmipc_detach(r));
	EXPECT_ZERO(mmipc_unlink("big"));
	errno = 0;
	EXPECT_NULL(mmipc_open("big", 0), ENOENT);
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: test_lifecycle (no arguments)\n");
		return 2;
	}
	test_cycles();
	test_big_region();
	return check_exit();
}
