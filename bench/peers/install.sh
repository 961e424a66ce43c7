#!/usr/bin/env bash
# install.sh OUT - installs what the peer engines of bench/peers need (README.md there) and records,
# for each peer, whether it can run: OUT/peers.status gets one line per peer,
#
#     iceoryx2: ok (iceoryx2 0.10.0, rustc 1.95.0)
#     iceoryx: skipped: apt-get install iceoryx libiceoryx-binding-c-dev failed: E: ...
#
# Never fails hard (exit 0 whatever could not be installed; 2 only without OUT): a peer that
# cannot be had is a row with a note, not a failed benchmark. Idempotent and quick the second time:
# apt runs only when a header or program is missing; cargo reuses OUT/iceoryx2-target. Full output
# of apt and cargo goes to OUT/peers-install.log. Runs as root (or with password-less sudo).
set -u

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 OUT (the bench output directory; writes OUT/peers.status)" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1" || exit 2
out=$(cd "$1" && pwd)
status=$out/peers.status
log=$out/peers-install.log
: >"$log"
declare -A note

say() { echo "peers: $*" >&2; }
# The last line of the log that looks like an error, for a one-line reason.
last_error() { grep -E '^(E:|error|Error|fatal|[a-z-]+: error)' "$log" | tail -n 1 | cut -c1-300; }

# ---- Debian packages -------------------------------------------------------------------------

as_root=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		as_root="sudo -n"
	else
		as_root="none"
	fi
fi

have_zmq() { [ -f /usr/include/zmq.h ]; }
have_boost() { [ -f /usr/include/boost/interprocess/ipc/message_queue.hpp ]; }
iox_include() { ls -d /usr/include/iceoryx/v*/ 2>/dev/null | sort -V | tail -n 1; }
have_iox() {
	local inc
	inc=$(iox_include)
	[ -n "$inc" ] && [ -f "$inc/iceoryx_binding_c/runtime.h" ] && command -v iox-roudi >/dev/null 2>&1
}

apt_updated=""
# apt_install PEER PACKAGE...: installs the packages, or notes why not.
apt_install() {
	local peer=$1
	shift
	if [ "$as_root" = none ]; then
		note[$peer]="skipped: $* not installed and not root (no password-less sudo)"
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		note[$peer]="skipped: $* not installed and no apt-get"
		return 1
	fi
	if [ -z "$apt_updated" ]; then
		say "apt-get update"
		timeout 300 $as_root apt-get update >>"$log" 2>&1 || say "apt-get update failed (trying the install anyway)"
		apt_updated=1
	fi
	say "apt-get install $*"
	if ! DEBIAN_FRONTEND=noninteractive timeout 600 $as_root apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1; then
		note[$peer]="skipped: apt-get install $* failed: $(last_error)"
		return 1
	fi
}

# The first of the names that this release's apt knows (package names move between releases).
pick_pkg() {
	local p
	for p in "$@"; do
		if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
			echo "$p"
			return
		fi
	done
	echo "$1"
}

cxx=${CXX:-c++}
cc=${CC:-cc}

if have_zmq; then
	note[zmq-ipc]=ok
elif apt_install zmq-ipc "$(pick_pkg libzmq3-dev libzmq-dev)"; then
	have_zmq && note[zmq-ipc]=ok || note[zmq-ipc]="skipped: installed, but /usr/include/zmq.h is missing"
fi
if [ "${note[zmq-ipc]}" = ok ]; then
	note[zmq-ipc]="ok (libzmq $(dpkg-query -W -f='${Version}' libzmq5 2>/dev/null || echo '?'))"
fi

if ! command -v "$cxx" >/dev/null 2>&1; then
	apt_install boost-mq g++ || true
fi
if ! command -v "$cxx" >/dev/null 2>&1; then
	note[boost-mq]=${note[boost-mq]:-"skipped: no C++ compiler ($cxx)"}
elif have_boost; then
	note[boost-mq]=ok
elif apt_install boost-mq libboost-dev; then
	have_boost && note[boost-mq]=ok || note[boost-mq]="skipped: installed, but boost/interprocess is missing"
fi
if [ "${note[boost-mq]}" = ok ]; then
	note[boost-mq]="ok (boost $(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' /usr/include/boost/version.hpp))"
fi

if have_iox; then
	note[iceoryx]=ok
elif apt_install iceoryx iceoryx libiceoryx-binding-c-dev; then
	have_iox && note[iceoryx]=ok || note[iceoryx]="skipped: installed, but the C binding headers or iox-roudi are missing"
fi
if [ "${note[iceoryx]}" = ok ]; then
	note[iceoryx]="ok (iceoryx $(basename "$(iox_include)" | sed 's/^v//'), $(command -v iox-roudi))"
fi

# ---- iceoryx2: cargo -----------------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1; then
	note[iceoryx2]="skipped: cargo not found"
else
	say "cargo fetch + build (iceoryx2)"
	target=$out/iceoryx2-target
	# --locked: exactly the versions of the committed Cargo.lock.
	if ! (cd "$here/iceoryx2" && timeout 600 cargo fetch --locked) >>"$log" 2>&1; then
		note[iceoryx2]="skipped: cargo fetch failed: $(last_error)"
	elif ! (cd "$here/iceoryx2" && timeout 1200 cargo build --release --offline --locked --target-dir "$target") >>"$log" 2>&1; then
		note[iceoryx2]="skipped: cargo build failed: $(last_error)"
	elif [ ! -x "$target/release/iox2-bench" ]; then
		note[iceoryx2]="skipped: cargo build made no iox2-bench"
	else
		ver=$(sed -n '/^name = "iceoryx2"$/{n;s/^version = "\(.*\)"/\1/p;}' "$here/iceoryx2/Cargo.lock")
		note[iceoryx2]="ok (iceoryx2 $ver, $(rustc --version 2>/dev/null | cut -d' ' -f1-2))"
	fi
fi

# C compiler: every C engine needs one (the driver's own engines too, so it is there in practice).
if ! command -v "$cc" >/dev/null 2>&1; then
	for p in zmq-ipc boost-mq iceoryx; do
		case ${note[$p]} in ok*) note[$p]="skipped: no C compiler ($cc)" ;; esac
	done
fi

tmp=$status.tmp.$$
for p in iceoryx2 iceoryx boost-mq zmq-ipc; do
	echo "$p: ${note[$p]:-skipped: unknown}"
done >"$tmp" && mv "$tmp" "$status"
cat "$status" >&2
exit 0
