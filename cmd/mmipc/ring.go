package main

import (
	"fmt"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	ringSynopsis = "mmipc ring stat NAME\tshow a message ring's fill, senders and receivers"
	ringUsage    = `usage: mmipc ring stat NAME

Prints a message ring's state, read without disturbing it (the ring is attached read-only):
  capacity      the buffer's size in bytes
  max message   the largest message a send accepts
  used          bytes in the buffer now (records: an 8-byte header plus the message padded to 8)
  messages      messages waiting to be received ("damaged" when the records do not parse)
  head, tail    the receive and send positions (byte counts since creation)
  senders       "none yet", "1 (exclusive, pid P, alive|dead)", or "shared (several processes;
                lock held by pid P|free)" once a second sender has used the ring
  receivers     the same for the receiving side
  sleeping senders, sleeping receivers
                blocked sends (ring full) and receives (ring empty) registered now; at most
                that many (a call that timed out stays counted until the next wake-up)
A region that is not a ring is refused (exit status 1).
`
)

func runRing(c *cmdEnv, args []string) int {
	operands, code, ok := c.parse(newFlags("ring"), args, ringUsage)
	if !ok {
		return code
	}
	if len(operands) == 0 {
		return c.usageError("missing subcommand (stat)")
	}
	if operands[0] != "stat" {
		return c.usageError("unknown subcommand %q (ring has: stat)", operands[0])
	}
	sub := &cmdEnv{name: "ring stat", stdout: c.stdout, stderr: c.stderr}
	// Flags after "stat" were already parsed above (none but --help exist): the rest are names.
	name, code, ok := sub.oneName(operands[1:])
	if !ok {
		return code
	}
	ri, err := mmipc.RingStat(name)
	if err != nil {
		return sub.fail(err)
	}
	w := c.stdout
	fmt.Fprintf(w, "name: %s\n", name)
	fmt.Fprintf(w, "capacity: %d (%s)\n", ri.Capacity, humanSize(int64(ri.Capacity)))
	fmt.Fprintf(w, "max message: %d (%s)\n", ri.MaxMessage, humanSize(int64(ri.MaxMessage)))
	fmt.Fprintf(w, "used: %s\n", usedString(ri))
	fmt.Fprintf(w, "messages: %s\n", messagesString(ri.Messages))
	fmt.Fprintf(w, "head: %d\n", ri.Head)
	fmt.Fprintf(w, "tail: %d\n", ri.Tail)
	fmt.Fprintf(w, "senders: %s\n", sideString(ri.Send))
	fmt.Fprintf(w, "receivers: %s\n", sideString(ri.Recv))
	fmt.Fprintf(w, "sleeping senders: %d\n", ri.Send.Sleepers)
	fmt.Fprintf(w, "sleeping receivers: %d\n", ri.Recv.Sleepers)
	return exitOK
}

// usedString is "48 bytes (1.2%)".
func usedString(ri mmipc.RingInfo) string {
	if ri.Used < 0 {
		return fmt.Sprintf("damaged (tail %d is not within capacity of head %d)", ri.Tail, ri.Head)
	}
	pct := 0.0
	if ri.Capacity > 0 {
		pct = 100 * float64(ri.Used) / float64(ri.Capacity)
	}
	return fmt.Sprintf("%d bytes (%.1f%%)", ri.Used, pct)
}

// messagesString is the count of waiting messages, or why there is none.
func messagesString(n int) string {
	if n < 0 {
		return "damaged (the records in the buffer do not parse; receivers will get EPROTO)"
	}
	return fmt.Sprintf("%d", n)
}

// sideString describes who sends (or receives) on a ring.
func sideString(s mmipc.SideInfo) string {
	switch {
	case s.Shared:
		lock := "free"
		if s.LockOwner != 0 {
			lock = fmt.Sprintf("held by pid %d (%s)", s.LockOwner, liveness(s.LockOwner))
		}
		return "shared (several processes; lock " + lock + ")"
	case s.Owner != 0:
		state := "dead"
		if s.OwnerAlive {
			state = "alive"
		}
		return fmt.Sprintf("1 (exclusive, pid %d, %s)", s.Owner, state)
	default:
		return "none yet"
	}
}
