#!/usr/bin/env bash
# mmipc build driver.
#   ./build.sh                 build the library, the mmipc command and the C and Go examples into
#                              build/, then the demo
#   ./build.sh test            build, then run every test suite; the last line is "N passed, M failed"
#   ./build.sh lib [DIR]       build only libmmipc.so and its SONAME link libmmipc.so.MAJOR (into DIR,
#                              default build/)
#   ./build.sh examples        build the library, the mmipc command, the C examples and their Go twins
#   ./build.sh check           the C tests and examples under AddressSanitizer + UBSan (also in test)
#   ./build.sh fuzz [TIME]     run every Go fuzz target of mmipc/ for TIME each (default 60s); the test
#                              suite only replays their committed corpus (docs/RELIABILITY.md)
#   ./build.sh bench [-only RE] [-peers=false]  benchmarks next to their baselines and the ring's
#                              competitors (installed by bench/peers/install.sh when it can): a table,
#                              build/bench/results.{csv,json} and latency.png (about 2.5 min, plus a
#                              one-time peer install and build; docs/PERFORMANCE.md)
#   ./build.sh install PREFIX  build (in a temporary directory, build/ is left alone), then install:
#                              PREFIX/lib/libmmipc.so.X.Y.Z with the links libmmipc.so.X and libmmipc.so,
#                              PREFIX/include/mmipc.h, PREFIX/lib/pkgconfig/mmipc.pc, PREFIX/bin/mmipc
#                              and the Python package in PREFIX's site-packages (skipped without
#                              python3). $DESTDIR, if set, is put before every path written (staging);
#                              the installed files still name PREFIX. Prints what it installed.
set -euo pipefail
CALLER_DIR=$PWD # relative DIR and PREFIX arguments are relative to where the script was run from
cd "$(dirname "$0")"
ROOT=$PWD
BUILD=$ROOT/build
CC=$(go env CC)
CC=${CC:-cc}
# Every C file in the project compiles cleanly under these.
CWARN=(-Wall -Wextra -Werror)
CFLAGS=(-std=gnu11 -O2 -g "${CWARN[@]}" -I"$ROOT")

# The number of a version macro of mmipc.h (MAJOR, MINOR or PATCH): the header is the one place
# the version is written down.
header_version() {
	local v
	v=$(awk -v name="MMIPC_VERSION_$1" '$1 == "#define" && $2 == name { print $3; exit }' "$ROOT/mmipc.h")
	if ! [[ $v =~ ^[0-9]+$ ]]; then
		echo "build.sh: mmipc.h has no numeric MMIPC_VERSION_$1" >&2
		return 1
	fi
	echo "$v"
}

# An argument path made absolute against the caller's directory, normalised (no trailing /).
abs_path() {
	case $1 in
	/*) realpath -ms -- "$1" ;;
	*) realpath -ms -- "$CALLER_DIR/$1" ;;
	esac
}

build_lib() {
	local out=${1:-$BUILD} major
	major=$(header_version MAJOR)
	mkdir -p "$out"
	# The version script keeps the .so's dynamic symbols to the mmipc_ API of mmipc.h. The SONAME
	# carries the major version: a program records libmmipc.so.MAJOR as what it needs, so an
	# incompatible libmmipc.so (another major) installed later is never loaded in its place.
	CGO_ENABLED=1 go build -buildmode=c-shared \
		-ldflags="-extldflags=-Wl,--version-script=$ROOT/mmipc.map,-soname,libmmipc.so.$major" \
		-o "$out/libmmipc.so" .
	# cgo writes a header of the Go exports; the public header is the hand-written mmipc.h.
	rm -f "$out/libmmipc.h"
	# What programs linked with -L"$out" -lmmipc look for at run time (by the SONAME).
	ln -sfn libmmipc.so "$out/libmmipc.so.$major"
}

# The mmipc command (cmd/mmipc): pure Go, so no cgo and no libmmipc.so.
build_cmd() {
	local out=${1:-$BUILD}
	mkdir -p "$out"
	CGO_ENABLED=0 go build -o "$out/mmipc" ./cmd/mmipc
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
	build_cmd
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

# ./build.sh install PREFIX: the layout of a C library (the real file named by the full version,
# the SONAME link programs load, the -lmmipc link the linker reads, the header, a pkg-config file),
# the command, and the Python package where python3 puts PREFIX's packages. DESTDIR stages the
# whole tree elsewhere (packaging); the paths written inside the files stay PREFIX's.
install_all() {
	if [ $# -ne 1 ] || [ -z "$1" ]; then
		echo "usage: ./build.sh install PREFIX" >&2
		return 2
	fi
	local prefix destdir=""
	prefix=$(abs_path "$1")
	# pkg-config splits its output on spaces, so `cc $(pkg-config --libs mmipc)` cannot work with a
	# prefix that has one: refuse it rather than install a .pc file that breaks builds.
	if [[ $prefix =~ [[:space:]] ]]; then
		echo "build.sh: install: the prefix \"$prefix\" contains white space, which pkg-config flags cannot carry; choose another" >&2
		return 2
	fi
	if [ -n "${DESTDIR:-}" ]; then destdir=$(abs_path "$DESTDIR"); fi
	local major minor patch version
	major=$(header_version MAJOR)
	minor=$(header_version MINOR)
	patch=$(header_version PATCH)
	version=$major.$minor.$patch
	# The header's version string and its numbers are bumped together; catch one without the other.
	if ! grep -qx "#define MMIPC_VERSION \"$version\"" mmipc.h; then
		echo "build.sh: mmipc.h: MMIPC_VERSION is not \"$version\" (its MAJOR/MINOR/PATCH macros)" >&2
		return 1
	fi

	# Build away from build/, which a running test suite may be using.
	INSTALL_STAGE=$(mktemp -d)
	trap 'rm -rf "$INSTALL_STAGE"' EXIT
	build_lib "$INSTALL_STAGE"
	build_cmd "$INSTALL_STAGE"

	local root=$destdir$prefix installed=()
	local lib=$root/lib real=libmmipc.so.$version
	install -Dm755 "$INSTALL_STAGE/libmmipc.so" "$lib/$real"
	# Relative links, so the tree still works when DESTDIR is stripped or the prefix is moved.
	ln -sfn "$real" "$lib/libmmipc.so.$major"
	ln -sfn "libmmipc.so.$major" "$lib/libmmipc.so"
	installed+=("$lib/$real" "$lib/libmmipc.so.$major -> $real" "$lib/libmmipc.so -> libmmipc.so.$major")

	install -Dm644 mmipc.h "$root/include/mmipc.h"
	installed+=("$root/include/mmipc.h")

	local pc
	pc=$(<mmipc.pc.in)
	# Quoted replacements: a & in the prefix stays a & (bash 5.2's patsub_replacement).
	pc=${pc//@PREFIX@/"$prefix"}
	pc=${pc//@VERSION@/"$version"}
	if grep -qE '@[A-Z_]+@' <<<"$pc"; then
		echo "build.sh: mmipc.pc.in has a placeholder install does not fill: $(grep -oE '@[A-Z_]+@' <<<"$pc" | head -1)" >&2
		return 1
	fi
	install -d "$lib/pkgconfig"
	printf '%s\n' "$pc" >"$lib/pkgconfig/mmipc.pc"
	chmod 644 "$lib/pkgconfig/mmipc.pc"
	installed+=("$lib/pkgconfig/mmipc.pc")

	install -Dm755 "$INSTALL_STAGE/mmipc" "$root/bin/mmipc"
	installed+=("$root/bin/mmipc")

	local purelib="" f
	if command -v python3 >/dev/null 2>&1; then
		# posix_prefix, not the default scheme: Debian's python3 defaults to posix_local, which would
		# put the package in PREFIX/local/lib/python3.X/dist-packages.
		purelib=$(python3 -c 'import sys, sysconfig
print(sysconfig.get_path("purelib", "posix_prefix", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' "$prefix")
		install -d "$destdir$purelib/mmipc"
		for f in python/mmipc/*.py; do
			install -m644 "$f" "$destdir$purelib/mmipc/"
			installed+=("$destdir$purelib/mmipc/$(basename "$f")")
		done
		# The package looks for the library three directories up (PREFIX/lib/pythonX.Y/site-packages/
		# mmipc -> PREFIX/lib); a python3 whose scheme nests site-packages otherwise misses it.
		if [ "$(realpath -ms -- "$purelib/mmipc/../../..")" != "$prefix/lib" ]; then
			echo "build.sh: warning: python3 puts packages in $purelib, where the mmipc package does not" \
				"find $prefix/lib/libmmipc.so.$major by itself: set MMIPC_LIB=$prefix/lib/libmmipc.so.$major" >&2
		fi
	else
		echo "build.sh: warning: no python3, so the Python package is not installed" >&2
	fi

	echo "installed mmipc $version:"
	printf '  %s\n' "${installed[@]}"
	if [ -n "$destdir" ]; then
		return 0 # a staging tree: the hints below are about the final system, not this one
	fi

	# Hints for whatever does not find the prefix by itself.
	local hints=() pc_path
	pc_path=$(pkg-config --variable pc_path pkg-config 2>/dev/null || true)
	if [[ ":$pc_path:${PKG_CONFIG_PATH:-}:" != *":$lib/pkgconfig:"* ]]; then
		hints+=("export PKG_CONFIG_PATH=$lib/pkgconfig  # for: cc app.c \$(pkg-config --cflags --libs mmipc)")
	fi
	case $lib in
	/lib | /lib64 | /usr/lib | /usr/lib64) ;; # the dynamic linker's own directories
	*)
		if grep -qsxF "$lib" /etc/ld.so.conf /etc/ld.so.conf.d/*.conf; then
			hints+=("ldconfig  # as root, so that programs find libmmipc.so.$major in $lib")
		elif [[ ":${LD_LIBRARY_PATH:-}:" != *":$lib:"* ]]; then
			hints+=("export LD_LIBRARY_PATH=$lib  # or link programs with -Wl,-rpath,$lib")
		fi
		;;
	esac
	if [ -n "$purelib" ] && ! python3 -c 'import sys; sys.exit(sys.argv[1] not in sys.path)' "$purelib"; then
		hints+=("export PYTHONPATH=$purelib  # for: import mmipc")
	fi
	if [ "${#hints[@]}" -gt 0 ]; then
		echo "to use it from $prefix:"
		printf '  %s\n' "${hints[@]}"
	fi
}

# Each fuzz target of the Go package in turn: new crashers land in mmipc/testdata/fuzz/<target>/,
# where the next ./build.sh test replays them.
run_fuzz() {
	local fuzztime=${1:-60s} target
	for target in $(go test -list '^Fuzz' ./mmipc/ | grep '^Fuzz'); do
		echo "== $target for $fuzztime"
		go test ./mmipc/ -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime"
	done
}

case "${1:-}" in
"") build_lib; build_cmd; build_examples; demo ;;
lib) build_lib "$(abs_path "${2:-$BUILD}")" ;;
examples) build_lib; build_cmd; build_examples ;;
test) run_tests ;;
check) build_lib; run_sanitized ;;
fuzz) run_fuzz "${2:-}" ;;
bench) shift; run_bench "$@" ;;
install) shift; install_all "$@" ;;
-h|--help|help) sed -n '2,/^set -euo/p' "$ROOT/build.sh" | sed '$d' | sed 's/^# \{0,1\}//' ;;
*) echo "unknown command: $1 (try ./build.sh --help)" >&2; exit 2 ;;
esac
