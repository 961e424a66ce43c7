package mmipc_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mmipc/mmipc/mmipc"
)

// A region is created once by name; any number of peers, in this process or others, attach it by
// the same name and see the same bytes.
//
// Create, Open and Unlink use $MMIPC_DIR, or /dev/shm when it is unset. This example keeps its
// region in a private directory (a Dir) so that it leaves nothing behind; with the package-level
// functions it reads the same: mmipc.Create("greeting", 64, 0).
func ExampleCreate() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	shm := mmipc.Dir(tmp)

	// The creator: 64 usable bytes, mode 0600, zero-filled.
	r, err := shm.Create("greeting", 64, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer shm.Unlink("greeting") // remove the name; attached peers keep working
	defer r.Close()

	// A peer (usually another process) attaches by name; the size comes from the region.
	peer, err := shm.Open("greeting")
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close()

	n := copy(r.Bytes(), "hello through shared memory")
	fmt.Printf("peer sees %d bytes: %q\n", peer.Size(), peer.Bytes()[:n])
	// Output:
	// peer sees 64 bytes: "hello through shared memory"
}

// Anonymous regions have no name: they are shared with child processes, which inherit the
// mapping across fork or receive the region's File (for example through exec.Cmd's ExtraFiles)
// and map it themselves.
func ExampleAnon() {
	r, err := mmipc.Anon(1 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	b := r.Bytes()
	b[0], b[len(b)-1] = 'A', 'Z'
	fmt.Println(r.Size(), string(b[0]), string(b[len(b)-1]), b[1])
	// Output:
	// 1048576 A Z 0
}

// FromFile attaches a region handed over as a file: the way to share an anonymous region (or a
// named one, without its name) with a program started by exec, in Go or C.
func ExampleFromFile() {
	r, err := mmipc.Anon(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// In a real program the parent hands the file to the child process, where it is fd 3:
	//
	//	cmd := exec.Command("./worker")
	//	cmd.ExtraFiles = []*os.File{r.File()}
	//	err := cmd.Start()
	//
	// and the child attaches it (a C child calls mmipc_attach_fd(3, 0)):
	//
	//	child, err := mmipc.FromFile(os.NewFile(3, "region"))
	//
	// An example cannot start a process, so the "child" attaches the file here.
	child, err := mmipc.FromFile(r.File())
	if err != nil {
		log.Fatal(err)
	}
	defer child.Close() // closes the child's own descriptor, never r.File()

	copy(r.Bytes(), "job 42")
	n := copy(child.Bytes()[100:], "done")
	fmt.Printf("child reads %q\n", child.Bytes()[:6])
	fmt.Printf("parent reads %q\n", r.Bytes()[100:100+n])
	fmt.Println(child.Size(), child.Name() == "")
	// Output:
	// child reads "job 42"
	// parent reads "done"
	// 4096 true
}

// MapFile maps an existing file whole, with no header: the classic open + mmap(MAP_SHARED)
// recipe. Writes through a writable mapping reach the file.
func ExampleMapFile() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "counter.txt")
	if err := os.WriteFile(path, []byte("count=0\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	m, err := mmipc.MapFile(path, true)
	if err != nil {
		log.Fatal(err)
	}
	m.Bytes()[6] = '7'
	if err := m.Sync(); err != nil { // flush to the file now (optional)
		log.Fatal(err)
	}
	if err := m.Close(); err != nil {
		log.Fatal(err)
	}

	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(b))
	// Output:
	// count=7
}

// CopyFile copies like cp, through memory mappings: the destination gets the source's bytes and
// permission bits, and is replaced atomically.
func ExampleCopyFile() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src, dst := filepath.Join(tmp, "report.txt"), filepath.Join(tmp, "report.bak")
	if err := os.WriteFile(src, []byte("quarterly numbers\n"), 0o640); err != nil {
		log.Fatal(err)
	}

	if err := mmipc.CopyFile(src, dst); err != nil {
		log.Fatal(err)
	}

	b, err := os.ReadFile(dst)
	if err != nil {
		log.Fatal(err)
	}
	st, err := os.Stat(dst)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s%v\n", b, st.Mode())
	// Output:
	// quarterly numbers
	// -rw-r-----
}

// Every failure is an *Error that unwraps to its errno, so the usual tests work: errors.Is with
// fs.ErrExist, fs.ErrNotExist or a syscall.Errno, and errors.As for the details.
func ExampleError() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	shm := mmipc.Dir(tmp)

	r, err := shm.Create("jobs", 4096, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// A second creator loses: the name is taken. Attach the existing region instead.
	_, err = shm.Create("jobs", 4096, 0)
	if errors.Is(err, fs.ErrExist) {
		fmt.Println("already exists; attaching")
		peer, err := shm.Open("jobs")
		if err != nil {
			log.Fatal(err)
		}
		defer peer.Close()
	}

	var e *mmipc.Error
	if errors.As(err, &e) {
		fmt.Printf("%s %q failed: %v\n", e.Op, e.Name, e.Errno)
	}

	// A missing region, and a file that is not a region.
	_, err = shm.Open("nothing")
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	if err := os.WriteFile(filepath.Join(tmp, "notes"), []byte("not a region"), 0o600); err != nil {
		log.Fatal(err)
	}
	_, err = shm.Open("notes")
	fmt.Println(errors.Is(err, syscall.EPROTO))
	// Output:
	// already exists; attaching
	// create "jobs" failed: file exists
	// true
	// true
}

// Every attached process holds its region, and the kernel lets go when the process dies, however it
// dies. Stat tells whether anyone is attached; GC removes the regions nobody is, such as those a
// crashed program left in /dev/shm, and never one in use.
func ExampleGC() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	shm := mmipc.Dir(tmp) // mmipc.GC() cleans $MMIPC_DIR, or /dev/shm

	inUse, err := shm.Create("in-use", 64, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer inUse.Close()
	left, err := shm.Create("left-behind", 64, 0)
	if err != nil {
		log.Fatal(err)
	}
	left.Close() // as if its program had crashed: nobody is attached now

	for _, name := range []string{"in-use", "left-behind"} {
		info, err := shm.Stat(name)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d bytes, attached: %v\n", info.Name, info.Size, info.Attached)
	}
	removed, err := shm.GC()
	if err != nil {
		log.Fatal(err)
	}
	_, err = shm.Stat("left-behind")
	fmt.Println("removed:", removed, "- left-behind exists:", !errors.Is(err, fs.ErrNotExist))
	// Output:
	// in-use: 64 bytes, attached: true
	// left-behind: 64 bytes, attached: false
	// removed: 1 - left-behind exists: false
}
