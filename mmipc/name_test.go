package mmipc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// nameGrammar is DESIGN.md's grammar for a name without '/'.
var nameGrammar = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$`)

func TestResolveTable(t *testing.T) {
	const dir = "/some/dir"
	long200 := strings.Repeat("a", 200)
	long201 := strings.Repeat("a", 201)
	cases := []struct {
		name string
		want string // "" means rejected
	}{
		{"", ""},
		{".", ""},
		{"..", ""},
		{"...", ""},
		{".x", ""},
		{".mmipc-1-0123456789abcdef.tmp", ""},
		{"x.", dir + "/x."},
		{"x..y", dir + "/x..y"},
		{"a-b_c.d", dir + "/a-b_c.d"},
		{"a", dir + "/a"},
		{"Z", dir + "/Z"},
		{"0", dir + "/0"},
		{"_", dir + "/_"},
		{"-", dir + "/-"},
		{"-rf", dir + "/-rf"},
		{"ABCxyz0189_-.", dir + "/ABCxyz0189_-."},
		{long200, dir + "/" + long200},
		{"." + long200[1:], ""},
		{long201, ""},
		{strings.Repeat("a", 4096), ""},
		{"a b", ""},
		{" a", ""},
		{"a\tb", ""},
		{"a\nb", ""},
		{"a\x00b", ""},
		{"\x00", ""},
		{"a+b", ""},
		{"a:b", ""},
		{"a\\b", ""},
		{"a*", ""},
		{"é", ""},
		{"café", ""},
		{"日本", ""},
		{"a\xffb", ""},
		// Names with '/' are paths: the Dir does not apply.
		{"x/", ""},
		{"/", ""},
		{"//", ""},
		{"dir/.", ""},
		{"dir/..", ""},
		{"..//", ""},
		{"dir/x/", ""},
		{"./r", "./r"},
		{"../r", "../r"},
		{"/abs/path", "/abs/path"},
		{"rel/path", "rel/path"},
		{"/abs/.hidden", "/abs/.hidden"},
		{"/abs/with space/é", "/abs/with space/é"},
		{"/abs/a\x00b", ""},
		{"a/\x00", ""},
		{"/" + strings.Repeat("p", syscall.PathMax), ""},
		{"/" + strings.Repeat("p", syscall.PathMax-1), ""}, // PathMax counts the NUL terminator
		{"/" + strings.Repeat("p", syscall.PathMax-2), "/" + strings.Repeat("p", syscall.PathMax-2)},
	}
	for _, c := range cases {
		got, bad := Dir(dir).resolve(c.name)
		if c.want == "" {
			if bad == "" || got != "" {
				t.Errorf("resolve(%q) = %q, %q; want a rejection", trunc(c.name), trunc(got), bad)
			}
			continue
		}
		if bad != "" || got != c.want {
			t.Errorf("resolve(%q) = %q, %q; want %q", trunc(c.name), trunc(got), bad, trunc(c.want))
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:20] + "..." + s[len(s)-10:]
	}
	return s
}

// TestResolveGrammarExhaustive checks every one- and two-byte name (and every byte in the middle
// of a longer one) against the grammar in DESIGN.md.
func TestResolveGrammarExhaustive(t *testing.T) {
	check := func(name string) {
		t.Helper()
		if strings.Contains(name, "/") {
			return
		}
		path, bad := Dir("/d").resolve(name)
		want := nameGrammar.MatchString(name)
		if want && (bad != "" || path != "/d/"+name) {
			t.Errorf("resolve(%q) = %q, %q; the grammar accepts it", name, path, bad)
		}
		if !want && bad == "" {
			t.Errorf("resolve(%q) = %q; the grammar rejects it", name, path)
		}
	}
	for i := 0; i < 256; i++ {
		check(string([]byte{byte(i)}))
		check(string([]byte{'a', byte(i), 'z'}))
		check(strings.Repeat("b", 198) + string([]byte{byte(i)}))
		check(strings.Repeat("b", 199) + string([]byte{byte(i)}))
		check(strings.Repeat("b", 200) + string([]byte{byte(i)}))
		for j := 0; j < 256; j++ {
			check(string([]byte{byte(i), byte(j)}))
		}
	}
}

func TestResolveEmptyDirIsDevShm(t *testing.T) {
	if DefaultDir != "/dev/shm" {
		t.Errorf("DefaultDir = %q", DefaultDir)
	}
	if MaxNameLen != 200 {
		t.Errorf("MaxNameLen = %d", MaxNameLen)
	}
	if got, bad := Dir("").resolve("region"); bad != "" || got != "/dev/shm/region" {
		t.Errorf(`Dir("").resolve("region") = %q, %q`, got, bad)
	}
	if got, bad := Dir("/tmp/x").resolve("region"); bad != "" || got != "/tmp/x/region" {
		t.Errorf(`Dir("/tmp/x").resolve("region") = %q, %q`, got, bad)
	}
	if got, bad := Dir("rel").resolve("region"); bad != "" || got != "rel/region" {
		t.Errorf(`Dir("rel").resolve("region") = %q, %q`, got, bad)
	}
	// Paths ignore the Dir, whatever it is.
	for _, d := range []Dir{"", "/tmp/x", "rel"} {
		for _, p := range []string{"./r", "a/b", "/abs/path"} {
			if got, bad := d.resolve(p); bad != "" || got != p {
				t.Errorf("Dir(%q).resolve(%q) = %q, %q; want the path itself", d, p, got, bad)
			}
		}
	}
}

func TestEnvDir(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()

	t.Setenv("MMIPC_DIR", d1)
	if got := EnvDir(); got != Dir(d1) {
		t.Fatalf("EnvDir() = %q, want %q", got, d1)
	}
	t.Setenv("MMIPC_DIR", d2) // read at each call, not cached
	if got := EnvDir(); got != Dir(d2) {
		t.Fatalf("EnvDir() after a change = %q, want %q", got, d2)
	}
	t.Setenv("MMIPC_DIR", "")
	if got := EnvDir(); got != "" {
		t.Fatalf("EnvDir() with MMIPC_DIR empty = %q", got)
	}
	if got, _ := EnvDir().resolve("x"); got != "/dev/shm/x" {
		t.Fatalf("with MMIPC_DIR empty, x resolves to %q", got)
	}
	os.Unsetenv("MMIPC_DIR") // t.Setenv restores it at the end
	if got, _ := EnvDir().resolve("x"); got != "/dev/shm/x" {
		t.Fatalf("with MMIPC_DIR unset, x resolves to %q", got)
	}

	// The package-level functions follow $MMIPC_DIR at each call.
	t.Setenv("MMIPC_DIR", d1)
	r, err := Create("envreg", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Stat(filepath.Join(d1, "envreg")); err != nil {
		t.Fatalf("Create did not put the region in $MMIPC_DIR: %v", err)
	}
	t.Setenv("MMIPC_DIR", d2)
	if _, err := Open("envreg"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open in the other directory: %v, want ENOENT", err)
	}
	if err := Unlink("envreg"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Unlink in the other directory: %v, want ENOENT", err)
	}
	t.Setenv("MMIPC_DIR", d1)
	r2, err := Open("envreg")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r3, err := OpenReadOnly("envreg")
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	r.Bytes()[99] = 42
	if r2.Bytes()[99] != 42 || r3.Bytes()[99] != 42 {
		t.Fatalf("the package-level attachments do not share memory")
	}
	if err := Unlink("envreg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d1, "envreg")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Unlink left the file: %v", err)
	}
}
