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
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

// greeting mirrors struct greeting in c_examples/greeting.h: native-endian uint32s at offsets 0, 4
// and 8, then the text. ready and ack are C11 atomics there and are only touched through
// sync/atomic here.
type greeting struct {
	ready uint32 // 1 once text and len are written
	ack   uint32 // 1 once the reader has read them
	len   uint32 // bytes of text
}

const (
	greetingDefaultName = "mmipc-greeting" // GREETING_DEFAULT_NAME
	greetingRegionSize  = 4096             // GREETING_REGION_SIZE
	greetingTimeoutMS   = 10000            // GREETING_TIMEOUT_MS
)

func main() { os.Exit(run()) }

func run() int {
	name, message := greetingDefaultName, "hello from the writer"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	if len(os.Args) > 2 {
		message = os.Args[2]
	}

	r, err := mmipc.Create(name, greetingRegionSize, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "named_writer: %v\n", err)
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(os.Stderr, "named_writer: a stale region? remove it with mmipc.Unlink(%q)\n", name)
		}
		return 1
	}
	b := r.Bytes()
	// Sound: the region's bytes start on a page boundary (mmap returns page-aligned memory and the
	// header is a whole page), so every field is 4-byte aligned as sync/atomic requires; the memory
	// is a mapping outside the Go heap, which the garbage collector neither moves nor frees; and r
	// stays open, so mapped, for as long as g is used.
	g := (*greeting)(unsafe.Pointer(&b[0]))
	text := b[unsafe.Sizeof(greeting{}):]
	n := copy(text, message) // at most the room there is, as the C writer clamps
	g.len = uint32(n)
	// sync/atomic is sequentially consistent, at least as strong as the C side's release store.
	atomic.StoreUint32(&g.ready, 1)
	fmt.Printf("writer sent: %s\n", text[:n])

	// Raw shared memory cannot block, so poll for the reader's acknowledgement, with a deadline.
	acked := false
	for ms := 0; ms < greetingTimeoutMS && !acked; ms++ {
		acked = atomic.LoadUint32(&g.ack) == 1
		if !acked {
			time.Sleep(time.Millisecond)
		}
	}
	mmipc.Unlink(name) // peers that are still attached keep working
	r.Close()
	if !acked {
		fmt.Fprintf(os.Stderr, "named_writer: no reader acknowledged within %d ms\n", greetingTimeoutMS)
		return 1
	}
	fmt.Println("writer: reader acknowledged")
	return 0
}
