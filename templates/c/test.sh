#!/usr/bin/env bash
# Builds and runs the native unit test of logic.c with the host's C compiler.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
${CC:-cc} -Wall -Wextra -Werror -o build/test logic.c test.c
build/test
