package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mmipc/mmipc/mmipc"
)

// headerFunctions returns the functions mmipc.h declares, with the comment block just above each.
func headerFunctions(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "mmipc.h"))
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^[a-z][a-z_ ]*[ *](mmipc_[a-z_]+)\(`)
	funcs := map[string]string{}
	text := string(src)
	for _, m := range decl.FindAllStringSubmatchIndex(text, -1) {
		before := strings.TrimRight(text[:m[0]], "\n ")
		doc := ""
		if strings.HasSuffix(before, "*/") {
			doc = before[strings.LastIndex(before, "/*"):]
		}
		funcs[text[m[2]:m[3]]] = doc
	}
	return funcs
}

// The header and the .so agree: every declared function is exported, and the library exports
// nothing else (neither internal mmipc_ helpers nor the Go runtime's symbols).
func TestHeaderMatchesExports(t *testing.T) {
	funcs := headerFunctions(t)
	if len(funcs) < 12 {
		t.Fatalf("found only %d declarations in mmipc.h: %v", len(funcs), funcs)
	}
	out, err := exec.Command("nm", "-D", "--defined-only", filepath.Join(libDir, "libmmipc.so")).Output()
	if err != nil {
		t.Fatalf("nm: %v", err)
	}
	var exported []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && (f[1] == "T" || f[1] == "D" || f[1] == "B" || f[1] == "W") {
			exported = append(exported, f[2])
		}
	}
	for name := range funcs {
		if !slices.Contains(exported, name) {
			t.Errorf("mmipc.h declares %s, but libmmipc.so does not export it", name)
		}
	}
	for _, sym := range exported {
		if _, ok := funcs[sym]; !ok {
			t.Errorf("libmmipc.so exports %s, which mmipc.h does not declare", sym)
		}
	}
	// The fixed ABI of DESIGN.md.
	for _, name := range []string{"mmipc_create", "mmipc_open", "mmipc_anon", "mmipc_map_file", "mmipc_detach",
		"mmipc_unlink", "mmipc_data", "mmipc_size", "mmipc_sync", "mmipc_copy_file", "mmipc_last_error", "mmipc_version"} {
		if _, ok := funcs[name]; !ok {
			t.Errorf("mmipc.h lacks %s", name)
		}
	}
}

// Every function in the header is documented where it is declared: what it does, what it
// returns, and (except for the accessors that cannot fail) its errno values.
func TestHeaderDocumentsEveryFunction(t *testing.T) {
	for name, doc := range headerFunctions(t) {
		if !strings.Contains(doc, name) {
			t.Errorf("%s: no comment naming it just above its declaration", name)
			continue
		}
		canFail := !slices.Contains([]string{"mmipc_data", "mmipc_size", "mmipc_last_error", "mmipc_version", "mmipc_detach"}, name)
		if canFail && !strings.Contains(doc, "errno") {
			t.Errorf("%s: its comment does not say which errno values it sets", name)
		}
		if !strings.Contains(doc, "Return") && !strings.Contains(doc, "NULL for NULL") && !strings.Contains(doc, "0 for NULL") {
			t.Errorf("%s: its comment does not say what it returns", name)
		}
	}
}

// The header's version macros, the Go package and the fixed MMIPC_RDONLY value agree.
func TestHeaderConstants(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(root, "mmipc.h"))
	if err != nil {
		t.Fatal(err)
	}
	macro := func(name string) string {
		m := regexp.MustCompile(`(?m)^#define ` + name + ` (.+)$`).FindStringSubmatch(string(src))
		if m == nil {
			t.Fatalf("mmipc.h has no %s", name)
		}
		return strings.TrimSpace(m[1])
	}
	num := func(name string) int {
		n, err := strconv.Atoi(macro(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	if got := strings.Trim(macro("MMIPC_VERSION"), `"`); got != mmipc.Version {
		t.Errorf("MMIPC_VERSION %q, Go package Version %q", got, mmipc.Version)
	}
	want := strconv.Itoa(num("MMIPC_VERSION_MAJOR")) + "." + strconv.Itoa(num("MMIPC_VERSION_MINOR")) + "." + strconv.Itoa(num("MMIPC_VERSION_PATCH"))
	if want != mmipc.Version {
		t.Errorf("MAJOR.MINOR.PATCH %s, Version %s", want, mmipc.Version)
	}
	if got, want := num("MMIPC_VERSION_NUMBER"), num("MMIPC_VERSION_MAJOR")*1000000+num("MMIPC_VERSION_MINOR")*1000+num("MMIPC_VERSION_PATCH"); got != want {
		t.Errorf("MMIPC_VERSION_NUMBER %d, want %d", got, want)
	}
	if got := num("MMIPC_PROTOCOL_VERSION"); got != mmipc.ProtocolVersion {
		t.Errorf("MMIPC_PROTOCOL_VERSION %d, Go ProtocolVersion %d", got, mmipc.ProtocolVersion)
	}
	if got := num("MMIPC_RDONLY"); got != 1 {
		t.Errorf("MMIPC_RDONLY %d, DESIGN.md fixes it at 1", got)
	}
}

// A C++ program can include the header and link (extern "C" and the include guard work).
func TestHeaderFromCxx(t *testing.T) {
	cxx, err := exec.LookPath("g++")
	if err != nil {
		t.Skip("no g++ here")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.cc")
	os.WriteFile(src, []byte(`#include "mmipc.h"
#include "mmipc.h"
#include <cstdio>
#include <cstring>
int main() { return std::strcmp(mmipc_version(), MMIPC_VERSION) != 0; }
`), 0o644)
	bin := filepath.Join(dir, "main")
	if out, err := exec.Command(cxx, "-Wall", "-Wextra", "-Werror", "-I"+root, "-o", bin, src, "-L"+libDir, "-lmmipc", "-Wl,-rpath,"+libDir).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil {
		t.Fatalf("C++ program: %v\n%s", err, out)
	}
}
