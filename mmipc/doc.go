// Package mmipc shares memory between processes: Go programs that import it, and C and Python
// programs that use libmmipc.so (built from this module), over the same bytes. It needs no cgo: a
// Go peer builds with CGO_ENABLED=0.
//
// A named region lives as a file under $MMIPC_DIR (default /dev/shm) or at a file-system path; any
// process can attach it by name. Creation is atomic (initialised under a temporary name, then
// linked), so an opener never sees a half-made region; opening validates the region's header, so a
// damaged or foreign file is an EPROTO error, never a crash. Anonymous regions (Anon) share memory
// with child processes: Go cannot fork, so a Go parent hands the region's File to the child it
// starts (exec.Cmd's ExtraFiles), and the child attaches it with FromFile. MapFile maps an
// ordinary file raw, like the classic open + mmap recipe.
//
// On top of raw memory, the sync layer: Wait and Notify on a shared 32-bit word (a shared futex), a
// Lock that survives a holder's death (EOWNERDEAD, then Consistent), and a message Ring with
// variable-length messages between any number of senders and receivers (lock-free for one of
// each). C and Python peers use the same words, locks and rings.
//
// Every process attached to a named region holds a lock on its file that the kernel drops when the
// process dies, so Stat and List tell whether anyone is attached, and GC removes exactly the regions
// that crashed programs left behind.
//
// The byte layout is specified once, in docs/PROTOCOL.md. Errors are *Error values that unwrap to
// a syscall.Errno, so errors.Is(err, fs.ErrExist) and errors.Is(err, syscall.EPROTO) work.
//
// # Names across the languages
//
// The C functions are mmipc_ plus the operation in snake case; Go uses the Go-cased operation
// (as golang.org/x/sys/unix does for system calls) and methods where C takes a handle. The same
// operation has the same errno in every language.
//
//	C (mmipc.h)                          Go (this package)
//	mmipc_create(name, size, mode)       Create(name, size, perm)
//	mmipc_open(name, 0)                  Open(name)
//	mmipc_open(name, MMIPC_RDONLY)       OpenReadOnly(name)
//	mmipc_unlink(name)                   Unlink(name)
//	mmipc_anon(size)                     Anon(size)
//	mmipc_map_file(path, writable)       MapFile(path, writable)
//	mmipc_attach_fd(fd, 0)               FromFile(f), FromFd(fd, false)
//	mmipc_attach_fd(fd, MMIPC_RDONLY)    FromFileReadOnly(f), FromFd(fd, true)
//	mmipc_fd(r)                          r.Fd(), r.File()
//	mmipc_data(r), mmipc_size(r)         r.Bytes(), r.Size()
//	mmipc_sync(r)                        r.Sync()
//	mmipc_detach(r)                      r.Close()
//	mmipc_copy_file(src, dst)            CopyFile(src, dst), CopyFileProgress(src, dst, progress)
//	mmipc_stat(name, &info)              Stat(name) (Info); List() for the whole directory
//	mmipc_gc()                           GC(); Dir.Collect(dryRun) names what it removes
//	(SIGBUS in C)                        r.Guard(f): a truncated file's fault becomes EPROTO
//	mmipc_wait(word, v, timeout_ns)      Wait(word, v, timeout); Word(b, off) gets the *uint32
//	mmipc_notify(word, count)            Notify(word, count)
//	MMIPC_FOREVER, 0                     Forever, TryOnce (timeouts are time.Durations)
//	mmipc_lock *l = (void *)p            l, err := LockAt(b)
//	mmipc_lock_init/acquire/...          l.Init(), l.Acquire(timeout), l.Consistent(), l.Release()
//	mmipc_ring_create(name, cap, mode)   CreateRing(name, capacity, perm)
//	mmipc_ring_open(name)                OpenRing(name)
//	mmipc_ring_send/recv(q, ...)         q.Send(msg, timeout), q.Recv(buf, timeout)
//	mmipc_ring_reserve/commit(q, ...)    q.Reserve(n, timeout), q.Commit(n)
//	mmipc_ring_peek/release(q, ...)      q.Peek(timeout), q.Release()
//	mmipc_ring_capacity/max_message(q)   q.Capacity(), q.MaxMessage()
//	mmipc_ring_close(q)                  q.Close()
//	(the mmipc command: mmipc ring stat) RingStat(name), q.Stat()
//	errno, mmipc_last_error()            *Error: Errno, and Describe() is the message after "mmipc_"
//	$MMIPC_DIR at each call              EnvDir() at each call; Dir("path") for an explicit one
package mmipc

// Version is the library version; mmipc.h's MMIPC_VERSION and mmipc_version() say the same.
const Version = "0.3.0"
