#!/bin/sh
# Builds the bxflow C library and installs it under PREFIX:
#   PREFIX/include/bxflow.h, bxflow.hpp
#   PREFIX/lib/libbxflow.a            (one object; only the bxflow_* API is global)
#   PREFIX/lib/libbxflow.so.ABI       (SONAME libbxflow.so.ABI) and libbxflow.so -> it
#   PREFIX/lib/pkgconfig/bxflow.pc         (shared:  pkg-config --cflags --libs bxflow)
#   PREFIX/lib/pkgconfig/bxflow-static.pc  (static:  pkg-config --cflags --libs bxflow-static)
# Usage: capi/install.sh PREFIX   (CARGO_TARGET_DIR is honoured)
# Needs cargo, ld, objcopy and ar (binutils).
set -eu
PREFIX=${1:?usage: capi/install.sh PREFIX}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
header=$root/capi/include/bxflow.h

cargo build --profile capi -p bxflow-capi --lib --manifest-path "$root/Cargo.toml" --target-dir "$target"
built=$target/capi
abi=$(sed -n 's/^#define BXFLOW_ABI_VERSION \([0-9][0-9]*\)$/\1/p' "$header")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)
[ -n "$abi" ] && [ -n "$version" ] || { echo "install.sh: cannot read the ABI or the version" >&2; exit 1; }

mkdir -p "$PREFIX/include" "$PREFIX/lib/pkgconfig"
PREFIX=$(cd "$PREFIX" && pwd)
cp "$header" "$root/capi/include/bxflow.hpp" "$PREFIX/include/"

# Static library: the archive's objects linked into one relocatable object,
# in which every symbol but the API is made local, so that the Rust
# runtime's and compiler-builtins' symbols cannot clash with a large
# program's own. The LLVM bitcode the Rust standard library embeds is
# dropped: nothing links it, and binutils' LTO plugins choke on it.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -o '\bbxflow_[a-z0-9_]*(' "$header" | tr -d '(' | sort -u >"$tmp/api.txt"
ld -r --whole-archive "$built/libbxflow.a" -o "$tmp/bxflow.o"
objcopy --keep-global-symbols="$tmp/api.txt" \
    --remove-section=.llvmbc --remove-section=.llvmcmd "$tmp/bxflow.o"
rm -f "$PREFIX/lib/libbxflow.a"
ar rcs "$PREFIX/lib/libbxflow.a" "$tmp/bxflow.o"

# Shared library (only the API is exported by rustc; SONAME set by build.rs).
cp "$built/libbxflow.so" "$PREFIX/lib/libbxflow.so.$abi"
ln -sf "libbxflow.so.$abi" "$PREFIX/lib/libbxflow.so"

for kind in shared static; do
    if [ $kind = shared ]; then
        name=bxflow
        libs='-L${libdir} -lbxflow'
        private='Libs.private: -lpthread -ldl -lm'
    else
        name=bxflow-static
        libs='${libdir}/libbxflow.a -lpthread -ldl -lm'
        private=''
    fi
    cat >"$PREFIX/lib/pkgconfig/$name.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: $name
Description: bxflow CPU engine: bit-exact fixed-point neural-network inference ($kind library)
Version: $version
Cflags: -I\${includedir}
Libs: $libs
$private
PC
done
echo "installed bxflow $version (ABI $abi) under $PREFIX"
