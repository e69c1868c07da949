#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages and dockerd, the Python venv, the
# local images, npm's allure. A second run only checks and takes seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/setup-system.sh"
"$here/setup-python.sh"
"$here/build-images.sh"
"$here/setup-node.sh"
