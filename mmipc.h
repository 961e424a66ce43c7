/*
 * mmipc.h - shared memory between C, Go and Python processes.
 *
 * libmmipc turns the classic "open + mmap(MAP_SHARED) + fork" recipe into named, validated,
 * race-free regions. Link with:   cc app.c -I<mmipc> -L<mmipc>/build -lmmipc -Wl,-rpath,<mmipc>/build
 *
 * Conventions for every function below
 *   Errors:  a failing call returns NULL or -1 and sets errno; mmipc_last_error() then describes
 *            the failure (the call, the name, the cause). Neither is cleared by a later success.
 *   errno values fixed by the contract (DESIGN.md), the same for every call:
 *            EEXIST  create: the name exists
 *            ENOENT  open/unlink: no such region
 *            EINVAL  NULL or bad name, size 0, size that overflows, mode bits outside 0777, bad flags
 *            EPROTO  the file is not an mmipc region: bad magic, unknown version, damaged header,
 *                    sizes that disagree with the file, not a regular file
 *            ELOOP   the name is a symlink (regions are never opened through one)
 *            EACCES  the file system refused permission
 *            ENOTSUP the call needs the Go runtime and was made in a forked child (see below)
 *            EBADF   mmipc_attach_fd: no such open descriptor; mmipc_fd: NULL handle
 *            ENOSPC, ENOMEM, EFBIG  the OS refused for space, passed through
 *   Names:   a name without '/' matches [A-Za-z0-9_-][A-Za-z0-9._-]{0,199} and lives as the file
 *            <dir>/<name>, <dir> being $MMIPC_DIR if set and non-empty, else /dev/shm (so it is the
 *            object shm_open("/<name>") names). MMIPC_DIR is read with getenv() at each call, so
 *            setenv() in the program works. A name containing '/' is a file-system path (relative
 *            to the working directory): a disk-backed region that outlives a reboot.
 *   Threads: every function is thread-safe. A handle may be used from several threads, except
 *            that mmipc_detach must not race with other uses of the same handle. The shared bytes
 *            themselves are not synchronised: that is the program's business (C11 atomics).
 *   Fork:    after fork() the child has no working Go runtime. Functions marked "fork-safe" are
 *            plain C and work in a forked child (and grandchildren); every other function fails
 *            there at once with ENOTSUP, with no side effect and never a hang. Exec to start anew.
 */
#ifndef MMIPC_H
#define MMIPC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. mmipc_version() returns the library's, which may be newer. */
#define MMIPC_VERSION_MAJOR 0
#define MMIPC_VERSION_MINOR 1
#define MMIPC_VERSION_PATCH 0
#define MMIPC_VERSION "0.1.0"
/* MAJOR * 1000000 + MINOR * 1000 + PATCH, for #if comparisons. */
#define MMIPC_VERSION_NUMBER 1000

/* The shared-memory layout version (docs/PROTOCOL.md) written into, and required of, every named
 * region's header. A region of another version is refused with EPROTO. */
#define MMIPC_PROTOCOL_VERSION 1

/* mmipc_open flag: map the region read-only (a write through mmipc_data() faults). */
#define MMIPC_RDONLY 1

/* An attachment to a region: an opaque handle from mmipc_create, mmipc_open, mmipc_anon,
 * mmipc_map_file or mmipc_attach_fd, released by mmipc_detach. */
typedef struct mmipc_region mmipc_region;

/*
 * mmipc_create - create a new named region of `size` usable bytes and attach it.
 *   name  region name or path (see Names above).
 *   size  usable bytes, exactly what mmipc_size() will return; the bytes read as zeros. The whole
 *         size is reserved now (fallocate), so a full /dev/shm fails here with ENOSPC rather than
 *         later with SIGBUS in a peer.
 *   mode  permission bits applied exactly (fchmod: the umask does not filter them); 0 means 0600.
 * Creation is atomic: the region is initialised under a temporary name and then link()ed to its
 * name, so openers never see a half-made region and of racing creators exactly one succeeds.
 * Returns a handle, or NULL with errno EEXIST (name taken), EINVAL (NULL or bad name, size 0 or
 * overflowing, mode bits outside 0777), ELOOP (the name is a symlink), EACCES, ENOENT (a path's
 * directory is missing), ENOSPC/ENOMEM/EFBIG, ENOTSUP (forked child).
 * Ownership: the caller owns the handle and releases it with mmipc_detach. The region itself stays
 * until mmipc_unlink, even after every process has detached.
 */
mmipc_region *mmipc_create(const char *name, size_t size, unsigned int mode);

/*
 * mmipc_open - attach an existing named region.
 *   name   region name or path.
 *   flags  0 for read-write, MMIPC_RDONLY for a read-only mapping; any other bit is EINVAL.
 * The file is opened without following a symlink and without blocking (a FIFO or device in the
 * directory fails at once), and its header is validated against the file's real size. The size
 * comes from the header.
 * Returns a handle, or NULL with errno ENOENT, EPROTO (not a valid region), ELOOP, EACCES, EINVAL,
 * ENOMEM, ENOTSUP (forked child).
 * Ownership: the caller owns the handle; release it with mmipc_detach.
 * Note: if another process truncates the region's file, touching the lost pages raises SIGBUS, as
 * with any mmap; mmipc never truncates a region.
 */
mmipc_region *mmipc_open(const char *name, int flags);

/*
 * mmipc_anon - create an anonymous shared region of `size` bytes, for sharing with child
 * processes. The memory (a memfd sealed against shrinking and growing, mapped MAP_SHARED) reads as
 * zeros and cannot be shrunk by anyone. Two ways to share it:
 *   - fork(): call mmipc_anon before fork(); parent and child see the same bytes through
 *     mmipc_data() (the classic MAP_ANONYMOUS recipe).
 *   - exec(): hand mmipc_fd(r) to the new program (any language), which attaches it with
 *     mmipc_attach_fd, or FromFile in Go. See mmipc_fd for the close-on-exec detail.
 * Returns a handle, or NULL with errno EINVAL (size 0 or overflowing), ENOMEM/ENOSPC, ENOTSUP.
 * Ownership: each process that holds the handle after fork() detaches its own copy.
 */
mmipc_region *mmipc_anon(size_t size);

/*
 * mmipc_map_file - map a whole existing regular file, raw (no header: every byte of the file is
 * data), as the classic open + lseek + mmap(MAP_SHARED) recipe does. Processes that map the same
 * file share its bytes, and writes reach the file.
 *   path      the file; symlinks are followed (it is the caller's own file, not a shared name).
 *   writable  non-zero for a read-write mapping (the file must be writable), 0 for read-only.
 * Returns a handle, or NULL with errno ENOENT, EACCES, EPROTO (not a regular file: directory,
 * FIFO, device), EINVAL (NULL path, or an empty file: there is nothing to map), ENOMEM, ENOTSUP.
 * Ownership: the caller owns the handle; release it with mmipc_detach. The file is not changed
 * beyond what the program writes into it.
 */
mmipc_region *mmipc_map_file(const char *path, int writable);

/*
 * mmipc_attach_fd - attach the region behind a descriptor received from another process:
 * inherited across exec (a parent's mmipc_fd, Go's exec.Cmd.ExtraFiles, Python's pass_fds) or
 * received over a Unix socket (SCM_RIGHTS).
 *   fd     the descriptor. It stays the caller's: the handle keeps its own duplicate, so the caller
 *          may close fd at once, and mmipc_detach does not close it.
 *   flags  0 for read-write (fd must be open O_RDWR), MMIPC_RDONLY for a read-only mapping (fd may
 *          be O_RDONLY); any other bit is EINVAL.
 * What fd holds decides the mapping (docs/PROTOCOL.md, "Descriptors"): an anonymous region's memfd
 * (sealed against shrinking, as mmipc_anon makes it) is mapped whole, raw, and mmipc_size() is its
 * size; any other file must be a named region and is validated as mmipc_open validates one, and
 * mmipc_data() is its data after the header.
 * The access mode is checked first, so a read-only descriptor of something that is not a region
 * (a pipe's read end, a directory) is EACCES with flags 0 and EPROTO with MMIPC_RDONLY.
 * Returns a handle, or NULL with errno EBADF (fd negative or not open), EACCES (fd's access mode
 * does not allow the mapping asked for), EPROTO (not a region: a pipe, socket, directory, ordinary
 * file, unsealed or empty memfd, damaged header), EINVAL (bad flags), ENOMEM, EFBIG, ENOTSUP
 * (forked child: attach before fork, or after exec).
 * Ownership: the caller owns the handle; release it with mmipc_detach. The handle has no name.
 */
mmipc_region *mmipc_attach_fd(int fd, int flags);

/*
 * mmipc_fd - the descriptor behind a region: the region's file, or an anonymous region's memfd.
 *   r  a handle.
 * Returns the descriptor, or -1 with errno EBADF when r is NULL. It belongs to the handle: do not
 * close it; it is valid until mmipc_detach(r). Use it to hand the region to another program,
 * which attaches it with mmipc_attach_fd. It is close-on-exec, so to pass it through exec(),
 * dup2() it to the number the child expects in the forked child before exec (dup2 clears
 * close-on-exec; when the number is already the same, clear FD_CLOEXEC with fcntl instead), or
 * send it over a Unix socket. Fork-safe.
 */
int mmipc_fd(const mmipc_region *r);

/*
 * mmipc_detach - unmap the region and free the handle. Other attachments, in this or any other
 * process, are unaffected; a named region keeps its name (see mmipc_unlink).
 *   r  a handle, or NULL (a no-op returning 0).
 * Returns 0. The handle and every pointer from mmipc_data() are invalid afterwards; detaching a
 * handle twice is undefined, like free().
 * Fork-safe: a forked child detaches its copies of its parent's handles with this.
 */
int mmipc_detach(mmipc_region *r);

/*
 * mmipc_unlink - remove a named region's name. Attached processes keep working on the memory,
 * which is freed when the last one detaches; the name can be created anew at once.
 * Returns 0, or -1 with errno ENOENT, EPROTO (the file is not a valid region: mmipc_unlink never
 * deletes an ordinary file), ELOOP (a symlink), EINVAL (NULL or bad name), EACCES (the directory is
 * not writable, or the region not readable: unlink reads the header to check it is a region),
 * ENOTSUP.
 */
int mmipc_unlink(const char *name);

/*
 * mmipc_data - the first usable byte of the region, page-aligned. NULL for NULL.
 * The pointer is valid until mmipc_detach(r). Fork-safe.
 */
void *mmipc_data(const mmipc_region *r);

/*
 * mmipc_size - the number of usable bytes at mmipc_data(r): exactly the size given at creation
 * (for a mapped file, the file's size when mapped). 0 for NULL. Fork-safe.
 */
size_t mmipc_size(const mmipc_region *r);

/*
 * mmipc_sync - write the region's changed pages to its file (msync MS_SYNC), so that a disk-backed
 * region or mapped file is durable. Memory-backed regions (anonymous, or under /dev/shm) have
 * nothing to write. Returns 0, or -1 with errno EINVAL (NULL) or what msync reports. Fork-safe.
 */
int mmipc_sync(mmipc_region *r);

/*
 * mmipc_copy_file - copy the regular file src to dst through memory mappings (in windows, so any
 * size works), like cp: dst is created or replaced with src's bytes and permission bits; an empty
 * src gives an empty dst. The copy is written beside dst under a temporary name and renamed over
 * it: dst is never seen half-written, and a failure leaves the old dst intact. A dst that is a
 * symlink is replaced by the copy (the link's target is untouched).
 * Returns 0, or -1 with errno EINVAL (NULL path, or src and dst are the same file), ENOENT,
 * EACCES, EPROTO (src is not a regular file), EISDIR (dst is a directory), ENOSPC, EIO (src
 * changed size during the copy), ENOTSUP.
 */
int mmipc_copy_file(const char *src, const char *dst);

/*
 * mmipc_last_error - describe this thread's last failed mmipc call.
 * Returns a message naming the call, the name and the cause, e.g. `mmipc_open "jobs" (/dev/shm/jobs): protocol error: bad magic ...`.
 * "" if no call has failed on this thread. Like errno it is not cleared by a success. The string
 * belongs to the library and stays valid until the next failure on the same thread.
 * Fork-safe.
 */
const char *mmipc_last_error(void);

/*
 * mmipc_version - the library's version.
 * Returns "MAJOR.MINOR.PATCH", a static string (compare it with MMIPC_VERSION to detect a
 * header/library mismatch). Fork-safe.
 */
const char *mmipc_version(void);

/*
 * Reserved for the sync layer: wait/notify on a 32-bit word, a process-shared lock that survives
 * a dead owner, and a message ring. Each named region's header page reserves room for it
 * (docs/PROTOCOL.md); its declarations will join this header, all fork-safe C.
 */

#ifdef __cplusplus
}
#endif

#endif /* MMIPC_H */
