// Package handoff is the Go form of c_examples/handoff.h: the layout anon_parent and fd_child (Go
// or C) agree on inside an anonymous region. The parent writes its message, publishes it by
// setting Sent and starts the child with the region's descriptor as fd FD; the child reads the
// message, writes its reply and publishes it by setting Replied. Both lengths come from another
// process: each reader checks them against TextMax before use.
package handoff

import (
	"fmt"
	"unsafe"
)

const (
	FD           = 3                // HANDOFF_FD: exec.Cmd.ExtraFiles[0], or the C parent's dup2
	TextMax      = 1024             // HANDOFF_TEXT_MAX
	RegionSize   = 4096             // HANDOFF_REGION_SIZE
	TimeoutMS    = 10000            // HANDOFF_TIMEOUT_MS
	Message      = "nihao child!!"  // HANDOFF_MESSAGE
	DefaultReply = "nihao father!!" // HANDOFF_DEFAULT_REPLY
)

// Handoff mirrors struct handoff: native-endian uint32s at offsets 0, 4, 8 and 12, then the two
// texts at 16 and 16 + TextMax, with no padding. Sent and Replied are C11 atomics there and must
// only be touched through sync/atomic here, whose sequentially consistent operations are at least
// as strong as C's release store and acquire load.
type Handoff struct {
	Sent     uint32 // 1 once Msg and MsgLen are written (before the child starts)
	Replied  uint32 // 1 once the child has written Reply and ReplyLen
	MsgLen   uint32 // bytes of Msg, at most TextMax
	ReplyLen uint32 // bytes of Reply, at most TextMax
	Msg      [TextMax]byte
	Reply    [TextMax]byte
}

// View returns b, the bytes of an mmipc.Region, viewed as the handoff. It fails if b is too small
// to hold it. The Region must stay open while the view is used: closing it unmaps the memory
// under it.
func View(b []byte) (*Handoff, error) {
	size := int(unsafe.Sizeof(Handoff{}))
	// Whoever made the region chose its size: the layout must fit before it is touched.
	if len(b) < size {
		return nil, fmt.Errorf("the region has %d bytes, the handoff needs %d", len(b), size)
	}
	// Sound: a region's bytes start on a page boundary (mmap returns page-aligned memory, and a
	// named region's header is a whole page), so every field is 4-byte aligned as sync/atomic
	// requires; the memory is a mapping outside the Go heap, which the garbage collector neither
	// moves nor frees; the size was checked above; and the caller keeps the Region open, so
	// mapped, for as long as the view is used.
	return (*Handoff)(unsafe.Pointer(&b[0])), nil
}
