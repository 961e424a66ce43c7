/*
 * startup_raw.c - the baseline of the start-up rows (bench/ENGINES.md, "spawn"): the same work as
 * startup_mmipc.c with a bare mmap(MAP_SHARED | MAP_ANONYMOUS) and no libmmipc.so.
 *
 * It must not load libmmipc.so (link it without -lmmipc, or with -Wl,--as-needed): a baseline
 * that started the Go runtime would hide mmipc's start-up cost. It checks, and fails if it did.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static int find_mmipc(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	(void)data;
	return info->dlpi_name && strstr(info->dlpi_name, "libmmipc") != NULL;
}

int main(void)
{
	if (dl_iterate_phdr(find_mmipc, NULL)) {
		fprintf(stderr, "startup_raw: libmmipc.so is loaded: link this baseline without -lmmipc (or with "
				"-Wl,--as-needed)\n");
		return 1;
	}
	volatile unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("startup_raw: mmap");
		return 1;
	}
	for (int i = 0; i < 4096; i++)
		p[i] = (unsigned char)(i * 31 + 7);
	for (int i = 0; i < 4096; i++)
		if (p[i] != (unsigned char)(i * 31 + 7)) {
			fprintf(stderr, "startup_raw: byte %d reads back wrong\n", i);
			return 1;
		}
	munmap((void *)p, 4096);
	return 0;
}
