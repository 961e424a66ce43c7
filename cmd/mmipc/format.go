package main

import (
	"bytes"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// humanSize writes a byte count the way people read it: "512 B", "4.0 KiB", "1.2 GiB".
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n) / 1024
	i := 0
	// 1023.95 KiB would print as "1024.0 KiB": move to the next unit before rounding gets there.
	for v >= 1023.95 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// humanAge writes a duration coarsely, with its two largest units: "12s", "3m12s", "2h5m", "5d3h".
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0 // a creation time in the future: another clock, or a damaged header
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return twoUnits(s/60, "m", s%60, "s")
	case s < 86400:
		return twoUnits(s/3600, "h", s%3600/60, "m")
	default:
		return twoUnits(s/86400, "d", s%86400/3600, "h")
	}
}

func twoUnits(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d%s", a, ua)
	}
	return fmt.Sprintf("%d%s%d%s", a, ua, b, ub)
}

// pidAlive says whether a process with this pid runs in our pid namespace (a zombie is dead: it
// has exited and only waits for its parent). A region made in another namespace (a container) can
// look dead, or alive through an unrelated process: the answer is a hint, never a reason to remove
// anything (gc asks the liveness lock instead).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": the command may hold spaces and parentheses, the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true // unreadable but present
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// creatorString is the creator column: "1234", or "1234 (dead)" when the process is gone.
func creatorString(pid int) string {
	switch {
	case pid <= 0:
		return "-"
	case pidAlive(pid):
		return strconv.Itoa(pid)
	default:
		return strconv.Itoa(pid) + " (dead)"
	}
}

// liveness is "alive" or "dead" for a pid.
func liveness(pid int) string {
	if pidAlive(pid) {
		return "alive"
	}
	return "dead"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// plural is "1 region", "2 regions".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// userName and groupName add the name to a numeric id when the system knows it.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return id
}

func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return id
}

// displayName is a file name as a table may show it: as it is when it is printable UTF-8, else
// quoted Go-style, so that a name planted in a shared directory cannot break the table (a tab, a
// newline, tabwriter's escape byte 0xff) or send escape sequences to the terminal.
func displayName(name string) string {
	if utf8.ValidString(name) && strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return name
	}
	return strconv.Quote(name)
}
