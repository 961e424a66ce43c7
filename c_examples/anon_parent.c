/*
 * anon_parent.c - share an anonymous region with a program the parent starts: mmipc_anon, write a
 * message, fork, and in the child put the region's descriptor at fd 3 and exec the child program
 * (fd_child, or the Go go_fd_child: any language that can attach a descriptor). The child replies
 * in the shared memory; the parent waits for the reply, with a deadline, prints it and reaps the
 * child. The layout is handoff.h.
 *
 *   ./anon_parent CHILD [ARGS]      e.g.  ./anon_parent ./fd_child "nihao father!!"
 *   -> parent sent: nihao child!!
 *      child got: nihao child!!
 *      child replied: nihao father!!
 *      parent got: nihao father!!
 *
 * CHILD is a path, as execv takes it (no PATH search); ARGS are passed on to it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "handoff.h"
#include "mmipc.h"

static void sleep_ms(void) { nanosleep(&(struct timespec){0, 1000000}, NULL); }

/* write(2) a string to stderr: usable in the forked child, unlike stdio. */
static void say(const char *s)
{
	ssize_t n = write(STDERR_FILENO, s, strlen(s));
	(void)n; // nothing better to do if stderr is gone
}

/* Runs in the forked child, where only async-signal-safe calls are allowed (the parent has other
 * threads, the Go runtime's among them) and, by mmipc's fork rule, no mmipc call but the fork-safe
 * ones: so plain system calls and write(2). */
static void exec_child(int fd, char *argv[])
{
	if (fd == HANDOFF_FD) {
		// dup2(3, 3) would do nothing, leaving close-on-exec set: clear it instead.
		int flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
			say("anon_parent: cannot pass the descriptor\n");
			_exit(127);
		}
	} else if (dup2(fd, HANDOFF_FD) < 0) { // the copy at fd 3 is not close-on-exec
		say("anon_parent: cannot pass the descriptor\n");
		_exit(127);
	}
	execv(argv[0], argv);
	say("anon_parent: cannot execute ");
	say(argv[0]);
	say("\n");
	_exit(127);
}

int main(int argc, char *argv[])
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s CHILD [ARGS]\n", argv[0]);
		return 2;
	}
	mmipc_region *r = mmipc_anon(HANDOFF_REGION_SIZE);
	if (r == NULL) {
		fprintf(stderr, "anon_parent: %s\n", mmipc_last_error());
		return 1;
	}
	struct handoff *h = mmipc_data(r);
	// The region is fresh and ours: no peer yet, so its size is what we asked for.
	size_t len = strlen(HANDOFF_MESSAGE);
	memcpy(h->msg, HANDOFF_MESSAGE, len);
	h->msg_len = (uint32_t)len;
	atomic_store_explicit(&h->sent, 1, memory_order_release);
	printf("parent sent: %.*s\n", (int)len, h->msg);
	fflush(stdout); // before fork, so that this line comes before the child's

	int fd = mmipc_fd(r);
	pid_t pid = fork();
	if (pid < 0) {
		perror("anon_parent: fork");
		mmipc_detach(r);
		return 1;
	}
	if (pid == 0)
		exec_child(fd, argv + 1);

	// Raw shared memory cannot block, so poll for the reply, and for the child's exit so that a
	// child that dies without replying is reported at once rather than after the deadline.
	int status = 0, exited = 0, replied = 0;
	for (int ms = 0; ms < HANDOFF_TIMEOUT_MS && !(replied && exited); ms++) {
		// The exit is checked before the flag: a child seen gone that had replied is seen replied.
		if (!exited) {
			pid_t w = waitpid(pid, &status, WNOHANG);
			if (w == pid)
				exited = 1;
			else if (w < 0 && errno != EINTR) {
				perror("anon_parent: waitpid");
				break;
			}
		}
		replied = atomic_load_explicit(&h->replied, memory_order_acquire) == 1;
		if (exited && !replied)
			break;
		if (!(replied && exited))
			sleep_ms();
	}
	int ok = 1;
	if (!exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fprintf(stderr, "anon_parent: the child did not %s within %d ms; killed it\n",
			replied ? "exit" : "reply", HANDOFF_TIMEOUT_MS);
		ok = 0;
	}
	if (replied) {
		// reply_len comes from another process: never trust it past the reply's room.
		uint32_t n = h->reply_len;
		if (n > HANDOFF_TEXT_MAX) {
			fprintf(stderr, "anon_parent: corrupt reply length %u (room for %d)\n", n, HANDOFF_TEXT_MAX);
			ok = 0;
		} else {
			printf("parent got: %.*s\n", (int)n, h->reply);
		}
	} else if (exited) {
		fprintf(stderr, "anon_parent: the child exited without replying\n");
		ok = 0;
	}
	if (exited && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFEXITED(status))
			fprintf(stderr, "anon_parent: the child failed with exit status %d\n", WEXITSTATUS(status));
		else
			fprintf(stderr, "anon_parent: the child was killed by signal %d\n", WTERMSIG(status));
		ok = 0;
	}
	mmipc_detach(r);
	return ok ? 0 : 1;
}
