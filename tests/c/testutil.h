/* Helpers shared by the C test drivers: time, bounded waits for children and their status as text,
 * forking and re-executing this program, setup that must work (die), paths, files, and directory
 * listings. Include after check.h, in a file that defines _GNU_SOURCE before any #include (strsignal).
 * Every function is static inline and every variable is marked unused, so that a driver that does
 * not use one compiles cleanly under -Wall -Wextra -Werror. */
#ifndef MMIPC_TEST_TESTUTIL_H
#define MMIPC_TEST_TESTUTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* ---- setup that must work ---- */

/* A setup step failed: the test cannot go on. */
__attribute__((noreturn)) static inline void die(const char *what)
{
	printf("not ok - setup: %s: %s\n", what, strerror(errno));
	printf("setup failed\n");
	exit(2);
}

/* ---- time ---- */

/* The monotonic clock, in seconds. */
static inline double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- children ---- */

/* fork, flushing stdio first so that the child does not print the parent's buffered output. */
static inline pid_t fork_flushed(void)
{
	fflush(stdout);
	fflush(stderr);
	return fork();
}

/* Waits for pid until the monotonic time `deadline`. Returns 1 with *st set, 0 if it was still
 * running (it is then killed and reaped: a hang shows as a failed check), -1 if waitpid failed or
 * pid is not a child's (a failed fork: errno is then still the fork's). */
static inline int wait_until(pid_t pid, double deadline, int *st)
{
	if (pid <= 0)
		return -1;
	for (;;) {
		pid_t w = waitpid(pid, st, WNOHANG);
		if (w == pid)
			return 1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_s() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, st, 0);
			return 0;
		}
		usleep(1000);
	}
}

/* wait_until, at most `secs` from now. */
static inline int wait_bounded(pid_t pid, double secs, int *st)
{
	return wait_until(pid, now_s() + secs, st);
}

/* What a wait_until/wait_bounded result `waited` with status st means, in buf. */
static inline const char *describe(int waited, int st, char *buf, size_t n)
{
	if (waited == 0)
		snprintf(buf, n, "still running at the deadline (hang; killed)");
	else if (waited < 0)
		snprintf(buf, n, "waitpid failed: %s", strerror(errno));
	else if (WIFEXITED(st))
		snprintf(buf, n, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
			 WTERMSIG(st) == SIGALRM ? ": its alarm fired, it hung" : "");
	else
		snprintf(buf, n, "status %#x", st);
	return buf;
}

/* The child was waited for and exited with `code`. */
static inline int exited_with(int waited, int st, int code)
{
	return waited == 1 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

static inline int exited_zero(int waited, int st) { return exited_with(waited, st, 0); }

/* ---- re-executing this program in a role ---- */

/* This program's file and argv[0], set by find_self. The file is read with
 * readlink("/proc/self/exe") before any fork rather than exec'ing "/proc/self/exe", so that tools
 * that interpose on exec (valgrind --trace-children) run the program and not their own tool. */
__attribute__((unused)) static char self_exe[PATH_MAX] = "/proc/self/exe";
__attribute__((unused)) static char *self_argv0;

static inline void find_self(char *argv0)
{
	self_argv0 = argv0;
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (n > 0)
		self_exe[n] = 0;
	else
		strcpy(self_exe, "/proc/self/exe");
}

/* fork + exec this program (find_self first) with the role arguments `args` (NULL-terminated). The
 * child execs at once: it never calls into the library before exec; 127 if the exec failed. */
static inline pid_t spawn_self(const char *const args[])
{
	char *argv[16];
	int n = 0;
	argv[n++] = self_argv0;
	for (int i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid_t pid = fork_flushed();
	if (pid == 0) {
		execv(self_exe, argv);
		_exit(127);
	}
	return pid;
}

/* ---- paths ---- */

/* MMIPC_DIR of the drivers that work with region names (setup_dir sets it). */
__attribute__((unused)) static char test_dir[PATH_MAX];

/* out = a/b, refusing to truncate. */
static inline void join(char *out, const char *a, const char *b)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		die(b);
	}
}

/* The file behind a name: <test_dir>/<name>, or the name itself when it contains '/'. */
static inline void path_of(char *buf, const char *name)
{
	int n = strchr(name, '/') ? snprintf(buf, PATH_MAX, "%s", name)
				  : snprintf(buf, PATH_MAX, "%s/%s", test_dir, name);
	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		die(name);
	}
}

static inline void set_dir_env(const char *d)
{
	if (setenv("MMIPC_DIR", d, 1) != 0)
		die("setenv");
}

/* test_dir = $MMIPC_DIR, made from `tmpl` (a mkdtemp template under /dev/shm) when it is unset or
 * empty; it becomes the working directory. */
static inline void setup_dir(const char *tmpl)
{
	const char *d = getenv("MMIPC_DIR");
	char made[PATH_MAX];
	if (d == NULL || d[0] == 0) {
		snprintf(made, sizeof made, "%s", tmpl);
		if (mkdtemp(made) == NULL)
			die("mkdtemp");
		d = made;
		set_dir_env(d);
		printf("# MMIPC_DIR was not set: using %s (not removed)\n", d);
	}
	snprintf(test_dir, sizeof test_dir, "%s", d);
	if (chdir(test_dir) != 0)
		die("chdir MMIPC_DIR");
}

/* The size of the file of a region of `size` bytes: a header page + the size rounded up to pages. */
static inline off_t region_file_size(size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	return (off_t)(page + (size + page - 1) / page * page);
}

/* ---- files ---- */

static inline int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Writes the n bytes of buf to path (created or truncated), with exactly `mode` whatever the umask.
 * Returns 0, or -1 with errno set. */
static inline int write_file(const char *path, const void *buf, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, (const char *)buf + done, n - done);
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	int rc = fchmod(fd, mode);
	close(fd);
	return rc;
}

/* ---- directory listings ---- */

enum entries {
	ENTRIES_TEMP,   /* temporary files of the library: names containing ".mmipc-" */
	ENTRIES_HIDDEN, /* those, and any other name starting with '.' */
	ENTRIES_ALL,    /* every entry */
};

/* Counts the entries of dir of the kind `which` (never "." or ".."), naming them in `names`
 * (separated by spaces; "" if none). Returns -1 with errno set if dir cannot be opened. */
static inline int list_entries(const char *dir, enum entries which, char *names, size_t n)
{
	names[0] = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int temp = strstr(e->d_name, ".mmipc-") != NULL;
		if ((which == ENTRIES_TEMP && !temp) || (which == ENTRIES_HIDDEN && !temp && e->d_name[0] != '.'))
			continue;
		count++;
		size_t len = strlen(names);
		snprintf(names + len, n - len, "%s%s", len ? " " : "", e->d_name);
	}
	closedir(d);
	return count;
}

/* The check that no ".mmipc-*" temporary file is left in d. */
static inline void expect_no_temp_files(const char *d)
{
	char left[1024];
	int n = list_entries(d, ENTRIES_TEMP, left, sizeof left);
	if (n < 0)
		die(d);
	check(n == 0, "no temporary file left in %s: got %d: %s", d, n, left);
}

/* ---- read-only mappings ---- */

/* A write to p, in a forked child, must die of SIGSEGV (a read-only mapping). The child touches
 * only memory: fork-safe whatever the program has loaded. */
static inline void expect_write_faults(const char *what, void *p)
{
	pid_t pid = fork_flushed();
	if (pid == 0) {
		signal(SIGALRM, SIG_DFL); /* a hang kills the child: the parent reports it */
		alarm(5);
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGSEGV, SIG_DFL);
		((volatile char *)p)[0] = 'X';
		_exit(3); /* the write went through */
	}
	char buf[128];
	int st = 0, w = wait_bounded(pid, 10, &st);
	check(w == 1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
	      "%s: a child writing through a read-only mapping: got %s, want killed by SIGSEGV (exit 3 = the write "
	      "succeeded)",
	      what, describe(w, st, buf, sizeof buf));
}

/* ---- resources: descriptors and mappings, for leak checks ---- */

/* Open descriptors, less the Go runtime's network poller (an epoll instance and an eventfd): the
 * runtime starts it lazily with its first timer (the background scavenger's, for one), at a moment
 * of its own choosing, and mmipc never creates either kind. Everything mmipc opens is counted. */
static inline int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char link[300], target[256];
		snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
		ssize_t len = readlink(link, target, sizeof target - 1);
		target[len > 0 ? len : 0] = 0;
		if (strcmp(target, "anon_inode:[eventpoll]") != 0 && strcmp(target, "anon_inode:[eventfd]") != 0)
			n++;
	}
	closedir(d);
	return n; /* this includes the descriptor of the open directory, every time */
}

/* Reads /proc/self/maps (with read(2), no stdio buffers) into a malloc'd string. */
static inline char *read_maps(void)
{
	int fd = open("/proc/self/maps", O_RDONLY);
	if (fd < 0)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while (buf != NULL && (r = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap *= 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
			} else {
				buf = nb;
			}
		}
	}
	close(fd);
	if (buf != NULL)
		buf[len] = 0;
	return buf;
}

static inline int count_lines(const char *s)
{
	int n = 0;
	for (; s != NULL && *s; s++)
		n += *s == '\n';
	return n;
}

/* Shared mappings ("rw-s", "r--s") in a read_maps() text: every mapping of a region is MAP_SHARED,
 * while the Go runtime and malloc only ever make private ones, so these must come back to exactly
 * their number. */
static inline int count_shared(const char *s)
{
	int n = 0;
	while (s != NULL && *s) {
		const char *perms = strchr(s, ' ');
		if (perms != NULL && strlen(perms) > 4 && perms[4] == 's')
			n++;
		s = strchr(s, '\n');
		if (s != NULL)
			s++;
	}
	return n;
}

/* When set, passing checks are counted but not printed (loops and children that run thousands of
 * them); failures are always printed. */
__attribute__((unused)) static int quiet;

__attribute__((format(printf, 2, 3))) static inline int qcheck(int ok, const char *fmt, ...)
{
	if (ok && quiet) {
		check_count++;
		return 1;
	}
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return check(ok, "%s", msg);
}

/* Ends a forked child that ran checks: its verdict is its exit status. A child starts with
 * child_begin(), so that the parent's earlier failures are not counted again. */
static inline void child_exit(void)
{
	fflush(stdout);
	_exit(check_failed ? 1 : 0);
}

static inline void child_begin(unsigned secs)
{
	check_failed = 0;
	alarm(secs); /* a hang kills the child with SIGALRM, which the parent reports */
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Polls cond (a statement expression) every ms until true or secs pass. */
#define POLL_UNTIL(cond, secs)                                         \
	({                                                             \
		double end_ = now_s() + (secs);                        \
		int ok_;                                               \
		while (!(ok_ = (cond)) && now_s() < end_)              \
			usleep(1000);                                  \
		ok_;                                                   \
	})

#endif
