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

__attribute__((format(printf, 2, 3))) void mmipc__set_error(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	errno = err;
}
#define set_error mmipc__set_error

int mmipc__in_forked_child(void) { return in_forked_child(); }

/* The checks every call that enters Go makes first, in C: not in a forked child (ENOTSUP: the Go
 * runtime cannot run there) and no NULL string argument (EINVAL). arg2 may be a dummy non-NULL
 * pointer for calls with one string. True when the call may proceed. */
static int may_enter_go(const char *call, const char *arg1_name, const char *arg1, const char *arg2_name,
			const char *arg2)
{
	if (in_forked_child()) {
		set_error(ENOTSUP,
			  "%s: not supported in a forked child: the Go runtime cannot run after fork(); only "
			  "mmipc_data, mmipc_size, mmipc_fd, mmipc_sync, mmipc_detach, mmipc_last_error and "
			  "mmipc_version work there (exec a new program to do more)",
			  call);
		return 0;
	}
	if (arg1 == NULL || arg2 == NULL) {
		set_error(EINVAL, "%s: %s is NULL", call, arg1 == NULL ? arg1_name : arg2_name);
		return 0;
	}
	return 1;
}

/* Sizes travel to Go as int64: a larger size_t is EINVAL here, with its real value in the message. */
static int size_fits(const char *call, const char *name, size_t size)
{
	if (size <= (size_t)INT64_MAX)
		return 1;
	if (name != NULL)
		set_error(EINVAL, "%s \"%s\": invalid argument: size %zu overflows", call, name, size);
	else
		set_error(EINVAL, "%s: invalid argument: size %zu overflows", call, size);
	return 0;
}

/* Attach flags: 0 or MMIPC_RDONLY, else EINVAL naming the region (name, or fd when name is NULL). */
static int flags_valid(const char *call, const char *name, int fd, int flags)
{
	if ((flags & ~MMIPC_RDONLY) == 0)
		return 1;
	if (name != NULL)
		set_error(EINVAL, "%s \"%s\": invalid argument: flags %#x (only MMIPC_RDONLY is defined)", call, name,
			  (unsigned)flags);
	else
		set_error(EINVAL, "%s (fd %d): invalid argument: flags %#x (only MMIPC_RDONLY is defined)", call, fd,
			  (unsigned)flags);
	return 0;
}

/* A zeroed handle for a Go call to fill, or NULL with ENOMEM. */
static mmipc_region *new_handle(const char *call)
{
	mmipc_region *r = calloc(1, sizeof *r);
	if (r == NULL)
		set_error(ENOMEM, "%s: out of memory for the handle", call);
	return r;
}

/* Finishes a Go call that filled *r: the handle on success, NULL with errno (the message is
 * already in last_error) on failure. */
static mmipc_region *handle_or_null(mmipc_region *r, int err)
{
	if (err != 0) {
		free(r);
		errno = err;
		return NULL;
	}
	return r;
}

/* Finishes a Go call that returns an errno: 0, or -1 with errno. */
static int status(int err)
{
	if (err == 0)
		return 0;
	errno = err;
	return -1;
}

mmipc_region *mmipc_create(const char *name, size_t size, unsigned int mode)
{
	const char *call = "mmipc_create";
	if (!may_enter_go(call, "name", name, "", "") || !size_fits(call, name, size))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_create((char *)name, size, mode, getenv("MMIPC_DIR"), r, last_error));
}

mmipc_region *mmipc_open(const char *name, int flags)
{
	const char *call = "mmipc_open";
	if (!may_enter_go(call, "name", name, "", ""))
		return NULL;
	if (!flags_valid(call, name, -1, flags))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_open((char *)name, flags & MMIPC_RDONLY, getenv("MMIPC_DIR"), r, last_error));
}

mmipc_region *mmipc_anon(size_t size)
{
	const char *call = "mmipc_anon";
	if (!may_enter_go(call, "", "", "", "") || !size_fits(call, NULL, size))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_anon(size, r, last_error));
}

mmipc_region *mmipc_map_file(const char *path, int writable)
{
	const char *call = "mmipc_map_file";
	if (!may_enter_go(call, "path", path, "", ""))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_map_file((char *)path, writable != 0, r, last_error));
}

mmipc_region *mmipc_attach_fd(int fd, int flags)
{
	const char *call = "mmipc_attach_fd";
	if (!may_enter_go(call, "", "", "", ""))
		return NULL;
	if (!flags_valid(call, NULL, fd, flags))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_attach_fd(fd, flags & MMIPC_RDONLY, r, last_error));
}

mmipc_region *mmipc__ring_region_create(const char *name, size_t capacity, unsigned int mode)
{
	const char *call = "mmipc_ring_create";
	if (!may_enter_go(call, "name", name, "", "") || !size_fits(call, name, capacity))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_ring_create((char *)name, capacity, mode, getenv("MMIPC_DIR"), r, last_error));
}

mmipc_region *mmipc__ring_region_open(const char *name)
{
	const char *call = "mmipc_ring_open";
	if (!may_enter_go(call, "name", name, "", ""))
		return NULL;
	mmipc_region *r = new_handle(call);
	if (r == NULL)
		return NULL;
	return handle_or_null(r, mmipcgo_ring_open((char *)name, getenv("MMIPC_DIR"), r, last_error));
}

int mmipc_fd(const mmipc_region *r)
{
	if (r == NULL) {
		set_error(EBADF, "mmipc_fd: region is NULL");
		return -1;
	}
	return r->fd;
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
	if (!may_enter_go("mmipc_unlink", "name", name, "", ""))
		return -1;
	return status(mmipcgo_unlink((char *)name, getenv("MMIPC_DIR"), last_error));
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
	if (!may_enter_go("mmipc_copy_file", "src", src, "dst", dst))
		return -1;
	return status(mmipcgo_copy_file((char *)src, (char *)dst, last_error));
}

int mmipc_stat(const char *name, mmipc_info *info)
{
	const char *call = "mmipc_stat";
	if (!may_enter_go(call, "name", name, "info", (const char *)info))
		return -1;
	return status(mmipcgo_stat((char *)name, getenv("MMIPC_DIR"), info, last_error));
}

int mmipc_gc(void)
{
	if (!may_enter_go("mmipc_gc", "", "", "", ""))
		return -1;
	int removed = 0;
	int err = mmipcgo_gc(getenv("MMIPC_DIR"), &removed, last_error);
	return err != 0 ? status(err) : removed;
}

const char *mmipc_last_error(void) { return last_error; }

const char *mmipc_version(void) { return MMIPC_VERSION; }
