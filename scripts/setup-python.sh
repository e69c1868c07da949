#!/usr/bin/env bash
# The project's virtualenv (.venv) with the package and its dev tools. Reinstalls only when
# pyproject.toml changed since the last install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
venv="$root/.venv"
stamp="$venv/.kuh-installed"
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c "import harness" 2>/dev/null; then
  say "Python environment up to date ($venv)"
  exit 0
fi
command -v python3 >/dev/null || die "python3 not found; install Python 3.11+"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
say "installing Python packages into $venv"
log=$(mktemp /tmp/kuh-pip.XXXXXX)
"$venv/bin/python" -m pip install -q --upgrade pip >"$log" 2>&1 || { cat "$log" >&2; die "pip upgrade failed"; }
"$venv/bin/python" -m pip install -q -e "$root[dev]" >"$log" 2>&1 || { tail -n 40 "$log" >&2; die "pip install failed; full log: $log"; }
echo "$want" >"$stamp"
