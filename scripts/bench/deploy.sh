#!/usr/bin/env bash
# Deploy benchmark (figures printed): builds the release binaries, then runs deploy.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
exec python3 scripts/bench/deploy.py "$@"
