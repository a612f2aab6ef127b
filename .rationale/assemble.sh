#!/usr/bin/env bash
# Rebuilds RATIONALE.md from the per-area files in .rationale/, in the order
# the sections appear. Edit the area files, then run this.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  cat <<'HEADER'
# RATIONALE

Why nano-vm-mcp is built the way it is: one section per area, one "Why …?"
entry per decision that is not obvious, with the alternative it beat and
what it costs. Code comments link here by entry title.

HEADER
  first=1
  for area in kernel condition canonical-projection sandbox storage runtime mcp shared llm bench; do
    [ "$first" = 1 ] || echo
    first=0
    sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' ".rationale/$area.md"
  done
} > RATIONALE.md.tmp
mv RATIONALE.md.tmp RATIONALE.md
