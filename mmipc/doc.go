// Package mmipc shares memory between processes: Go programs that import it, and C and Python
// programs that use libmmipc.so (built from this module), over the same bytes. It needs no cgo.
//
// A named region lives as a file under $MMIPC_DIR (default /dev/shm) or at a file-system path; any
// process can attach it by name. Creation is atomic (initialised under a temporary name, then
// linked), so an opener never sees a half-made region; opening validates the region's header, so a
// damaged or foreign file is an EPROTO error, never a crash. Anonymous regions (Anon) share memory
// with child processes; MapFile maps an ordinary file raw, like the classic open + mmap recipe.
//
// The byte layout is specified once, in docs/PROTOCOL.md. Errors are *Error values that unwrap to
// a syscall.Errno, so errors.Is(err, fs.ErrExist) and errors.Is(err, syscall.EPROTO) work.
package mmipc

// Version is the library version; mmipc.h's MMIPC_VERSION and mmipc_version() say the same.
const Version = "0.1.0"
