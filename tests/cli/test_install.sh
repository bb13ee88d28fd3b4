#!/usr/bin/env bash
# CLI test of the installed mktl, used out of tree the way README.md says:
#   - `cmake --install` of this build into a scratch prefix, then the whole
#     tree moved elsewhere (it must be relocatable);
#   - the installed programs run without LD_LIBRARY_PATH (install RPATH), and
#     libmktl loads libmktl_avahi.so from its own directory;
#   - the man pages are installed and render, and say what --help says;
#   - README's "Write your own daemon" project, extracted from README.md (its
#     blocks marked <!-- consumer: FILE -->), is configured and built with
#     only CMAKE_PREFIX_PATH (no C++ standard: mktl::mktl brings C++20), and
#     tests/consumer's client is built with find_package(mktl) and with
#     plain g++ and `pkg-config mktl`;
#   - the installed markd serves that daemon (as README's command line says),
#     and the installed mk and both builds of the client get and set its
#     items and see the temperature follow the setpoint. No registry runs:
#     the clients reach the daemon by its request address.
# Loopback only, ephemeral ports, private discovery ports and MKTL_HOME; a
# scratch dir removed at exit.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cli_init test_install
need_source
private_discovery_ports
unset LD_LIBRARY_PATH LD_PRELOAD CMAKE_PREFIX_PATH PKG_CONFIG_PATH

build=$(cd "$BIN/.." && pwd)
SRC=$(cd "$SRC" && pwd)   # the test changes directory later
[[ -f $build/CMakeCache.txt ]] || die "$build is not a CMake build directory"
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
libdir=$(cache CMAKE_INSTALL_LIBDIR)
bindir=$(cache CMAKE_INSTALL_BINDIR)
sbindir=$(cache CMAKE_INSTALL_SBINDIR)
includedir=$(cache CMAKE_INSTALL_INCLUDEDIR)
mandir=$(cache CMAKE_INSTALL_MANDIR)
[[ -n $mandir ]] || mandir=$(cache CMAKE_INSTALL_DATAROOTDIR)/man   # GNUInstallDirs' default
[[ -n $libdir && -n $bindir && -n $sbindir && -n $includedir && -n $mandir ]] ||
  die "no GNUInstallDirs paths in $build/CMakeCache.txt"

# The consumer is compiled with the build's sanitizers (an ASan libmktl needs
# an ASan program), and with warnings as errors so README's code stays clean.
CXXFLAGS="-Wall -Wextra -Werror"
LDFLAGS=""
if [[ $(cache MKTL_SANITIZE) == ON ]]; then
  CXXFLAGS+=" -fsanitize=address,undefined -fno-omit-frame-pointer"
  LDFLAGS="-fsanitize=address,undefined"
fi
export CXXFLAGS LDFLAGS

# ---- install, then move the tree ---------------------------------------------
run install cmake --install "$build" --prefix "$work/staging"
expect_rc "cmake --install into a scratch prefix" 0
((rc == 0)) || finish "install"
mkdir "$work/moved"
mv "$work/staging" "$work/moved/mktl"
prefix=$work/moved/mktl

for f in "$bindir/markd" "$bindir/mk" "$sbindir/mkregistryd" "$libdir/libmktl_avahi.so" \
  "$includedir/mktl/mktl.hpp" "$libdir/cmake/mktl/mktlConfig.cmake" "$libdir/cmake/mktl/mktlConfigVersion.cmake" \
  "$libdir/pkgconfig/mktl.pc" "$mandir/man1/markd.1" "$mandir/man1/mk.1" "$mandir/man1/mkregistryd.1"; do
  [[ -e $prefix/$f ]] && pass "installed $f" || fail "not installed: $f"
done

# ---- installed programs find their library ---------------------------------------
for p in "$bindir/markd" "$bindir/mk" "$sbindir/mkregistryd"; do
  runpath=$(readelf -d "$prefix/$p" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')
  expect_in "$p has an RPATH relative to itself" "$runpath" '$ORIGIN/'
  resolved=$(ldd "$prefix/$p" | sed -n 's/^[[:space:]]*libmktl\.so[^ ]* => \(.*\) (0x.*/\1/p')
  expect_eq "$p loads the moved tree's libmktl" "$(realpath -m "$resolved")" "$(realpath "$prefix/$libdir/libmktl.so")"
  run help_${p##*/} "$prefix/$p" --help
  expect_rc "installed ${p##*/} runs (--help)" 0
done

# ---- man pages -------------------------------------------------------------------
if command -v man >/dev/null; then
  for p in markd mk mkregistryd; do
    page=$(LC_ALL=C MANWIDTH=100 man -l "$prefix/$mandir/man1/$p.1" 2>"$work/man-$p.stderr" | col -b) || true
    expect_match "man $p renders its NAME" "$page" "NAME[[:space:]]+$p - [a-z]"
    expect_match "man $p renders a SYNOPSIS" "$page" "SYNOPSIS[[:space:]]+$p "
    expect_in "man $p has an EXIT STATUS section" "$page" "EXIT STATUS"
    # Every long option of --help is in the page (its source: no hyphenation).
    source_text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$prefix/$mandir/man1/$p.1")
    bin_dir=$bindir; [[ $p == mkregistryd ]] && bin_dir=$sbindir
    missing=()
    for opt in $("$prefix/$bin_dir/$p" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
      [[ $source_text == *"$opt"* ]] || missing+=("$opt")
    done
    ((${#missing[@]} == 0)) && pass "man $p has every option of $p --help" ||
      fail "man $p lacks ${missing[*]}"
  done
else
  fail "man is not installed (scripts/deps.sh installs man-db)"
fi

# ---- README's daemon project, extracted ---------------------------------------------
# Each fenced block right after a <!-- consumer: FILE --> line becomes FILE.
daemon_dir=$work/mydaemon
mkdir -p "$daemon_dir"
awk -v dir="$daemon_dir" '
  file != "" && !inblock { if (/^```/) { inblock = 1; out = dir "/" file; printf "" > out; next }
                           print "marker for " file " not followed by a fenced block" > "/dev/stderr"; exit 1 }
  /^<!-- consumer: [^ ]+ -->$/ { file = $3; next }
  inblock && /^```$/ { inblock = 0; close(out); print file; file = ""; next }
  inblock { print > out }
  END { if (inblock) { print "unterminated block for " file > "/dev/stderr"; exit 1 } }
' "$SRC/README.md" >"$work/extracted" || die "cannot extract README's consumer blocks"
for f in my.json mydaemon.cpp CMakeLists.txt run.sh; do
  [[ -s $daemon_dir/$f ]] && pass "README gives $f" || fail "README has no <!-- consumer: $f --> block"
done
((failures == 0)) || finish "install"

# run.sh's cmake lines build it (the prefix README names replaced by ours);
# its markd line runs it.
mapfile -t cmake_lines < <(grep '^cmake ' "$daemon_dir/run.sh" | sed 's/[[:space:]]*#.*//')
markd_line=$(grep -m1 '^markd ' "$daemon_dir/run.sh" || true)
((${#cmake_lines[@]} >= 2)) && [[ -n $markd_line ]] || die "README's run block lacks its cmake or markd lines"

# The builds run in parallel (each is one file): README's daemon with CMake,
# the client with CMake, the client with g++ and pkg-config.
build_daemon() {
  cd "$daemon_dir"
  local line words
  for line in "${cmake_lines[@]}"; do
    read -ra words <<<"$line"
    words=("${words[@]//\/opt\/mktl/$prefix}")
    echo "+ ${words[*]}"
    "${words[@]}" || return
  done
}
build_client() {
  cmake -S "$SRC/tests/consumer" -B "$work/client-build" -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$work/client-build"
}
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
pc_cflags=$(pkg-config --cflags mktl) || die "pkg-config finds no mktl in $PKG_CONFIG_PATH"
pc_libs=$(pkg-config --libs mktl)
pc_libdir=$(pkg-config --variable=libdir mktl)
build_client_pc() {
  # shellcheck disable=SC2086 # flags are words
  g++ $CXXFLAGS "$SRC/tests/consumer/client.cpp" $pc_cflags $LDFLAGS $pc_libs -Wl,-rpath,"$pc_libdir" \
    -o "$work/myclient-pc"
}
build_daemon >"$work/build-daemon.log" 2>&1 & daemon_build=$!
build_client >"$work/build-client.log" 2>&1 & client_build=$!
build_client_pc >"$work/build-client-pc.log" 2>&1 & pc_build=$!

expect_in "mktl.pc asks for C++20" "$pc_cflags" "-std=c++20"
pc_prefix=$(pkg-config --variable=prefix mktl)
expect_eq "mktl.pc's prefix is where the tree is now" "$(cd "$pc_prefix" && pwd -P)" "$(cd "$prefix" && pwd -P)"
[[ -f $pc_libdir/libmktl.so ]] && pass "mktl.pc's libdir holds libmktl.so" || fail "no libmktl.so in $pc_libdir"

rc=0; wait "$daemon_build" || rc=$?
expect_rc "README's daemon builds against the installed mktl" 0
((rc == 0)) || cat "$work/build-daemon.log" >&2
mktl_dir=$(sed -n 's/^mktl_DIR:PATH=//p' "$daemon_dir/build/CMakeCache.txt" 2>/dev/null || true)
expect_eq "find_package(mktl) found the moved tree" "$mktl_dir" "$prefix/$libdir/cmake/mktl"
rc=0; wait "$client_build" || rc=$?
expect_rc "the client builds with find_package(mktl)" 0
((rc == 0)) || cat "$work/build-client.log" >&2
rc=0; wait "$pc_build" || rc=$?
expect_rc "the client builds with g++ and pkg-config" 0
((rc == 0)) || cat "$work/build-client-pc.log" >&2
((failures == 0)) || finish "install"

# ---- run it: the installed markd, as README's command line says -----------------------
read -ra markd_words <<<"$markd_line"
cd "$daemon_dir"   # README's paths (my.json, ./build/...) are relative to the project
start markd '^markd: mystore mydaemon1 ready rep=([0-9]+) pub=[0-9]+$' "$prefix/$bindir/markd" \
  --bind 127.0.0.1 --hostname 127.0.0.1 --broadcast 127.255.255.255 "${markd_words[@]:1}"
pass "installed markd serves README's daemon: $line"
rep=tcp://127.0.0.1:${BASH_REMATCH[1]}
markd_pid=$pid
maps=$(cat "/proc/$markd_pid/maps")
real_libdir=$(realpath "$prefix/$libdir")
expect_in "markd runs the moved tree's libmktl" "$maps" "$real_libdir/libmktl.so"
expect_in "libmktl loaded libmktl_avahi.so from its own directory" "$maps" "$real_libdir/libmktl_avahi.so"

mk=("$prefix/$bindir/mk" -w 10 --connect "$rep")
# The temperature has a value from its first poll on (half a second).
temperature_polled() {
  run mk_get "${mk[@]}" get mystore.temperature
  [[ $rc != 0 || $out != "temperature:  degC" ]]
}
wait_for 10 temperature_polled || true
expect_out "installed mk gets the temperature" "temperature: 20.00 degC"
run mk_set "${mk[@]}" set mystore.setpoint=42
expect_rc "installed mk sets the setpoint" 0
run mk_get2 "${mk[@]}" get mystore.setpoint
expect_match "installed mk reads the setpoint back" "$out" '^setpoint: 42(\.0*)? degC$'
run mk_range "${mk[@]}" set mystore.setpoint=200
expect_rc "the catalog's max refuses setpoint 200" 1
run mk_ro "${mk[@]}" set mystore.temperature=5
expect_rc "the catalog's settable:false refuses a temperature set" 1

for client in "$work/client-build/myclient" "$work/myclient-pc"; do
  name=${client##*/}
  run "${name}_wait" "$client" "$rep" wait mystore.temperature 21 20
  expect_rc "$name sees the temperature rise towards setpoint 42" 0
  run "${name}_set" "$client" "$rep" set mystore.setpoint 20
  expect_rc "$name sets the setpoint" 0
  run "${name}_get" "$client" "$rep" get mystore.setpoint
  expect_match "$name gets the setpoint it set" "$out" '^mystore.setpoint = 20(\.0*)?$'
  run "${name}_set42" "$client" "$rep" set mystore.setpoint 42
  expect_rc "$name sets the setpoint back to 42" 0
  run "${name}_bad" "$client" "$rep" set mystore.setpoint 1000
  expect_rc "$name gets the daemon's refusal of 1000" 1
  expect_in "$name reports the refusal" "$err" "myclient:"
done

stop "$markd_pid"
expect_rc "markd stops on SIGTERM" 0

finish "install"
