# Shared helpers for the set-up scripts (sourced, not run).
say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "this step installs system packages and must run as root (try: sudo $0)"; }
