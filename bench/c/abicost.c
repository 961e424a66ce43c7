/*
 * abicost.c - the cost of one call into libmmipc.so next to a call into a plain C library
 * (bench/ENGINES.md, "abicost").
 *
 *   abicost --calls C --samples S --runs R [--warmup W] [--control-calls K] [--mech LIST]
 *
 * A sample times C back-to-back calls with two clock reads and divides: these calls take a few
 * nanoseconds, less than a clock read. The control pair makes K calls per sample (default C/100:
 * the Go crossing costs about a microsecond, and K calls still last milliseconds). Each run takes S samples of every function in turn (so
 * that a disturbance hits them alike) and prints one RESULT line per function. Functions (LIST is
 * a comma-separated subset; default all but plain_data):
 *   mmipc_size, mmipc_data   plain C in libmmipc.so, on a handle from mmipc_anon(4096)
 *   plain_size, plain_data   the same bodies in libbenchplain.so (bench/c/plain.c): the baseline
 *   control                  mmipc_open("", 0): crosses into the Go runtime and fails EINVAL
 *   plain_control            plain_control("", 0): the same checks and failure, in plain C
 * The loop keeps every call: the functions are opaque to the compiler (another library), the
 * handle passes through an empty asm each time (so that not even a pure function could be
 * hoisted), and every result is checked after the loop.
 */
#define _GNU_SOURCE
#include "bench.h"

#include "mmipc.h"

struct plain_region {
	void *data;
	size_t size;
};
size_t plain_size(const struct plain_region *r);
void *plain_data(const struct plain_region *r);
void *plain_control(const char *name, int flags);

enum fn { F_MMIPC_SIZE, F_MMIPC_DATA, F_PLAIN_SIZE, F_PLAIN_DATA, F_CONTROL, F_PLAIN_CONTROL, F_N };
static const char *fn_names[F_N] = {"mmipc_size", "mmipc_data", "plain_size", "plain_data", "control", "plain_control"};

static mmipc_region *region;
static struct plain_region plain;

/* Makes the compiler forget what it knows about p. */
#define OPAQUE(p) __asm__ __volatile__("" : "+r"(p))

/* One sample of f: C calls, returns ns per call. */
static double sample(enum fn f, uint64_t calls)
{
	uint64_t acc = 0, bad = 0, t0 = 0, t1 = 0;
	mmipc_region *r = region;
	const struct plain_region *p = &plain;
	const char *empty = "";
	switch (f) {
	case F_MMIPC_SIZE:
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(r);
			acc += mmipc_size(r);
		}
		t1 = bench_now_ns();
		bad = acc != calls * 4096;
		break;
	case F_PLAIN_SIZE:
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(p);
			acc += plain_size(p);
		}
		t1 = bench_now_ns();
		bad = acc != calls * 4096;
		break;
	case F_MMIPC_DATA:
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(r);
			acc += (uintptr_t)mmipc_data(r);
		}
		t1 = bench_now_ns();
		bad = acc != calls * (uintptr_t)plain.data;
		break;
	case F_PLAIN_DATA:
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(p);
			acc += (uintptr_t)plain_data(p);
		}
		t1 = bench_now_ns();
		bad = acc != calls * (uintptr_t)plain.data;
		break;
	case F_CONTROL:
		errno = 0;
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(empty);
			bad |= mmipc_open(empty, 0) != NULL;
		}
		t1 = bench_now_ns();
		bad |= errno != EINVAL;
		break;
	case F_PLAIN_CONTROL:
		errno = 0;
		t0 = bench_now_ns();
		for (uint64_t k = 0; k < calls; k++) {
			OPAQUE(empty);
			bad |= plain_control(empty, 0) != NULL;
		}
		t1 = bench_now_ns();
		bad |= errno != EINVAL;
		break;
	case F_N:
		break;
	}
	if (bad)
		bench_fail("%s returned a wrong result (errno %d)", fn_names[f], errno);
	bench_progress();
	return (double)(t1 - t0) / (double)calls;
}

int main(int argc, char **argv)
{
	bench_init("abicost");
	const char *list = "mmipc_size,mmipc_data,plain_size,control,plain_control";
	uint64_t calls = 1000000, samples_n = 5, runs = 1, warmup = 1, control_calls = 0;
	const struct bench_flag flags[] = {
		BENCH_STR("--mech", &list),
		BENCH_NUM("--calls", &calls, 1, UINT64_C(1) << 40),
		BENCH_NUM("--samples", &samples_n, 1, 1000000),
		BENCH_NUM("--iters", &samples_n, 1, 1000000), /* the name the other engines use */
		BENCH_NUM("--runs", &runs, 1, 1000),
		BENCH_NUM("--warmup", &warmup, 0, 1000000),
		BENCH_NUM("--control-calls", &control_calls, 1, UINT64_C(1) << 40),
	};
	bench_parse_flags(argc, argv, 1, flags, BENCH_LEN(flags),
			  "abicost --calls C --samples S --runs R [--warmup W] [--control-calls K] [--mech LIST] "
			  "(unknown argument %s)");
	if (list == NULL) /* --mech with no value: an empty list, reported below */
		list = "";
	enum fn fns[F_N];
	int nfn = 0;
	char buf[256];
	snprintf(buf, sizeof buf, "%s", list);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int f = -1;
		for (int k = 0; k < F_N; k++)
			if (!strcmp(t, fn_names[k]))
				f = k;
		if (f < 0 || nfn == F_N)
			bench_usage("--mech: %s is not one of mmipc_size, mmipc_data, plain_size, plain_data, control, plain_control", t);
		fns[nfn++] = (enum fn)f;
	}
	if (nfn == 0)
		bench_usage("--mech: empty list");
	if (control_calls == 0)
		control_calls = calls >= 100 ? calls / 100 : 1;
	uint64_t ncalls[F_N];
	for (int k = 0; k < F_N; k++)
		ncalls[k] = k == F_CONTROL || k == F_PLAIN_CONTROL ? control_calls : calls;

	region = mmipc_anon(4096);
	if (region == NULL)
		bench_fail("%s", mmipc_last_error());
	plain.data = mmipc_data(region);
	plain.size = mmipc_size(region);
	printf("# abicost calls=%" PRIu64 " control_calls=%" PRIu64 " samples=%" PRIu64 " runs=%" PRIu64
	       " clock_overhead_ns=%.0f (amortised over the calls of a sample)\n",
	       calls, control_calls, samples_n, runs, bench_clock_overhead_ns());

	/* Warm-up: resolves the lazy PLT entries, starts whatever the Go runtime starts on a first
	 * call, and warms the caches and branch predictors. */
	for (uint64_t w = 0; w < warmup; w++)
		for (int i = 0; i < nfn; i++)
			sample(fns[i], ncalls[fns[i]]);
	double *v[F_N];
	for (int i = 0; i < nfn; i++)
		if ((v[i] = malloc(samples_n * sizeof(double))) == NULL)
			bench_fail("out of memory");
	for (uint64_t run = 0; run < runs; run++) {
		for (uint64_t s = 0; s < samples_n; s++)
			for (int i = 0; i < nfn; i++)
				v[i][s] = sample(fns[i], ncalls[fns[i]]);
		for (int i = 0; i < nfn; i++) {
			char id[64];
			snprintf(id, sizeof id, "abicost/%s", fn_names[fns[i]]);
			struct bench_stats st = bench_stats_of(v[i], samples_n);
			bench_result(id, "abicost", fn_names[fns[i]], "", "", "ns", &st, 0);
		}
	}
	for (int i = 0; i < nfn; i++)
		free(v[i]);
	mmipc_detach(region);
	return 0;
}
