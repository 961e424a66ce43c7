// Command libmmipc is the C library: go build -buildmode=c-shared -o build/libmmipc.so .
//
// This file is the thin list of Go functions the C side (mmipc.c) calls after its fork and NULL
// checks: each converts its arguments, calls package mmipc, and fills the C handle or reports the
// error. The public C names live in mmipc.c; these mmipcgo_ names are not exported from the .so.
package main

/*
#include <stdlib.h>
#include "mmipc_internal.h"
*/
import "C"

import (
	"errors"
	"io/fs"
	"math"
	"syscall"
	"unsafe"

	pointer "github.com/mattn/go-pointer"

	"github.com/mmipc/mmipc/mmipc"
)

func main() {}

//export mmipcgo_create
func mmipcgo_create(name *C.char, size C.size_t, mode C.uint, dir *C.char, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	r, err := mmipc.Dir(C.GoString(dir)).Create(C.GoString(name), int(size), fs.FileMode(mode))
	return fill(out, r, err, errbuf)
}

//export mmipcgo_open
func mmipcgo_open(name *C.char, readOnly C.int, dir *C.char, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	d := mmipc.Dir(C.GoString(dir))
	open := d.Open
	if readOnly != 0 {
		open = d.OpenReadOnly
	}
	r, err := open(C.GoString(name))
	return fill(out, r, err, errbuf)
}

//export mmipcgo_anon
func mmipcgo_anon(size C.size_t, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	r, err := mmipc.Anon(int(size))
	return fill(out, r, err, errbuf)
}

//export mmipcgo_map_file
func mmipcgo_map_file(path *C.char, writable C.int, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	r, err := mmipc.MapFile(C.GoString(path), writable != 0)
	return fill(out, r, err, errbuf)
}

//export mmipcgo_attach_fd
func mmipcgo_attach_fd(fd C.int, readOnly C.int, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	r, err := mmipc.FromFd(int(fd), readOnly != 0)
	return fill(out, r, err, errbuf)
}

//export mmipcgo_ring_create
func mmipcgo_ring_create(name *C.char, capacity C.size_t, mode C.uint, dir *C.char, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	q, err := mmipc.Dir(C.GoString(dir)).CreateRing(C.GoString(name), int(capacity), fs.FileMode(mode))
	return fillRing(out, q, err, errbuf)
}

//export mmipcgo_ring_open
func mmipcgo_ring_open(name *C.char, dir *C.char, out *C.struct_mmipc_region, errbuf *C.char) C.int {
	q, err := mmipc.Dir(C.GoString(dir)).OpenRing(C.GoString(name))
	return fillRing(out, q, err, errbuf)
}

//export mmipcgo_detach
func mmipcgo_detach(key unsafe.Pointer) {
	r := pointer.Restore(key).(*mmipc.Region)
	pointer.Unref(key)
	r.Close() // munmap and close cannot fail for a mapping and descriptor we own
}

//export mmipcgo_unlink
func mmipcgo_unlink(name *C.char, dir *C.char, errbuf *C.char) C.int {
	return errno(mmipc.Dir(C.GoString(dir)).Unlink(C.GoString(name)), errbuf)
}

//export mmipcgo_copy_file
func mmipcgo_copy_file(src, dst *C.char, errbuf *C.char) C.int {
	return errno(mmipc.CopyFile(C.GoString(src), C.GoString(dst)), errbuf)
}

//export mmipcgo_stat
func mmipcgo_stat(name *C.char, dir *C.char, out *C.mmipc_info, errbuf *C.char) C.int {
	info, err := mmipc.Dir(C.GoString(dir)).Stat(C.GoString(name))
	if err != nil {
		return errno(err, errbuf)
	}
	*out = C.mmipc_info{
		size:        C.uint64_t(info.Size),
		file_size:   C.uint64_t(info.FileSize),
		created_ns:  C.int64_t(info.Created.UnixNano()),
		creator_pid: C.uint32_t(info.CreatorPID),
		mode:        C.uint32_t(info.Mode),
		uid:         C.uint32_t(info.UID),
	}
	if info.Ring {
		out.flags = C.MMIPC_INFO_RING
	}
	if info.Attached {
		out.attached = 1
	}
	return 0
}

//export mmipcgo_gc
func mmipcgo_gc(dir *C.char, removed *C.int, errbuf *C.char) C.int {
	n, err := mmipc.Dir(C.GoString(dir)).GC()
	*removed = C.int(min(n, math.MaxInt32)) // a count past INT_MAX is not a failure
	return errno(err, errbuf)
}

// fill hands a new Region to the C handle: the addresses the C side needs, and a go-pointer key
// that keeps the Region alive until mmipc_detach.
func fill(out *C.struct_mmipc_region, r *mmipc.Region, err error, errbuf *C.char) C.int {
	if err != nil {
		return errno(err, errbuf)
	}
	m, b := r.Mapping(), r.Bytes()
	out.map_base = unsafe.Pointer(unsafe.SliceData(m))
	out.map_len = C.size_t(len(m))
	out.data = unsafe.Pointer(unsafe.SliceData(b))
	out.size = C.size_t(len(b))
	out.fd = C.int(r.Fd())
	out.gostate = pointer.Save(r)
	return 0
}

// fillRing hands a new ring's region to the C handle; the C side runs the ring itself (ring.c).
func fillRing(out *C.struct_mmipc_region, q *mmipc.Ring, err error, errbuf *C.char) C.int {
	if err != nil {
		return errno(err, errbuf)
	}
	return fill(out, q.Region(), nil, errbuf)
}

// errno maps err to the errno the C caller gets, and writes its message, naming the C call, into
// the caller's thread-local last-error buffer.
func errno(err error, errbuf *C.char) C.int {
	if err == nil {
		return 0
	}
	code, msg := syscall.EIO, "mmipc: "+err.Error()
	var e *mmipc.Error
	if errors.As(err, &e) {
		code, msg = e.Errno, "mmipc_"+e.Describe()
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(errbuf)), C.MMIPC_ERRBUF_SIZE)
	n := copy(buf[:len(buf)-1], msg)
	buf[n] = 0
	return C.int(code)
}
