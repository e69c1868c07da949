#!/usr/bin/env bash
# npm's `allure` (Allure Report 3) for offline HTML generation. Installs once into node_modules/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
if [ -x "$root/node_modules/.bin/allure" ]; then
  say "npm packages present"
  exit 0
fi
command -v npm >/dev/null || die "npm not found; install Node.js 20+ (Debian: nodejs npm)"
say "installing npm packages (allure)"
(cd "$root" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
