// Allure 3 reads this from the working directory of scripts/allure-html.sh (the repository root).
// harness.report.allure_html.generate sets these per run; without them nothing changes.
//   KUH_REPORT_NAME     the report's title (plan, versions, verdict)
//   KUH_ALLURE_HISTORY  the run folder's allure-history.jsonl (seeded from the plan's previous run):
//                       Allure reads it and appends this run, so History and Trend span the plan's runs
const config = {};
if (process.env.KUH_REPORT_NAME) config.name = process.env.KUH_REPORT_NAME;
if (process.env.KUH_ALLURE_HISTORY) config.historyPath = process.env.KUH_ALLURE_HISTORY;
export default config;
