package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	cpSynopsis = "mmipc cp [--progress] SRC DST\tcopy a file through memory mappings"
	cpUsage    = `usage: mmipc cp [--progress | --no-progress] SRC DST

Copies the regular file SRC to DST as mmipc_copy_file does: through memory mappings, with SRC's
permission bits, written under a temporary name and renamed into place, so DST is never seen
half-written. SRC and DST are file paths, as for cp (relative to the current directory, not
$MMIPC_DIR); when DST is a directory the copy goes into it under SRC's base name.

A progress bar is drawn on standard error when it is a terminal and the file is 16 MiB or more.
Interrupted (SIGINT, SIGTERM, SIGHUP), the copy stops within a few milliseconds, DST is left as it
was, the temporary file is removed, and the exit status is 128 + the signal's number.

Flags:
  --progress     always draw the progress bar (even into a pipe, even for a small file)
  --no-progress  never draw it
`
	// autoProgressMin is the size from which the bar appears by itself: smaller copies are over
	// before a bar could say anything.
	autoProgressMin = 16 << 20
	barWidth        = 30
	redrawEvery     = 100 * time.Millisecond
)

func runCp(c *cmdEnv, args []string) int {
	fl := newFlags("cp")
	force := fl.Bool("progress", false, "")
	never := fl.Bool("no-progress", false, "")
	operands, code, ok := c.parse(fl, args, cpUsage)
	if !ok {
		return code
	}
	if *force && *never {
		return c.usageError("--progress and --no-progress contradict each other")
	}
	if len(operands) != 2 {
		if len(operands) < 2 {
			return c.usageError("need SRC and DST")
		}
		return c.usageError("unexpected argument %q (one SRC, one DST)", operands[2])
	}
	src, dst := operands[0], operands[1]
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		dst = filepath.Join(dst, filepath.Base(src))
	}

	bar := &progressBar{w: c.stderr, start: time.Now(), now: time.Now}
	terminal := isTerminal(c.stderr)
	decided := false
	// An interrupted copy stops at the next chunk, and the library removes its temporary file: a
	// big copy cut short by Ctrl-C leaves nothing behind.
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(interrupt)
	var caught os.Signal
	progress := func(copied, total int64) error {
		select {
		case caught = <-interrupt:
			return fmt.Errorf("interrupted by %v", caught)
		default:
		}
		if !decided { // the size is known from the first call on
			decided = true
			bar.on = barWanted(*force, *never, terminal, total)
		}
		if bar.on {
			bar.update(copied, total)
		}
		return nil
	}
	err := mmipc.CopyFileProgress(src, dst, progress)
	bar.finish()
	if err != nil {
		c.fail(err)
		if sig, ok := caught.(syscall.Signal); ok {
			return 128 + int(sig) // as a shell reports a command killed by the signal
		}
		return exitFail
	}
	return exitOK
}

// barWanted decides whether cp draws its bar: as forced, else for a big copy to a terminal.
func barWanted(force, never, terminal bool, total int64) bool {
	switch {
	case never:
		return false
	case force:
		return true
	default:
		return terminal && total >= autoProgressMin
	}
}

// isTerminal says whether w is a terminal: a file whose terminal attributes can be read.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressBar draws "[=====>     ]  45%  1.2 GiB / 2.6 GiB  850.0 MiB/s" on one line, redrawn
// in place with '\r' at most every redrawEvery, and always at the end of the copy.
type progressBar struct {
	w        io.Writer
	on       bool
	start    time.Time
	now      func() time.Time
	lastDraw time.Time
	drawn    bool // a line is on the screen, not yet ended with a newline
	lastLen  int  // its length, to blank what a shorter line leaves over
}

func (p *progressBar) update(copied, total int64) {
	t := p.now()
	final := copied >= total
	if p.drawn && !final && t.Sub(p.lastDraw) < redrawEvery {
		return
	}
	p.lastDraw = t
	line := barLine(copied, total, t.Sub(p.start))
	pad := ""
	if n := p.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn, p.lastLen = true, len(line)
	if final {
		p.finish()
	}
}

// finish ends the bar's line, so that what follows (an error, the prompt) starts on its own.
func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

// barLine is the bar's text for copied of total bytes after elapsed.
func barLine(copied, total int64, elapsed time.Duration) string {
	frac := 1.0
	if total > 0 {
		frac = min(1, float64(copied)/float64(total))
	}
	filled := int(frac * barWidth)
	var bar string
	if filled >= barWidth {
		bar = strings.Repeat("=", barWidth)
	} else {
		bar = strings.Repeat("=", filled) + ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	pct := int(frac * 100) // floor, so that 100% means done
	if pct == 100 && copied < total {
		pct = 99 // a huge file's last bytes, lost in the float's precision
	}
	line := fmt.Sprintf("[%s] %3d%%  %s / %s", bar, pct, humanSize(copied), humanSize(total))
	if elapsed > 0 && copied > 0 {
		line += fmt.Sprintf("  %s/s", humanSize(int64(float64(copied)/elapsed.Seconds())))
	}
	return line
}
