package tests

import (
	"context"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// installInto runs ./build.sh install prefix in dir with env added, failing the test if it fails,
// and returns its output.
func installInto(t *testing.T, dir, prefix string, env ...string) string {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(root, "build.sh"), "install", prefix)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("./build.sh install %s: %v\n%s", prefix, err, out)
	}
	return string(out)
}

// sonameMajor is the SONAME the library carries and the link programs load: libmmipc.so.MAJOR.
func sonameMajor() string {
	return "libmmipc.so." + strings.SplitN(mmipc.Version, ".", 2)[0]
}

// pythonPurelib is where python3 puts the packages of prefix ("" without python3): the same
// question build.sh asks, so the test finds the package where that python3 would.
func pythonPurelib(t *testing.T, prefix string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		return ""
	}
	out, err := exec.Command("python3", "-c", `import sys, sysconfig
print(sysconfig.get_path("purelib", "posix_prefix", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))`, prefix).Output()
	if err != nil {
		t.Fatalf("python3 sysconfig: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// installedTree lists what is under prefix: regular files as "path", symlinks as "path -> target",
// directories left out, sorted.
func installedTree(t *testing.T, prefix string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(prefix, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(prefix, path)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			rel += " -> " + target
		}
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// envWithout is this process's environment minus the named variables, plus add.
func envWithout(drop []string, add ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, name) {
			env = append(env, kv)
		}
	}
	return append(env, add...)
}

// ./build.sh install PREFIX lays mmipc out as a C library is laid out, and each language finds it
// there with the usual means alone (pkg-config, the dynamic linker's path, PYTHONPATH): nothing
// from the checkout is used.
func TestInstallPrefix(t *testing.T) {
	prefix := t.TempDir()
	// Empty search paths: the install must then tell how to find the prefix.
	out := installInto(t, "", prefix, "PKG_CONFIG_PATH=", "LD_LIBRARY_PATH=")
	t.Logf("./build.sh install:\n%s", out)
	lib := filepath.Join(prefix, "lib")
	real := "libmmipc.so." + mmipc.Version
	soname := sonameMajor()
	purelib := pythonPurelib(t, prefix)

	t.Run("tree", func(t *testing.T) {
		want := []string{
			"bin/mmipc",
			"include/mmipc.h",
			"lib/" + real,
			"lib/libmmipc.so -> " + soname,
			"lib/" + soname + " -> " + real,
			"lib/pkgconfig/mmipc.pc",
		}
		var pyFiles []string
		if purelib != "" {
			pkg, err := filepath.Rel(prefix, filepath.Join(purelib, "mmipc"))
			if err != nil || strings.HasPrefix(pkg, "..") {
				t.Fatalf("python3's purelib for the prefix, %s, is outside it", purelib)
			}
			srcs, _ := filepath.Glob(filepath.Join(root, "python", "mmipc", "*.py"))
			if len(srcs) == 0 {
				t.Fatal("no python/mmipc/*.py in the checkout")
			}
			for _, src := range srcs {
				f := filepath.Join(pkg, filepath.Base(src))
				want = append(want, f)
				pyFiles = append(pyFiles, f)
			}
		}
		slices.Sort(want)
		if got := installedTree(t, prefix); !slices.Equal(got, want) {
			t.Fatalf("installed tree:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		// Copies, not something else: the header and the Python sources are the checkout's.
		for _, f := range append([]string{"include/mmipc.h"}, pyFiles...) {
			src := filepath.Join(root, "mmipc.h")
			if f != "include/mmipc.h" {
				src = filepath.Join(root, "python", "mmipc", filepath.Base(f))
			}
			a, err1 := os.ReadFile(filepath.Join(prefix, f))
			b, err2 := os.ReadFile(src)
			if err1 != nil || err2 != nil || string(a) != string(b) {
				t.Errorf("%s differs from %s (%v, %v)", f, src, err1, err2)
			}
		}
		for f, mode := range map[string]fs.FileMode{"lib/" + real: 0o755, "bin/mmipc": 0o755, "include/mmipc.h": 0o644, "lib/pkgconfig/mmipc.pc": 0o644} {
			if st, err := os.Stat(filepath.Join(prefix, f)); err != nil || st.Mode().Perm() != mode {
				t.Errorf("%s: mode %v (%v), want %v", f, st.Mode().Perm(), err, mode)
			}
		}
		// The install lists what it put where.
		for _, f := range []string{"lib/" + real, "include/mmipc.h", "lib/pkgconfig/mmipc.pc", "bin/mmipc"} {
			if !strings.Contains(out, filepath.Join(prefix, f)) {
				t.Errorf("the install's output does not name %s", f)
			}
		}
	})

	t.Run("hints", func(t *testing.T) {
		want := []string{
			"export PKG_CONFIG_PATH=" + filepath.Join(lib, "pkgconfig"),
			"export LD_LIBRARY_PATH=" + lib,
		}
		if purelib != "" {
			want = append(want, "export PYTHONPATH="+purelib)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("the install's output lacks the hint %q", w)
			}
		}
	})

	t.Run("soname", func(t *testing.T) {
		f, err := elf.Open(filepath.Join(lib, real))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if got, err := f.DynString(elf.DT_SONAME); err != nil || !slices.Equal(got, []string{soname}) {
			t.Fatalf("SONAME of %s: %q (%v), want %s", real, got, err, soname)
		}
		// Both names resolve to the one real file.
		for _, link := range []string{"libmmipc.so", soname} {
			if p, err := filepath.EvalSymlinks(filepath.Join(lib, link)); err != nil || p != filepath.Join(lib, real) {
				t.Errorf("%s resolves to %q (%v), want %s", link, p, err, filepath.Join(lib, real))
			}
		}
	})

	t.Run("c", func(t *testing.T) {
		if _, err := exec.LookPath("pkg-config"); err != nil {
			t.Skip("pkg-config is not installed")
		}
		pkgConfig := func(args ...string) string {
			t.Helper()
			cmd := exec.Command("pkg-config", append(args, "mmipc")...)
			cmd.Env = append(os.Environ(), "PKG_CONFIG_PATH="+filepath.Join(lib, "pkgconfig"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pkg-config %v: %v\n%s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		if v := pkgConfig("--modversion"); v != mmipc.Version {
			t.Fatalf("pkg-config --modversion mmipc = %q, want %q", v, mmipc.Version)
		}
		flags := strings.Fields(pkgConfig("--cflags", "--libs"))
		for _, want := range []string{"-I" + filepath.Join(prefix, "include"), "-L" + lib, "-lmmipc"} {
			if !slices.Contains(flags, want) {
				t.Fatalf("pkg-config --cflags --libs mmipc = %q, lacks %s", flags, want)
			}
		}

		dir := t.TempDir()
		bins := map[string]string{}
		for _, prog := range []string{"named_writer", "named_reader"} {
			bin := filepath.Join(dir, prog)
			dep := bin + ".d"
			// -I c_examples for greeting.h only: mmipc.h and the library come from pkg-config.
			args := append([]string{"-std=gnu11", "-Wall", "-Wextra", "-Werror", "-MMD", "-MF", dep,
				"-I" + filepath.Join(root, "c_examples"), "-o", bin, filepath.Join(root, "c_examples", prog+".c")}, flags...)
			if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, out)
			}
			deps, err := os.ReadFile(dep)
			if err != nil || !strings.Contains(string(deps), filepath.Join(prefix, "include", "mmipc.h")) {
				t.Fatalf("%s was not compiled with the prefix's mmipc.h: dependencies %q (%v)", prog, deps, err)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			needed, err := f.ImportedLibraries()
			runpath, _ := f.DynString(elf.DT_RUNPATH)
			rpath, _ := f.DynString(elf.DT_RPATH)
			f.Close()
			if err != nil || !slices.Contains(needed, soname) || slices.Contains(needed, "libmmipc.so") {
				t.Fatalf("%s needs %q (%v), want %s", prog, needed, err, soname)
			}
			if len(runpath)+len(rpath) != 0 {
				t.Fatalf("%s has a run path %q %q: it should find the library only through LD_LIBRARY_PATH here", prog, runpath, rpath)
			}
			bins[prog] = bin
		}

		regions := regionDir(t)
		env := []string{"MMIPC_DIR=" + regions, "LD_LIBRARY_PATH=" + lib}
		wait := startProgram(t, time.Minute, dir, env, nil, bins["named_writer"], "install-greeting", "hello from the prefix")
		r := runProgram(t, time.Minute, dir, env, bins["named_reader"], "install-greeting")
		w := wait()
		if r.code != 0 || r.out != "reader got: hello from the prefix\n" {
			t.Errorf("named_reader: exit %d, output %q", r.code, r.out)
		}
		if w.code != 0 || w.out != "writer sent: hello from the prefix\nwriter: reader acknowledged\n" {
			t.Errorf("named_writer: exit %d, output %q", w.code, w.out)
		}
		if _, err := os.Lstat(filepath.Join(regions, "install-greeting")); !os.IsNotExist(err) {
			t.Errorf("the writer left its region behind (%v)", err)
		}
	})

	t.Run("command", func(t *testing.T) {
		bin := filepath.Join(prefix, "bin", "mmipc")
		dir := t.TempDir()
		if r := runProgram(t, time.Minute, dir, nil, bin, "--help"); r.code != 0 || !strings.Contains(r.out, "mmipc ls") {
			t.Fatalf("mmipc --help: exit %d, output %q", r.code, r.out)
		}
		if r := runProgram(t, time.Minute, dir, nil, bin, "version"); r.code != 0 || !strings.Contains(r.out, mmipc.Version) {
			t.Fatalf("mmipc version: exit %d, output %q, want %s in it", r.code, r.out, mmipc.Version)
		}
		regions := regionDir(t)
		reg, err := mmipc.Dir(regions).Create("install-ls", 4096, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close()
		if r := runProgram(t, time.Minute, dir, []string{"MMIPC_DIR=" + regions}, bin, "ls"); r.code != 0 || !strings.Contains(r.out, "install-ls") {
			t.Fatalf("MMIPC_DIR=%s mmipc ls: exit %d, output %q", regions, r.code, r.out)
		}
	})

	t.Run("python", func(t *testing.T) {
		if purelib == "" {
			t.Skip("python3 is not installed")
		}
		regions := regionDir(t)
		// Only PYTHONPATH: no $MMIPC_LIB, and a directory away from the checkout, so the package
		// has to find the library through the prefix's layout.
		env := envWithout([]string{"MMIPC_LIB", "PYTHONPATH", "LD_LIBRARY_PATH"},
			"PYTHONPATH="+purelib, "PYTHONDONTWRITEBYTECODE=1", "MMIPC_DIR="+regions)
		script := `import mmipc
print(mmipc.__version__)
print(mmipc.version())
print(mmipc.__file__)
print(mmipc._lib.path)
with mmipc.create("install-py", 4096) as r:
    r.buf[:5] = b"hello"
    with mmipc.open("install-py", readonly=True) as peer:
        print(bytes(peer.buf[:5]).decode())
    mmipc.unlink("install-py")
`
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := boundedCommand(ctx, "python3", "-c", script)
		cmd.Dir = t.TempDir()
		cmd.Env = env
		raw, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("python3: %v\n%s", err, raw)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		if len(lines) != 5 {
			t.Fatalf("python3 printed %q", raw)
		}
		if lines[0] != mmipc.Version || lines[1] != mmipc.Version {
			t.Errorf("mmipc.__version__ %q, mmipc.version() %q, want %q", lines[0], lines[1], mmipc.Version)
		}
		if want := filepath.Join(purelib, "mmipc", "__init__.py"); lines[2] != want {
			t.Errorf("imported %s, want %s", lines[2], want)
		}
		if want := filepath.Join(lib, soname); lines[3] != want {
			t.Errorf("the package loaded %s, want %s", lines[3], want)
		}
		if lines[4] != "hello" {
			t.Errorf("a region created and opened from Python read %q, want hello", lines[4])
		}
	})
}

// DESTDIR stages the tree for packaging: every file lands under DESTDIR, and what the files say
// (the pkg-config prefix) is the real prefix. A relative DESTDIR is relative to where build.sh
// was run, not to the checkout.
func TestInstallDestdir(t *testing.T) {
	cwd := t.TempDir()
	destdir := filepath.Join(cwd, "stage")
	const prefix = "/opt/mmipc-install-test"
	out := installInto(t, cwd, prefix, "DESTDIR=stage")
	if _, err := os.Lstat(prefix); err == nil {
		t.Fatalf("%s exists: the install ignored DESTDIR", prefix)
	}
	staged := filepath.Join(destdir, prefix)
	real := "libmmipc.so." + mmipc.Version
	for _, f := range []string{"lib/" + real, "include/mmipc.h", "lib/pkgconfig/mmipc.pc", "bin/mmipc"} {
		if _, err := os.Stat(filepath.Join(staged, f)); err != nil {
			t.Errorf("not staged: %v", err)
		}
	}
	for link, want := range map[string]string{"libmmipc.so": sonameMajor(), sonameMajor(): real} {
		if got, err := os.Readlink(filepath.Join(staged, "lib", link)); err != nil || got != want {
			t.Errorf("lib/%s -> %q (%v), want %s", link, got, err, want)
		}
	}
	pc, err := os.ReadFile(filepath.Join(staged, "lib", "pkgconfig", "mmipc.pc"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pc), "\nprefix="+prefix+"\n") || strings.Contains(string(pc), destdir) {
		t.Errorf("staged mmipc.pc does not name the real prefix %s alone:\n%s", prefix, pc)
	}
	if !strings.Contains(string(pc), "\nVersion: "+mmipc.Version+"\n") || strings.Contains(string(pc), "@") {
		t.Errorf("staged mmipc.pc:\n%s", pc)
	}
	if purelib := pythonPurelib(t, prefix); purelib != "" {
		if _, err := os.Stat(filepath.Join(destdir, purelib, "mmipc", "__init__.py")); err != nil {
			t.Errorf("the Python package is not staged: %v", err)
		}
	}
	// Hints about the final system would be wrong for a staging tree.
	if strings.Contains(out, "export ") {
		t.Errorf("a staged install printed hints:\n%s", out)
	}
}

// A prefix with white space is refused before anything is built or written: pkg-config's flags
// could not carry it.
func TestInstallRefusesSpacedPrefix(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "with space")
	out, err := exec.Command("bash", filepath.Join(root, "build.sh"), "install", prefix).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "white space") {
		t.Fatalf("install into %q: %v\n%s\nwant exit 2 and a reason", prefix, err, out)
	}
	if _, err := os.Stat(prefix); !os.IsNotExist(err) {
		t.Errorf("the refused prefix was created: %v", err)
	}
}
