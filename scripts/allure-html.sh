#!/usr/bin/env bash
# Generate the Allure HTML report of one run, offline, as one file that opens from disk:
#   scripts/allure-html.sh RUN_DIR      (reads RUN_DIR/allure-results, writes RUN_DIR/allure-report/)
# Uses npm's `allure` (Allure Report 3) installed by scripts/setup-node.sh; no Java, no network,
# analytics off. The `allure2` generator is the one that reads categories.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
err() { local code=$1; shift; printf 'allure-html: %s\n' "$*" >&2; exit "$code"; }

[ $# -eq 1 ] || err 2 "usage: scripts/allure-html.sh RUN_DIR (a run folder under reports/runs/)"
run_dir=$1
results="$run_dir/allure-results"
out="$run_dir/allure-report"
allure="$root/node_modules/.bin/allure"

[ -d "$run_dir" ] || err 3 "run folder $run_dir does not exist; pass a folder under reports/runs/"
[ -d "$results" ] || err 3 "no Allure results in $results; run pytest with --alluredir=$results (the reporting fixture does)"
compgen -G "$results/*-result.json" >/dev/null \
  || err 3 "$results holds no *-result.json; the run wrote no test result (did pytest run any test?)"
[ -x "$allure" ] || err 4 "$allure not found; run: bash scripts/setup-node.sh"

rm -rf "$out"
ALLURE_NO_ANALYTICS=true "$allure" allure2 "$results" -o "$out" --single-file --report-name "${KUH_REPORT_NAME:-kong-upgrade-harness}" >&2 \
  || err 5 "allure exited $?; see its output above"
[ -f "$out/index.html" ] || err 5 "allure finished but wrote no $out/index.html"
printf '%s\n' "$out/index.html"
