// Command named_writer is the Go twin of c_examples/named_writer.c: it creates a named region,
// writes a message in the layout of c_examples/greeting.h, publishes it, waits for a reader (Go or
// C) to acknowledge, then removes the name. Same arguments, output and timeout as the C program.
//
//	named_writer [NAME [MESSAGE]]  &  named_reader [NAME]
//
// The region lives at $MMIPC_DIR/NAME (default /dev/shm/NAME) while the two run.
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/mmipc/mmipc/go_examples/greeting"
	"github.com/mmipc/mmipc/mmipc"
)

func main() { os.Exit(run()) }

func run() int {
	name, message := greeting.DefaultName, "hello from the writer"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	if len(os.Args) > 2 {
		message = os.Args[2]
	}

	r, err := mmipc.Create(name, greeting.RegionSize, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "named_writer: %v\n", err)
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(os.Stderr, "named_writer: a stale region? remove it with mmipc.Unlink(%q)\n", name)
		}
		return 1
	}
	// g is the region's first bytes seen as struct greeting, text the room after it; r stays open
	// while they are used.
	g, text, err := greeting.View(r.Bytes())
	if err != nil { // not at greeting.RegionSize, but the check costs nothing
		fmt.Fprintf(os.Stderr, "named_writer: %v\n", err)
		mmipc.Unlink(name)
		r.Close()
		return 1
	}
	n := copy(text, message) // at most the room there is, as the C writer clamps
	g.Len = uint32(n)
	// Publish: Ready is set last, through sync/atomic, so a reader that sees it sees text and Len.
	atomic.StoreUint32(&g.Ready, 1)
	fmt.Printf("writer sent: %s\n", text[:n])

	// Raw shared memory cannot block, so poll for the reader's acknowledgement, with a deadline.
	acked := false
	for ms := 0; ms < greeting.TimeoutMS && !acked; ms++ {
		acked = atomic.LoadUint32(&g.Ack) == 1
		if !acked {
			time.Sleep(time.Millisecond)
		}
	}
	mmipc.Unlink(name) // peers that are still attached keep working
	r.Close()
	if !acked {
		fmt.Fprintf(os.Stderr, "named_writer: no reader acknowledged within %d ms\n", greeting.TimeoutMS)
		return 1
	}
	fmt.Println("writer: reader acknowledged")
	return 0
}
