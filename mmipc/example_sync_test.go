package mmipc_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// A Lock lives in shared memory: any process that maps the region contends on it, and when the
// holder dies the next Acquire takes over with EOWNERDEAD.
func ExampleLock() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	shm := mmipc.Dir(tmp) // or the package-level mmipc.Create, in $MMIPC_DIR or /dev/shm

	r, err := shm.Create("counter", 4096, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer shm.Unlink("counter")
	defer r.Close()

	// The lock takes the first 64 bytes (zeros are an unlocked lock); the counter it guards
	// follows.
	l, err := mmipc.LockAt(r.Bytes()[0:64])
	if err != nil {
		log.Fatal(err)
	}
	counter, err := mmipc.Word(r.Bytes(), 64)
	if err != nil {
		log.Fatal(err)
	}

	switch err := l.Acquire(time.Second); {
	case errors.Is(err, syscall.EOWNERDEAD):
		// The previous holder died mid-update: repair the data, then mark it consistent.
		*counter = 0
		l.Consistent()
	case err != nil:
		log.Fatal(err)
	}
	*counter++
	if err := l.Release(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("counter:", atomic.LoadUint32(counter))
	// Output:
	// counter: 1
}

// A ring carries messages between processes: one creates it, the others open it by name.
func ExampleRing() {
	tmp, err := os.MkdirTemp("", "mmipc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	shm := mmipc.Dir(tmp) // or mmipc.CreateRing("jobs", ...) in $MMIPC_DIR or /dev/shm

	sender, err := shm.CreateRing("jobs", 64<<10, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer shm.Unlink("jobs")
	defer sender.Close()

	// Usually another process; here another handle (one per goroutine).
	receiver, err := shm.OpenRing("jobs")
	if err != nil {
		log.Fatal(err)
	}
	defer receiver.Close()

	for _, job := range []string{"resize photo.jpg", "send mail"} {
		if err := sender.Send([]byte(job), time.Second); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, receiver.MaxMessage())
	for {
		n, err := receiver.Recv(buf, mmipc.TryOnce)
		if errors.Is(err, syscall.EAGAIN) {
			break // empty
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("job: %s\n", buf[:n])
	}
	fmt.Printf("capacity %d, largest message %d\n", receiver.Capacity(), receiver.MaxMessage())
	// Output:
	// job: resize photo.jpg
	// job: send mail
	// capacity 65536, largest message 32760
}

// Wait and Notify are a futex on a word of shared memory: the waiter sleeps while the word holds
// the value it last saw; the writer changes the word, then notifies.
func ExampleWait() {
	r, err := mmipc.Anon(4096)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	ready, err := mmipc.Word(r.Bytes(), 0)
	if err != nil {
		log.Fatal(err)
	}

	// The writer: usually another process mapping the same region.
	go func() {
		time.Sleep(10 * time.Millisecond)
		atomic.StoreUint32(ready, 1)
		mmipc.Notify(ready, 1)
	}()

	// The waiter: check the condition, and sleep with the value that failed it.
	for {
		v := atomic.LoadUint32(ready)
		if v == 1 {
			break
		}
		if err := mmipc.Wait(ready, v, 5*time.Second); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("ready")
	// Output:
	// ready
}
