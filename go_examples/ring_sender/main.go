// Command ring_sender is the Go twin of c_examples/ring_sender.c: it sends COUNT numbered,
// checksummed messages (go_examples/ringmsg) through the ring a receiver in C, Go or Python
// created. Same arguments, output and timeouts as the C program.
//
//	ring_receiver [NAME [COUNT [SENDERS]]]  &  ring_sender [NAME [COUNT [ID]]]
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mmipc/mmipc/go_examples/ringmsg"
	"github.com/mmipc/mmipc/mmipc"
)

func main() { os.Exit(run()) }

func run() int {
	name, count, id := ringmsg.DefaultName, uint64(1000), uint32(0)
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	if len(os.Args) > 2 {
		count, _ = strconv.ParseUint(os.Args[2], 10, 64)
	}
	if len(os.Args) > 3 {
		v, _ := strconv.ParseUint(os.Args[3], 10, 32)
		id = uint32(v)
	}
	// The receiver creates the ring; wait up to 10 s for it to appear.
	var q *mmipc.Ring
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		q, err = mmipc.OpenRing(name)
		if !errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ring_sender: %v\n", err)
		return 1
	}
	defer q.Close()
	msg := make([]byte, ringmsg.Max)
	for seq := uint64(0); seq < count; seq++ {
		n := ringmsg.Build(msg, seq, id)
		if err := q.Send(msg[:n], ringmsg.Timeout); err != nil {
			if errors.Is(err, syscall.ETIMEDOUT) {
				fmt.Fprintf(os.Stderr, "ring_sender %d: message %d: timed out: is the receiver running?\n", id, seq)
			} else {
				fmt.Fprintf(os.Stderr, "ring_sender %d: message %d: %v\n", id, seq, err)
			}
			return 1
		}
	}
	fmt.Printf("ring_sender %d: sent %d messages\n", id, count)
	return 0
}
