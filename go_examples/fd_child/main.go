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

	"github.com/mmipc/mmipc/go_examples/handoff"
	"github.com/mmipc/mmipc/mmipc"
)

func main() { os.Exit(run()) }

func run() int {
	reply := handoff.DefaultReply
	if len(os.Args) > 1 {
		reply = os.Args[1]
	}

	f := os.NewFile(handoff.FD, "region")
	r, err := mmipc.FromFile(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fd_child: %v\n", err)
		return 1
	}
	f.Close() // the Region keeps its own duplicate
	defer r.Close()
	// The parent chose the region's size: View refuses a region too small for the layout. h is the
	// region's bytes seen as struct handoff; r stays open while it is used.
	h, err := handoff.View(r.Bytes())
	if err != nil {
		fmt.Fprintf(os.Stderr, "fd_child: %v\n", err)
		return 1
	}
	// sync/atomic is sequentially consistent, at least as strong as the C side's acquire load.
	if atomic.LoadUint32(&h.Sent) != 1 {
		fmt.Fprintln(os.Stderr, "fd_child: the parent sent no message")
		return 1
	}
	// MsgLen comes from another process: read it once, and never trust it past the message's room.
	n := h.MsgLen
	if n > handoff.TextMax {
		fmt.Fprintf(os.Stderr, "fd_child: corrupt message length %d (room for %d)\n", n, handoff.TextMax)
		return 1
	}
	fmt.Printf("child got: %s\n", h.Msg[:n])

	h.ReplyLen = uint32(copy(h.Reply[:], reply))
	// Printed (os.Stdout is unbuffered) before the reply is published, so that on a shared
	// terminal these lines come before the parent's "parent got".
	fmt.Printf("child replied: %s\n", h.Reply[:h.ReplyLen])
	atomic.StoreUint32(&h.Replied, 1)
	return 0
}
