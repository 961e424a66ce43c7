package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// cflags are the project's flags for every C file (build.sh's CFLAGS).
var cflags = []string{"-std=gnu11", "-O2", "-g", "-Wall", "-Wextra", "-Werror"}

// buildEngines compiles bench/c/*.c into binDir: plain.c as the shared library libbenchplain.so,
// every other file as a program linked with libmmipc.so (--as-needed, so that a program that
// calls no mmipc function, such as startup_raw, does not load the library and its Go runtime at
// start-up); and the Go peer with cgo off, as a Go user of the pure-Go package would build it.
func buildEngines(root, libDir, binDir, cc string) error {
	// Start empty: an engine that fails to build must not be replaced by last run's binary.
	if err := os.RemoveAll(binDir); err != nil {
		return err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	srcs, err := filepath.Glob(filepath.Join(root, "bench", "c", "*.c"))
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return fmt.Errorf("no C engines in %s", filepath.Join(root, "bench", "c"))
	}
	type step struct {
		what string
		cmd  *exec.Cmd
	}
	var plain []step
	var progs []step
	for _, src := range srcs {
		base := strings.TrimSuffix(filepath.Base(src), ".c")
		if base == "plain" {
			args := append(append([]string{}, cflags...), "-fPIC", "-shared", "-I"+root,
				"-o", filepath.Join(binDir, "libbenchplain.so"), src)
			plain = append(plain, step{src, exec.Command(cc, args...)})
			continue
		}
		args := append(append([]string{}, cflags...), "-I"+root, "-o", filepath.Join(binDir, base), src,
			"-L"+binDir, "-Wl,-rpath,"+binDir,
			"-L"+libDir, "-Wl,--as-needed", "-lmmipc", "-Wl,-rpath,"+libDir, "-lrt", "-lpthread")
		if base == "abicost" {
			// The baseline of the ABI rows: a plain C function in a shared library.
			args = append(args, "-lbenchplain")
		}
		progs = append(progs, step{src, exec.Command(cc, args...)})
	}
	gopeer := exec.Command("go", "build", "-o", filepath.Join(binDir, "gopeer"), "./bench/gopeer")
	gopeer.Dir = root
	gopeer.Env = append(os.Environ(), "CGO_ENABLED=0")
	progs = append(progs, step{"bench/gopeer", gopeer})

	run := func(steps []step) error {
		// Two at a time: the machine has two cores.
		var mu sync.Mutex
		var errs []string
		sem := make(chan struct{}, 2)
		var wg sync.WaitGroup
		for _, s := range steps {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if out, err := s.cmd.CombinedOutput(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("building %s: %v\n%s\n%s", s.what, err,
						strings.Join(s.cmd.Args, " "), out))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if errs != nil {
			return fmt.Errorf("%s", strings.Join(errs, "\n"))
		}
		return nil
	}
	// libbenchplain.so first: abicost links against it.
	if err := run(plain); err != nil {
		return err
	}
	return run(progs)
}

// toolVersion returns the first line of `argv --version`-like output, or "" if it fails.
func toolVersion(argv ...string) string {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}
