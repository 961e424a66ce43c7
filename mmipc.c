/* The C half of libmmipc: errno and last-error storage, fork detection, the public entry points.
 * Every call that needs Go checks for a forked child here first, in C, because entering the Go
 * runtime in a forked child can hang forever. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mmipc_internal.h"
#include "_cgo_export.h"

static __thread char last_error[MMIPC_ERRBUF_SIZE];

/* Fork detection: the atfork handler covers fork(); the pid check covers a raw clone() or a
 * library that bypasses the handlers. Both are plain C. */
static pid_t loaded_pid;
static volatile int forked;

static void on_fork_child(void) { forked = 1; }

__attribute__((constructor)) static void mmipc_init(void)
{
	loaded_pid = getpid();
	pthread_atfork(NULL, NULL, on_fork_child);
}

static int in_forked_child(void) { return forked || getpid() != loaded_pid; }

__attribute__((format(printf, 2, 3))) static void set_error(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	errno = err;
}

/* True (with errno ENOTSUP) when `call` must not run because this is a forked child. */
static int refused_after_fork(const char *call)
{
	if (!in_forked_child())
		return 0;
	set_error(ENOTSUP,
		  "%s: not supported in a forked child: the Go runtime cannot run after fork(); only "
		  "mmipc_data, mmipc_size, mmipc_sync, mmipc_detach, mmipc_last_error and mmipc_version "
		  "work there (exec a new program to do more)",
		  call);
	return 1;
}

/* Finishes a Go call that fills *r: the handle on success, NULL with errno (the message is already
 * in last_error) on failure. */
static mmipc_region *handle_or_null(mmipc_region *r, int err)
{
	if (err != 0) {
		free(r);
		errno = err;
		return NULL;
	}
	return r;
}

static mmipc_region *new_handle(const char *call)
{
	mmipc_region *r = calloc(1, sizeof *r);
	if (r == NULL)
		set_error(ENOMEM, "%s: out of memory for the handle", call);
	return r;
}

mmipc_region *mmipc_create(const char *name, size_t size, unsigned int mode)
{
	if (refused_after_fork("mmipc_create"))
		return NULL;
	if (name == NULL) {
		set_error(EINVAL, "mmipc_create: name is NULL");
		return NULL;
	}
	if (size > (size_t)INT64_MAX) {
		set_error(EINVAL, "mmipc_create \"%s\": invalid argument: size %zu overflows", name, size);
		return NULL;
	}
	mmipc_region *r = new_handle("mmipc_create");
	if (r == NULL)
		return NULL;
	int err = mmipcgo_create((char *)name, size, mode, getenv("MMIPC_DIR"), r, last_error);
	return handle_or_null(r, err);
}

mmipc_region *mmipc_open(const char *name, int flags)
{
	if (refused_after_fork("mmipc_open"))
		return NULL;
	if (name == NULL) {
		set_error(EINVAL, "mmipc_open: name is NULL");
		return NULL;
	}
	if (flags & ~MMIPC_RDONLY) {
		set_error(EINVAL, "mmipc_open \"%s\": invalid argument: flags %#x (only MMIPC_RDONLY is defined)",
			  name, (unsigned)flags);
		return NULL;
	}
	mmipc_region *r = new_handle("mmipc_open");
	if (r == NULL)
		return NULL;
	int err = mmipcgo_open((char *)name, flags & MMIPC_RDONLY, getenv("MMIPC_DIR"), r, last_error);
	return handle_or_null(r, err);
}

mmipc_region *mmipc_anon(size_t size)
{
	if (refused_after_fork("mmipc_anon"))
		return NULL;
	if (size > (size_t)INT64_MAX) {
		set_error(EINVAL, "mmipc_anon: invalid argument: size %zu overflows", size);
		return NULL;
	}
	mmipc_region *r = new_handle("mmipc_anon");
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_anon(size, r, last_error));
}

mmipc_region *mmipc_map_file(const char *path, int writable)
{
	if (refused_after_fork("mmipc_map_file"))
		return NULL;
	if (path == NULL) {
		set_error(EINVAL, "mmipc_map_file: path is NULL");
		return NULL;
	}
	mmipc_region *r = new_handle("mmipc_map_file");
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_map_file((char *)path, writable != 0, r, last_error));
}

int mmipc_detach(mmipc_region *r)
{
	if (r == NULL)
		return 0;
	if (in_forked_child()) {
		/* The child's copy of the Go state is frozen and never runs again: release in C only. */
		munmap(r->map_base, r->map_len);
		close(r->fd);
		free(r->gostate);
	} else {
		mmipcgo_detach(r->gostate);
	}
	free(r);
	return 0;
}

int mmipc_unlink(const char *name)
{
	if (refused_after_fork("mmipc_unlink"))
		return -1;
	if (name == NULL) {
		set_error(EINVAL, "mmipc_unlink: name is NULL");
		return -1;
	}
	int err = mmipcgo_unlink((char *)name, getenv("MMIPC_DIR"), last_error);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

void *mmipc_data(const mmipc_region *r) { return r ? r->data : NULL; }

size_t mmipc_size(const mmipc_region *r) { return r ? r->size : 0; }

int mmipc_sync(mmipc_region *r)
{
	if (r == NULL) {
		set_error(EINVAL, "mmipc_sync: region is NULL");
		return -1;
	}
	if (msync(r->map_base, r->map_len, MS_SYNC) != 0) {
		int err = errno;
		set_error(err, "mmipc_sync: msync: %s", strerror(err));
		return -1;
	}
	return 0;
}

int mmipc_copy_file(const char *src, const char *dst)
{
	if (refused_after_fork("mmipc_copy_file"))
		return -1;
	if (src == NULL || dst == NULL) {
		set_error(EINVAL, "mmipc_copy_file: %s is NULL", src == NULL ? "src" : "dst");
		return -1;
	}
	int err = mmipcgo_copy_file((char *)src, (char *)dst, last_error);
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

const char *mmipc_last_error(void) { return last_error; }

const char *mmipc_version(void) { return MMIPC_VERSION; }
