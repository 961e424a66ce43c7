// Package tests drives the C test programs and examples against the real libmmipc.so, the way Go's
// own c-shared tests do: build the .so once, compile each C driver with `go env CC`, run it, and
// check its exit status and output.
package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	root   string // the checkout
	libDir string // where libmmipc.so is
	binDir string // compiled C drivers
	cc     string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root = filepath.Dir(wd)
	tmp, err := os.MkdirTemp("", "mmipc-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	binDir = filepath.Join(tmp, "bin")
	os.MkdirAll(binDir, 0o755)
	os.Chmod(tmp, 0o755) // tests that drop to another uid run these binaries

	out, err := exec.Command("go", "env", "CC").Output()
	cc = strings.TrimSpace(string(out))
	if err != nil || cc == "" {
		cc = "cc"
	}
	// Build the library once: reuse build/ when ./build.sh test just made it, else build here with
	// the same script (and so the same flags) that ./build.sh uses.
	libDir = os.Getenv("MMIPC_BUILD_DIR")
	if _, err := os.Stat(filepath.Join(libDir, "libmmipc.so")); libDir == "" || err != nil {
		libDir = filepath.Join(tmp, "lib")
		cmd := exec.Command("bash", filepath.Join(root, "build.sh"), "lib", libDir)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building libmmipc.so: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

var compileMu sync.Mutex

// compileC compiles tests/c/<name>.c (or any path relative to the checkout) once, with the
// project's warning flags as errors, and returns the binary.
func compileC(t *testing.T, src string) string {
	t.Helper()
	compileMu.Lock()
	defer compileMu.Unlock()
	bin := filepath.Join(binDir, strings.TrimSuffix(filepath.Base(src), ".c"))
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	args := []string{"-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"}
	// ./build.sh check sets this to build the C programs with sanitizers.
	args = append(args, strings.Fields(os.Getenv("MMIPC_TEST_CFLAGS"))...)
	args = append(args, "-I"+root, "-I"+filepath.Join(root, "tests", "c"),
		"-o", bin, filepath.Join(root, src),
		"-L"+libDir, "-lmmipc", "-Wl,-rpath,"+libDir, "-lpthread")
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
	}
	return bin
}

// regionDir makes a fresh directory for MMIPC_DIR under /dev/shm (the real default's file system),
// removed with the test.
func regionDir(t *testing.T) string {
	t.Helper()
	parent := "/dev/shm"
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		parent = ""
	}
	dir, err := os.MkdirTemp(parent, "mmipc-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type result struct {
	out  string
	code int
}

// runProgram runs bin with args in dir (a fresh MMIPC_DIR when env does not set one), bounded by
// timeout so that a hang is a failure, not a stuck suite.
func runProgram(t *testing.T, timeout time.Duration, dir string, env []string, bin string, args ...string) result {
	t.Helper()
	return startProgram(t, timeout, dir, env, nil, bin, args...)()
}

// startProgram starts bin in the background in dir ("" for this directory), with env added to
// this environment and extra as its descriptors from fd 3 on. The returned function waits for it,
// bounded by timeout (then the whole process group is killed, and the test fails), and returns
// its combined output and exit code.
func startProgram(t *testing.T, timeout time.Duration, dir string, env []string, extra []*os.File, bin string, args ...string) func() result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := boundedCommand(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.ExtraFiles = extra
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("%s: %v", bin, err)
	}
	return func() result {
		t.Helper()
		defer cancel()
		err := cmd.Wait()
		if ctx.Err() != nil {
			t.Fatalf("%s %v: still running after %v (hang):\n%s", bin, args, timeout, buf.String())
		}
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("%s: %v", bin, err)
			}
			code = ee.ExitCode()
		}
		return result{buf.String(), code}
	}
}

// boundedCommand is exec.CommandContext with the kill a hang needs: when ctx ends, the whole
// process group goes (a hung child of the program would otherwise keep the output pipe open and
// Wait would wait for it forever), and Wait stops waiting for the pipes 5 s later.
func boundedCommand(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runCTest compiles and runs one C test driver and fails the test if it exits non-zero or reports
// a failed check.
func runCTest(t *testing.T, src string, args ...string) string {
	t.Helper()
	bin := compileC(t, src)
	dir := regionDir(t)
	r := runProgram(t, 3*time.Minute, dir, []string{"MMIPC_DIR=" + dir}, bin, args...)
	if r.code != 0 || strings.Contains(r.out, "not ok") {
		t.Fatalf("%s exited %d:\n%s", src, r.code, r.out)
	}
	if !strings.Contains(r.out, " checks, 0 failed") {
		t.Fatalf("%s: no check summary in its output:\n%s", src, r.out)
	}
	t.Logf("%s: %s", src, lastLine(r.out))
	return r.out
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}
