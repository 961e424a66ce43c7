package mmipc

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	fields := func(state string, start string) string {
		// Fields 3..22: state, then 18 numbers, then starttime, then a few more.
		f := []string{state}
		for i := 4; i <= 21; i++ {
			f = append(f, strconv.Itoa(i))
		}
		return strings.Join(append(f, start, "99", "100"), " ")
	}
	for _, c := range []struct {
		line  string
		start uint32
		state byte
		ok    bool
	}{
		{"1234 (sleep) " + fields("S", "5678"), 5678, 'S', true},
		// A command name with spaces and parentheses: only the last ')' counts.
		{"1234 (a) b (c) ) d) " + fields("Z", "42"), 42, 'Z', true},
		{"1 (x) " + fields("R", "4294967297"), 1, 'R', true}, // the low 32 bits
		{"1 (x) " + fields("R", "-1"), 0, 0, false},
		{"1 (x) " + fields("RS", "1"), 0, 0, false},
		{"1 (x) S 2 3", 0, 0, false},
		{"no parenthesis " + fields("S", "1"), 0, 0, false},
		{"", 0, 0, false},
	} {
		start, state, ok := parseStat([]byte(c.line))
		if start != c.start || state != c.state || ok != c.ok {
			t.Errorf("parseStat(%q) = %d, %q, %v; want %d, %q, %v", c.line, start, state, ok, c.start, c.state, c.ok)
		}
	}
}

func TestSelfIdentity(t *testing.T) {
	id := selfIdentity()
	if int(uint32(id)) != os.Getpid() {
		t.Fatalf("identity %#x: pid %d, want %d", id, uint32(id), os.Getpid())
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("/proc: %v", err)
	}
	start, _, ok := parseStat(b)
	if !ok || start != uint32(id>>32) || start == 0 {
		t.Fatalf("identity %#x: start time %d; /proc/self/stat says %d (%v)", id, id>>32, start, ok)
	}
	if selfIdentity() != id {
		t.Fatal("the identity changed")
	}
	if !identityAlive(id) {
		t.Fatal("this process is not alive")
	}
}

func TestIdentityAlive(t *testing.T) {
	self := selfIdentity()
	pid, start := int(uint32(self)), uint32(self>>32)
	for _, c := range []struct {
		what string
		id   uint64
	}{
		{"pid 0", makeIdentity(0, start)},
		{"pid beyond PID_MAX_LIMIT", makeIdentity(pidMaxLimit+1, start)},
		{"pid 0xFFFFFFFF", 0xFFFFFFFF},
		{"all ones (a shared side)", ^uint64(0)},
		{"a recycled pid (own pid, another start time)", makeIdentity(pid, start+1)},
		{"a recycled pid (start time 0)", makeIdentity(pid, 0)},
	} {
		if identityAlive(c.id) {
			t.Errorf("%s (%#x) is alive", c.what, c.id)
		}
	}
	if !identityAlive(makeIdentity(pid, start)) {
		t.Error("own identity is dead")
	}

	// A child: alive while it runs, dead as a zombie (killed, not reaped), dead once reaped.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("sleep: %v", err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	cpid := cmd.Process.Pid
	cstart, _, ok := procStat(cpid)
	if !ok {
		t.Fatalf("/proc/%d/stat unreadable", cpid)
	}
	child := makeIdentity(cpid, cstart)
	if !identityAlive(child) {
		t.Fatal("a running child is dead")
	}
	if identityAlive(makeIdentity(cpid, cstart+1)) {
		t.Fatal("the child's pid with another start time is alive")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitZombie(t, cpid)
	if identityAlive(child) {
		t.Fatal("a zombie is alive")
	}
	cmd.Wait()
	if identityAlive(child) {
		t.Fatal("a reaped child is alive")
	}
}

// waitZombie waits until pid (a child killed, not reaped) shows state Z in /proc.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); ; {
		_, state, ok := procStat(pid)
		if ok && state == 'Z' {
			return
		}
		if !ok {
			t.Fatalf("pid %d vanished before being reaped", pid)
		}
		if time.Now().After(end) {
			t.Fatalf("pid %d is in state %q 10 s after SIGKILL", pid, state)
		}
		time.Sleep(time.Millisecond)
	}
}
