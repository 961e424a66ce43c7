/* Internal to libmmipc: the handle layout shared by the C side (mmipc.c) and the Go exports
 * (export.go). Not installed. Nothing here is exported from the library. */
#ifndef MMIPC_INTERNAL_H
#define MMIPC_INTERNAL_H

#include <stddef.h>
#include "mmipc.h"

#define MMIPC_HIDDEN __attribute__((visibility("hidden")))

/* Size of the thread-local buffer behind mmipc_last_error(); longer messages are truncated. */
#define MMIPC_ERRBUF_SIZE 1024

/* The handle. Everything the fork-safe functions need is here in C, so that mmipc_data, mmipc_size,
 * mmipc_sync and a child's mmipc_detach never cross into Go. */
struct mmipc_region {
	void *map_base; /* the whole mapping: header page (named regions), then data */
	size_t map_len;
	void *data; /* first usable byte */
	size_t size; /* usable bytes */
	int fd; /* the file or memfd behind the mapping */
	void *gostate; /* go-pointer key of the Go-side *mmipc.Region */
};

#endif
