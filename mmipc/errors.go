package mmipc

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Error is the error every mmipc call returns. It names the operation, the region, and the errno a
// C caller would see; Detail says what exactly was wrong when the errno alone does not (which field
// of a header disagreed, for example).
//
// Error unwraps to its Errno, so errors.Is(err, fs.ErrExist), fs.ErrNotExist, fs.ErrPermission and
// errors.Is(err, syscall.EPROTO) work as they do for os and golang.org/x/sys/unix errors.
type Error struct {
	Op     string        // "create", "open", "unlink", "anon", "map_file", "copy_file", ...
	Name   string        // the name or path as the caller gave it ("" for anonymous regions)
	Path   string        // the file the name resolved to, when it differs from Name
	Errno  syscall.Errno // the cause
	Detail string        // what exactly was wrong, or ""
}

func (e *Error) Error() string { return "mmipc " + e.Describe() }

// Unwrap returns the Errno, so that errors.Is and errors.As see through an *Error.
func (e *Error) Unwrap() error { return e.Errno }

// Describe is the message without the "mmipc " prefix: `op "name" (path): cause: detail`. The C
// library prefixes it with "mmipc_" so that it names the C call.
func (e *Error) Describe() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	if e.Path != "" && e.Path != e.Name {
		fmt.Fprintf(&b, " (%s)", e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Errno.Error())
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// errnoOf digs the errno out of what the os and unix packages return. An error without one (which
// the calls below do not produce) becomes EIO rather than a success.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
