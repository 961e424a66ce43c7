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

/* Shared by the C files of the library (mmipc.c defines them). */

/* Sets errno to err and this thread's mmipc_last_error() message. */
MMIPC_HIDDEN __attribute__((format(printf, 2, 3))) void mmipc__set_error(int err, const char *fmt, ...);

/* True in a forked child (or a raw clone) of the process that loaded the library: Go cannot run. */
MMIPC_HIDDEN int mmipc__in_forked_child(void);

/* Ring regions, made and validated by Go (mmipc/ringlayout.go): a region handle whose data starts
 * with a ring's control block (docs/PROTOCOL.md, "Ring"), already validated; the capacity is the
 * u64 at data offset 16. NULL with errno and last error set on failure (ENOTSUP in a forked child,
 * and everything mmipc_create/mmipc_open report; EPROTO when the region is not a ring). Release
 * with mmipc_detach. */
MMIPC_HIDDEN mmipc_region *mmipc__ring_region_create(const char *name, size_t capacity, unsigned int mode);
MMIPC_HIDDEN mmipc_region *mmipc__ring_region_open(const char *name);

#endif
