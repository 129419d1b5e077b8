#!/usr/bin/env bash
# Installs the DuckDB reference engine (PyPI `duckdb`) for the streaming-SQL differential test
# into compat-tests/.venv-duckdb. Idempotent; safe to run on every CI run and from several test
# binaries at once (flock). Prints the installed version; exits non-zero with the reason if the
# install fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
exec 9>"$here/.setup-duckdb.lock"
flock 9
if ! [ -x .venv-duckdb/bin/python ] || ! .venv-duckdb/bin/python -c 'import duckdb' 2>/dev/null; then
  python3 -m venv .venv-duckdb
  .venv-duckdb/bin/pip install --quiet --disable-pip-version-check 'duckdb>=1.1,<2'
fi
echo "duckdb ready: $(.venv-duckdb/bin/python -c 'import duckdb; print(duckdb.__version__)')"
