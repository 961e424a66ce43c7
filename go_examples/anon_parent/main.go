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
	handoffTextMax    = 1024            // HANDOFF_TEXT_MAX
	handoffRegionSize = 4096            // HANDOFF_REGION_SIZE
	handoffTimeoutMS  = 10000           // HANDOFF_TIMEOUT_MS
	handoffMessage    = "nihao child!!" // HANDOFF_MESSAGE
)

func main() { os.Exit(run()) }

func run() int {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, "usage: %s CHILD [ARGS]\n", os.Args[0])
		return 2
	}
	r, err := mmipc.Anon(handoffRegionSize)
	if err != nil {
		fmt.Fprintf(os.Stderr, "anon_parent: %v\n", err)
		return 1
	}
	defer r.Close()
	b := r.Bytes()
	// Sound: an anonymous region's bytes start the mapping, on a page boundary, so every field is
	// 4-byte aligned as sync/atomic requires; the memory is a mapping outside the Go heap, which the
	// garbage collector neither moves nor frees; the region is fresh and ours, so its size is what
	// we asked for (more than the struct); and r stays open, so mapped, for as long as h is used.
	h := (*handoff)(unsafe.Pointer(&b[0]))
	h.msgLen = uint32(copy(h.msg[:], handoffMessage))
	atomic.StoreUint32(&h.sent, 1)
	fmt.Printf("parent sent: %s\n", h.msg[:h.msgLen])

	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// ExtraFiles[0] is the child's fd 3 (after stdin, stdout, stderr): HANDOFF_FD.
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
	for ms := 0; ms < handoffTimeoutMS && !(replied && done); ms++ {
		// The exit is checked before the flag: a child seen gone that had replied is seen replied.
		if !done {
			select {
			case waitErr = <-exited:
				done = true
			default:
			}
		}
		replied = atomic.LoadUint32(&h.replied) == 1
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
		fmt.Fprintf(os.Stderr, "anon_parent: the child did not %s within %d ms; killed it\n", what, handoffTimeoutMS)
		code = 1
	}
	if replied {
		// replyLen comes from another process: read it once, and never trust it past the reply's room.
		n := h.replyLen
		if n > handoffTextMax {
			fmt.Fprintf(os.Stderr, "anon_parent: corrupt reply length %d (room for %d)\n", n, handoffTextMax)
			code = 1
		} else {
			fmt.Printf("parent got: %s\n", h.reply[:n])
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
