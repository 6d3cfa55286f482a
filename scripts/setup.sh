#!/usr/bin/env bash
# Set up a fresh machine for inferwatch: Debian packages (Prometheus 2.42, Alertmanager 0.25,
# promtool, amtool) and the project venv in .venv. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The Debian packages may start services on machines with systemd; our stack runs its own.

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import inferwatch, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.inferwatch-installed ]; then
  echo "setup: installing inferwatch into .venv"
  .venv/bin/pip install -q --upgrade pip 'setuptools>=68' 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/pip install -q -e '.[test]' 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c "import inferwatch" # fail loudly if the install did not work
  touch .venv/.inferwatch-installed
fi
