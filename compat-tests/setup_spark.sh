#!/usr/bin/env bash
# Installs what the Spark hand-off test (spark_handoff.rs) needs: a venv compat-tests/.venv-spark
# with pyspark from PyPI, and a Java runtime (openjdk-17-jre-headless via apt-get when `java` is
# missing and apt-get is usable). Idempotent and locked, safe to run on every CI run; exits
# non-zero with the reason when either cannot be had (the test then fails with that reason).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
PYSPARK_VERSION="${PYSPARK_VERSION:-3.5.9}"
# One installer at a time (test binaries and CI may call this at once).
exec 9>"$here/.setup-spark.lock"
flock 9
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup_spark: java not found, installing openjdk-17-jre-headless" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >&2
  fi
  command -v java >/dev/null 2>&1 || {
    echo "setup_spark: no Java runtime: 'java' is not on PATH and could not be installed (install a JRE 17, e.g. apt-get install openjdk-17-jre-headless)" >&2
    exit 2
  }
fi
venv=.venv-spark
want="pyspark ${PYSPARK_VERSION}"
if ! [ -x "$venv/bin/python" ] || [ "$("$venv/bin/python" -c 'import pyspark; print("pyspark", pyspark.__version__)' 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv" || { echo "setup_spark: python3 -m venv failed" >&2; exit 3; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pyspark==${PYSPARK_VERSION}" || {
    echo "setup_spark: pip install pyspark==${PYSPARK_VERSION} failed (no network or PyPI unreachable?)" >&2
    exit 4
  }
fi
echo "spark ready: $("$venv/bin/python" -c 'import pyspark; print("pyspark", pyspark.__version__)'), $(java -version 2>&1 | head -n 1)"
