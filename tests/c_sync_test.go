package tests

import "testing"

// The C sync-layer tests (docs/PROTOCOL.md "The sync layer", mmipc.h): each runs one program of
// tests/c/ that works from threads, forked children and exec'd copies of itself, every wait bounded.

// TestCSync: mmipc_wait/mmipc_notify (every errno, timeouts, EINTR, how many a notify wakes, the
// load-check-wait pattern) and mmipc_lock (errno table, the owner's identity bytes, 4 processes x 4
// threads counting under it, a holder killed with SIGKILL, not-recoverable, a zombie holder, a
// recycled pid, garbage state bits, timeouts, a release waking a sleeper at once, a forked child).
func TestCSync(t *testing.T) { runCTest(t, "tests/c/test_sync.c") }

// TestCRingAPI: create/open errno table (incl. EPROTO for damaged control blocks and ENOTSUP in a
// forked child), capacity rounding and the control block's bytes, every size and padding at every
// offset, EMSGSIZE, EAGAIN/ETIMEDOUT, reserve/commit, peek/release, sides, EPROTO from each data
// call (damaged tail, record header, tail moved under a reservation, damaged side lock) and
// recovery once repaired, a randomized run.
func TestCRingAPI(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "api") }

// TestCRingSPSC: a parent and a forked child exchange 1e6 checked messages through a 1 KiB ring,
// lock-free, with pauses that make both sides sleep.
func TestCRingSPSC(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "spsc") }

// TestCRingMPMC: 4 sender and 3 receiver processes, 200k messages: no loss, no duplicate,
// per-sender order; both sides end shared.
func TestCRingMPMC(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "mpmc") }

// TestCRingDeath: senders and receivers killed mid-operation, revocation of a live owner, a live
// owner holding a reservation, and handles used across fork.
func TestCRingDeath(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "death") }

// TestCRingHostile: a process scribbles over tail, head and record headers while a sender and a
// receiver run: only valid messages or EPROTO, no crash, no hang.
func TestCRingHostile(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "hostile") }

// TestCRingNoMembarrier: a process denied membarrier(2) (seccomp) exchanges messages with one that
// has it, both sleeping at times, and revokes and is revoked: the fallbacks of PROTOCOL "Sides".
func TestCRingNoMembarrier(t *testing.T) { runCTest(t, "tests/c/test_ring.c", "nomembarrier") }
