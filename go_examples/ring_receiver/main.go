// Command ring_receiver is the Go twin of c_examples/ring_receiver.c: it creates a message ring,
// receives COUNT messages from each of SENDERS senders (C, Go or Python, any mix), and checks every
// one: per-sender order, no loss, no repeat, payload checksum. Then it removes the ring's name.
//
//	ring_receiver [NAME [COUNT [SENDERS]]]  &  ring_sender [NAME [COUNT [ID]]] ...
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/mmipc/mmipc/go_examples/ringmsg"
	"github.com/mmipc/mmipc/mmipc"
)

const maxSenders = 64

func main() { os.Exit(run()) }

func run() int {
	name, count, senders := ringmsg.DefaultName, uint64(1000), uint64(1)
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	if len(os.Args) > 2 {
		count, _ = strconv.ParseUint(os.Args[2], 10, 64)
	}
	if len(os.Args) > 3 {
		senders, _ = strconv.ParseUint(os.Args[3], 10, 32)
	}
	if senders < 1 || senders > maxSenders {
		fmt.Fprintf(os.Stderr, "ring_receiver: SENDERS must be 1 to %d\n", maxSenders)
		return 2
	}
	q, err := mmipc.CreateRing(name, ringmsg.Capacity, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ring_receiver: %v\n", err)
		return 1
	}
	defer q.Close()
	defer mmipc.Unlink(name)
	next := make([]uint64, senders)
	msg, want := make([]byte, ringmsg.Max), make([]byte, ringmsg.Max)
	for got := uint64(0); got < count*senders; got++ {
		n, err := q.Recv(msg, ringmsg.Timeout)
		if err != nil {
			if errors.Is(err, syscall.ETIMEDOUT) {
				fmt.Fprintf(os.Stderr, "ring_receiver: after %d messages: timed out: are the senders running?\n", got)
			} else {
				fmt.Fprintf(os.Stderr, "ring_receiver: after %d messages: %v\n", got, err)
			}
			return 1
		}
		seq, sender, ok := ringmsg.Parse(msg[:n])
		if !ok {
			fmt.Fprintf(os.Stderr, "ring_receiver: a %d-byte message is too short\n", n)
			return 1
		}
		if uint64(sender) >= senders || seq != next[sender] {
			fmt.Fprintf(os.Stderr, "ring_receiver: got message %d of sender %d, want sender < %d and the next seq in order\n", seq, sender, senders)
			return 1
		}
		if l := ringmsg.Build(want, seq, sender); l != n || !bytes.Equal(msg[:n], want[:l]) {
			fmt.Fprintf(os.Stderr, "ring_receiver: message %d of sender %d is damaged\n", seq, sender)
			return 1
		}
		next[sender]++
	}
	fmt.Printf("ring_receiver: %d messages from %d sender(s): in order, none lost or repeated, checksums match\n", count*senders, senders)
	return 0
}
