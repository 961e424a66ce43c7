package mmipc

import (
	"fmt"
	"runtime/debug"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A process with write access to a region's file can truncate it under every peer that has it
// mapped; their next access to the lost pages raises SIGBUS, which kills a C program. Go turns such
// a fault into a panic when debug.SetPanicOnFault is on, and the calls below turn that panic into
// an error: a truncated region is damaged shared memory, so the error is EPROTO, like any other
// damage a peer can do.

// Guard runs f with the region's bytes and returns f's memory faults as an error instead of a
// crash: EPROTO when the region's file was truncated under the mapping (the usual cause), else
// EFAULT. Use it around code that reads or writes a region other processes can write to (see
// docs/RELIABILITY.md), including Wait, Notify and Lock calls on its bytes: those work on plain
// slices and do not know the region. The Ring guards itself. Other panics propagate. After a
// fault the region's bytes should be left alone: Close it. A closed region gives EBADF and f is not called. Close waits for f to return,
// and f must not call r's methods: f works on the data it is given (a method called in f while
// another goroutine waits in Close would wait for that Close, which waits for f).
func (r *Region) Guard(f func(data []byte)) error { return r.guard("guard", byCaller, f) }

// guard is Guard for an op whose accesses are who's.
func (r *Region) guard(op string, who accessor, f func(data []byte)) (err error) {
	r.mu.RLock() // Close waits: the mapping stays while f runs
	defer r.mu.RUnlock()
	if r.closed {
		return &Error{Op: op, Name: r.name, Errno: syscall.EBADF, Detail: "region is closed"}
	}
	defer r.endGuard(op, who, &err, debug.SetPanicOnFault(true))
	f(r.data)
	return nil
}

// accessor says whose code made a faulting access, which decides what the fault can mean.
type accessor bool

const (
	byCaller  accessor = false // the caller's code (Guard's f): it may write a read-only mapping
	byLibrary accessor = true  // this package's own code, which never writes a read-only mapping
)

// endGuard is deferred with the previous SetPanicOnFault setting: it restores it and turns a memory
// fault's panic into *err. It is a plain deferred method (no closure), so that guarding the ring's
// hot path allocates nothing; recover works because endGuard is the deferred call itself.
func (r *Region) endGuard(op string, who accessor, err *error, old bool) {
	debug.SetPanicOnFault(old)
	if p := recover(); p != nil {
		*err = r.faultError(op, who, faultAddr(p))
	}
}

// faultAddr is the address of a memory fault's panic; any other panic goes on.
func faultAddr(p any) uintptr {
	fault, ok := p.(interface{ Addr() uintptr })
	if !ok {
		panic(p)
	}
	return fault.Addr()
}

// faultError explains a fault at addr. Inside the mapping, a read, or a write to a writable
// mapping, faults only on a page beyond the file's end (SIGBUS): the file was truncated, and may
// have been grown back since. Only the caller's code can also have written to a read-only mapping
// (SIGSEGV), which Go cannot tell apart: there only a file that is shorter now is a truncation.
func (r *Region) faultError(op string, who accessor, addr uintptr) error {
	var st unix.Stat_t
	shorter := unix.Fstat(r.fd, &st) == nil && st.Size < int64(len(r.mem))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(r.mem)))
	inside := addr >= base && addr-base < uintptr(len(r.mem))
	switch {
	case shorter:
		return &Error{Op: op, Name: r.name, Errno: syscall.EPROTO, Detail: fmt.Sprintf(
			"the region's file was truncated to %d bytes under a %d-byte mapping (memory fault at %#x)", st.Size, len(r.mem), addr)}
	case inside && (who == byLibrary || !r.readOnly):
		return &Error{Op: op, Name: r.name, Errno: syscall.EPROTO, Detail: fmt.Sprintf(
			"the region's file was truncated under the mapping, and has grown back since (memory fault at %#x)", addr)}
	}
	return &Error{Op: op, Name: r.name, Errno: syscall.EFAULT, Detail: fmt.Sprintf("memory fault at %#x", addr)}
}
