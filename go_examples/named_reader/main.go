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
	greetingTimeoutMS   = 10000            // GREETING_TIMEOUT_MS
)

func main() { os.Exit(run()) }

func run() int {
	name := greetingDefaultName
	if len(os.Args) > 1 {
		name = os.Args[1]
	}

	// The writer may not have created the region yet: ErrNotExist means "not yet", anything else
	// is an error. Open never sees a half-made region, so no other state needs handling.
	var r *mmipc.Region
	var err error
	for ms := 0; ms < greetingTimeoutMS; ms++ {
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
	b := r.Bytes()
	hdr := int(unsafe.Sizeof(greeting{}))
	// The writer chose the size: the fields must fit before they are touched.
	if len(b) < hdr {
		fmt.Fprintf(os.Stderr, "named_reader: the region has %d bytes, the greeting needs %d\n", len(b), hdr)
		return 1
	}
	// Sound: the region's bytes start on a page boundary (mmap returns page-aligned memory and the
	// header is a whole page), so every field is 4-byte aligned as sync/atomic requires; the memory
	// is a mapping outside the Go heap, which the garbage collector neither moves nor frees; and r
	// stays open, so mapped, for as long as g is used.
	g := (*greeting)(unsafe.Pointer(&b[0]))
	ready := false
	for ms := 0; ms < greetingTimeoutMS && !ready; ms++ {
		// sync/atomic is sequentially consistent, at least as strong as the C side's acquire load.
		ready = atomic.LoadUint32(&g.ready) == 1
		if !ready {
			time.Sleep(time.Millisecond)
		}
	}
	if !ready {
		fmt.Fprintf(os.Stderr, "named_reader: no message within %d ms\n", greetingTimeoutMS)
		return 1
	}
	// len comes from another process: read it once, and never trust it past the region's end.
	n, room := g.len, len(b)-hdr
	if uint64(n) > uint64(room) {
		fmt.Fprintf(os.Stderr, "named_reader: corrupt message length %d (room for %d)\n", n, room)
		return 1
	}
	text := b[hdr : hdr+int(n)]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i] // the C reader's %.*s stops at a NUL too
	}
	fmt.Printf("reader got: %s\n", text)
	atomic.StoreUint32(&g.ack, 1)
	return 0
}
