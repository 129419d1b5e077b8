#!/usr/bin/env bash
# Installs the independent peers the compatibility tests drive: npm avsc@5.7.9, PyPI avro and
# cramjam (raw snappy/LZ4 decoders for the HDFS sink reader test).
# Idempotent; safe to run on every CI run. Prints where the peers are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
# One installer at a time (several test binaries may call this at once).
exec 9>"$here/.setup.lock"
flock 9
if ! [ -f node_modules/avsc/package.json ] || ! grep -q '"version": "5.7.9"' node_modules/avsc/package.json; then
  npm install --no-package-lock --no-audit --no-fund --loglevel=error >/dev/null
fi
if ! [ -x .venv/bin/python ] || ! .venv/bin/python -c 'import avro.ipc, cramjam' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
echo "peers ready: node $(node --version), avsc $(node -p "require('./node_modules/avsc/package.json').version"), python avro $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("avro"))')"
