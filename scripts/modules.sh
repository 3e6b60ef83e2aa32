#!/usr/bin/env bash
# Prints the directory of every Go module in the workspace, one per line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sed -n 's#^[[:space:]]*\./\(.*\)$#\1#p' go.work
