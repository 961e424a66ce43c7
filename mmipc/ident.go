package mmipc

import (
	"bytes"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Process identity, as docs/PROTOCOL.md ("Process identity") defines it: pid | start_time << 32,
// where start_time is the low 32 bits of field 22 of /proc/<pid>/stat. The start time tells a
// recycled pid from the process that held it.

// pidMaxLimit is the kernel's PID_MAX_LIMIT (1 << 22): no process id is larger, so an identity
// naming one is garbage, and dead.
const pidMaxLimit = 1 << 22

// selfIdentity is this process's identity, read once: a Go program cannot fork, so its pid never
// changes. When /proc cannot be read the start time is 0 (peers in the same sandbox cannot read it
// either, and treat the holder as alive).
var selfIdentity = sync.OnceValue(func() uint64 {
	pid := os.Getpid()
	start, _, _ := procStat(pid) // 0 when unreadable
	return makeIdentity(pid, start)
})

func makeIdentity(pid int, start uint32) uint64 { return uint64(uint32(pid)) | uint64(start)<<32 }

// procStatus is what procStat found out.
type procStatus int

const (
	procFound   procStatus = iota // the file exists and parses: check start time and state
	procGone                      // no such process
	procUnknown                   // /proc cannot be read (or says nonsense): assume alive
)

// procStat reads /proc/<pid>/stat and returns the low 32 bits of starttime (field 22) and the state
// (field 3). ok is false when the file cannot be read or parsed.
func procStat(pid int) (start uint32, state byte, ok bool) {
	start, state, st := procStatOf(pid)
	return start, state, st == procFound
}

func procStatOf(pid int) (uint32, byte, procStatus) {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ESRCH {
			return 0, 0, procGone
		}
		return 0, 0, procUnknown
	}
	defer unix.Close(fd)
	// The line is a few hundred bytes; the command name in it is at most 64.
	var buf [1024]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.ESRCH {
			return 0, 0, procGone // the process went away between open and read
		}
		if err != nil {
			return 0, 0, procUnknown
		}
		if m == 0 {
			break
		}
		n += m
	}
	start, state, ok := parseStat(buf[:n])
	if !ok {
		return 0, 0, procUnknown
	}
	return start, state, procFound
}

// parseStat takes the state and the low 32 bits of starttime from a /proc/<pid>/stat line. The
// command name (field 2) sits in parentheses and may itself hold spaces and parentheses, so the
// fields are counted after the line's last ')'.
func parseStat(line []byte) (start uint32, state byte, ok bool) {
	i := bytes.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(line[i+1:])
	// fields[0] is field 3 (state), so field 22 (starttime) is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return uint32(v), fields[0][0], true
}

// identityAlive reports whether the process an identity names still runs. A missing process, a
// different start time (the pid was recycled) or a zombie is dead; an identity with pid 0 or a pid
// beyond the kernel's limit is garbage, and dead. When /proc cannot be read, the answer is alive: a
// peer that cannot tell waits, it never steals.
func identityAlive(id uint64) bool {
	pid := uint32(id)
	if pid == 0 || pid > pidMaxLimit {
		return false
	}
	start, state, st := procStatOf(int(pid))
	switch st {
	case procGone:
		return false
	case procUnknown:
		return true
	}
	if start != uint32(id>>32) {
		return false
	}
	return running(state)
}

// running reports whether a process in this /proc state still runs: Z is a zombie, dead but not
// reaped; X (x on old kernels) is being reaped.
func running(state byte) bool { return state != 'Z' && state != 'X' && state != 'x' }
