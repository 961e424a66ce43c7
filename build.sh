#!/usr/bin/env bash
# mmipc build driver.
#   ./build.sh                 build the library and the C and Go examples into build/, then the demo
#   ./build.sh test            build, then run every test suite; the last line is "N passed, M failed"
#   ./build.sh lib [DIR]       build only libmmipc.so (into DIR, default build/)
#   ./build.sh examples        build the library, the C examples and their Go twins (go_<name>)
#   ./build.sh check           the C tests and examples under AddressSanitizer + UBSan (also in test)
#   ./build.sh bench [-only RE] [-peers=false]  benchmarks next to their baselines and the ring's
#                              competitors (installed by bench/peers/install.sh when it can): a table,
#                              build/bench/results.{csv,json} and latency.png (about 2.5 min, plus a
#                              one-time peer install and build; docs/PERFORMANCE.md)
#   ./build.sh install PREFIX  install libmmipc.so and mmipc.h under PREFIX/lib and PREFIX/include
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
BUILD=$ROOT/build
CC=$(go env CC)
CC=${CC:-cc}
# Every C file in the project compiles cleanly under these.
CWARN=(-Wall -Wextra -Werror)
CFLAGS=(-std=gnu11 -O2 -g "${CWARN[@]}" -I"$ROOT")

build_lib() {
	local out=${1:-$BUILD}
	mkdir -p "$out"
	# The version script keeps the .so's dynamic symbols to the mmipc_ API of mmipc.h.
	CGO_ENABLED=1 go build -buildmode=c-shared \
		-ldflags="-extldflags=-Wl,--version-script=$ROOT/mmipc.map" \
		-o "$out/libmmipc.so" .
	# cgo writes a header of the Go exports; the public header is the hand-written mmipc.h.
	rm -f "$out/libmmipc.h"
}

build_examples() {
	mkdir -p "$BUILD/examples"
	local src
	for src in c_examples/*.c; do
		# $ORIGIN/.. finds build/libmmipc.so wherever the checkout lives.
		"$CC" "${CFLAGS[@]}" -o "$BUILD/examples/$(basename "$src" .c)" "$src" \
			-L"$BUILD" -lmmipc -Wl,-rpath,'$ORIGIN/..'
	done
	# The Go twins need no cgo; go_ keeps them apart from the C programs of the same name. Only
	# the commands: go_examples/greeting and handoff are the layouts they share.
	local name
	for name in $(go list -f '{{if eq .Name "main"}}{{.Dir}}{{end}}' ./go_examples/...); do
		name=$(basename "$name")
		CGO_ENABLED=0 go build -o "$BUILD/examples/go_$name" "./go_examples/$name"
	done
}

demo() {
	local dir=$BUILD/demo
	mkdir -p "$dir"
	# The classic example maps an existing, non-empty test.txt.
	printf '%-63s\n' "this line is overwritten by the child" >"$dir/test.txt"
	echo "== classic demo: parent and forked child share test.txt through mmipc_map_file"
	(cd "$dir" && "$BUILD/examples/classic_file")
}

# The C test drivers and examples again, compiled with AddressSanitizer and UndefinedBehaviorSanitizer.
# handle_segv=0 leaves SIGSEGV to the tests that expect a write to a read-only mapping to kill a child.
# detect_leaks=0: LeakSanitizer deadlocks in a forked child when another thread (the Go runtime's)
# held the ASan allocator lock at fork(); leaks are checked by test_lifecycle.c (fds, mappings).
run_sanitized() {
	MMIPC_BUILD_DIR=$BUILD \
		MMIPC_TEST_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		ASAN_OPTIONS=handle_segv=0:detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 \
		go test -count=1 -v -timeout 20m -run 'TestC|TestExample|TestGoExample|TestHeaderCross|TestPairs' ./tests/
}

# Runs one unittest discovery and adds its counts to passed/failed/skipped (run_tests' locals).
python_suite() {
	local label=$1 status=0 out
	shift
	out=$log/$(echo "$label" | tr ' ' '-').txt
	MMIPC_LIB=$BUILD/libmmipc.so PYTHONPATH=$ROOT/python python3 -m unittest discover -v "$@" -p 'test_*.py' \
		>"$out" 2>&1 || status=$?
	local pr pf ps
	pr=$(sed -nE 's/^Ran ([0-9]+) tests?.*/\1/p' "$out" | tail -1)
	pf=$(grep -cE '^(FAIL|ERROR):' "$out" || true)
	ps=$(grep -cE '\.\.\. skipped' "$out" || true)
	if [ -z "$pr" ] || { [ "$status" -ne 0 ] && [ "$pf" -eq 0 ]; }; then pr=${pr:-0}; pf=$((pf + 1)); fi
	[ "$status" -ne 0 ] && cat "$out"
	local pp=$((pr - pf - ps))
	[ "$pp" -lt 0 ] && pp=0
	echo "$label: $pp passed, $pf failed, $ps skipped"
	passed=$((passed + pp)); failed=$((failed + pf)); skipped=$((skipped + ps))
}

run_tests() {
	build_lib
	build_examples
	local log=$BUILD/test-log
	mkdir -p "$log"
	local passed=0 failed=0 skipped=0
	pass() { passed=$((passed + 1)); echo "PASS $1"; }
	fail() { failed=$((failed + 1)); echo "FAIL $1"; }

	# Suite 1: formatting, vet, and the Go package building without cgo (what Go peers get).
	local unformatted
	unformatted=$(gofmt -l . 2>&1)
	if [ -z "$unformatted" ]; then pass gofmt; else fail "gofmt: $unformatted"; fi
	if go vet ./... >"$log/vet.txt" 2>&1; then pass "go vet"; else fail "go vet"; cat "$log/vet.txt"; fi
	if CGO_ENABLED=0 go build ./mmipc/ ./go_examples/... >"$log/nocgo.txt" 2>&1; then
		pass "mmipc/ and go_examples/ build with CGO_ENABLED=0"
	else fail "mmipc/ and go_examples/ with CGO_ENABLED=0"; cat "$log/nocgo.txt"; fi

	# Suite 2: go test -race: the unit tests of mmipc/, and the Go driver that compiles and runs the
	# C test programs, the C examples and the ABI checks against the .so built above.
	local status=0
	MMIPC_BUILD_DIR=$BUILD go test -race -count=1 -v -timeout 20m ./... >"$log/go.txt" 2>&1 || status=$?
	local gp gf gs
	gp=$(grep -cE '^\s*--- PASS' "$log/go.txt" || true)
	gf=$(grep -cE '^\s*--- FAIL' "$log/go.txt" || true)
	gs=$(grep -cE '^\s*--- SKIP' "$log/go.txt" || true)
	grep -E '^(ok|FAIL|--- FAIL|--- SKIP|panic)' "$log/go.txt" || true
	if [ "$status" -ne 0 ] && [ "$gf" -eq 0 ]; then gf=1; fi # a build failure or panic, not a test
	if [ "$status" -ne 0 ]; then
		echo "---- go test failures (whole log: $log/go.txt) ----"
		grep -E -B3 -A40 -- '--- FAIL|^panic|\[build failed\]|^# ' "$log/go.txt" | head -300
	fi
	echo "go test: $gp passed, $gf failed, $gs skipped"
	passed=$((passed + gp)); failed=$((failed + gf)); skipped=$((skipped + gs))

	# Suite 3: the same C programs under sanitizers, where the compiler has their runtimes.
	if ! echo 'int main(void){return 0;}' | "$CC" -x c -fsanitize=address,undefined -o "$log/probe" - 2>/dev/null; then
		skipped=$((skipped + 1)); echo "SKIP C tests under ASan+UBSan: $CC cannot link -fsanitize=address,undefined here"
	elif run_sanitized >"$log/sanitizers.txt" 2>&1 && grep -q '^ok' "$log/sanitizers.txt"; then
		pass "C tests and examples under ASan+UBSan"
	else
		fail "C tests and examples under ASan+UBSan (log: $log/sanitizers.txt)"
		grep -E -A30 -- '--- FAIL|ERROR: AddressSanitizer|runtime error' "$log/sanitizers.txt" | head -80
	fi

	# Suite 4: Python, standard library only: the package python/mmipc (unit tests, the
	# SharedMemory comparison, fork, the examples against C and Go), and the raw ctypes recipe.
	python_suite "python package" -s python/tests -t python
	python_suite "python ctypes" -s tests/python

	echo "logs: $log"
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
}

# Benchmarks: the driver (standard library only) prints the table and writes results.csv and
# results.json; the chart comes from bench/plot, a separate module that needs gonum: if it cannot be
# built (no module download), the numbers are still complete and the bench does not fail for it.
run_bench() {
	build_lib
	local out=$BUILD/bench status=0
	go run ./bench/run -lib "$BUILD" -out "$out" "$@" || status=$?
	rm -f "$out/latency.png"
	if [ -f "$out/results.json" ]; then
		if (cd bench/plot && go run . -in "$out/results.json" -out "$out/latency.png"); then
			echo "plot: $out/latency.png"
		else
			echo "bench: could not draw $out/latency.png (bench/plot needs gonum.org/v1/plot);" \
				"the table, results.csv and results.json above are complete" >&2
		fi
	fi
	return "$status"
}

case "${1:-}" in
"") build_lib; build_examples; demo ;;
lib) build_lib "${2:-}" ;;
examples) build_lib; build_examples ;;
test) run_tests ;;
check) build_lib; run_sanitized ;;
bench) shift; run_bench "$@" ;;
install)
	prefix=${2:?usage: ./build.sh install PREFIX}
	build_lib
	install -Dm755 "$BUILD/libmmipc.so" "$prefix/lib/libmmipc.so"
	install -Dm644 mmipc.h "$prefix/include/mmipc.h"
	echo "installed into $prefix" ;;
-h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' ;;
*) echo "unknown command: $1 (try ./build.sh --help)" >&2; exit 2 ;;
esac
