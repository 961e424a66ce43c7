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
