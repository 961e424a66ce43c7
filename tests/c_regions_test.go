package tests

import "testing"

// TestCErrors runs tests/c/test_errors.c: every row of the errno table of DESIGN.md through the C
// API, each with the errno and a last-error message naming the call and the name. As root it
// re-executes itself as uid 65534 for the EACCES cases.
func TestCErrors(t *testing.T) { runCTest(t, "tests/c/test_errors.c") }

// TestCRegions runs tests/c/test_regions.c: region semantics (sizes, zeros, alignment, file size,
// permissions, MMIPC_DIR, paths, read-only attachments, unlink while attached, NULL handles,
// version).
func TestCRegions(t *testing.T) { runCTest(t, "tests/c/test_regions.c") }

// TestCFd runs tests/c/test_fd.c: mmipc_fd and mmipc_attach_fd (named and anonymous regions,
// read-only attachments, descriptor ownership, each errno, the fork rule, a region handed to an
// exec'd child as fd 3, and no descriptor or mapping leaked over 1000 cycles).
func TestCFd(t *testing.T) { runCTest(t, "tests/c/test_fd.c") }
