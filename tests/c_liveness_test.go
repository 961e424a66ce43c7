package tests

import "testing"

// TestCLiveness runs tests/c/test_liveness.c: mmipc_stat's fields and errors, "attached" through
// every kind of attachment (a forked child's inherited handle included, until it is SIGKILLed),
// and mmipc_gc's exact counts: held regions, non-regions, symlinks, invalid names and directories
// are kept; unattached regions and dead creators' temporary files are removed; ENOTSUP in a forked
// child.
func TestCLiveness(t *testing.T) { runCTest(t, "tests/c/test_liveness.c") }
