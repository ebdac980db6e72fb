#!/usr/bin/env bash
# Validates every fly.toml-like file under a directory with lakefly and prints a summary:
# a quick way to try the config engine on configs from your own repositories.
#
#   scripts/validate-dir.sh ~/src            # every *fly*.toml below ~/src
#   LAKEFLY=target/release/lakefly scripts/validate-dir.sh DIR
set -euo pipefail

dir="${1:?usage: $0 DIR}"
lakefly="${LAKEFLY:-}"
if [ -z "$lakefly" ]; then
    cargo build --quiet --release --bin lakefly
    lakefly="$(dirname "$0")/../target/release/lakefly"
fi

valid=0 warned=0 invalid=0
while IFS= read -r -d '' file; do
    if out=$("$lakefly" config validate --json -c "$file" 2>/dev/null); then
        if grep -q '"warnings": 0' <<<"$out"; then
            valid=$((valid + 1))
        else
            warned=$((warned + 1))
        fi
    else
        invalid=$((invalid + 1))
        echo "invalid: $file" >&2
        "$lakefly" config validate -c "$file" 2>&1 | sed 's/^/    /' >&2 || true
    fi
done < <(find "$dir" -type f -name '*fly*.toml' -print0)

echo "valid: $valid  valid with warnings: $warned  invalid: $invalid"
