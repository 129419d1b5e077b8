#!/usr/bin/env bash
# Installs Debian's `chromium` for the status-page browser test (tests/status_page.rs), which
# drives it headless over the DevTools protocol. Idempotent; serialised with flock so several
# callers can run it at once. Exits non-zero with the reason if chromium cannot be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec 9>"$here/.setup-chromium.lock"
flock 9
if ! [ -x /usr/bin/chromium ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "installing chromium needs root or sudo" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null || echo '(version unknown)')"
