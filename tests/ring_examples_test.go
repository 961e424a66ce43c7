package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The ring examples (ring_sender / ring_receiver, message format c_examples/ringmsg.h) in C, Go
// and Python double as the cross-language end-to-end test of the ring: every pairing of sender
// and receiver languages moves a million numbered, checksummed messages of 16 to 112 bytes, and
// the receiver proves per-sender order, no loss, no repeat and intact payloads.

var ringLangs = []string{"C", "Go", "Python"}

// ringExample returns the command line of an example in a language.
func ringExample(t *testing.T, lang, name string) []string {
	t.Helper()
	switch lang {
	case "Python":
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 is not on PATH")
		}
		return []string{py, filepath.Join(root, "python_examples", name+".py")}
	default:
		return []string{goexBin(t, lang, name)}
	}
}

// ringEnv is the environment of an example process: the region directory, and for Python the
// package and the library under test.
func ringEnv(dir string) []string {
	return []string{"MMIPC_DIR=" + dir, "PYTHONPATH=" + filepath.Join(root, "python"),
		"MMIPC_LIB=" + filepath.Join(libDir, "libmmipc.so")}
}

// ringRun starts one receiver expecting count messages from each sender, then the senders (one
// per language given), and checks every output.
func ringRun(t *testing.T, recvLang string, sendLangs []string, count int) {
	dir := regionDir(t)
	env := ringEnv(dir)
	name := "ring-example"
	recv := ringExample(t, recvLang, "ring_receiver")
	args := append(recv[1:], name, fmt.Sprint(count), fmt.Sprint(len(sendLangs)))
	waitRecv := startProgram(t, 3*time.Minute, "", env, nil, recv[0], args...)
	var waits []func() result
	for id, lang := range sendLangs {
		send := ringExample(t, lang, "ring_sender")
		args := append(send[1:], name, fmt.Sprint(count), fmt.Sprint(id))
		waits = append(waits, startProgram(t, 3*time.Minute, "", env, nil, send[0], args...))
	}
	for id, wait := range waits {
		r := wait()
		if want := fmt.Sprintf("ring_sender %d: sent %d messages\n", id, count); r.code != 0 || r.out != want {
			t.Errorf("%s sender %d: exit %d, output %q, want %q", sendLangs[id], id, r.code, r.out, want)
		}
	}
	r := waitRecv()
	want := fmt.Sprintf("ring_receiver: %d messages from %d sender(s): in order, none lost or repeated, checksums match\n",
		count*len(sendLangs), len(sendLangs))
	if r.code != 0 || r.out != want {
		t.Errorf("%s receiver: exit %d, output %q, want %q", recvLang, r.code, r.out, want)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Errorf("the receiver left the ring behind: %v", err)
	}
}

func TestRingExamplePairs(t *testing.T) {
	count := 1000000
	if testing.Short() {
		count = 20000
	}
	for _, sl := range ringLangs {
		for _, rl := range ringLangs {
			t.Run(sl+"_sender+"+rl+"_receiver", func(t *testing.T) {
				ringRun(t, rl, []string{sl}, count)
			})
		}
	}
}

// Senders in all three languages at once share the ring's send side (it turns shared) while one
// receiver checks each sender's order.
func TestRingExampleMixedSenders(t *testing.T) {
	for _, rl := range ringLangs {
		t.Run(rl+"_receiver", func(t *testing.T) {
			ringRun(t, rl, []string{"C", "Go", "Python", "C", "Go"}, 50000)
		})
	}
}

// The receiver times out (rather than hanging) when no sender comes, and says so.
func TestRingExampleReceiverTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10 s")
	}
	dir := regionDir(t)
	recv := ringExample(t, "C", "ring_receiver")
	r := runProgram(t, time.Minute, "", ringEnv(dir), recv[0], "lonely", "1")
	if r.code != 1 || !strings.Contains(r.out, "timed out: are the senders running?") {
		t.Errorf("exit %d, output %q", r.code, r.out)
	}
}

// lock_counter: forked workers update a counter under one lock after a victim died holding it.
func TestExampleLockCounter(t *testing.T) {
	bin := compileC(t, "c_examples/lock_counter.c")
	r := runProgram(t, 2*time.Minute, "", nil, bin, "4", "20000")
	if want := "counter = 80000 (want 80000); dead owners recovered: 1\n"; r.code != 0 || r.out != want {
		t.Errorf("exit %d, output %q, want %q", r.code, r.out, want)
	}
}

// readmeSection returns the text of the README section that starts with heading.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, heading)
	if start < 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	text = text[start+len(heading):]
	if end := strings.Index(text, "\n## "); end >= 0 {
		text = text[:end]
	}
	return text
}

// codeBlock returns the first fenced block of the language in text.
func codeBlock(t *testing.T, text, lang string) string {
	t.Helper()
	start := strings.Index(text, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("no %s block", lang)
	}
	code := text[start+len("```"+lang+"\n"):]
	return code[:strings.Index(code, "```")]
}

// The sync section's C program compiles and runs as printed; its Go lines compile.
func TestReadmeSyncSnippets(t *testing.T) {
	section := readmeSection(t, "## Beyond raw memory: wait, lock, ring")
	bin := compileSnippet(t, "readme_ring", codeBlock(t, section, "c"))
	rdir := regionDir(t)
	r := runProgram(t, time.Minute, rdir, []string{"MMIPC_DIR=" + rdir}, bin)
	if r.code != 0 || r.out != "got job 1\n" {
		t.Fatalf("README ring example: exit %d, output %q", r.code, r.out)
	}
	if entries, _ := os.ReadDir(rdir); len(entries) != 0 {
		t.Errorf("README ring example left %d files behind", len(entries))
	}

	// The Go lines, in a function of a throw-away main package inside the module.
	gosrc := "package main\n\nimport \"github.com/mmipc/mmipc/mmipc\"\n\nfunc send() error {\n" +
		codeBlock(t, section, "go") + "\treturn err\n}\n\nfunc main() { _ = send }\n"
	gdir, err := os.MkdirTemp(root, ".readme-go-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(gdir)
	if err := os.WriteFile(filepath.Join(gdir, "main.go"), []byte(gosrc), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "vet", "./"+filepath.Base(gdir))
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go ring lines do not build: %v\n%s\n%s", err, out, gosrc)
	}
}
