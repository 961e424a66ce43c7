package tests

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

// The hostile-peer test of issue 7: while the test process scribbles random bytes over a plain
// region's header and over a ring's header, control words and records, a C, a Go and a Python peer
// (tests/c/hostile_peer.c, tests/hostilepeer, tests/python_hostile_peer.py: one command line,
// specified at the top of tests/hostilepeer/main.go) re-open the plain region by name and send and
// receive on the ring they opened before. Every outcome must be one that mmipc.h documents for
// damage (EPROTO) or for time (EAGAIN, ETIMEDOUT); no peer may hang or die of a signal; and once
// the scribbling stops and the damage is repaired, every peer does real work again.

var hostileLangs = []string{"C", "Go", "Python"}

// hostilePeers: the peers of the hostile-peer and attack tests in each language.
func hostilePeers(t *testing.T) map[string][]string {
	return peerSet(t, "tests/c/hostile_peer.c", "hostilepeer", "python_hostile_peer.py")
}

// startHostile starts the peer of lang with args (args[0] is the command) in dir, with a stdin
// pipe, bounded by timeout (then its process group is killed: a hang is a failure). cred, when not
// nil, is the user it runs as. It is reaped by the end of the test.
func startHostile(t *testing.T, dir, lang string, timeout time.Duration, cred *syscall.Credential, args ...string) *hostileProc {
	t.Helper()
	return &hostileProc{launch(t, launchSpec{label: lang + " " + strings.Join(args, " "), cmd: args[0],
		argv: append(append([]string{}, hostilePeers(t)[lang]...), args...), dir: dir, env: peerEnv(dir),
		timeout: timeout, stdin: true, cred: cred})}
}

// hostileProc is a running hostile peer.
type hostileProc struct {
	*pairProc
}

// say writes a line to the peer's stdin.
func (p *hostileProc) say(t *testing.T, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(p.stdin, line); err != nil {
		t.Fatalf("%s: writing %q to its stdin: %v\n%s", p.label, line, err, p.out.String())
	}
}

// await waits until the peer printed s, and fails the test with its output otherwise.
func (p *hostileProc) await(t *testing.T, s string, d time.Duration) {
	t.Helper()
	if !p.waitFor(s, d) {
		t.Fatalf("%s never printed %q (exited: %v):\n%s", p.label, s, p.err, p.out.String())
	}
}

// hostileCounts parses key=value integers from the line of out that starts with prefix.
func hostileCounts(t *testing.T, out, prefix string) map[string]int {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		m := map[string]int{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("%q: %s is not a number", line, f)
				}
				m[k] = n
			}
		}
		return m
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

// Offsets of the ring's control block (docs/PROTOCOL.md "Ring"), in the region's data.
const (
	scrTail, scrRecvSleepers, scrHead, scrSendSleepers = 64, 72, 128, 136
	scrSendSide, scrRecvSide, scrSendLock, scrRecvLock = 192, 256, 320, 384
	scrBuffer                                          = 512
)

// scribbler writes garbage over shared memory with atomic stores (the peers read the same words
// atomically), counting its writes.
type scribbler struct {
	header []byte // the plain region's file from offset 0: its header is the first 64 bytes
	good   [mmipc.HeaderFixedLen]byte
	lies   [][mmipc.HeaderFixedLen]byte // well-formed headers (valid CRC) whose sizes disagree with the file
	ring   []byte                       // the ring's file from offset 0: header, control block, buffer
	ctl    []byte                       // the ring's data: control block, then the buffer
	cap    uint64
	// The ring's header and the first line of its control block (magic, version, capacity, CRC),
	// which attached peers validated once and must never read again.
	ringGood, ctlGood [64]byte
	writes            atomic.Int64
	rng               *rand.Rand
}

func scribbleStore64(b []byte, off int, v uint64) {
	atomic.StoreUint64((*uint64)(unsafe.Pointer(&b[off])), v)
}

func scribbleStore32(b []byte, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off])), v)
}

// setHeader writes a 64-byte header, a word at a time (readers may see it half-written: the CRC
// must catch that).
func (s *scribbler) setHeader(h *[mmipc.HeaderFixedLen]byte) {
	for off := 0; off < mmipc.HeaderFixedLen; off += 8 {
		scribbleStore64(s.header, off, binary.NativeEndian.Uint64(h[off:]))
	}
}

// position is a value for tail or head: garbage, or plausible (near the other one).
func (s *scribbler) position(other int) uint64 {
	r := s.rng
	switch r.IntN(4) {
	case 0:
		return r.Uint64()
	case 1:
		return load64(s.ctl, other) + 8*uint64(r.IntN(int(s.cap/8)+1))
	case 2:
		return load64(s.ctl, other) - 8*uint64(r.IntN(int(s.cap/8)+1))
	default:
		return load64(s.ctl, other) + uint64(r.IntN(8)) // unaligned, mostly
	}
}

// once makes one random write.
func (s *scribbler) once() {
	r := s.rng
	switch r.IntN(18) {
	case 0: // a random word of the plain region's header
		scribbleStore64(s.header, 8*r.IntN(8), r.Uint64())
	case 1: // one flipped bit
		off := 8 * r.IntN(8)
		scribbleStore64(s.header, off, load64(s.header, off)^1<<r.IntN(64))
	case 2: // a header that passes the CRC but lies about the sizes
		s.setHeader(&s.lies[r.IntN(len(s.lies))])
	case 3, 4: // the real header back, so that opens also succeed
		s.setHeader(&s.good)
	case 5:
		scribbleStore64(s.ctl, scrTail, s.position(scrHead))
	case 6:
		scribbleStore64(s.ctl, scrHead, s.position(scrTail))
	case 7, 8: // repair the positions (tail = head), so that real traffic resumes and gets hit
		h := load64(s.ctl, scrHead) &^ 7
		scribbleStore64(s.ctl, scrHead, h)
		scribbleStore64(s.ctl, scrTail, h)
	case 9:
		scribbleStore32(s.ctl, []int{scrRecvSleepers, scrSendSleepers}[r.IntN(2)], r.Uint32()>>r.IntN(32))
	case 10: // a side: owner, owner_handle, in_op, revoke or cpu
		side := []int{scrSendSide, scrRecvSide}[r.IntN(2)]
		switch r.IntN(5) {
		case 0:
			other := scrSendSide + scrRecvSide - side
			// garbage, unclaimed, shared, or the other side's owner: a live peer's identity
			scribbleStore64(s.ctl, side, []uint64{r.Uint64(), 0, ^uint64(0), load64(s.ctl, other)}[r.IntN(4)])
		case 1:
			scribbleStore32(s.ctl, side+8, r.Uint32()%4)
		case 2:
			scribbleStore32(s.ctl, side+12, r.Uint32()%2)
		case 3:
			scribbleStore32(s.ctl, side+16, r.Uint32()%2)
		default:
			scribbleStore32(s.ctl, side+20, []uint32{r.Uint32(), 0, 1, ^uint32(0)}[r.IntN(4)])
		}
	case 11: // a side lock: owner, wake_seq, sleepers or state
		lock := []int{scrSendLock, scrRecvLock}[r.IntN(2)]
		switch r.IntN(4) {
		case 0:
			scribbleStore64(s.ctl, lock, []uint64{r.Uint64(), 0}[r.IntN(2)])
		case 1:
			scribbleStore32(s.ctl, lock+8, r.Uint32())
		case 2:
			scribbleStore32(s.ctl, lock+12, r.Uint32()%3)
		default:
			scribbleStore32(s.ctl, lock+16, []uint32{r.Uint32(), 1, 2, 4}[r.IntN(4)])
		}
	case 12: // repair the locks
		for _, lock := range []int{scrSendLock, scrRecvLock} {
			scribbleStore32(s.ctl, lock+16, 0)
			scribbleStore64(s.ctl, lock, 0)
		}
	case 13: // the ring region's header, or the first line of its control block
		if r.IntN(2) == 0 {
			scribbleStore64(s.ring, 8*r.IntN(8), r.Uint64())
		} else {
			scribbleStore64(s.ctl, 8*r.IntN(8), r.Uint64())
		}
	case 14: // a random record header
		scribbleStore64(s.ctl, scrBuffer+8*r.IntN(int(s.cap/8)), r.Uint64())
	default: // a well-formed record header that lies about its length, at the head
		h := load64(s.ctl, scrHead) &^ 7
		kind := uint32(1 + r.IntN(2))
		tag := kind | uint32(h>>3)<<8
		scribbleStore64(s.ctl, scrBuffer+int(h&(s.cap-1)), uint64(r.Uint32N(uint32(2*s.cap)))|uint64(tag)<<32)
	}
	s.writes.Add(1)
}

// run scribbles until stop closes, with pauses of up to 200 µs between writes.
func (s *scribbler) run(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		for range 1 + s.rng.IntN(4) {
			s.once()
		}
		time.Sleep(time.Duration(s.rng.IntN(200)) * time.Microsecond)
	}
}

// TestHardeningScribble: see the top of this file. The peers' outcome counts are logged (-v).
func TestHardeningScribble(t *testing.T) {
	hostilePeers(t)
	const (
		plainName, ringName = "plain", "ring"
		plainSize           = 3*4096 + 100
		ringCap             = 4096
		secs                = 3
	)
	dir := regionDir(t)
	d := mmipc.Dir(dir)
	plain, err := d.Create(plainName, plainSize, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	ring, err := d.CreateRing(ringName, ringCap, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ring.Close()
	// The raw files, header included: the scribbler writes where no API lets it.
	rawPlain, err := mmipc.MapFile(filepath.Join(dir, plainName), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rawPlain.Close()
	rawRing, err := mmipc.MapFile(filepath.Join(dir, ringName), true)
	if err != nil {
		t.Fatal(err)
	}
	defer rawRing.Close()
	info, err := d.Stat(ringName)
	if err != nil {
		t.Fatal(err)
	}
	s := &scribbler{header: rawPlain.Bytes(), ring: rawRing.Bytes(), ctl: rawRing.Bytes()[info.HeaderSize:], cap: ringCap,
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	copy(s.good[:], s.header)
	copy(s.ringGood[:], s.ring)
	copy(s.ctlGood[:], s.ctl)
	h, err := mmipc.DecodeHeader(s.good[:], int64(len(s.header)))
	if err != nil {
		t.Fatal(err)
	}
	// Lies a reader must refuse: more data than the file holds, less, a larger header page, none.
	for _, l := range []mmipc.Header{
		{Version: 1, HeaderSize: h.HeaderSize, DataSize: h.DataSize + 4096},
		{Version: 1, HeaderSize: h.HeaderSize, DataSize: 4096},
		{Version: 1, HeaderSize: 8192, DataSize: h.DataSize},
		{Version: 1, HeaderSize: h.HeaderSize, DataSize: 0},
		{Version: 1, HeaderSize: h.HeaderSize, DataSize: 1 << 62},
	} {
		l.CreatorPID, l.Created = h.CreatorPID, h.Created
		var b [mmipc.HeaderFixedLen]byte
		l.Encode(b[:])
		s.lies = append(s.lies, b)
	}

	peers := map[string]*hostileProc{}
	for _, lang := range hostileLangs {
		peers[lang] = startHostile(t, dir, lang, 90*time.Second, nil,
			"hostile", plainName, fmt.Sprint(plainSize), ringName, "back-"+lang, fmt.Sprint(secs), lang)
	}
	for _, lang := range hostileLangs {
		peers[lang].await(t, "ready\n", 30*time.Second)
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go s.run(stop, stopped)
	stopScribbler := sync.OnceFunc(func() { close(stop); <-stopped })
	defer stopScribbler()
	start := time.Now()
	for _, lang := range hostileLangs {
		peers[lang].say(t, "start")
	}
	for _, lang := range hostileLangs {
		peers[lang].await(t, "hostile open_ok=", secs*time.Second+60*time.Second)
	}
	stopScribbler()
	t.Logf("%d scribbles in %v", s.writes.Load(), time.Since(start).Round(time.Millisecond))

	// Repair: the plain region's header and a pattern in its data; the ring re-created under its
	// name (its header repaired first, so that Unlink sees a region); a ring of 100 messages for
	// each peer to receive.
	s.setHeader(&s.good)
	copy(s.ring[:64], s.ringGood[:])
	copy(s.ctl[:64], s.ctlGood[:])
	for i := range plain.Bytes() {
		plain.Bytes()[i] = byte(i*7 + 3)
	}
	if err := d.Unlink(ringName); err != nil {
		t.Fatal(err)
	}
	ring, err = d.CreateRing(ringName, 64<<10, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	for _, lang := range hostileLangs {
		back, err := d.CreateRing("back-"+lang, 64<<10, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			if err := back.Send(fmt.Appendf(nil, "back %d", i), time.Second); err != nil {
				t.Fatal(err)
			}
		}
		back.Close()
	}
	for _, lang := range hostileLangs {
		peers[lang].say(t, "go")
	}
	procs := []*pairProc{peers["C"].pairProc, peers["Go"].pairProc, peers["Python"].pairProc}
	if !finish(t, procs...) {
		t.FailNow()
	}
	for _, lang := range hostileLangs {
		c := hostileCounts(t, peers[lang].out.String(), "ok hostile ")
		t.Logf("%s: opens: %d ok, %d EPROTO; ring calls: %d ok, %d EPROTO, %d EAGAIN/ETIMEDOUT",
			lang, c["open_ok"], c["open_eproto"], c["ring_ok"], c["ring_eproto"], c["ring_again"])
		// Both outcomes of each kind, or the scribbling did not reach this peer (or it never got
		// through between two scribbles).
		for _, k := range []string{"open_ok", "open_eproto", "ring_ok", "ring_eproto"} {
			if c[k] == 0 {
				t.Errorf("%s: %s = 0, want > 0", lang, k)
			}
		}
		if c["sent"] != 100 || c["received"] != 100 {
			t.Errorf("%s: sent=%d received=%d after the repair, want 100 each", lang, c["sent"], c["received"])
		}
	}
	// The work phase's messages, each peer's in order, and nothing else.
	next := map[string]int{}
	buf := make([]byte, ring.MaxMessage())
	for range 3 * 100 {
		n, err := ring.Recv(buf, time.Second)
		if err != nil {
			t.Fatalf("after %v messages: %v", next, err)
		}
		lang, i, ok := strings.Cut(string(buf[:n]), " ")
		if want := fmt.Sprint(next[lang]); !ok || i != want {
			t.Fatalf("message %q; want %q from %s next", buf[:n], lang+" "+want, lang)
		}
		next[lang]++
	}
	if _, err := ring.Recv(buf, mmipc.TryOnce); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("the ring after the work messages: %v, want EAGAIN (empty)", err)
	}
}
