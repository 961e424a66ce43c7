package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	lsSynopsis = "mmipc ls [--json] [--all]\tlist the regions in $MMIPC_DIR"
	lsUsage    = `usage: mmipc ls [--json] [--all]

Lists every mmipc region in $MMIPC_DIR (default /dev/shm), sorted by name, as a table:
  NAME      the region's name
  KIND      region, or ring for a message ring
  SIZE      usable bytes
  AGE       time since creation
  CREATOR   pid of the creating process, "(dead)" when it no longer exists (creators often
            exit while others use the region: that is no fault)
  ATTACHED  yes while some process has the region attached (gc leaves those alone)
Files that are not regions, and regions this user may not read, are skipped.

Flags:
  --json  print a JSON array instead, with exact values: name, path, kind, ring, size,
          file_size, header_size (bytes), mode (octal string), uid, gid, creator_pid,
          creator_alive, created (RFC 3339, nanoseconds), attached
  --all   also list the directory's other files: leftover creation temp files (kind "temp",
          gc removes those of dead creators) and files that are not regions (kind "other",
          with the reason in the JSON "note")
`
	statSynopsis = "mmipc stat NAME\tshow everything known about a region"
	statUsage    = `usage: mmipc stat NAME

Prints a region's header and state, one field per line: name, path, kind (region or ring),
size (usable bytes), file size, header size, mode, owner, creator pid, created, attached.
For a ring it adds the ring's capacity and fill; 'mmipc ring stat NAME' shows the rest.
`
	rmSynopsis = "mmipc rm NAME...\tremove regions (attached processes keep their memory)"
	rmUsage    = `usage: mmipc rm NAME...

Removes each named region, as mmipc_unlink does: the name goes at once, processes that have the
region attached keep using its memory until they detach. A file that is not an mmipc region is
refused and left alone. Every name is tried; the exit status is 1 if any failed.
`
	gcSynopsis = "mmipc gc [--dry-run]\tremove the regions no process has attached"
	gcUsage    = `usage: mmipc gc [--dry-run]

Removes every region in $MMIPC_DIR that no process has attached (nobody holds its liveness lock),
and creation temp files left by dead processes. Prints "removed NAME" for each, then a count.

Flags:
  --dry-run  print "would remove NAME" for what gc would remove now, and remove nothing
`
)

// regionJSON is one region in "mmipc ls --json".
type regionJSON struct {
	Name         string    `json:"name"`
	Path         string    `json:"path"`
	Kind         string    `json:"kind"`
	Ring         bool      `json:"ring"`
	Size         int       `json:"size"`
	FileSize     int64     `json:"file_size"`
	HeaderSize   int       `json:"header_size"`
	Mode         string    `json:"mode"`
	UID          uint32    `json:"uid"`
	GID          uint32    `json:"gid"`
	CreatorPID   int       `json:"creator_pid"`
	CreatorAlive bool      `json:"creator_alive"`
	Created      time.Time `json:"created"`
	Attached     bool      `json:"attached"`
}

// otherJSON is a file that is not a region, listed by "mmipc ls --all --json".
type otherJSON struct {
	Name       string    `json:"name"`
	Path       string    `json:"path"`
	Kind       string    `json:"kind"` // "temp" or "other"
	FileSize   int64     `json:"file_size"`
	Mode       string    `json:"mode"`
	UID        uint32    `json:"uid"`
	CreatorPID int       `json:"creator_pid,omitempty"` // temp files: from the name
	Modified   time.Time `json:"modified"`
	Note       string    `json:"note,omitempty"`
}

// lsRow is one line of the table, for regions and other files alike.
type lsRow struct {
	name, kind, size, age, creator, attached string
	json                                     any
}

func kindOf(info mmipc.Info) string {
	if info.Ring {
		return "ring"
	}
	return "region"
}

func octal(m fs.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

func regionRow(info mmipc.Info, now time.Time) lsRow {
	return lsRow{
		name:     info.Name,
		kind:     kindOf(info),
		size:     humanSize(int64(info.Size)),
		age:      humanAge(now.Sub(info.Created)),
		creator:  creatorString(info.CreatorPID),
		attached: yesNo(info.Attached),
		json: regionJSON{
			Name: info.Name, Path: info.Path, Kind: kindOf(info), Ring: info.Ring,
			Size: info.Size, FileSize: info.FileSize, HeaderSize: info.HeaderSize,
			Mode: octal(info.Mode), UID: info.UID, GID: info.GID,
			CreatorPID: info.CreatorPID, CreatorAlive: pidAlive(info.CreatorPID),
			Created: info.Created, Attached: info.Attached,
		},
	}
}

// tempName matches the creation protocol's temporary files: ".mmipc-<pid>-<16 hex>.tmp".
var tempName = regexp.MustCompile(`^\.mmipc-(?:gc-)?([0-9]+)-[0-9a-f]{16}\.tmp$`)

// otherRows lists the directory entries that List skipped (not in seen).
func otherRows(dir string, seen map[string]bool, now time.Time) ([]lsRow, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var rows []lsRow
	for _, e := range entries {
		name := e.Name()
		if seen[name] {
			continue
		}
		path := filepath.Join(dir, name)
		st, err := os.Lstat(path)
		if err != nil {
			continue // gone meanwhile
		}
		o := otherJSON{Name: name, Path: path, Kind: "other", FileSize: st.Size(), Mode: octal(st.Mode()), Modified: st.ModTime()}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			o.UID = sys.Uid
		}
		creator := "-"
		if m := tempName.FindStringSubmatch(name); m != nil && st.Mode().IsRegular() {
			o.Kind = "temp"
			o.CreatorPID, _ = strconv.Atoi(m[1])
			o.Note = "a creation temp file; gc removes it once its creator is dead"
			creator = creatorString(o.CreatorPID)
		} else {
			o.Note = notRegionReason(path, st)
		}
		rows = append(rows, lsRow{
			name: displayName(name), kind: o.Kind, size: humanSize(st.Size()), age: humanAge(now.Sub(st.ModTime())),
			creator: creator, attached: "-", json: o,
		})
	}
	return rows, nil
}

// notRegionReason says why a directory entry is not a region.
func notRegionReason(path string, st fs.FileInfo) string {
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return "a symlink (regions are never reached through one)"
	case st.IsDir():
		return "a directory"
	case !st.Mode().IsRegular():
		return "not a regular file"
	}
	// A path (it contains '/') is looked up as is, so dot-names work too.
	if _, err := mmipc.Stat(path); err != nil {
		var e *mmipc.Error
		if errors.As(err, &e) && e.Detail != "" {
			return e.Errno.Error() + ": " + e.Detail
		}
		return describe(err)
	}
	return "a region that appeared after the listing"
}

func runLs(c *cmdEnv, args []string) int {
	fl := newFlags("ls")
	asJSON := fl.Bool("json", false, "")
	all := fl.Bool("all", false, "")
	operands, code, ok := c.parse(fl, args, lsUsage)
	if !ok {
		return code
	}
	if len(operands) > 0 {
		return c.usageError("unexpected argument %q (ls lists the whole directory; see 'mmipc stat NAME')", operands[0])
	}
	d := mmipc.EnvDir()
	infos, err := d.List()
	if err != nil {
		return c.fail(err)
	}
	now := time.Now()
	rows := make([]lsRow, 0, len(infos))
	seen := make(map[string]bool, len(infos))
	for _, info := range infos {
		rows = append(rows, regionRow(info, now))
		seen[info.Name] = true
	}
	if *all {
		dir := string(d)
		if dir == "" {
			dir = mmipc.DefaultDir
		}
		more, err := otherRows(dir, seen, now)
		if err != nil {
			return c.fail(err)
		}
		rows = append(rows, more...)
		sort.SliceStable(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	}

	if *asJSON {
		list := make([]any, 0, len(rows)) // never null: an empty directory is "[]"
		for _, r := range rows {
			list = append(list, r.json)
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSIZE\tAGE\tCREATOR\tATTACHED")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.name, r.kind, r.size, r.age, r.creator, r.attached)
	}
	if err := tw.Flush(); err != nil {
		return c.fail(err)
	}
	return exitOK
}

// oneName checks that exactly one operand was given.
func (c *cmdEnv) oneName(operands []string) (string, int, bool) {
	switch len(operands) {
	case 0:
		return "", c.usageError("missing NAME"), false
	case 1:
		return operands[0], 0, true
	default:
		return "", c.usageError("unexpected argument %q (one NAME only)", operands[1]), false
	}
}

func runStat(c *cmdEnv, args []string) int {
	operands, code, ok := c.parse(newFlags("stat"), args, statUsage)
	if !ok {
		return code
	}
	name, code, ok := c.oneName(operands)
	if !ok {
		return code
	}
	info, err := mmipc.Stat(name)
	if err != nil {
		return c.fail(err)
	}
	now := time.Now()
	w := c.stdout
	fmt.Fprintf(w, "name: %s\n", info.Name)
	fmt.Fprintf(w, "path: %s\n", info.Path)
	fmt.Fprintf(w, "kind: %s\n", kindOf(info))
	fmt.Fprintf(w, "size: %d (%s)\n", info.Size, humanSize(int64(info.Size)))
	fmt.Fprintf(w, "file size: %d (%s)\n", info.FileSize, humanSize(info.FileSize))
	fmt.Fprintf(w, "header size: %d\n", info.HeaderSize)
	fmt.Fprintf(w, "mode: %s (%s)\n", octal(info.Mode), info.Mode.Perm())
	fmt.Fprintf(w, "owner: %s (uid %d), group %s (gid %d)\n", userName(info.UID), info.UID, groupName(info.GID), info.GID)
	fmt.Fprintf(w, "creator pid: %d (%s)\n", info.CreatorPID, liveness(info.CreatorPID))
	fmt.Fprintf(w, "created: %s (%s ago)\n", info.Created.Local().Format(time.RFC3339Nano), humanAge(now.Sub(info.Created)))
	fmt.Fprintf(w, "attached: %s\n", yesNo(info.Attached))
	if !info.Ring {
		return exitOK
	}
	ri, err := mmipc.RingStat(name)
	if err != nil {
		// The header says ring but the control block does not validate: the header lines above
		// stand, the failure is reported.
		return c.fail(err)
	}
	fmt.Fprintf(w, "ring capacity: %d (%s)\n", ri.Capacity, humanSize(int64(ri.Capacity)))
	fmt.Fprintf(w, "ring used: %s\n", usedString(ri))
	fmt.Fprintf(w, "ring messages: %s\n", messagesString(ri.Messages))
	fmt.Fprintf(w, "(senders, receivers and sleepers: mmipc ring stat %s)\n", shellQuote(name))
	return exitOK
}

// shellQuote quotes a name for a command line shown to the user, when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") == "" && !strings.HasPrefix(s, "-") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func runRm(c *cmdEnv, args []string) int {
	operands, code, ok := c.parse(newFlags("rm"), args, rmUsage)
	if !ok {
		return code
	}
	if len(operands) == 0 {
		return c.usageError("missing NAME")
	}
	status := exitOK
	for _, name := range operands {
		err := mmipc.Unlink(name)
		switch {
		case err == nil:
		case errors.Is(err, syscall.EPROTO):
			c.errorf("%s: not an mmipc region, left alone (%s)", name, reasonOf(err))
			status = exitFail
		case errors.Is(err, syscall.ELOOP):
			c.errorf("%s: a symlink, not a region: left alone", name)
			status = exitFail
		default:
			c.fail(err)
			status = exitFail
		}
	}
	return status
}

// reasonOf is the why of an error: its detail, or its errno.
func reasonOf(err error) string {
	var e *mmipc.Error
	if errors.As(err, &e) {
		if e.Detail != "" {
			return e.Detail
		}
		return e.Errno.Error()
	}
	return err.Error()
}

func runGc(c *cmdEnv, args []string) int {
	fl := newFlags("gc")
	dryRun := fl.Bool("dry-run", false, "")
	operands, code, ok := c.parse(fl, args, gcUsage)
	if !ok {
		return code
	}
	if len(operands) > 0 {
		return c.usageError("unexpected argument %q (gc takes no names; see 'mmipc rm')", operands[0])
	}
	names, err := mmipc.EnvDir().Collect(*dryRun)
	verb := "removed"
	if *dryRun {
		verb = "would remove"
	}
	regions, temps := 0, 0
	for _, name := range names {
		fmt.Fprintf(c.stdout, "%s %s\n", verb, name)
		if strings.HasPrefix(name, ".") {
			temps++
		} else {
			regions++
		}
	}
	// The count comes even after a failure: what is listed above did happen.
	count := plural(regions, "region")
	if temps > 0 {
		count += " and " + plural(temps, "temp file")
	}
	if *dryRun {
		fmt.Fprintf(c.stdout, "%s would be removed (dry run: nothing removed)\n", count)
	} else {
		fmt.Fprintf(c.stdout, "%s removed\n", count)
	}
	if err != nil {
		return c.fail(err)
	}
	return exitOK
}
