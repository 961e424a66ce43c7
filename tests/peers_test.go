package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The cross-language tests run one peer program per language: a C driver, a pure-Go command under
// tests/, and a Python script. peerSet builds each set once per run.

var (
	peersMu   sync.Mutex
	peerSets  = map[string]map[string][]string{}
	goPeerBin = map[string]string{}
)

// peerSet returns the command line of each language's peer ("C", "Go", "Python"): the C source
// compiled, the Go package tests/<goPkg> built with CGO_ENABLED=0 (a Go peer needs no cgo), and
// the Python script under tests/ run by python3. Without python3 the test is skipped.
func peerSet(t *testing.T, cSrc, goPkg, pyScript string) map[string][]string {
	t.Helper()
	py := python3(t)
	key := cSrc + "|" + goPkg + "|" + pyScript
	peersMu.Lock()
	set, ok := peerSets[key]
	peersMu.Unlock()
	if ok {
		return set
	}
	set = map[string][]string{
		"C":      {compileC(t, cSrc)},
		"Go":     {goPeer(t, goPkg)},
		"Python": {py, filepath.Join(root, "tests", pyScript)},
	}
	peersMu.Lock()
	peerSets[key] = set
	peersMu.Unlock()
	return set
}

// goPeer builds the Go command in tests/<pkg> once per run, with CGO_ENABLED=0.
func goPeer(t *testing.T, pkg string) string { return goCommand(t, "./tests/"+pkg) }

// mmipcCommand builds the mmipc command (cmd/mmipc) once per run.
func mmipcCommand(t *testing.T) string { return goCommand(t, "./cmd/mmipc") }

// goCommand builds the Go command at pkg (relative to the checkout) once per run, with
// CGO_ENABLED=0.
func goCommand(t *testing.T, pkg string) string {
	t.Helper()
	peersMu.Lock()
	defer peersMu.Unlock()
	if bin, ok := goPeerBin[pkg]; ok {
		return bin
	}
	bin := filepath.Join(binDir, "go-"+filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build %s: %v\n%s", pkg, err, out)
	}
	goPeerBin[pkg] = bin
	return bin
}

// python3 returns the interpreter, or skips the test.
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH")
	}
	return py
}

// peerEnv is what every peer needs besides the inherited environment: the region directory, and
// for Python the package and the library under test, without byte-code files in the checkout.
func peerEnv(dir string) []string {
	return []string{"MMIPC_DIR=" + dir, "PYTHONPATH=" + filepath.Join(root, "python"),
		"MMIPC_LIB=" + filepath.Join(libDir, "libmmipc.so"), "PYTHONDONTWRITEBYTECODE=1"}
}
