// Package greeting is the Go form of c_examples/greeting.h: the layout named_writer and
// named_reader (Go or C) agree on inside their region. Two unrelated processes share only the
// region's bytes, so this layout is their protocol: the writer writes the text and its length,
// then publishes them by setting Ready; the reader waits for Ready, checks the length against the
// room there is (it comes from another process), prints the text and sets Ack.
package greeting

import (
	"fmt"
	"unsafe"
)

const (
	DefaultName = "mmipc-greeting" // GREETING_DEFAULT_NAME
	RegionSize  = 4096             // GREETING_REGION_SIZE
	TimeoutMS   = 10000            // GREETING_TIMEOUT_MS
)

// Greeting mirrors struct greeting: native-endian uint32s at offsets 0, 4 and 8, with no
// padding; the text (C's flexible array member) follows it, up to the region's end. Ready and Ack
// are C11 atomics there and must only be touched through sync/atomic here, whose sequentially
// consistent operations are at least as strong as C's release store and acquire load.
type Greeting struct {
	Ready uint32 // 1 once the text and Len are written
	Ack   uint32 // 1 once the reader has read them
	Len   uint32 // bytes of text
}

// View returns b, the bytes of an mmipc.Region, viewed as the greeting: its fields and the room
// for the text after them. It fails if b is too small to hold the fields. The Region must stay
// open while the view is used: closing it unmaps the memory under both.
func View(b []byte) (*Greeting, []byte, error) {
	size := int(unsafe.Sizeof(Greeting{}))
	// Whoever created the region chose its size: the fields must fit before they are touched.
	if len(b) < size {
		return nil, nil, fmt.Errorf("the region has %d bytes, the greeting needs %d", len(b), size)
	}
	// Sound: a region's bytes start on a page boundary (mmap returns page-aligned memory and a
	// named region's header is a whole page), so every field is 4-byte aligned as sync/atomic
	// requires; the memory is a mapping outside the Go heap, which the garbage collector neither
	// moves nor frees; the size was checked above; and the caller keeps the Region open, so
	// mapped, for as long as the view is used.
	return (*Greeting)(unsafe.Pointer(&b[0])), b[size:], nil
}
