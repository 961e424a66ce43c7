/*
 * copy_file.c - copy a file through memory mappings, as the classic tutorial suggests ("mappings
 * can also copy files"), done safely: any size (mapped in windows), the source's mode kept, and
 * the destination replaced atomically, never left half-written.
 *
 *   ./copy_file SRC DST
 */
#include <stdio.h>

#include "mmipc.h"

int main(int argc, char *argv[])
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SRC DST\n", argv[0]);
		return 2;
	}
	if (mmipc_copy_file(argv[1], argv[2]) != 0) {
		fprintf(stderr, "copy_file: %s\n", mmipc_last_error());
		return 1;
	}
	printf("copied %s to %s\n", argv[1], argv[2]);
	return 0;
}
