// Command anon_parent is the Go twin of c_examples/anon_parent.c: it makes an anonymous region,
// writes a message in the layout of c_examples/handoff.h, and starts the child program (the Go
// fd_child, or the C one) with the region as fd 3. The child replies in the shared memory; the
// parent waits for the reply, with a deadline, prints it and waits for the child.
//
//	anon_parent CHILD [ARGS]      e.g.  anon_parent ./go_fd_child "nihao father!!"
//
// ARGS are passed on to CHILD.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"time"

	"github.com/mmipc/mmipc/go_examples/handoff"
	"github.com/mmipc/mmipc/mmipc"
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s CHILD [ARGS]\n", os.Args[0])
		return 2
	}
	r, err := mmipc.Anon(handoff.RegionSize)
	if err != nil {
		fmt.Fprintf(os.Stderr, "anon_parent: %v\n", err)
		return 1
	}
	defer r.Close()
	// h is the region's bytes seen as struct handoff; r stays open while it is used.
	h, err := handoff.View(r.Bytes())
	if err != nil { // not at handoff.RegionSize, but the check costs nothing
		fmt.Fprintf(os.Stderr, "anon_parent: %v\n", err)
		return 1
	}
	h.MsgLen = uint32(copy(h.Msg[:], handoff.Message))
	// Publish: Sent is set last, through sync/atomic, so a child that sees it sees Msg and MsgLen.
	atomic.StoreUint32(&h.Sent, 1)
	fmt.Printf("parent sent: %s\n", h.Msg[:h.MsgLen])

	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// ExtraFiles[0] is the child's fd 3 (after stdin, stdout, stderr): handoff.FD.
	cmd.ExtraFiles = []*os.File{r.File()}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "anon_parent: %v\n", err)
		return 1
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Raw shared memory cannot block, so poll for the reply, and watch for the child's exit so that
	// a child that dies without replying is reported at once rather than after the deadline.
	var waitErr error
	done, replied := false, false
	for ms := 0; ms < handoff.TimeoutMS && !(replied && done); ms++ {
		// The exit is checked before the flag: a child seen gone that had replied is seen replied.
		if !done {
			select {
			case waitErr = <-exited:
				done = true
			default:
			}
		}
		replied = atomic.LoadUint32(&h.Replied) == 1
		if done && !replied {
			break
		}
		if !(replied && done) {
			time.Sleep(time.Millisecond)
		}
	}
	code := 0
	if !done {
		cmd.Process.Kill()
		<-exited
		what := "reply"
		if replied {
			what = "exit"
		}
		fmt.Fprintf(os.Stderr, "anon_parent: the child did not %s within %d ms; killed it\n", what, handoff.TimeoutMS)
		code = 1
	}
	if replied {
		// ReplyLen comes from another process: read it once, and never trust it past the reply's room.
		n := h.ReplyLen
		if n > handoff.TextMax {
			fmt.Fprintf(os.Stderr, "anon_parent: corrupt reply length %d (room for %d)\n", n, handoff.TextMax)
			code = 1
		} else {
			fmt.Printf("parent got: %s\n", h.Reply[:n])
		}
	} else if done {
		fmt.Fprintln(os.Stderr, "anon_parent: the child exited without replying")
		code = 1
	}
	if done && waitErr != nil {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) && ee.Exited() {
			fmt.Fprintf(os.Stderr, "anon_parent: the child failed with exit status %d\n", ee.ExitCode())
		} else {
			fmt.Fprintf(os.Stderr, "anon_parent: the child failed: %v\n", waitErr)
		}
		code = 1
	}
	return code
}
