/* leftover_cleanup: the region a killed program leaves behind, found and removed.
 *
 * A raw shm_open region outlives a crash, and nothing tells a live user from a leftover. With mmipc
 * every attached process holds a lock on the region's file that the kernel drops when the process
 * dies, so mmipc_stat says whether anyone is attached, and mmipc_gc removes exactly the regions
 * nobody is.
 *
 * Here a worker (a forked child, which shares the parent's attachment) keeps a region "scratch"
 * while the parent keeps "jobs". The parent detaches from scratch, so only the worker holds it; the
 * worker is then killed with SIGKILL, as a crash would. mmipc_gc removes scratch and keeps jobs.
 *
 *   ./leftover_cleanup            (uses $MMIPC_DIR, default /dev/shm)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmipc.h"

static int report(const char *name)
{
	mmipc_info info;
	if (mmipc_stat(name, &info) != 0) {
		printf("%-8s %s\n", name, errno == ENOENT ? "gone" : mmipc_last_error());
		return errno == ENOENT ? 0 : -1;
	}
	printf("%-8s %llu bytes, attached: %s\n", name, (unsigned long long)info.size, info.attached ? "yes" : "no");
	return 0;
}

int main(void)
{
	mmipc_region *jobs = mmipc_create("jobs", 4096, 0);
	mmipc_region *scratch = jobs ? mmipc_create("scratch", 1 << 20, 0) : NULL;
	if (scratch == NULL) {
		fprintf(stderr, "%s\n", mmipc_last_error());
		if (jobs != NULL) {
			mmipc_detach(jobs);
			mmipc_unlink("jobs");
		}
		return 1;
	}

	/* The worker inherits the attachment to scratch (and jobs, which it drops): it writes into
	 * scratch and then waits, as a long job would, until it is killed. */
	int ready[2];
	if (pipe(ready) != 0) {
		perror("pipe");
		return 1;
	}
	pid_t worker = fork();
	if (worker < 0) {
		perror("fork");
		return 1;
	}
	if (worker == 0) {
		mmipc_detach(jobs); /* fork-safe: plain C */
		((char *)mmipc_data(scratch))[0] = 'w';
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	char c;
	if (read(ready[0], &c, 1) != 1) {
		fprintf(stderr, "the worker did not start\n");
		return 1;
	}
	mmipc_detach(scratch); /* now only the worker holds it */

	int failed = 0;
	puts("worker running:");
	failed |= report("jobs") | report("scratch");
	printf("mmipc_gc removed %d\n", mmipc_gc()); /* 0: both are in use */

	kill(worker, SIGKILL); /* a crash: no cleanup code runs */
	waitpid(worker, NULL, 0);
	puts("worker killed:");
	failed |= report("jobs") | report("scratch");
	printf("mmipc_gc removed %d\n", mmipc_gc()); /* 1: scratch, and never jobs */
	failed |= report("jobs") | report("scratch");

	mmipc_detach(jobs);
	mmipc_unlink("jobs");
	return failed ? 1 : 0;
}
