/*
 * lifecycle.c - the cost of making and attaching a 4 KiB region (bench/ENGINES.md, "lifecycle").
 *
 *   lifecycle --mech M --iters N --runs R [--warmup W] [--size BYTES] [--id ID]
 *
 * One timed cycle of each mechanism:
 *   mmipc-create  mmipc_create + mmipc_detach + mmipc_unlink
 *   raw-create    shm_open(O_CREAT|O_EXCL) + ftruncate + mmap + munmap + close + shm_unlink
 *   mmipc-open    mmipc_open + mmipc_detach of an existing region
 *   raw-open      shm_open + fstat + mmap + munmap + close of an existing object
 * Neither side touches the data (mmipc_create does write its header page, and reserves the
 * pages with fallocate: that is part of what it costs). The raw side works in the directory mmipc
 * uses ($MMIPC_DIR, else /dev/shm) with shm_open's exact flags, so both use the same file system.
 * Every cycle checks the size it got; the open variants read back a marker after the last run.
 */
#define _GNU_SOURCE
#include "bench.h"

#include "mmipc.h"

enum mech { M_MMIPC_CREATE, M_RAW_CREATE, M_MMIPC_OPEN, M_RAW_OPEN };
static const char *mech_names[] = {"mmipc-create", "raw-create", "mmipc-open", "raw-open"};

static size_t size = 4096;
static char name[64];

static void raw_create_cycle(void)
{
	int fd = bench_raw_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		bench_fail("shm_open %s: %s", name, strerror(errno));
	if (ftruncate(fd, (off_t)size) != 0)
		bench_fail("ftruncate: %s", strerror(errno));
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		bench_fail("mmap: %s", strerror(errno));
	munmap(p, size);
	close(fd);
	if (bench_raw_unlink(name) != 0)
		bench_fail("shm_unlink %s: %s", name, strerror(errno));
}

static void mmipc_create_cycle(void)
{
	mmipc_region *r = mmipc_create(name, size, 0600);
	if (r == NULL)
		bench_fail("%s", mmipc_last_error());
	if (mmipc_size(r) != size)
		bench_fail("mmipc_create gave %zu bytes, want %zu", mmipc_size(r), size);
	mmipc_detach(r);
	if (mmipc_unlink(name) != 0)
		bench_fail("%s", mmipc_last_error());
}

static void raw_open_cycle(void)
{
	int fd = bench_raw_open(name, O_RDWR, 0);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		bench_fail("shm_open %s: %s", name, strerror(errno));
	if ((size_t)st.st_size != size)
		bench_fail("%s has %lld bytes, want %zu", name, (long long)st.st_size, size);
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		bench_fail("mmap: %s", strerror(errno));
	munmap(p, (size_t)st.st_size);
	close(fd);
}

static void mmipc_open_cycle(void)
{
	mmipc_region *r = mmipc_open(name, 0);
	if (r == NULL)
		bench_fail("%s", mmipc_last_error());
	if (mmipc_size(r) != size)
		bench_fail("mmipc_open gave %zu bytes, want %zu", mmipc_size(r), size);
	mmipc_detach(r);
}

/* The open variants' region, with a marker at byte 0 checked at the end. */
static const unsigned char MARK = 0xA5;

static void setup_open(enum mech m, char *path)
{
	bench_path(path, PATH_MAX, name);
	unsigned char *p;
	if (m == M_MMIPC_OPEN) {
		mmipc_region *r = mmipc_create(name, size, 0600);
		if (r == NULL)
			bench_fail("%s", mmipc_last_error());
		bench_cleanup_add_path(path);
		p = mmipc_data(r);
		p[0] = MARK;
		mmipc_detach(r);
		return;
	}
	int fd = bench_raw_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		bench_fail("shm_open %s: %s", name, strerror(errno));
	bench_cleanup_add_path(path);
	if (ftruncate(fd, (off_t)size) != 0)
		bench_fail("ftruncate: %s", strerror(errno));
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		bench_fail("mmap: %s", strerror(errno));
	p[0] = MARK;
	munmap(p, size);
	close(fd);
}

static void teardown_open(enum mech m, const char *path)
{
	/* The region must still hold what setup wrote. */
	unsigned char got;
	if (m == M_MMIPC_OPEN) {
		mmipc_region *r = mmipc_open(name, 0);
		if (r == NULL)
			bench_fail("%s", mmipc_last_error());
		got = *(unsigned char *)mmipc_data(r);
		mmipc_detach(r);
		if (mmipc_unlink(name) != 0)
			bench_fail("%s", mmipc_last_error());
	} else {
		int fd = bench_raw_open(name, O_RDONLY, 0);
		if (fd < 0 || pread(fd, &got, 1, 0) != 1)
			bench_fail("read back %s: %s", name, strerror(errno));
		close(fd);
		if (bench_raw_unlink(name) != 0)
			bench_fail("shm_unlink %s: %s", name, strerror(errno));
	}
	bench_cleanup_forget_path(path);
	if (got != MARK)
		bench_fail("the region's first byte is 0x%02x after the runs, want 0x%02x", got, MARK);
}

int main(int argc, char **argv)
{
	bench_init("lifecycle");
	const char *mech = NULL, *id = NULL;
	uint64_t iters = 1000, warmup = 100, runs = 1, size_arg = size;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &mech),
		BENCH_STR("--id", &id),
		BENCH_NUM("--iters", &iters, 1, 100000000),
		BENCH_NUM("--warmup", &warmup, 0, 100000000),
		BENCH_NUM("--runs", &runs, 1, 1000),
		BENCH_NUM("--size", &size_arg, 1, UINT64_C(1) << 40),
	};
	bench_parse_flags(argc, argv, 1, flags, BENCH_LEN(flags),
			  "lifecycle --mech mmipc-create|raw-create|mmipc-open|raw-open --iters N --runs R "
			  "[--warmup W] [--size BYTES] [--id ID] (unknown argument %s)");
	size = (size_t)size_arg; /* a size_t: parsed as a uint64_t, then stored */
	int m = -1;
	for (int i = 0; i < 4; i++)
		if (mech && !strcmp(mech, mech_names[i]))
			m = i;
	if (m < 0)
		bench_usage("--mech %s: want mmipc-create, raw-create, mmipc-open or raw-open", mech ? mech : "(none)");
	char idbuf[128], param[32], path[PATH_MAX];
	if (id == NULL) {
		snprintf(idbuf, sizeof idbuf, "lifecycle/%s", mech_names[m]);
		id = idbuf;
	}
	snprintf(param, sizeof param, "%zu", size);
	bench_name(name, sizeof name, "lc");
	bench_path(path, sizeof path, name);
	bench_log_dir();
	printf("# lifecycle %s size=%zu iters=%" PRIu64 " warmup=%" PRIu64 " runs=%" PRIu64 " clock_overhead_ns=%.0f\n",
	       mech_names[m], size, iters, warmup, runs, bench_clock_overhead_ns());
	if (m == M_MMIPC_OPEN || m == M_RAW_OPEN)
		setup_open(m, path);
	else
		bench_cleanup_add_path(path); /* a create cycle that fails midway leaves the name */

	void (*cycle)(void) = m == M_MMIPC_CREATE ? mmipc_create_cycle
			      : m == M_RAW_CREATE ? raw_create_cycle
			      : m == M_MMIPC_OPEN ? mmipc_open_cycle
						  : raw_open_cycle;
	double *samples = malloc(iters * sizeof *samples);
	if (samples == NULL)
		bench_fail("out of memory");
	for (uint64_t i = 0; i < warmup; i++) {
		cycle();
		bench_progress();
	}
	for (uint64_t run = 0; run < runs; run++) {
		for (uint64_t i = 0; i < iters; i++) {
			uint64_t t0 = bench_now_ns();
			cycle();
			uint64_t t1 = bench_now_ns();
			samples[i] = (double)(t1 - t0);
			bench_progress();
		}
		struct bench_stats s = bench_stats_of(samples, iters);
		bench_result(id, "lifecycle", mech_names[m], param, "", "ns", &s, 0);
	}
	if (m == M_MMIPC_OPEN || m == M_RAW_OPEN)
		teardown_open(m, path);
	else
		bench_cleanup_forget_path(path);
	free(samples);
	return 0;
}
