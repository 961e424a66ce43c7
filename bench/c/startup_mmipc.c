/*
 * startup_mmipc.c - the smallest mmipc program, for the start-up rows (bench/ENGINES.md, "spawn"):
 * loads libmmipc.so (and with it the Go runtime), makes an anonymous 4 KiB region, writes and
 * checks every byte, detaches, exits. startup_raw.c does the same with a bare mmap.
 */
#include <stdio.h>

#include "mmipc.h"

int main(void)
{
	mmipc_region *r = mmipc_anon(4096);
	if (r == NULL) {
		fprintf(stderr, "startup_mmipc: %s\n", mmipc_last_error());
		return 1;
	}
	volatile unsigned char *p = mmipc_data(r);
	for (int i = 0; i < 4096; i++)
		p[i] = (unsigned char)(i * 31 + 7);
	for (int i = 0; i < 4096; i++)
		if (p[i] != (unsigned char)(i * 31 + 7)) {
			fprintf(stderr, "startup_mmipc: byte %d reads back wrong\n", i);
			return 1;
		}
	mmipc_detach(r);
	return 0;
}
