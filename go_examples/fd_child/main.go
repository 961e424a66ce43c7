// Command fd_child is the Go twin of c_examples/fd_child.c, the program anon_parent (Go or C)
// starts: it finds the parent's anonymous region at fd 3, attaches it with mmipc.FromFile, prints
// the parent's message and writes a reply in the layout of c_examples/handoff.h.
//
//	anon_parent ./go_fd_child [REPLY]      (REPLY defaults to "nihao father!!")
//
// Run without a region at fd 3 it fails: EBADF if fd 3 is closed, EPROTO for a file that is not a
// region, EACCES for a read-only one. (A Go runtime, this program's or libmmipc's, opens files of
// its own at start-up, cgroup limits since Go 1.25, which may take fd 3 when nothing holds it.)
package main

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

// handoff mirrors struct handoff in c_examples/handoff.h: native-endian uint32s at offsets 0, 4,
// 8 and 12, then the two texts. sent and replied are C11 atomics there and are only touched
// through sync/atomic here.
type handoff struct {
	sent     uint32 // 1 once msg and msgLen are written (before the child starts)
	replied  uint32 // 1 once the child has written reply and replyLen
	msgLen   uint32 // bytes of msg, at most handoffTextMax
	replyLen uint32 // bytes of reply, at most handoffTextMax
	msg      [handoffTextMax]byte
	reply    [handoffTextMax]byte
}

const (
	handoffFD           = 3                // HANDOFF_FD: exec.Cmd.ExtraFiles[0], or the C parent's dup2
	handoffTextMax      = 1024             // HANDOFF_TEXT_MAX
	handoffDefaultReply = "nihao father!!" // HANDOFF_DEFAULT_REPLY
)

func main() { os.Exit(run()) }

func run() int {
	reply := handoffDefaultReply
	if len(os.Args) > 1 {
		reply = os.Args[1]
	}

	f := os.NewFile(handoffFD, "region")
	r, err := mmipc.FromFile(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fd_child: %v\n", err)
		return 1
	}
	f.Close() // the Region keeps its own duplicate
	defer r.Close()
	b := r.Bytes()
	// The parent chose the region's size: make sure the layout fits before touching it.
	if uintptr(len(b)) < unsafe.Sizeof(handoff{}) {
		fmt.Fprintf(os.Stderr, "fd_child: the region has %d bytes, the handoff needs %d\n", len(b), unsafe.Sizeof(handoff{}))
		return 1
	}
	// Sound: an anonymous region's bytes start the mapping, on a page boundary, so every field is
	// 4-byte aligned as sync/atomic requires; the memory is a mapping outside the Go heap, which the
	// garbage collector neither moves nor frees; the size was checked above; and r stays open, so
	// mapped, for as long as h is used.
	h := (*handoff)(unsafe.Pointer(&b[0]))
	// sync/atomic is sequentially consistent, at least as strong as the C side's acquire load.
	if atomic.LoadUint32(&h.sent) != 1 {
		fmt.Fprintln(os.Stderr, "fd_child: the parent sent no message")
		return 1
	}
	// msgLen comes from another process: read it once, and never trust it past the message's room.
	n := h.msgLen
	if n > handoffTextMax {
		fmt.Fprintf(os.Stderr, "fd_child: corrupt message length %d (room for %d)\n", n, handoffTextMax)
		return 1
	}
	fmt.Printf("child got: %s\n", h.msg[:n])

	h.replyLen = uint32(copy(h.reply[:], reply))
	// Printed (os.Stdout is unbuffered) before the reply is published, so that on a shared
	// terminal these lines come before the parent's "parent got".
	fmt.Printf("child replied: %s\n", h.reply[:h.replyLen])
	atomic.StoreUint32(&h.replied, 1)
	return 0
}
