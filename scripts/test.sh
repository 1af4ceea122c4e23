#!/usr/bin/env bash
# Builds Salvo (Debug: ASan + UBSan) and runs every test: cmocka unit tests, fuzz-corpus
# replays, and the end-to-end tests against real servers on loopback.
# Installs missing Debian packages first. Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build -j"$(nproc)"
(cd build && ctest --output-on-failure -j"$(nproc)")
# The Release build (the demo's and the benchmarks') must compile warning-free at -O3 too.
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-rel -j"$(nproc)" >/dev/null
SALVO_BIN="$PWD/build/salvo" /usr/bin/pytest -q -p no:cacheprovider tests/integration "$@"
echo "salvo: all tests passed"
