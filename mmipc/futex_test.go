package mmipc

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// anonBytes returns the bytes of a fresh anonymous region of n bytes, closed with the test.
func anonBytes(t *testing.T, n int) []byte {
	t.Helper()
	r, err := Anon(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r.Bytes()
}

// spawn runs f in a goroutine that the test waits for (up to a minute) before its cleanups unmap
// the memory f uses. A goroutine that outlived its test would act on whatever the next test maps at
// the same address: a late Release there releases that test's lock.
func spawn(t *testing.T, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Error("a goroutine of the test did not finish within a minute")
		}
	})
}

func TestWord(t *testing.T) {
	b := anonBytes(t, 64)
	for _, off := range []int{0, 4, 60} {
		w, err := Word(b, off)
		if err != nil {
			t.Fatalf("Word(b, %d): %v", off, err)
		}
		if unsafe.Pointer(w) != unsafe.Pointer(&b[off]) {
			t.Fatalf("Word(b, %d) does not point at b[%d]", off, off)
		}
		atomic.StoreUint32(w, 0xA1B2C3D4)
		if b[off] != 0xD4 || b[off+3] != 0xA1 {
			t.Fatalf("Word(b, %d): a store landed elsewhere (% x)", off, b[off:off+4])
		}
	}
	for _, c := range []struct {
		b   []byte
		off int
	}{
		{b, -1}, {b, -4}, {b, 61}, {b, 62}, {b, 64}, {b, 1 << 40},
		{b, 1}, {b, 2}, {b, 7}, // misaligned
		{b[1:], 4},           // misaligned through the slice's start
		{nil, 0}, {b[:3], 0}, // too short
	} {
		w, err := Word(c.b, c.off)
		wantErr(t, err, "word", "", syscall.EINVAL)
		if w != nil {
			t.Fatalf("Word(len %d, %d) returned a pointer with its error", len(c.b), c.off)
		}
	}
}

func TestWaitErrors(t *testing.T) {
	b := anonBytes(t, 64)
	w, _ := Word(b, 8)
	atomic.StoreUint32(w, 7)
	misaligned := (*uint32)(unsafe.Pointer(&b[2]))

	wantErr(t, Wait(nil, 0, Forever), "wait", "", syscall.EINVAL)
	wantErr(t, Wait(misaligned, 0, TryOnce), "wait", "", syscall.EINVAL)
	for _, bad := range []time.Duration{-2, -time.Second, -1 << 62} {
		wantErr(t, Wait(w, 7, bad), "wait", "", syscall.EINVAL)
	}
	// Try once: EAGAIN when equal, nil when the word differs.
	wantErr(t, Wait(w, 7, TryOnce), "wait", "", syscall.EAGAIN)
	if err := Wait(w, 8, TryOnce); err != nil {
		t.Fatalf("Wait(TryOnce) on a word that differs: %v", err)
	}
	// A word that differs returns at once, whatever the timeout.
	noBlock(t, "Wait(Forever) on a word that differs", func() {
		if err := Wait(w, 6, Forever); err != nil {
			t.Errorf("Wait(Forever) on a word that differs: %v", err)
		}
	})
	// A positive timeout expires with ETIMEDOUT, not before.
	for _, d := range []time.Duration{time.Nanosecond, 20 * time.Millisecond} {
		start := time.Now()
		err := Wait(w, 7, d)
		el := time.Since(start)
		wantErr(t, err, "wait", "", syscall.ETIMEDOUT)
		if el < d || el > d+2*time.Second {
			t.Fatalf("Wait(%v) gave up after %v", d, el)
		}
	}

	wantErr(t, func() error { _, err := Notify(nil, 1); return err }(), "notify", "", syscall.EINVAL)
	wantErr(t, func() error { _, err := Notify(misaligned, 1); return err }(), "notify", "", syscall.EINVAL)
	for _, bad := range []int{0, -1} {
		n, err := Notify(w, bad)
		wantErr(t, err, "notify", "", syscall.EINVAL)
		if n != 0 {
			t.Fatalf("Notify(%d) = %d with an error", bad, n)
		}
	}
	for _, count := range []int{1, 1 << 40} {
		if n, err := Notify(w, count); n != 0 || err != nil {
			t.Fatalf("Notify(%d) with nobody waiting = %d, %v; want 0, nil", count, n, err)
		}
	}
}

// wakeWaiters notifies word until n waiters have been woken (they may not all sleep yet), bounded.
func wakeWaiters(t *testing.T, word *uint32, count, n int) {
	t.Helper()
	woken := 0
	for end := time.Now().Add(10 * time.Second); woken < n; {
		k, err := Notify(word, count)
		if err != nil {
			t.Fatal(err)
		}
		if k > count {
			t.Fatalf("Notify(%d) woke %d", count, k)
		}
		woken += k
		if time.Now().After(end) {
			t.Fatalf("woke %d of %d waiters in 10 s", woken, n)
		}
		time.Sleep(time.Millisecond)
	}
	if woken != n {
		t.Fatalf("woke %d waiters, want %d", woken, n)
	}
}

// TestWaitNotify: waiters sleep until notified (the word unchanged: only Notify ends the wait),
// Notify wakes no more than asked, and a waiter and a notifier that map the same region at different
// addresses meet (a shared futex, keyed on the page).
func TestWaitNotify(t *testing.T) {
	d := testDir(t)
	r := mustAttach(t, "Create", func() (*Region, error) { return d.Create("futex", 4096, 0) })
	other := mustAttach(t, "Open", func() (*Region, error) { return d.Open("futex") })
	if &r.Bytes()[0] == &other.Bytes()[0] {
		t.Fatal("the two attachments share one mapping")
	}
	ww, _ := Word(r.Bytes(), 128)
	nw, _ := Word(other.Bytes(), 128)

	const waiters = 3
	done := make(chan error, waiters)
	for range waiters {
		spawn(t, func() { done <- Wait(ww, 0, 30*time.Second) })
	}
	// Nobody returns before a notify: the word never changes.
	select {
	case err := <-done:
		t.Fatalf("a waiter returned before any Notify: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	wakeWaiters(t, nw, 1, 1) // through the other mapping
	if err := <-done; err != nil {
		t.Fatalf("woken waiter: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Notify(1) ended a second wait: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	wakeWaiters(t, nw, 1<<30, waiters-1)
	for range waiters - 1 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("woken waiter: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a woken waiter did not return")
		}
	}
}

// TestWaitPattern is the documented pattern: the writer stores then notifies, the waiter loads,
// checks and waits with what it loaded; no update is lost (every wait is bounded, and the test
// fails if the total time shows lost wake-ups).
func TestWaitPattern(t *testing.T) {
	w, _ := Word(anonBytes(t, 64), 0)
	const rounds = 2000
	ack, _ := Word(anonBytes(t, 64), 0)
	errc := make(chan error, 1)
	spawn(t, func() {
		for i := uint32(1); i <= rounds; i++ {
			atomic.StoreUint32(w, i)
			Notify(w, 1)
			for atomic.LoadUint32(ack) != i { // wait for the consumer before the next round
				if err := Wait(ack, i-1, 5*time.Second); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	})
	start := time.Now()
	for i := uint32(1); i <= rounds; i++ {
		for {
			v := atomic.LoadUint32(w)
			if v == i {
				break
			}
			if err := Wait(w, v, 5*time.Second); err != nil {
				t.Fatalf("round %d: %v (a lost wake-up)", i, err)
			}
		}
		atomic.StoreUint32(ack, i)
		Notify(ack, 1)
	}
	if err := <-errc; err != nil {
		t.Fatalf("the writer: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("%d rounds took %v", rounds, el)
	}
}

func TestDeadline(t *testing.T) {
	for _, c := range []struct {
		timeout time.Duration
		errno   syscall.Errno
		expired bool
	}{{Forever, 0, false}, {TryOnce, syscall.EAGAIN, true}, {time.Hour, 0, false}} {
		dl := deadline{timeout: c.timeout}
		e, ok := dl.expired()
		if ok != c.expired || e != c.errno {
			t.Errorf("timeout %v: expired() = %v, %v", c.timeout, e, ok)
		}
	}
	dl := deadline{timeout: 10 * time.Millisecond}
	if r := dl.bounded(time.Millisecond); r != time.Millisecond {
		t.Errorf("bounded(1ms) of a 10 ms deadline = %v", r)
	}
	time.Sleep(11 * time.Millisecond)
	if e, ok := dl.expired(); !ok || e != syscall.ETIMEDOUT {
		t.Errorf("after the deadline: expired() = %v, %v", e, ok)
	}
	// startAt starts the clock once: a later start does not restart it.
	dl = deadline{timeout: time.Hour}
	dl.startAt(time.Now().Add(-2 * time.Hour))
	dl.startAt(time.Now())
	if e, ok := dl.expired(); !ok || e != syscall.ETIMEDOUT {
		t.Errorf("an hour's deadline started two hours ago: expired() = %v, %v", e, ok)
	}
	if r := (&deadline{timeout: Forever}).bounded(-1); r != -1 {
		t.Errorf("unbounded Forever = %v", r)
	}
}
