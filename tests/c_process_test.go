package tests

import "testing"

// The C process tests: each runs one program of tests/c/ that starts further processes of itself
// (fork + exec, since a forked child may not use the library) and checks the contract of DESIGN.md
// from several processes at once.

// TestCRace: racing creators get exactly one winner; openers racing a creator see ENOENT or the
// whole region, never a half-made one.
func TestCRace(t *testing.T) { runCTest(t, "tests/c/test_race.c") }

// TestCFork: the fork rule: in a forked child (at start-up, while the parent works in Go, and with
// regions attached) the Go-needing calls fail at once with ENOTSUP and the fork-safe ones work.
func TestCFork(t *testing.T) { runCTest(t, "tests/c/test_fork.c") }

// TestCLifecycle: thousands of create/open/detach/unlink cycles leak no descriptor or mapping, and
// a 256 MiB region works page by page.
func TestCLifecycle(t *testing.T) { runCTest(t, "tests/c/test_lifecycle.c") }

// TestCFiles: mmipc_map_file, mmipc_anon and mmipc_copy_file on real files.
func TestCFiles(t *testing.T) { runCTest(t, "tests/c/test_files.c") }
