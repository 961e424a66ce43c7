package tests

import (
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// The README's cleanup snippet, in a main of its own, against a region this test holds ("jobs") and
// one nobody holds: it reports jobs attached and removes exactly the other.
func TestReadmeCleanupSnippet(t *testing.T) {
	section := readmeSection(t, "## Cleaning up after crashes")
	code := "#include <stdio.h>\n#include \"mmipc.h\"\n\nint main(void)\n{\n" + codeBlock(t, section, "c") +
		"\tprintf(\"removed %d\\n\", removed);\n\treturn 0;\n}\n"
	bin := compileSnippet(t, "readme_cleanup", code)
	rdir := regionDir(t)
	d := mmipc.Dir(rdir)
	jobs, err := d.Create("jobs", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	left, err := d.Create("left-behind", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	left.Close()
	r := runProgram(t, time.Minute, rdir, []string{"MMIPC_DIR=" + rdir}, bin)
	want := regexp.MustCompile(`^100 bytes, created by pid \d+, attached: yes\nremoved 1\n$`)
	if r.code != 0 || !want.MatchString(r.out) {
		t.Fatalf("exit %d, output %q; want %v", r.code, r.out, want)
	}
	if _, err := os.Stat(rdir + "/left-behind"); !os.IsNotExist(err) {
		t.Errorf("left-behind survived the snippet's mmipc_gc: %v", err)
	}
	if _, err := d.Stat("jobs"); err != nil {
		t.Errorf("jobs, held by this test, was touched: %v", err)
	}
}

// c_examples/leftover_cleanup.c: a killed worker's region is reported unattached and collected;
// the parent's region is kept; nothing is left behind.
func TestExampleLeftoverCleanup(t *testing.T) {
	bin := compileC(t, "c_examples/leftover_cleanup.c")
	rdir := regionDir(t)
	r := runProgram(t, time.Minute, rdir, []string{"MMIPC_DIR=" + rdir}, bin)
	want := `worker running:
jobs     4096 bytes, attached: yes
scratch  1048576 bytes, attached: yes
mmipc_gc removed 0
worker killed:
jobs     4096 bytes, attached: yes
scratch  1048576 bytes, attached: no
mmipc_gc removed 1
jobs     4096 bytes, attached: yes
scratch  gone
`
	if r.code != 0 || r.out != want {
		t.Fatalf("exit %d, output:\n%s\nwant:\n%s", r.code, r.out, want)
	}
	if entries, _ := os.ReadDir(rdir); len(entries) != 0 {
		t.Errorf("the example left %d files behind", len(entries))
	}
}
