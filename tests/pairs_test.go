package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The process-pair tests: real separate processes, one Go peer (tests/gopeer, pure Go, built with
// CGO_ENABLED=0) and one C peer (tests/c/peer.c, linking libmmipc.so), exchange payloads both ways
// through the same regions. Both peers have the same command line and speak the protocol written
// at the top of tests/gopeer/main.go, so every cell of the matrix can put either language in
// either role; the same-language cells come for free and show that a failure is not one side's.

const (
	pairTimeout = 60 * time.Second // per process: a hang is a failure, not a stuck suite
	pairSize    = 100003           // > 64 KiB + 64, so the payload is capped; not a page multiple
	churnSize   = 3*4096 + 77
	churnSecs   = "1.5"
)

var pairLangs = []string{"C", "Go"}

var (
	pairBinsMu sync.Mutex
	pairBins   map[string]string // language -> peer binary
)

// pairPeers builds both peers once per run. The Go peer is built with CGO_ENABLED=0: that the
// build succeeds proves a Go peer needs no cgo.
func pairPeers(t *testing.T) map[string]string {
	t.Helper()
	pairBinsMu.Lock()
	defer pairBinsMu.Unlock()
	if pairBins != nil {
		return pairBins
	}
	goPeer := filepath.Join(binDir, "gopeer")
	cmd := exec.Command("go", "build", "-o", goPeer, "./tests/gopeer")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./tests/gopeer: %v\n%s", err, out)
	}
	pairBins = map[string]string{"C": compileC(t, "tests/c/peer.c"), "Go": goPeer}
	return pairBins
}

var pairSeq atomic.Int64

// pairName is a region name used by no other cell, even across runs sharing a directory.
func pairName(kind string) string {
	return fmt.Sprintf("pair-%s-%d-%d", kind, os.Getpid(), pairSeq.Add(1))
}

// lockedBuffer collects a process's output while the test reads it (waiting for "ready").
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pairProc is one running peer.
type pairProc struct {
	label string // "C create", for messages
	cmd   string // the peer command, whose "ok <cmd>" line success needs
	out   lockedBuffer
	stdin io.WriteCloser // nil unless asked for
	pid   int
	start time.Time     // when it was started
	done  chan struct{} // closed when the process has been waited for
	err   error         // Wait's result, set before done closes
	ctx   context.Context
}

// launchSpec says how to start a peer process.
type launchSpec struct {
	label   string   // for messages
	cmd     string   // the peer command, whose "ok <cmd>" line success needs
	argv    []string // the program and its arguments
	dir     string   // working directory
	env     []string // added to the test's environment
	timeout time.Duration
	stdin   bool                // give it a stdin pipe (pairProc.stdin)
	cred    *syscall.Credential // run as this user, if not nil
}

// launch starts a peer: in its own process group, which is killed when the timeout expires (a
// hang fails the test instead of stalling it). The process is always reaped by the end of the test.
func launch(t *testing.T, s launchSpec) *pairProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	p := &pairProc{label: s.label, cmd: s.cmd, done: make(chan struct{}), ctx: ctx}
	cmd := boundedCommand(ctx, s.argv[0], s.argv[1:]...)
	cmd.SysProcAttr.Credential = s.cred
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if s.stdin {
		var err error
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", p.label, err)
	}
	p.pid, p.start = cmd.Process.Pid, time.Now()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel() // kills it if the test gave up early
		<-p.done
	})
	return p
}

// startPeer starts a peer of language lang running args (args[0] is the command), with
// MMIPC_DIR=dir, bounded by pairTimeout: on timeout its whole process group is killed (an
// anon-parent's child included). The process is always reaped by the end of the test.
func startPeer(t *testing.T, dir, lang string, withStdin bool, args ...string) *pairProc {
	t.Helper()
	return launch(t, launchSpec{label: lang + " " + strings.Join(args, " "), cmd: args[0],
		argv: append([]string{pairPeers(t)[lang]}, args...), dir: dir, env: []string{"MMIPC_DIR=" + dir},
		timeout: pairTimeout, stdin: withStdin})
}

// exited reports whether the process has ended and been reaped.
func (p *pairProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL, reaps the process, and fails the test unless it was still running and
// SIGKILL is what ended it.
func (p *pairProc) kill(t *testing.T) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited on its own before the kill: %v\n%s", p.label, p.err, p.out.String())
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not reaped 10 s after SIGKILL", p.label)
	}
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("%s: ended with %v, want killed by SIGKILL:\n%s", p.label, p.err, p.out.String())
	}
}

// waitFor waits until the peer's output contains s. It returns false if the peer exited or the
// time ran out first.
func (p *pairProc) waitFor(s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			return strings.Contains(p.out.String(), s)
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// problem waits for the peer and says what is wrong with how it ended ("" if nothing): it must
// exit 0 in time with "ok <cmd>" as its last line.
func (p *pairProc) problem() string {
	<-p.done
	switch {
	case p.ctx.Err() != nil:
		return fmt.Sprintf("still running after %v (hang; killed)", pairTimeout)
	case p.err != nil:
		return p.err.Error()
	case !strings.HasPrefix(lastLine(p.out.String())+" ", "ok "+p.cmd+" "):
		return fmt.Sprintf("exited 0 but its last line is %q, want \"ok %s ...\"", lastLine(p.out.String()), p.cmd)
	}
	return ""
}

// finish waits for every peer and fails the test, with every peer's output, if any of them did
// not succeed. It returns whether all did.
func finish(t *testing.T, procs ...*pairProc) bool {
	t.Helper()
	var report strings.Builder
	failed := false
	for _, p := range procs {
		status := p.problem()
		if status != "" {
			failed = true
		} else {
			status = "ok"
		}
		fmt.Fprintf(&report, "\n--- %s: %s\n%s", p.label, status, p.out.String())
	}
	if failed {
		t.Errorf("a peer failed:%s", report.String())
	} else {
		t.Logf("%s", report.String())
	}
	return !failed
}

// TestPairsExchange: a ping and a pong through the same named region, anonymous region and
// read-only attachment, with each language in each role, every process a real separate one.
func TestPairsExchange(t *testing.T) {
	pairPeers(t)
	// Create by name in one process, open by name in the other (started together: the opener
	// retries ENOENT), ping one way, pong the other.
	for _, a := range pairLangs {
		for _, b := range pairLangs {
			t.Run(a+"-creates/"+b+"-opens", func(t *testing.T) {
				dir, name, size := regionDir(t), pairName("xchg"), fmt.Sprint(pairSize)
				finish(t, startPeer(t, dir, a, false, "create", name, size),
					startPeer(t, dir, b, false, "open", name, size))
			})
		}
	}
	// A read-only attachment sees the ping, and a write through it faults (Go: a recovered
	// panic-on-fault at the written address; C: a child killed by SIGSEGV) and changes nothing:
	// the filler checks its ping is intact once the reader is done.
	for _, a := range pairLangs {
		for _, b := range pairLangs {
			t.Run(a+"-fills/"+b+"-reads-only", func(t *testing.T) {
				dir, name, size := regionDir(t), pairName("ro"), fmt.Sprint(3*4096+5)
				fill := startPeer(t, dir, a, true, "fill", name, size)
				if !fill.waitFor("ready\n", 20*time.Second) {
					fill.stdin.Close()
					finish(t, fill)
					t.Fatalf("%s never printed \"ready\"", fill.label)
				}
				ro := startPeer(t, dir, b, false, "read-only", name, size)
				<-ro.done
				fill.stdin.Close() // the filler now checks its ping and unlinks
				finish(t, fill, ro)
			})
		}
	}
	// An anonymous region handed to an exec'd child as fd 3: Go's ExtraFiles, C's dup2 in the
	// forked child before execv. The parent writes the ping, the child the pong.
	for _, a := range pairLangs {
		for _, b := range pairLangs {
			t.Run(a+"-anon-parent/"+b+"-fd-child", func(t *testing.T) {
				dir, size := regionDir(t), fmt.Sprint(5*4096+3)
				p := startPeer(t, dir, a, false, "anon-parent", size, pairPeers(t)[b], "fd-child", "3", size)
				if finish(t, p) && !strings.Contains("\n"+p.out.String(), "\nok fd-child ") {
					t.Errorf("the parent succeeded but its child never printed \"ok fd-child\":\n%s", p.out.String())
				}
			})
		}
	}
	// The classic fork recipe on a named region: the C parent's forked child (only fork-safe
	// calls) counts 1..N while a watcher in another process, started at the same time and
	// retrying ENOENT, opens the region by name, sees every count and acknowledges.
	for _, b := range pairLangs {
		t.Run("C-fork-watch/"+b+"-watch", func(t *testing.T) {
			dir, name, size, n := regionDir(t), pairName("fork"), fmt.Sprint(2*4096), "40"
			finish(t, startPeer(t, dir, "C", false, "fork-watch", name, size, n),
				startPeer(t, dir, b, false, "watch", name, size, n))
		})
	}
}

// TestPairsPersistence: a disk-path region (under t.TempDir(), a real disk file system, not
// /dev/shm) written, synced and closed by one process is read by another after the writer exited.
func TestPairsPersistence(t *testing.T) {
	pairPeers(t)
	for _, a := range pairLangs {
		for _, b := range pairLangs {
			t.Run(a+"-writes-file/"+b+"-reads-file", func(t *testing.T) {
				dir, path, size := regionDir(t), filepath.Join(t.TempDir(), "persist.region"), 2*4096+11
				if !finish(t, startPeer(t, dir, a, false, "write-file", path, fmt.Sprint(size))) {
					return
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Fatalf("after the writer exited: %v", err)
				}
				if want := int64(4096 + 3*4096); st.Size() != want {
					t.Errorf("the region file is %d bytes, want %d (a header page and the data in pages)", st.Size(), want)
				}
				finish(t, startPeer(t, dir, b, false, "read-file", path, fmt.Sprint(size)))
				if _, err := os.Lstat(path); !os.IsNotExist(err) {
					t.Errorf("after read-file unlinked it: lstat %s: %v, want not exist", path, err)
				}
			})
		}
	}
}

// TestPairsChurn: one language creates, fills and unlinks a region in a loop while the other opens
// it in a loop: every open is ENOENT or the whole region (exactly the size, each byte zero or the
// creator's pattern), never a half-made one or another error.
func TestPairsChurn(t *testing.T) {
	pairPeers(t)
	for _, pair := range [][2]string{{"Go", "C"}, {"C", "Go"}} {
		a, b := pair[0], pair[1]
		t.Run(a+"-churns/"+b+"-open-loops", func(t *testing.T) {
			dir, name, size := regionDir(t), pairName("churn"), fmt.Sprint(churnSize)
			churn := startPeer(t, dir, a, false, "churn", name, size, churnSecs)
			opener := startPeer(t, dir, b, false, "open-loop", name, size, churnSecs)
			if !finish(t, churn, opener) {
				return
			}
			var cycles, opened, enoent int
			if _, err := fmt.Sscanf(lastLine(churn.out.String()), "ok churn cycles=%d", &cycles); err != nil || cycles == 0 {
				t.Errorf("churn: %q: want cycles > 0 (%v)", lastLine(churn.out.String()), err)
			}
			if _, err := fmt.Sscanf(lastLine(opener.out.String()), "ok open-loop opened=%d enoent=%d", &opened, &enoent); err != nil {
				t.Fatalf("open-loop: %q: %v", lastLine(opener.out.String()), err)
			}
			// Both outcomes, or the run proved nothing: the two loops did not overlap.
			if opened == 0 || enoent == 0 {
				t.Errorf("open-loop: %d successful opens and %d ENOENT; want both > 0", opened, enoent)
			}
		})
	}
}

// TestPairsBadHeader: files that are not regions of this protocol are refused with EPROTO by both
// languages, with a message that says why.
func TestPairsBadHeader(t *testing.T) {
	pairPeers(t)
	for _, b := range pairLangs {
		t.Run("ordinary-file/"+b+"-opens", func(t *testing.T) {
			dir, name := regionDir(t), pairName("plain")
			content := bytes.Repeat([]byte("this is an ordinary file, not an mmipc region\n"), 200)
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
				t.Fatal(err)
			}
			p := startPeer(t, dir, b, false, "expect-open-errno", name, "EPROTO")
			if finish(t, p) && !strings.Contains(p.out.String(), "magic") {
				t.Errorf("the message does not mention the magic:\n%s", p.out.String())
			}
			if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, content) {
				t.Errorf("the ordinary file changed or went: %v", err)
			}
		})
		t.Run("missing/"+b+"-opens", func(t *testing.T) {
			dir := regionDir(t)
			finish(t, startPeer(t, dir, b, false, "expect-open-errno", pairName("missing"), "ENOENT"))
		})
	}
	// A valid region whose version field alone says 2: the driver bumps it and recomputes the
	// header CRC, so only the version check can refuse it. Restoring version 1 (and the CRC) then
	// lets the region open again, which proves nothing else was disturbed.
	for _, a := range pairLangs {
		t.Run("version-2/"+a+"-creates", func(t *testing.T) {
			dir, name, size := regionDir(t), pairName("v2"), fmt.Sprint(4096+1)
			if !finish(t, startPeer(t, dir, a, false, "write-file", name, size)) {
				return
			}
			path := filepath.Join(dir, name)
			setHeaderVersion(t, path, 1, 2)
			for _, b := range pairLangs {
				p := startPeer(t, dir, b, false, "expect-open-errno", name, "EPROTO")
				if finish(t, p) && !strings.Contains(p.out.String(), "version 2") {
					t.Errorf("%s: the message does not mention the version (2):\n%s", b, p.out.String())
				}
			}
			setHeaderVersion(t, path, 2, 1)
			other := map[string]string{"C": "Go", "Go": "C"}[a]
			finish(t, startPeer(t, dir, other, false, "read-file", name, size))
		})
	}
}

// setHeaderVersion rewrites a region file's version field (offset 8, u32 native endian) from `from`
// to `to` and recomputes header_crc (offset 40, CRC-32 IEEE of bytes 0..39), per docs/PROTOCOL.md.
func setHeaderVersion(t *testing.T, path string, from, to uint32) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, 64)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	if string(h[:8]) != "MMIPCREG" || ne.Uint32(h[8:]) != from || ne.Uint32(h[40:]) != crc32.ChecksumIEEE(h[:40]) {
		t.Fatalf("%s: header % x: want magic MMIPCREG, version %d and a valid CRC", path, h, from)
	}
	ne.PutUint32(h[8:], to)
	ne.PutUint32(h[40:], crc32.ChecksumIEEE(h[:40]))
	if _, err := f.WriteAt(h, 0); err != nil {
		t.Fatal(err)
	}
}
