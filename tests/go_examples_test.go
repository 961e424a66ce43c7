package tests

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// The Go twins in go_examples/ and the C examples speak the same layouts (c_examples/greeting.h,
// c_examples/handoff.h), so every pairing of languages must work end to end: built the way
// build.sh builds them (C with the project's flags, Go with CGO_ENABLED=0).

var goexMu sync.Mutex

// goexBuild builds go_examples/<name> once per run, without cgo, into binDir/go_<name> (the prefix
// build.sh uses, so that the C program of the same name does not collide).
func goexBuild(t *testing.T, name string) string {
	t.Helper()
	goexMu.Lock()
	defer goexMu.Unlock()
	bin := filepath.Join(binDir, "go_"+name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./go_examples/"+name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./go_examples/%s: %v\n%s", name, err, out)
	}
	return bin
}

// goexBin returns the C or Go build of an example.
func goexBin(t *testing.T, lang, name string) string {
	t.Helper()
	if lang == "C" {
		return compileC(t, "c_examples/"+name+".c")
	}
	return goexBuild(t, name)
}

var goexLangs = []string{"C", "Go"}

// A writer and a reader, each C or Go, meet by name: the writer starts first, the reader after.
func TestGoExampleNamedPairs(t *testing.T) {
	for _, wl := range goexLangs {
		for _, rl := range goexLangs {
			t.Run(wl+"_writer+"+rl+"_reader", func(t *testing.T) {
				writer, reader := goexBin(t, wl, "named_writer"), goexBin(t, rl, "named_reader")
				dir := regionDir(t)
				env := []string{"MMIPC_DIR=" + dir}
				msg := fmt.Sprintf("nihao from %s to %s!!", wl, rl)
				wait := startProgram(t, time.Minute, "", env, nil, writer, "pair", msg)
				r := runProgram(t, time.Minute, dir, env, reader, "pair")
				w := wait()
				if w.code != 0 || w.out != "writer sent: "+msg+"\nwriter: reader acknowledged\n" {
					t.Errorf("writer: exit %d, output %q", w.code, w.out)
				}
				if r.code != 0 || r.out != "reader got: "+msg+"\n" {
					t.Errorf("reader: exit %d, output %q", r.code, r.out)
				}
				if _, err := os.Stat(filepath.Join(dir, "pair")); !os.IsNotExist(err) {
					t.Errorf("the writer left its region behind: %v", err)
				}
			})
		}
	}
}

// The defaults (name, message) agree too, and the Go writer reports a stale name as the C one does.
func TestGoExampleNamedDefaults(t *testing.T) {
	writer, reader := goexBuild(t, "named_writer"), compileC(t, "c_examples/named_reader.c")
	dir := regionDir(t)
	env := []string{"MMIPC_DIR=" + dir}
	wait := startProgram(t, time.Minute, "", env, nil, writer)
	r := runProgram(t, time.Minute, dir, env, reader)
	if w := wait(); w.code != 0 || w.out != "writer sent: hello from the writer\nwriter: reader acknowledged\n" {
		t.Errorf("Go writer, defaults: exit %d, output %q", w.code, w.out)
	}
	if r.code != 0 || r.out != "reader got: hello from the writer\n" {
		t.Errorf("C reader, defaults: exit %d, output %q", r.code, r.out)
	}

	if err := os.WriteFile(filepath.Join(dir, "stale"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := runProgram(t, time.Minute, dir, env, writer, "stale")
	if w.code != 1 || !strings.Contains(w.out, "file exists") || !strings.Contains(w.out, "stale region?") {
		t.Errorf("Go writer over an existing name: exit %d, output %q", w.code, w.out)
	}
}

// Both readers refuse a length that points past the region, instead of reading beyond it.
func TestGoExampleReaderHostileLength(t *testing.T) {
	for _, lang := range goexLangs {
		t.Run(lang, func(t *testing.T) {
			reader := goexBin(t, lang, "named_reader")
			dir := regionDir(t)
			r, err := mmipc.Dir(dir).Create("hostile", 4096, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			b := r.Bytes()
			binary.NativeEndian.PutUint32(b[8:], 4096) // len: 12 bytes more than the text's room
			binary.NativeEndian.PutUint32(b[0:], 1)    // ready
			res := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, reader, "hostile")
			if res.code != 1 || res.out != "named_reader: corrupt message length 4096 (room for 4084)\n" {
				t.Errorf("exit %d, output %q", res.code, res.out)
			}
			if binary.NativeEndian.Uint32(b[4:]) != 0 {
				t.Error("the reader acknowledged a corrupt message")
			}

			// A region too small for the greeting's own fields: refused before any field is read.
			tiny, err := mmipc.Dir(dir).Create("tiny", 4, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer tiny.Close()
			binary.NativeEndian.PutUint32(tiny.Bytes(), 1) // "ready", so a reader that skips the check goes on
			res = runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, reader, "tiny")
			if res.code != 1 || res.out != "named_reader: the region has 4 bytes, the greeting needs 12\n" {
				t.Errorf("4-byte region: exit %d, output %q", res.code, res.out)
			}
		})
	}
}

// A parent and a child, each C or Go, share an anonymous region passed as fd 3.
func TestGoExampleAnonHandoff(t *testing.T) {
	for _, pl := range goexLangs {
		for _, cl := range goexLangs {
			t.Run(pl+"_parent+"+cl+"_child", func(t *testing.T) {
				parent, child := goexBin(t, pl, "anon_parent"), goexBin(t, cl, "fd_child")
				dir := regionDir(t)
				reply := fmt.Sprintf("nihao from the %s child to the %s parent!!", cl, pl)
				r := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, parent, child, reply)
				want := "parent sent: nihao child!!\nchild got: nihao child!!\nchild replied: " + reply +
					"\nparent got: " + reply + "\n"
				if r.code != 0 || r.out != want {
					t.Errorf("exit %d, output %q; want %q", r.code, r.out, want)
				}
				// The child's default reply, without ARGS.
				r = runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, parent, child)
				if r.code != 0 || !strings.HasSuffix(r.out, "parent got: nihao father!!\n") {
					t.Errorf("default reply: exit %d, output %q", r.code, r.out)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("an anonymous handoff left %d files in MMIPC_DIR", len(entries))
				}
			})
		}
	}
}

// The parents report a child that cannot start or that exits without replying, without waiting
// for the deadline, and refuse to run without a child.
func TestGoExampleAnonParentFailures(t *testing.T) {
	for _, lang := range goexLangs {
		t.Run(lang, func(t *testing.T) {
			parent := goexBin(t, lang, "anon_parent")
			dir := t.TempDir()
			start := time.Now()
			r := runProgram(t, time.Minute, dir, nil, parent, filepath.Join(dir, "missing"))
			if r.code != 1 || !strings.Contains(r.out, "anon_parent: ") || !strings.Contains(r.out, "missing") {
				t.Errorf("missing child: exit %d, output %q", r.code, r.out)
			}
			r = runProgram(t, time.Minute, dir, nil, parent, "/bin/true")
			if r.code != 1 || !strings.Contains(r.out, "the child exited without replying") {
				t.Errorf("a child that does not reply: exit %d, output %q", r.code, r.out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the failures took %v: the parent waited for the deadline", d)
			}
			r = runProgram(t, time.Minute, dir, nil, parent)
			if r.code != 2 || !strings.Contains(r.out, "usage") {
				t.Errorf("no arguments: exit %d, output %q", r.code, r.out)
			}
		})
	}
}

// Both children check what they find at fd 3: no region, a region too small for the layout, no
// message, a message length past its room.
func TestGoExampleChildRejects(t *testing.T) {
	anon := func(t *testing.T, size int, sent, msgLen uint32) *os.File {
		t.Helper()
		r, err := mmipc.Anon(size)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if b := r.Bytes(); len(b) >= 16 {
			binary.NativeEndian.PutUint32(b[8:], msgLen)
			binary.NativeEndian.PutUint32(b[0:], sent)
		}
		return r.File()
	}
	plain, err := os.OpenFile(filepath.Join(t.TempDir(), "plain"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.WriteString(strings.Repeat("not a region\n", 400)); err != nil {
		t.Fatal(err)
	}
	for _, lang := range goexLangs {
		t.Run(lang, func(t *testing.T) {
			child := goexBin(t, lang, "fd_child")
			cases := []struct {
				what string
				fd   *os.File
				want string
			}{
				{"an ordinary file", plain, "protocol error"},
				{"a small region", anon(t, 16, 1, 5), "the region has 16 bytes, the handoff needs 2064"},
				{"no message", anon(t, 4096, 0, 5), "the parent sent no message"},
				{"a hostile length", anon(t, 4096, 1, 5000), "corrupt message length 5000 (room for 1024)"},
			}
			for _, c := range cases {
				r := startProgram(t, time.Minute, "", nil, []*os.File{c.fd}, child)()
				if r.code != 1 || !strings.HasPrefix(r.out, "fd_child: ") || !strings.Contains(r.out, c.want) {
					t.Errorf("%s at fd 3: exit %d, output %q; want %q", c.what, r.code, r.out, c.want)
				}
			}
		})
	}
}

// The README's Go parent and C child snippets ("Go peers") compile and talk to each other.
func TestGoExampleReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Go peers\n")
	if start < 0 {
		t.Fatal(`README.md has no "Go peers" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	block := func(lang, marker string) string {
		t.Helper()
		for rest := section; ; {
			i := strings.Index(rest, "```"+lang+"\n")
			if i < 0 {
				t.Fatalf("no %s snippet containing %q in the Go peers section", lang, marker)
			}
			rest = rest[i+len("```"+lang+"\n"):]
			code := rest[:strings.Index(rest, "```")]
			if strings.Contains(code, marker) {
				return code
			}
		}
	}
	dir := t.TempDir()

	// The C child, wrapped in main with the includes it needs.
	csrc := filepath.Join(dir, "child.c")
	cprog := "#include <stdio.h>\n#include \"mmipc.h\"\n\nint main(void)\n{\n" +
		block("c", "mmipc_attach_fd") + "return 0;\n}\n"
	if err := os.WriteFile(csrc, []byte(cprog), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"+root, "-o",
		filepath.Join(dir, "child"), csrc, "-L"+libDir, "-lmmipc", "-Wl,-rpath,"+libDir).CombinedOutput(); err != nil {
		t.Fatalf("the README's C child does not compile: %v\n%s", err, out)
	}

	// The Go parent, wrapped in a function returning error, built inside the module through an
	// overlay so that nothing is written into the checkout.
	gosrc := filepath.Join(dir, "parent.go")
	gprog := "package main\n\nimport (\n\t\"bytes\"\n\t\"fmt\"\n\t\"os\"\n\t\"os/exec\"\n\n" +
		"\t\"github.com/mmipc/mmipc/mmipc\"\n)\n\n" +
		"func main() {\n\tif err := run(); err != nil {\n\t\tfmt.Fprintln(os.Stderr, err)\n\t\tos.Exit(1)\n\t}\n}\n\n" +
		"func run() error {\n" + block("go", "ExtraFiles") + "return nil\n}\n"
	if err := os.WriteFile(gosrc, []byte(gprog), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(root, "go_examples", "readme_peers_check")
	overlay, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(pkg, "main.go"): gosrc}})
	ovfile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovfile, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-overlay", ovfile, "-o", filepath.Join(dir, "parent"), pkg)
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go parent does not compile: %v\n%s\n%s", err, out, gprog)
	}

	r := runProgram(t, time.Minute, dir, nil, filepath.Join(dir, "parent"))
	if r.code != 0 || r.out != "hi from Go\nhi from C\n" {
		t.Fatalf("README Go parent + C child: exit %d, output %q", r.code, r.out)
	}
}
