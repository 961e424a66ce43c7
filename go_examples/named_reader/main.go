// Command named_reader is the Go twin of c_examples/named_reader.c: it opens the region a writer
// (Go or C) created, waiting for it to appear, waits for the message in the layout of
// c_examples/greeting.h, prints it and acknowledges. Same arguments, output and timeout as the C
// program.
//
//	named_writer [NAME [MESSAGE]]  &  named_reader [NAME]
package main

import (
	"bytes"
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
	name := greeting.DefaultName
	if len(os.Args) > 1 {
		name = os.Args[1]
	}

	// The writer may not have created the region yet: ErrNotExist means "not yet", anything else
	// is an error. Open never sees a half-made region, so no other state needs handling.
	var r *mmipc.Region
	var err error
	for ms := 0; ms < greeting.TimeoutMS; ms++ {
		r, err = mmipc.Open(name)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "named_reader: %v\n", err)
		return 1
	}
	defer r.Close()
	// The writer chose the size: View refuses a region too small for the fields. g is the region's
	// first bytes seen as struct greeting, text the room after it; r stays open while they are used.
	g, text, err := greeting.View(r.Bytes())
	if err != nil {
		fmt.Fprintf(os.Stderr, "named_reader: %v\n", err)
		return 1
	}
	ready := false
	for ms := 0; ms < greeting.TimeoutMS && !ready; ms++ {
		// sync/atomic is sequentially consistent, at least as strong as the C side's acquire load.
		ready = atomic.LoadUint32(&g.Ready) == 1
		if !ready {
			time.Sleep(time.Millisecond)
		}
	}
	if !ready {
		fmt.Fprintf(os.Stderr, "named_reader: no message within %d ms\n", greeting.TimeoutMS)
		return 1
	}
	// Len comes from another process: read it once, and never trust it past the region's end.
	n, room := g.Len, len(text)
	if uint64(n) > uint64(room) {
		fmt.Fprintf(os.Stderr, "named_reader: corrupt message length %d (room for %d)\n", n, room)
		return 1
	}
	text = text[:n]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i] // the C reader's %.*s stops at a NUL too
	}
	fmt.Printf("reader got: %s\n", text)
	atomic.StoreUint32(&g.Ack, 1)
	return 0
}
