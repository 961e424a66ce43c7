/*
 * classic_anon.c - the anonymous variant of the classic example: no file at all. mmipc_anon()
 * before fork() gives memory that parent and child share (the tutorial's MAP_ANONYMOUS note).
 *
 *   ./classic_anon   -> read data : nihao father!!
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmipc.h"

int main(void)
{
	mmipc_region *r = mmipc_anon(4096);
	if (r == NULL) {
		fprintf(stderr, "classic_anon: %s\n", mmipc_last_error());
		return 1;
	}
	char *ptr = mmipc_data(r);

	pid_t pid = fork();
	if (pid < 0) {
		perror("classic_anon: fork");
		mmipc_detach(r);
		return 1;
	}
	if (pid == 0) {
		snprintf(ptr, mmipc_size(r), "%s", "nihao father!!");
		mmipc_detach(r);
		_exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "classic_anon: the child failed\n");
		mmipc_detach(r);
		return 1;
	}
	// The region reads as zeros where the child did not write, so the text is NUL-terminated;
	// %.*s bounds it by the region's size all the same.
	printf("read data : %.*s\n", (int)mmipc_size(r), ptr);
	mmipc_detach(r);
	return 0;
}
