/*
 * spawn.c - start-up cost of a program (bench/ENGINES.md, "spawn").
 *
 *   spawn --prog PATH --iters N --runs R [--warmup W] [--id PREFIX]
 *
 * One sample: fork + exec PATH (no arguments) + wait4: the wall time, and the child's peak
 * resident set (wait4's ru_maxrss, KiB). Each run prints two RESULT lines: PREFIX/wall (ns per
 * program run) and PREFIX/rss (KiB); PREFIX defaults to spawn/<basename of PATH>. The program must
 * exit 0.
 *
 * ru_maxrss also covers the forked copy of this launcher before the exec (Linux keeps that
 * high-water mark across exec), so the launcher stays small: it links nothing but libc, and a
 * fresh fork maps few pages (ru_maxrss of startup_raw, ~1 MiB, agrees with /usr/bin/time's %M).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <libgen.h>
#include <sys/resource.h>

/* This process's resident set in KiB (VmRSS), or -1. */
static long self_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return -1;
	char line[256];
	long kib = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void spawn_once(const char *prog, double *wall_ns, double *rss_kib)
{
	char *argv[] = {(char *)prog, NULL};
	struct rusage ru;
	int status;
	uint64_t t0 = bench_now_ns();
	pid_t pid = fork();
	if (pid < 0)
		bench_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		execv(prog, argv);
		dprintf(2, "spawn: FAIL: exec %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	bench_peer_pid = pid; /* killed by the watchdog if it hangs */
	pid_t w;
	while ((w = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR)
		;
	uint64_t t1 = bench_now_ns();
	bench_peer_pid = 0;
	if (w != pid)
		bench_fail("wait4: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char why[128];
		bench_fail("%s %s", prog, bench_describe_status(status, why, sizeof why));
	}
	*wall_ns = (double)(t1 - t0);
	*rss_kib = (double)ru.ru_maxrss;
	bench_progress();
}

int main(int argc, char **argv)
{
	bench_init("spawn");
	const char *prog = NULL, *id = NULL;
	uint64_t iters = 20, runs = 1, warmup = 2;
	const struct bench_flag flags[] = {
		BENCH_STR("--prog", &prog),
		BENCH_STR("--id", &id),
		BENCH_NUM("--iters", &iters, 1, 1000000),
		BENCH_NUM("--runs", &runs, 1, 1000),
		BENCH_NUM("--warmup", &warmup, 0, 1000000),
	};
	bench_parse_flags(argc, argv, 1, flags, BENCH_LEN(flags),
			  "spawn --prog PATH --iters N --runs R [--warmup W] [--id PREFIX] (unknown argument %s)");
	if (prog == NULL)
		bench_usage("--prog is required");
	char copy[PATH_MAX], prefix[PATH_MAX + 16], id_wall[PATH_MAX + 32], id_rss[PATH_MAX + 32];
	snprintf(copy, sizeof copy, "%s", prog);
	const char *base = basename(copy);
	if (id == NULL) {
		snprintf(prefix, sizeof prefix, "spawn/%s", base);
		id = prefix;
	}
	snprintf(id_wall, sizeof id_wall, "%s/wall", id);
	snprintf(id_rss, sizeof id_rss, "%s/rss", id);

	double *wall = malloc(iters * sizeof *wall), *rss = malloc(iters * sizeof *rss);
	if (wall == NULL || rss == NULL)
		bench_fail("out of memory");
	double w, r;
	for (uint64_t i = 0; i < warmup; i++) /* the page cache holds the program and its libraries */
		spawn_once(prog, &w, &r);
	printf("# spawn %s iters=%" PRIu64 " runs=%" PRIu64 " warmup=%" PRIu64
	       " launcher_rss_kib=%ld clock_overhead_ns=%.0f\n",
	       prog, iters, runs, warmup, self_rss_kib(), bench_clock_overhead_ns());
	for (uint64_t run = 0; run < runs; run++) {
		for (uint64_t i = 0; i < iters; i++)
			spawn_once(prog, &wall[i], &rss[i]);
		struct bench_stats sw = bench_stats_of(wall, iters), sr = bench_stats_of(rss, iters);
		bench_result(id_wall, "spawn", base, "wall", "", "ns", &sw, 0);
		bench_result(id_rss, "spawn", base, "rss", "", "KiB", &sr, 0);
	}
	free(wall);
	free(rss);
	return 0;
}
