package mmipc

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultDir is where names without '/' live when $MMIPC_DIR is unset or empty. It is the
// directory behind shm_open, so the region "x" is the object shm_open("/x") names.
const DefaultDir = "/dev/shm"

// MaxNameLen is the longest name (without '/') accepted.
const MaxNameLen = 200

// Dir is the directory in which names without '/' live. The empty Dir means DefaultDir. Names
// containing '/' are file-system paths and ignore the Dir.
type Dir string

// EnvDir returns the Dir named by $MMIPC_DIR, read now (not cached), or DefaultDir.
func EnvDir() Dir { return Dir(os.Getenv("MMIPC_DIR")) }

// resolve validates a region name and returns the file behind it. A name without '/' must match
// [A-Za-z0-9_-][A-Za-z0-9._-]{0,199}: the first character is never '.', so the temporary files of
// the creation protocol (".mmipc-*") can never collide with a region.
func (d Dir) resolve(name string) (string, string) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", "name contains a NUL byte"
	}
	if strings.Contains(name, "/") {
		if len(name) >= syscall.PathMax {
			return "", "path too long"
		}
		base := filepath.Base(name)
		if strings.HasSuffix(name, "/") || base == "." || base == ".." {
			return "", "path does not name a file"
		}
		return name, ""
	}
	if name == "" {
		return "", "empty name"
	}
	if len(name) > MaxNameLen {
		return "", "name longer than 200 bytes"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || (c == '.' && i > 0)
		if !ok {
			return "", "name must match [A-Za-z0-9_-][A-Za-z0-9._-]{0,199} (or contain '/' to be a path)"
		}
	}
	return filepath.Join(d.dirPath(), name), ""
}
