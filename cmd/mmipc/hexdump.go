package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	catSynopsis = "mmipc cat [--raw] [--offset N] [--length N] NAME\tdump a region's bytes (hexdump -C style, or raw)"
	catUsage    = `usage: mmipc cat [--raw] [--offset N] [--length N] NAME

Prints a region's data (the usable bytes, after the header) like 'hexdump -C': the offset, 16
bytes in hex, and the same bytes as ASCII ('.' for the unprintable); a run of lines identical to
the one before is shown as a single '*'; the last line is the offset of the end. The region is
attached read-only, so cat never changes it; a file truncated under it is an error, not a crash.

Flags:
  --raw       write the bytes to standard output unchanged
  --offset N  start N bytes into the data (default 0)
  --length N  dump at most N bytes (default: to the end)
`
)

// beforeDump, when set (by tests), runs once the region is attached, just before its bytes are read.
var beforeDump func()

func runCat(c *cmdEnv, args []string) int {
	fl := newFlags("cat")
	raw := fl.Bool("raw", false, "")
	offset := fl.Int64("offset", 0, "")
	length := fl.Int64("length", -1, "")
	operands, code, ok := c.parse(fl, args, catUsage)
	if !ok {
		return code
	}
	name, code, ok := c.oneName(operands)
	if !ok {
		return code
	}
	if *offset < 0 {
		return c.usageError("--offset %d: must be 0 or more", *offset)
	}
	lengthSet := false
	fl.Visit(func(f *flag.Flag) {
		if f.Name == "length" {
			lengthSet = true
		}
	})
	if lengthSet && *length < 0 {
		return c.usageError("--length %d: must be 0 or more", *length)
	}

	r, err := mmipc.OpenReadOnly(name)
	if err != nil {
		return c.fail(err)
	}
	defer r.Close()
	size := int64(r.Size())
	if *offset > size {
		c.errorf("%s: --offset %d is past the end of the region's %d bytes", name, *offset, size)
		return exitFail
	}
	end := size
	if lengthSet && *length < size-*offset {
		end = *offset + *length
	}

	out := bufio.NewWriterSize(c.stdout, 64<<10)
	var werr error
	gerr := r.Guard(func(data []byte) {
		if beforeDump != nil {
			beforeDump()
		}
		part := data[*offset:end]
		if *raw {
			_, werr = out.Write(part)
		} else {
			werr = hexdump(out, part, *offset)
		}
	})
	if werr == nil {
		werr = out.Flush()
	}
	if gerr != nil {
		out.Flush() // what was dumped before the fault is correct: let it out
		return c.fail(gerr)
	}
	if werr != nil {
		// write(2) straight from the mapping (--raw to a file or pipe) meets a truncated file as
		// EFAULT instead of a fault: say what happened.
		var st unix.Stat_t
		if errors.Is(werr, syscall.EFAULT) && unix.Fstat(r.Fd(), &st) == nil && st.Size < int64(len(r.Mapping())) {
			c.errorf("%s: the region's file was truncated to %d bytes under the mapping (%v)", name, st.Size, werr)
			return exitFail
		}
		c.errorf("writing: %v", werr)
		return exitFail
	}
	return exitOK
}

// hexdump writes data as 'hexdump -C' does, numbering bytes from base: full lines identical to the
// previous one collapse into a single "*", and a last line gives the end offset.
func hexdump(w io.Writer, data []byte, base int64) error {
	var line [80]byte
	var prev []byte
	starred := false
	for i := 0; i < len(data); i += 16 {
		chunk := data[i:min(i+16, len(data))]
		if len(chunk) == 16 && prev != nil && bytes.Equal(chunk, prev) {
			if !starred {
				if _, err := io.WriteString(w, "*\n"); err != nil {
					return err
				}
				starred = true
			}
			continue
		}
		starred = false
		// Keep a copy, not the slice: the shared bytes may change under us, and the comparison must
		// be with what was printed.
		prev = append(prev[:0], chunk...)
		if _, err := w.Write(hexLine(line[:0], base+int64(i), chunk)); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "%08x\n", base+int64(len(data)))
	return err
}

// hexLine formats one line: "00000010  61 62 63 00 ...  00 00  |abc.............|".
func hexLine(b []byte, off int64, chunk []byte) []byte {
	const hexDigits = "0123456789abcdef"
	b = fmt.Appendf(b, "%08x  ", off)
	for j := 0; j < 16; j++ {
		if j < len(chunk) {
			b = append(b, hexDigits[chunk[j]>>4], hexDigits[chunk[j]&15], ' ')
		} else {
			b = append(b, "   "...)
		}
		if j == 7 {
			b = append(b, ' ')
		}
	}
	b = append(b, " |"...)
	for _, c := range chunk {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		b = append(b, c)
	}
	return append(b, "|\n"...)
}
