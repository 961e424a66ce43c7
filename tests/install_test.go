package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// ./build.sh install PREFIX gives a usable C library: a program builds against PREFIX alone.
func TestInstallPrefix(t *testing.T) {
	prefix := t.TempDir()
	if out, err := exec.Command("bash", filepath.Join(root, "build.sh"), "install", prefix).CombinedOutput(); err != nil {
		t.Fatalf("./build.sh install: %v\n%s", err, out)
	}
	for _, f := range []string{"lib/libmmipc.so", "include/mmipc.h"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Fatalf("installed tree lacks %s: %v", f, err)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "app.c")
	os.WriteFile(src, []byte(`#include <mmipc.h>
#include <stdio.h>
#include <string.h>
int main(void) {
	mmipc_region *r = mmipc_anon(64);
	if (r == NULL) { puts(mmipc_last_error()); return 1; }
	printf("%s %zu\n", mmipc_version(), mmipc_size(r));
	return mmipc_detach(r);
}
`), 0o644)
	bin := filepath.Join(dir, "app")
	lib := filepath.Join(prefix, "lib")
	// Only the prefix: no -I or -L into the checkout.
	if out, err := exec.Command(cc, "-Wall", "-Wextra", "-Werror", "-I"+filepath.Join(prefix, "include"), "-o", bin, src,
		"-L"+lib, "-lmmipc", "-Wl,-rpath,"+lib).CombinedOutput(); err != nil {
		t.Fatalf("compiling against the prefix: %v\n%s", err, out)
	}
	r := runProgram(t, time.Minute, dir, nil, bin)
	if r.code != 0 || r.out != mmipc.Version+" 64\n" {
		t.Fatalf("program built against the prefix: exit %d, output %q", r.code, r.out)
	}
}
