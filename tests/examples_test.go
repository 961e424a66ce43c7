package tests

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The examples in c_examples/ are compiled with the project's flags and run end to end: each must
// print what it promises, and fail with a clear message where the raw recipe would crash.

func writeTestTxt(t *testing.T, dir string, content []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "test.txt"), content, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExampleClassicRaw(t *testing.T) {
	bin := compileC(t, "c_examples/classic_raw.c")
	dir := t.TempDir()
	writeTestTxt(t, dir, []byte(strings.Repeat("x", 63)+"\n"))
	r := runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 0 || r.out != "read data : nihao father!!\n" {
		t.Fatalf("got exit %d, output %q; want the tutorial's line", r.code, r.out)
	}
}

func TestExampleClassicFile(t *testing.T) {
	bin := compileC(t, "c_examples/classic_file.c")
	dir := t.TempDir()
	writeTestTxt(t, dir, []byte(strings.Repeat("x", 63)+"\n"))
	r := runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 0 || r.out != "read data : nihao father!!\n" {
		t.Fatalf("got exit %d, output %q", r.code, r.out)
	}
	// The child's write reached the file itself.
	got, _ := os.ReadFile(filepath.Join(dir, "test.txt"))
	if !bytes.HasPrefix(got, []byte("nihao father!!\x00")) || len(got) != 64 {
		t.Errorf("test.txt after the run: %q", got)
	}

	// Where the raw version crashes or misbehaves, this one explains.
	os.Remove(filepath.Join(dir, "test.txt"))
	r = runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 1 || !strings.Contains(r.out, "mmipc_map_file") || !strings.Contains(r.out, "no such file") {
		t.Errorf("missing test.txt: exit %d, output %q", r.code, r.out)
	}
	writeTestTxt(t, dir, nil)
	r = runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 1 || !strings.Contains(r.out, "empty") {
		t.Errorf("empty test.txt: exit %d, output %q", r.code, r.out)
	}
	// A file without a NUL: the parent's read stays inside the 5-byte mapping.
	writeTestTxt(t, dir, []byte("abcde"))
	r = runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 0 || r.out != "read data : niha\n" {
		t.Errorf("5-byte test.txt: exit %d, output %q", r.code, r.out)
	}
}

func TestExampleClassicAnon(t *testing.T) {
	bin := compileC(t, "c_examples/classic_anon.c")
	r := runProgram(t, time.Minute, t.TempDir(), nil, bin)
	if r.code != 0 || r.out != "read data : nihao father!!\n" {
		t.Fatalf("got exit %d, output %q", r.code, r.out)
	}
}

// Two unrelated processes, started independently, meet by name.
func TestExampleNamedPair(t *testing.T) {
	writer := compileC(t, "c_examples/named_writer.c")
	reader := compileC(t, "c_examples/named_reader.c")
	dir := regionDir(t)
	env := append(os.Environ(), "MMIPC_DIR="+dir)

	// The reader starts first and waits for the region to appear.
	var rout bytes.Buffer
	rcmd := exec.Command(reader, "pair")
	rcmd.Env, rcmd.Stdout, rcmd.Stderr = env, &rout, &rout
	if err := rcmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	w := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, writer, "pair", "nihao reader!!")
	done := make(chan error, 1)
	go func() { done <- rcmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("reader: %v\n%s", err, rout.String())
		}
	case <-time.After(time.Minute):
		rcmd.Process.Kill()
		t.Fatalf("reader hung:\n%s", rout.String())
	}
	if w.code != 0 || !strings.Contains(w.out, "writer sent: nihao reader!!") || !strings.Contains(w.out, "reader acknowledged") {
		t.Errorf("writer: exit %d, output %q", w.code, w.out)
	}
	if rout.String() != "reader got: nihao reader!!\n" {
		t.Errorf("reader output %q", rout.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "pair")); !os.IsNotExist(err) {
		t.Errorf("the writer left its region behind: %v", err)
	}

	// A stale region is reported as such.
	if err := os.WriteFile(filepath.Join(dir, "stale"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	w = runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + dir}, writer, "stale")
	if w.code != 1 || !strings.Contains(w.out, "file exists") {
		t.Errorf("writer over an existing name: exit %d, output %q", w.code, w.out)
	}
}

func TestExampleCopyFile(t *testing.T) {
	bin := compileC(t, "c_examples/copy_file.c")
	dir := t.TempDir()
	data := make([]byte, 5<<20+77)
	rand.Read(data)
	src, dst := filepath.Join(dir, "src.bin"), filepath.Join(dir, "dst.bin")
	if err := os.WriteFile(src, data, 0o640); err != nil {
		t.Fatal(err)
	}
	r := runProgram(t, time.Minute, dir, nil, bin, src, dst)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.out)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("copy differs from the source (err %v, %d bytes vs %d)", err, len(got), len(data))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o640 {
		t.Errorf("copy has mode %v, want 0640", st.Mode().Perm())
	}
	r = runProgram(t, time.Minute, dir, nil, bin, filepath.Join(dir, "missing"), dst)
	if r.code != 1 || !strings.Contains(r.out, "mmipc_copy_file") {
		t.Errorf("missing source: exit %d, output %q", r.code, r.out)
	}
	r = runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 2 || !strings.Contains(r.out, "usage") {
		t.Errorf("no arguments: exit %d, output %q", r.code, r.out)
	}
}

// The README's C example compiles and does what it says.
func TestReadmeCExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "```c\n")
	if start < 0 {
		t.Fatal("README.md has no C example")
	}
	code := text[start+len("```c\n"):]
	code = code[:strings.Index(code, "```")]
	bin := compileSnippet(t, "readme", code)
	rdir := regionDir(t)
	r := runProgram(t, time.Minute, rdir, []string{"MMIPC_DIR=" + rdir}, bin)
	if r.code != 0 || r.out != "hi from C (4096 bytes)\n" {
		t.Fatalf("README example: exit %d, output %q", r.code, r.out)
	}
	if entries, _ := os.ReadDir(rdir); len(entries) != 0 {
		t.Errorf("README example left %d files behind", len(entries))
	}
}

// compileSnippet compiles a C program given as text (a README example) against the library, with
// the project's warnings as errors, and returns the binary.
func compileSnippet(t *testing.T, name, code string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, name+".c")
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.Command(cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"+root, "-o", bin, src,
		"-L"+libDir, "-lmmipc", "-Wl,-rpath,"+libDir).CombinedOutput(); err != nil {
		t.Fatalf("the README's %s example does not compile: %v\n%s\n%s", name, err, out, code)
	}
	return bin
}
