/* test_race.c - the creation protocol under real races between processes.
 *
 * Each racing party is its own process, started by fork() + exec of this program with a role
 * argument: a forked child may not use the library (DESIGN.md, fork rule), an exec'd one may.
 *
 *   creators  RACERS processes released at once call mmipc_create on one name, ROUNDS times:
 *             exactly one wins, the others get EEXIST, the region holds the winner's size and
 *             bytes, and no ".mmipc-*" temporary file is left behind.
 *   openers   one process creates, fills and unlinks a region in a loop while others open it in a
 *             loop: every open is ENOENT or the complete region (exact size, only zeros or the
 *             creator's pattern), never EPROTO or anything else.
 *
 * Roles (argv[1]) are internal: "racer", "creator", "opener". Without arguments it runs the test.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "testutil.h"

#define RACERS 8
#define ROUNDS 20
#define RACE_NAME "race"

#define OC_NAME "opened-while-created"
#define OC_SIZE (3 * 4096 + 77) /* distinctive: not a page multiple */
#define OC_OPENERS 3
#define OC_SECONDS 2.0

/* A start gate: children report "ready" on one pipe and then block reading the other until the
 * parent closes its write end, which releases them all at the same instant. */
struct gate {
	int start[2], ready[2];
	char start_fd[16], ready_fd[16];
};

static int gate_open(struct gate *g)
{
	if (pipe(g->start) != 0 || pipe(g->ready) != 0)
		return -1;
	/* The children inherit only the start pipe's read end and the ready pipe's write end. */
	fcntl(g->start[1], F_SETFD, FD_CLOEXEC);
	fcntl(g->ready[0], F_SETFD, FD_CLOEXEC);
	snprintf(g->start_fd, sizeof g->start_fd, "%d", g->start[0]);
	snprintf(g->ready_fd, sizeof g->ready_fd, "%d", g->ready[1]);
	return 0;
}

/* Parent: waits (bounded) until n children are ready, then releases them. Returns how many were. */
static int gate_release(struct gate *g, int n, double secs)
{
	close(g->ready[1]);
	close(g->start[0]);
	int got = 0;
	double end = now_s() + secs;
	while (got < n) {
		int ms = (int)((end - now_s()) * 1000);
		if (ms <= 0)
			break;
		struct pollfd p = {.fd = g->ready[0], .events = POLLIN};
		if (poll(&p, 1, ms) <= 0)
			continue;
		char buf[64];
		ssize_t r = read(g->ready[0], buf, sizeof buf < (size_t)(n - got) ? sizeof buf : (size_t)(n - got));
		if (r <= 0)
			break; /* every child is gone */
		got += (int)r;
	}
	close(g->start[1]);
	close(g->ready[0]);
	return got;
}

/* Child: reports ready and blocks until released. */
static int gate_wait(const char *ready_fd, const char *start_fd)
{
	int rfd = atoi(ready_fd), sfd = atoi(start_fd);
	char c = 'r';
	if (write(rfd, &c, 1) != 1)
		return -1;
	close(rfd);
	ssize_t r;
	while ((r = read(sfd, &c, 1)) < 0 && errno == EINTR)
		;
	close(sfd);
	return r == 0 ? 0 : -1;
}

/* ---- roles (each in its own exec'd process) ---- */

/* racer NAME SIZE INDEX READY START: exit 0 = created it, 1 = EEXIST, 2 = another error. */
static int role_racer(char **argv)
{
	alarm(20); /* a hang kills the racer with SIGALRM, which the parent reports */
	const char *name = argv[2];
	size_t size = strtoul(argv[3], NULL, 10);
	int idx = atoi(argv[4]);
	if (gate_wait(argv[5], argv[6]) != 0) {
		printf("racer %d: the start gate failed: %s\n", idx, strerror(errno));
		return 3;
	}
	errno = 0;
	mmipc_region *r = mmipc_create(name, size, 0600);
	int err = errno;
	if (r != NULL) {
		snprintf(mmipc_data(r), 64, "winner %d pid %d", idx, (int)getpid());
		mmipc_detach(r);
		return 0;
	}
	if (err == EEXIST)
		return 1;
	printf("racer %d: mmipc_create(\"%s\", %zu, 0600): errno %d (%s), want success or EEXIST [%s]\n", idx,
	       name, size, err, strerror(err), mmipc_last_error());
	fflush(stdout);
	return 2;
}

struct oc_report {
	int idx; /* -1: the creator */
	long ok, enoent, bad;
};

static unsigned char oc_pattern(size_t i) { return (unsigned char)((i * 31 + 7) | 1); /* never 0 */ }

static void send_report(const char *fd, struct oc_report rep)
{
	if (write(atoi(fd), &rep, sizeof rep) != (ssize_t)sizeof rep)
		printf("sending the report: %s\n", strerror(errno));
}

/* creator SECONDS REPORT READY START: create, fill, detach, unlink, in a loop. */
static int role_creator(char **argv)
{
	alarm(20);
	double secs = atof(argv[2]);
	if (gate_wait(argv[4], argv[5]) != 0)
		return 3;
	struct oc_report rep = {.idx = -1};
	unsigned seed = (unsigned)getpid();
	double end = now_s() + secs;
	while (now_s() < end) {
		mmipc_region *r = mmipc_create(OC_NAME, OC_SIZE, 0600);
		if (r == NULL) {
			if (rep.bad++ < 5)
				printf("creator: mmipc_create: errno %d (%s) [%s]\n", errno, strerror(errno),
				       mmipc_last_error());
			usleep(1000);
			continue;
		}
		unsigned char *p = mmipc_data(r);
		for (size_t i = 0; i < OC_SIZE; i++)
			p[i] = oc_pattern(i);
		usleep(rand_r(&seed) % 400);
		mmipc_detach(r);
		if (mmipc_unlink(OC_NAME) != 0) {
			if (rep.bad++ < 5)
				printf("creator: mmipc_unlink: errno %d (%s) [%s]\n", errno, strerror(errno),
				       mmipc_last_error());
		} else {
			rep.ok++;
		}
		usleep(rand_r(&seed) % 400);
	}
	send_report(argv[3], rep);
	fflush(stdout);
	return rep.bad ? 1 : 0;
}

/* opener IDX SECONDS REPORT READY START: open in a loop; each open is ENOENT or the whole region. */
static int role_opener(char **argv)
{
	alarm(20);
	struct oc_report rep = {.idx = atoi(argv[2])};
	double secs = atof(argv[3]);
	if (gate_wait(argv[5], argv[6]) != 0)
		return 3;
	double end = now_s() + secs;
	for (long n = 0; now_s() < end; n++) {
		int flags = (n & 1) ? MMIPC_RDONLY : 0;
		errno = 0;
		mmipc_region *r = mmipc_open(OC_NAME, flags);
		int err = errno;
		if (r == NULL) {
			if (err == ENOENT) {
				rep.enoent++;
			} else if (rep.bad++ < 5) {
				printf("opener %d: mmipc_open(\"%s\", %d): errno %d (%s), want success or ENOENT [%s]\n",
				       rep.idx, OC_NAME, flags, err, strerror(err), mmipc_last_error());
			}
			continue;
		}
		const unsigned char *p = mmipc_data(r);
		size_t size = mmipc_size(r), bad_at = (size_t)-1;
		if (size == OC_SIZE) {
			for (size_t i = 0; i < size; i++) {
				if (p[i] != 0 && p[i] != oc_pattern(i)) {
					bad_at = i;
					break;
				}
			}
		}
		if (size != OC_SIZE || bad_at != (size_t)-1) {
			if (rep.bad++ < 5)
				printf("opener %d: opened a region of size %zu (want %d), byte %zd is %#x (want 0 or %#x)\n",
				       rep.idx, size, OC_SIZE, (ssize_t)bad_at, bad_at == (size_t)-1 ? 0 : p[bad_at],
				       bad_at == (size_t)-1 ? 0 : oc_pattern(bad_at));
		} else {
			rep.ok++;
		}
		if (mmipc_detach(r) != 0 && rep.bad++ < 5)
			printf("opener %d: mmipc_detach failed\n", rep.idx);
	}
	send_report(argv[4], rep);
	fflush(stdout);
	return rep.bad ? 1 : 0;
}

/* ---- the test ---- */

static void test_create_race(void)
{
	char buf[128], temps[512];
	int clean_rounds = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct gate g;
		if (gate_open(&g) != 0) {
			check(0, "round %d: pipes for the start gate: %s", round, strerror(errno));
			return;
		}
		pid_t pids[RACERS];
		size_t sizes[RACERS];
		for (int i = 0; i < RACERS; i++) {
			char size_s[32], idx_s[16];
			sizes[i] = 4096 + (size_t)round * 16 + (size_t)i; /* each racer asks a different size */
			snprintf(size_s, sizeof size_s, "%zu", sizes[i]);
			snprintf(idx_s, sizeof idx_s, "%d", i);
			const char *args[] = {"racer", RACE_NAME, size_s, idx_s, g.ready_fd, g.start_fd, NULL};
			pids[i] = spawn_self(args);
			if (pids[i] < 0)
				check(0, "round %d: fork racer %d: %s", round, i, strerror(errno));
		}
		int ready = gate_release(&g, RACERS, 20);
		check(ready == RACERS, "round %d: %d of %d racers reached the start gate", round, ready, RACERS);

		int won = 0, eexist = 0, other = 0, winner = -1;
		char statuses[RACERS * 48] = "";
		double deadline = now_s() + 25;
		for (int i = 0; i < RACERS; i++) {
			int st = 0, w = wait_until(pids[i], deadline, &st);
			size_t len = strlen(statuses);
			snprintf(statuses + len, sizeof statuses - len, "%s[%d] %s", i ? ", " : "", i,
				 describe(w, st, buf, sizeof buf));
			if (exited_zero(w, st)) {
				won++;
				winner = i;
			} else if (exited_with(w, st, 1)) {
				eexist++;
			} else {
				other++;
			}
		}
		int ok = check(won == 1 && eexist == RACERS - 1 && other == 0,
			       "round %d: %d creators raced: got %d winner(s), %d EEXIST, %d other; want 1, %d, 0 (%s)",
			       round, RACERS, won, eexist, other, RACERS - 1, statuses);

		mmipc_region *r = mmipc_open(RACE_NAME, MMIPC_RDONLY);
		if (won >= 1) {
			char want[64];
			snprintf(want, sizeof want, "winner %d pid %d", winner, (int)pids[winner]);
			ok &= check(r != NULL && mmipc_size(r) == sizes[winner] && strcmp(mmipc_data(r), want) == 0,
				    "round %d: the region opens with the winner's size and bytes: got %s size %zu \"%.64s\", "
				    "want size %zu \"%s\" [%s]",
				    round, r ? "a handle" : "NULL", mmipc_size(r), r ? (char *)mmipc_data(r) : "",
				    sizes[winner], want, r ? "" : mmipc_last_error());
		} else {
			ok &= check(r == NULL, "round %d: no winner, yet the name opens", round);
		}
		mmipc_detach(r);
		errno = 0;
		int un = mmipc_unlink(RACE_NAME);
		if (won >= 1)
			ok &= check(un == 0, "round %d: mmipc_unlink after the race: got %d errno %d (%s), want 0 [%s]", round,
				    un, errno, strerror(errno), un ? mmipc_last_error() : "");
		int temps_n = list_entries(".", ENTRIES_TEMP, temps, sizeof temps);
		ok &= check(temps_n == 0, "round %d: temporary files left: got %d (%s), want 0", round, temps_n, temps);
		clean_rounds += ok;
		if (round + 1 - clean_rounds >= 3)
			break; /* three failed rounds tell the story */
	}
	check(clean_rounds == ROUNDS, "create race: %d of %d rounds had exactly one winner and left nothing behind",
	      clean_rounds, ROUNDS);
	char temps_end[512];
	int n = list_entries(".", ENTRIES_TEMP, temps_end, sizeof temps_end);
	check(n == 0, "create race: \".mmipc-*\" files in the directory at the end: got %d (%s), want 0", n, temps_end);
	struct stat st;
	errno = 0;
	check(lstat(RACE_NAME, &st) != 0 && errno == ENOENT, "create race: the name is gone after the last unlink");
}

static void test_open_while_created(void)
{
	struct gate g;
	int rep_pipe[2];
	if (gate_open(&g) != 0 || pipe(rep_pipe) != 0) {
		check(0, "opener/creator: pipes: %s", strerror(errno));
		return;
	}
	fcntl(rep_pipe[0], F_SETFD, FD_CLOEXEC);
	char rep_fd[16], secs[32];
	snprintf(rep_fd, sizeof rep_fd, "%d", rep_pipe[1]);
	snprintf(secs, sizeof secs, "%.3f", OC_SECONDS);

	pid_t pids[1 + OC_OPENERS];
	const char *cargs[] = {"creator", secs, rep_fd, g.ready_fd, g.start_fd, NULL};
	pids[0] = spawn_self(cargs);
	for (int i = 0; i < OC_OPENERS; i++) {
		char idx[16];
		snprintf(idx, sizeof idx, "%d", i);
		const char *oargs[] = {"opener", idx, secs, rep_fd, g.ready_fd, g.start_fd, NULL};
		pids[1 + i] = spawn_self(oargs);
	}
	close(rep_pipe[1]);
	int ready = gate_release(&g, 1 + OC_OPENERS, 20);
	check(ready == 1 + OC_OPENERS, "opener/creator: %d of %d processes reached the start gate", ready,
	      1 + OC_OPENERS);

	double deadline = now_s() + OC_SECONDS + 25;
	char buf[128];
	for (int i = 0; i < 1 + OC_OPENERS; i++) {
		int st = 0, w = wait_until(pids[i], deadline, &st);
		check(exited_zero(w, st), "opener/creator: %s: got %s, want exit 0",
		      i == 0 ? "the creator" : "an opener", describe(w, st, buf, sizeof buf));
	}
	long ok = 0, enoent = 0, bad = 0, cycles = 0;
	int reports = 0;
	struct oc_report rep;
	while (read(rep_pipe[0], &rep, sizeof rep) == (ssize_t)sizeof rep) {
		reports++;
		if (rep.idx < 0) {
			cycles = rep.ok;
			bad += rep.bad;
			continue;
		}
		printf("# opener %d: %ld opens of the whole region, %ld ENOENT, %ld bad\n", rep.idx, rep.ok, rep.enoent,
		       rep.bad);
		ok += rep.ok;
		enoent += rep.enoent;
		bad += rep.bad;
	}
	close(rep_pipe[0]);
	check(reports == 1 + OC_OPENERS, "opener/creator: got %d reports, want %d", reports, 1 + OC_OPENERS);
	check(cycles > 0, "opener/creator: the creator made %ld create/fill/unlink cycles, want > 0", cycles);
	check(bad == 0, "opener/creator: opens or creates that were neither success nor ENOENT, or saw a wrong size "
			"or bytes: got %ld, want 0",
	      bad);
	check(ok > 0 && enoent > 0,
	      "opener/creator: both outcomes seen: got %ld successful opens and %ld ENOENT, want both > 0", ok, enoent);
	char temps[512];
	int n = list_entries(".", ENTRIES_TEMP, temps, sizeof temps);
	check(n == 0, "opener/creator: temporary files left: got %d (%s), want 0", n, temps);
	struct stat st;
	errno = 0;
	check(lstat(OC_NAME, &st) != 0 && errno == ENOENT, "opener/creator: the name is gone at the end");
}

int main(int argc, char **argv)
{
	if (argc >= 7 && strcmp(argv[1], "racer") == 0)
		return role_racer(argv);
	if (argc >= 6 && strcmp(argv[1], "creator") == 0)
		return role_creator(argv);
	if (argc >= 7 && strcmp(argv[1], "opener") == 0)
		return role_opener(argv);
	if (argc > 1) {
		fprintf(stderr, "usage: %s (no arguments; the roles are internal)\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	find_self(argv[0]);
	test_create_race();
	test_open_while_created();
	return check_exit();
}
