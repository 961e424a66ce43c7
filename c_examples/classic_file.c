/*
 * classic_file.c - the classic example (classic_raw.c) ported to libmmipc, line for line: a parent
 * maps test.txt, forks, the child writes a greeting into the shared bytes, the parent reads it.
 *
 * What changes: every failure is caught and explained (a missing or empty test.txt is a message,
 * not a crash); the child only touches the memory and detaches, which is what a forked child may do
 * with libmmipc; reads and writes are bounded by the mapping's size.
 *
 *   ./classic_file [FILE]      (default test.txt, which must exist and be non-empty)
 *   -> read data : nihao father!!
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mmipc.h"

int main(int argc, char const *argv[])
{
	const char *path = argc > 1 ? argv[1] : "test.txt";

	// Open the file and map all of it: mmipc takes the size from the file.
	mmipc_region *r = mmipc_map_file(path, 1);
	if (r == NULL) {
		fprintf(stderr, "classic_file: %s\n", mmipc_last_error());
		return 1;
	}
	char *ptr = mmipc_data(r);
	size_t size = mmipc_size(r);

	// Create the child.
	pid_t pid = fork();
	if (pid > 0) {
		// Parent: wait for the child, then read what it wrote (never past the mapping).
		int status;
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "classic_file: the child failed\n");
			mmipc_detach(r);
			return 1;
		}
		char buf[64];
		size_t n = strnlen(ptr, size);
		snprintf(buf, sizeof buf, "%.*s", (int)n, ptr);
		printf("read data : %s\n", buf);
	} else if (pid == 0) {
		// Child: write into the shared bytes, detach, leave. Only mmipc_data, mmipc_size,
		// mmipc_sync and mmipc_detach may be called here (the fork rule in mmipc.h).
		snprintf(ptr, size, "%s", "nihao father!!");
		mmipc_detach(r);
		_exit(0);
	} else {
		perror("classic_file: fork");
	}
	// mmipc_sync(r) here would also flush the change to test.txt on disk at once.
	mmipc_detach(r);
	return pid > 0 ? 0 : 1;
}
