#!/usr/bin/env bash
# Builds {{name}}.wasm: wit-bindgen's C bindings for wit/, clang for wasm32-wasi (WASI
# preview1, what Debian's clang 14 and wasi-libc offer), then `wasm-tools component new`
# with the WASI preview1 adapter, fetched from crates.io by cargo (adapter/Cargo.lock pins it).
#
# Needs: clang lld wasi-libc libclang-rt-dev-wasm32 (apt-get), and
# `cargo install --locked wasm-tools@1.263.0 wit-bindgen-cli@0.63.0`.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
cargo fetch --locked --manifest-path adapter/Cargo.toml
adapter=$(dirname "$(cargo metadata --locked --format-version 1 --manifest-path adapter/Cargo.toml \
    | python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "wasi-preview1-component-adapter-provider"))')")
wit-bindgen c wit --world plugin --out-dir build >/dev/null
clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror -Wno-unused-parameter \
    -I build -I . -o build/core.wasm logic.c plugin.c build/plugin.c build/plugin_component_type.o
wasm-tools component new build/core.wasm \
    --adapt "wasi_snapshot_preview1=$adapter/artefacts/wasi_snapshot_preview1.reactor.wasm" -o {{name}}.wasm
echo "built {{name}}.wasm"
