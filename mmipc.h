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
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header. mmipc_version() returns the library's, which may be newer. */
#define MMIPC_VERSION_MAJOR 0
#define MMIPC_VERSION_MINOR 3
#define MMIPC_VERSION_PATCH 0
#define MMIPC_VERSION "0.3.0"
/* MAJOR * 1000000 + MINOR * 1000 + PATCH, for #if comparisons. */
#define MMIPC_VERSION_NUMBER 3000

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
 * The caller is attached (see "Liveness and cleanup") from here until mmipc_detach.
 * Returns a handle, or NULL with errno ENOENT (also when mmipc_gc removed the region during the
 * open), EPROTO (not a valid region), ELOOP, EACCES, EINVAL, ENOMEM, EBUSY (another process keeps
 * the region's liveness lock exclusively: a cleaner normally holds it for microseconds; the open
 * retries for about 100 ms first), ENOTSUP (forked child).
 * Ownership: the caller owns the handle; release it with mmipc_detach.
 * Note: if another process truncates the region's file, touching the lost pages raises SIGBUS, as
 * with any mmap, and C cannot turn that into an error (Go peers get EPROTO: Region.Guard). mmipc
 * never truncates a region; give regions a mode that only trusted users can write (0600, the
 * default), and see docs/RELIABILITY.md.
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
 * EPERM (another user's region in a sticky directory such as /dev/shm), ENOTSUP.
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

/* ==== Liveness and cleanup ====================================================================
 *
 * Every process attached to a named region (mmipc_create, mmipc_open, mmipc_ring_create,
 * mmipc_ring_open, mmipc_attach_fd of a named region's file) holds a shared lock on the region's
 * file until it detaches; the kernel drops it when the process dies, even by SIGKILL (an OFD lock,
 * fcntl F_OFD_SETLK on byte 0: docs/PROTOCOL.md, "Liveness"). A forked child that keeps the handle
 * keeps the lock too. So a region nobody is attached to is known exactly, and mmipc_gc can remove
 * what crashed programs left in /dev/shm without ever removing a region in use.
 * Do not take fcntl()/lockf() write locks on byte 0 (or the whole) of a region's file: they conflict
 * with these locks (opens would fail with EBUSY). flock() and mmipc_lock are unaffected.
 */

/* Bit of mmipc_info.flags: the region holds a message ring. */
#define MMIPC_INFO_RING 1

/* What mmipc_stat reports about a named region. */
typedef struct mmipc_info {
	uint64_t size; /* usable bytes, as asked at creation */
	uint64_t file_size; /* the file's size: header page, data, padding to a page */
	int64_t created_ns; /* creation time, Unix nanoseconds (CLOCK_REALTIME) */
	uint32_t creator_pid; /* the creating process (it may be gone, or its pid reused) */
	uint32_t flags; /* MMIPC_INFO_RING, or 0 */
	uint32_t mode; /* permission bits */
	uint32_t uid; /* the file's owner */
	int32_t attached; /* 1: some process is attached now; 0: none */
	uint32_t reserved_[7]; /* zero; room for later fields without changing the size */
} mmipc_info;

/*
 * mmipc_stat - describe a named region without attaching to it.
 *   name  region name or path (see Names above).
 *   info  filled on success; untouched on failure.
 * Returns 0, or -1 with errno ENOENT, ELOOP (a symlink), EACCES, EPROTO (not a region), EINVAL
 * (NULL or bad name, NULL info), ENOTSUP (forked child). Thread-safe.
 */
int mmipc_stat(const char *name, mmipc_info *info);

/*
 * mmipc_gc - remove the named regions in the region directory ($MMIPC_DIR, else /dev/shm) that no
 * live process is attached to, and the temporary files that creators killed mid-creation left.
 * It never removes a region someone is attached to, a file that is not a region, or a symlink, and
 * it removes a region only while holding it exclusively, so a process opening it at that moment
 * either attached first (the region stays) or gets ENOENT: nobody is left attached to a removed
 * region. Regions this process may not write or remove (another user's) are left alone.
 * Returns how many files it removed (0 or more), or -1 with errno ENOENT/EACCES/ENOTDIR (the
 * directory cannot be read), ENOTSUP (forked child).
 * Note: processes using mmipc older than 0.3.0 hold no such lock; do not collect while they run.
 */
int mmipc_gc(void);

/* ==== The sync layer: wait/notify, a lock that survives a dead owner, a message ring ==========
 *
 * Layout and algorithms: docs/PROTOCOL.md ("The sync layer"); Go peers (package mmipc) and Python
 * peers use the same bytes, so all three languages meet on the same words, locks and rings.
 * Every function below is plain C: none enters the Go runtime on its data path, so they are
 * fork-safe, except mmipc_ring_create and mmipc_ring_open, which are ENOTSUP in a forked child.
 *
 * Timeouts (timeout_ns): MMIPC_FOREVER (-1) waits forever; 0 tries once and fails with EAGAIN when
 * nothing is ready; a positive count of nanoseconds fails with ETIMEDOUT when it expires. Any other
 * negative value is EINVAL. Time is measured on CLOCK_MONOTONIC.
 */
#define MMIPC_FOREVER ((int64_t)-1)

/*
 * mmipc_wait - sleep while *word == expected (a shared futex wait).
 *   word      a 4-aligned 32-bit word in memory shared with the notifier (any region's data).
 *   expected  the value the caller last read and found "not ready".
 * Returns 0 when woken by mmipc_notify, when *word already differs, or spuriously: re-check the
 * condition and wait again. -1 with errno ETIMEDOUT, EAGAIN (timeout 0 and *word == expected),
 * EINTR (a signal handler ran), EINVAL (NULL or misaligned word, bad timeout).
 * Pattern: writer: change the word (atomic store or increment), then mmipc_notify. Waiter: load
 * the word, check the condition, mmipc_wait(word, loaded, t); a change in between is never lost.
 * Thread-safe and fork-safe.
 */
int mmipc_wait(const uint32_t *word, uint32_t expected, int64_t timeout_ns);

/*
 * mmipc_notify - wake up to count processes or threads sleeping in mmipc_wait on word.
 *   count  1 or more; INT_MAX wakes all.
 * Returns how many were woken (0 when nobody slept), or -1 with errno EINVAL (NULL or misaligned
 * word, count < 1). Thread-safe and fork-safe.
 */
int mmipc_notify(uint32_t *word, int count);

/*
 * mmipc_lock - a process-shared mutex that survives its holder's death. 64 bytes, 64-aligned; put
 * it at any 64-aligned offset of shared memory (a region's data is page-aligned) and use it through
 * a pointer. All-zero bytes are an unlocked lock, so a lock in a fresh region needs no init. The
 * fields are the layout of docs/PROTOCOL.md ("Lock"); do not touch them directly.
 * Ownership is per process: any thread of the owning process may release it, and it is not
 * recursive. Owner death is found from /proc (pid and start time, so a recycled pid or an
 * unreaped zombie never looks alive) without the dead process's help, within about 100 ms.
 */
typedef struct mmipc_lock {
	uint64_t owner; /* identity of the holding process (pid | start time << 32), 0 when free */
	uint32_t wake_seq; /* the futex word sleepers wait on */
	uint32_t sleepers; /* processes sleeping on wake_seq */
	uint32_t state; /* bit 0 owner died, not yet repaired; bit 1 not recoverable */
	uint32_t reserved[11];
} __attribute__((aligned(64))) mmipc_lock;

/*
 * mmipc_lock_init - reset *l to an unlocked, consistent lock (writes zeros). Never call it on a
 * lock that someone may hold; it is also the only way to reuse a lock that became not recoverable.
 * Returns 0, or -1 with errno EINVAL (NULL or not 64-aligned). Fork-safe.
 */
int mmipc_lock_init(mmipc_lock *l);

/*
 * mmipc_lock_acquire - take the lock, waiting up to timeout_ns.
 * Returns 0 with the lock held; or -1 with errno:
 *   EOWNERDEAD       the lock IS held by the caller now, taken over from a process that died
 *                    holding it: the data it guards may be half-updated. Repair it, then call
 *                    mmipc_lock_consistent; releasing without that makes the lock not recoverable.
 *   ENOTRECOVERABLE  a previous taker released without repairing: the lock is unusable until
 *                    mmipc_lock_init.
 *   ETIMEDOUT, EAGAIN (timeout 0 and held by a live process), EINVAL (NULL, misaligned, bad
 *   timeout), EPROTO (the lock's bytes are not a lock: unknown state bits).
 * A free lock costs one compare-and-swap and no system call. Thread-safe and fork-safe.
 */
int mmipc_lock_acquire(mmipc_lock *l, int64_t timeout_ns);

/*
 * mmipc_lock_consistent - mark the data repaired after an EOWNERDEAD acquire.
 * Returns 0, or -1 with errno EPERM (the caller's process does not hold the lock), EINVAL (NULL,
 * misaligned, or the lock was not taken over from a dead owner). Fork-safe.
 */
int mmipc_lock_consistent(mmipc_lock *l);

/*
 * mmipc_lock_release - release the lock held by the caller's process; wakes one sleeper, with a
 * system call only when someone sleeps.
 * Returns 0, or -1 with errno EPERM (not held by the caller's process), EINVAL (NULL,
 * misaligned). Fork-safe.
 */
int mmipc_lock_release(mmipc_lock *l);

/*
 * mmipc_ring - a message ring in a named region: variable-length messages from any number of
 * senders to any number of receivers, in order, through a byte buffer of a fixed capacity.
 * One sender and one receiver run lock-free: ~a cache-line transfer per message, no system call
 * unless the peer sleeps. More senders (or receivers) are safe: the side becomes shared and they
 * take turns through a lock that survives a dead holder. Blocking calls spin while that can pay
 * off (the peer runs on another CPU and spinning has worked lately), yield the CPU when pinned to
 * the one the peer runs on, then sleep on a futex; a sleeper re-checks at least every 100 ms (a
 * blocked, idle call costs about ten wake-ups a second), so a rare lost wake-up never hangs it.
 * A handle must not be used by two threads at once: open the ring once per thread.
 * A process killed mid-send never delivers a torn message; a peer that scribbles over the ring
 * makes calls fail with EPROTO, never read or write outside it.
 */
typedef struct mmipc_ring mmipc_ring;

/*
 * mmipc_ring_create - create a ring region named `name` and attach it.
 *   capacity_bytes  the buffer size; rounded up to a power of two, at least 1 KiB, at most 1 GiB
 *                   (else EINVAL). The largest message is capacity / 2 - 8 bytes
 *                   (mmipc_ring_max_message).
 *   mode            permission bits, as for mmipc_create (0 means 0600).
 * Creation is atomic as for regions: an opener never sees a half-made ring.
 * Returns a handle, or NULL with errno as for mmipc_create (EEXIST, EINVAL, ELOOP, EACCES, ENOENT,
 * ENOSPC, ENOTSUP in a forked child). Release with mmipc_ring_close; remove the name with
 * mmipc_unlink.
 */
mmipc_ring *mmipc_ring_create(const char *name, size_t capacity_bytes, unsigned int mode);

/*
 * mmipc_ring_open - attach an existing ring.
 * Returns a handle, or NULL with errno ENOENT, EINVAL, ELOOP, EACCES, EPROTO (not a ring, or a
 * damaged control block), EBUSY (as for mmipc_open), ENOTSUP (forked child).
 */
mmipc_ring *mmipc_ring_open(const char *name);

/*
 * mmipc_ring_send - copy one message of len bytes (0 allowed) into the ring, waiting up to
 * timeout_ns for space.
 * Returns 0, or -1 with errno EMSGSIZE (len > mmipc_ring_max_message: it could never fit),
 * EAGAIN/ETIMEDOUT (no space), EINVAL (NULL q, NULL msg with len > 0, bad timeout), EBUSY (a
 * reservation is pending on this handle), EPROTO (the ring's control words are damaged).
 * Fork-safe (on a handle made before the fork).
 */
int mmipc_ring_send(mmipc_ring *q, const void *msg, size_t len, int64_t timeout_ns);

/*
 * mmipc_ring_recv - take the next message, copying it into buf, waiting up to timeout_ns for one.
 * Returns its length (0 for an empty message), or -1 with errno EMSGSIZE (cap is smaller than the
 * message: it stays in the ring; mmipc_ring_peek tells its length), EAGAIN/ETIMEDOUT (no message),
 * EINVAL (NULL q, NULL buf with cap > 0, bad timeout), EBUSY (a peek is pending on this handle),
 * EPROTO (damaged ring). Fork-safe.
 */
ssize_t mmipc_ring_recv(mmipc_ring *q, void *buf, size_t cap, int64_t timeout_ns);

/*
 * mmipc_ring_reserve - zero-copy send, step 1: room for a message of up to len bytes.
 * Returns a pointer to len writable bytes inside the ring (valid until mmipc_ring_commit or
 * mmipc_ring_close on this handle), or NULL with errno as for mmipc_ring_send. The send side stays
 * held until the commit: other senders wait. Fork-safe.
 */
void *mmipc_ring_reserve(mmipc_ring *q, size_t len, int64_t timeout_ns);

/*
 * mmipc_ring_commit - zero-copy send, step 2: publish the reserved message with its final length.
 *   len  at most the reserved length.
 * Returns 0, or -1 with errno EINVAL (NULL q, no reservation pending, len larger than reserved),
 * EPROTO. A process that dies (or a handle closed) between reserve and commit delivers nothing.
 */
int mmipc_ring_commit(mmipc_ring *q, size_t len);

/*
 * mmipc_ring_peek - zero-copy receive, step 1: the next message, in place.
 * Returns a pointer to its bytes and stores its length in *len (valid until mmipc_ring_release or
 * mmipc_ring_close on this handle), or NULL with errno EAGAIN/ETIMEDOUT, EINVAL (NULL q or len,
 * bad timeout), EPROTO. Peeking again before the release returns the same message. The receive
 * side stays held until the release. Fork-safe.
 */
const void *mmipc_ring_peek(mmipc_ring *q, size_t *len, int64_t timeout_ns);

/*
 * mmipc_ring_release - zero-copy receive, step 2: consume the peeked message.
 * Returns 0, or -1 with errno EINVAL (NULL q, nothing peeked). A process that dies between peek and
 * release consumed nothing: the message goes to the next receive.
 */
int mmipc_ring_release(mmipc_ring *q);

/*
 * mmipc_ring_capacity - the ring's buffer size in bytes (the capacity asked at creation, rounded
 * up to a power of two). Returns 0 for NULL and sets no errno. Fork-safe.
 */
size_t mmipc_ring_capacity(const mmipc_ring *q);

/*
 * mmipc_ring_max_message - the largest message the ring carries: capacity / 2 - 8 bytes; a longer
 * send or reserve fails with EMSGSIZE. Returns 0 for NULL and sets no errno. Fork-safe.
 */
size_t mmipc_ring_max_message(const mmipc_ring *q);

/*
 * mmipc_ring_close - give up any exclusive claim, abandon a pending reservation or peek, detach
 * and free the handle. NULL is a no-op returning 0. The ring's name stays (mmipc_unlink removes it).
 * Returns 0, or -1 with errno as for mmipc_detach. Fork-safe.
 */
int mmipc_ring_close(mmipc_ring *q);

#ifdef __cplusplus
}
#endif

#endif /* MMIPC_H */
