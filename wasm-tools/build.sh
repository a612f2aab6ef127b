#!/usr/bin/env bash
# build.sh rebuilds every .wasm under wasm-tools/ from source, reproducibly:
# fixed flags, no paths or timestamps in the output, and it builds twice and
# compares, then writes SHA256SUMS. `./build.sh --check` only verifies that
# the committed .wasm match a fresh build.
set -euo pipefail
cd "$(dirname "$0")"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need clang || ! need wasm-ld || ! need wat2wasm || [ ! -f /usr/lib/wasm32-wasi/libc.a ]; then
	echo "installing clang, lld, wasi-libc, wabt" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld wasi-libc libclang-rt-14-dev-wasm32 wabt >/dev/null
fi

# Freestanding tools (sdk/c/nanovm.h): no libc start-up, one 64 KiB page.
CFLAGS_TINY=(--target=wasm32-wasi --sysroot=/usr -O2 -nostdlib -nostartfiles -fno-ident
	-ffile-prefix-map="$PWD"=. -I sdk/c
	-Wl,--no-entry -Wl,--strip-all -Wl,-z,stack-size=8192 -Wl,--initial-memory=65536)
# Tools that want libc (stdio, fopen): wasi-libc's normal command start-up.
CFLAGS_LIBC=(--target=wasm32-wasi --sysroot=/usr -O2 -fno-ident
	-ffile-prefix-map="$PWD"=. -Wl,--strip-all)

build_one() { # dir out
	local dir=$1 out=$2 name
	name=$(basename "$dir")
	if [ -f "$dir/$name.wat" ]; then
		wat2wasm "$dir/$name.wat" -o "$out"
	elif [ -f "$dir/$name.c" ] && grep -q '"nanovm.h"' "$dir/$name.c"; then
		clang "${CFLAGS_TINY[@]}" "$dir/$name.c" -lc -o "$out"
	elif [ -f "$dir/$name.c" ]; then
		clang "${CFLAGS_LIBC[@]}" "$dir/$name.c" -o "$out"
	elif [ -f "$dir/src/go.mod" ]; then
		# A Go WASI command (_start, exits with a code) in its own module,
		# so that its dependencies (jq: gojq) never reach the server's
		# go.mod; the module proxy serves them, go.sum pins them.
		(cd "$dir/src" && env GOFLAGS=-mod=readonly GOEXPERIMENT= GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm \
			go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$out" .)
	elif [ -f "$dir/main.go" ]; then
		# A Go reactor (nanovm_call via //go:wasmexport). The bytes depend
		# on the Go release, so the toolchain is the one go.mod names and
		# no GOFLAGS/GOEXPERIMENT from the environment leak in.
		(cd "$dir" && env GOFLAGS= GOEXPERIMENT= GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=wasip1 GOARCH=wasm \
			go build -trimpath -buildvcs=false -buildmode=c-shared -ldflags='-s -w -buildid=' -o "$out" .)
	else
		echo "no source in $dir" >&2; return 1
	fi
}

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dirs=$(find tools testtools -mindepth 1 -maxdepth 1 -type d | sort)
for d in $dirs; do
	n=$(basename "$d")
	build_one "$d" "$tmp/$n.a.wasm"
	build_one "$d" "$tmp/$n.b.wasm"
	if ! cmp -s "$tmp/$n.a.wasm" "$tmp/$n.b.wasm"; then
		echo "$d: two builds differ: not reproducible" >&2; exit 1
	fi
	if [ "${1:-}" = "--check" ]; then
		cmp -s "$tmp/$n.a.wasm" "$d/$n.wasm" || { echo "$d/$n.wasm is stale" >&2; exit 1; }
	else
		install -m 0644 "$tmp/$n.a.wasm" "$d/$n.wasm"
	fi
done
if [ "${1:-}" != "--check" ]; then
	find tools testtools -name '*.wasm' | sort | xargs sha256sum > SHA256SUMS
fi
sha256sum -c --quiet SHA256SUMS
echo "ok: $(echo "$dirs" | wc -w) modules"
