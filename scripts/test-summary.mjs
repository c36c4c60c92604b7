// Prints vitest's JSON report as one plain closing line, "N passed, N failed, N skipped", for CI logs,
// with the run's wall-clock time, then one line per failed test; says so when there is no report (vitest did not finish).
import { existsSync, readFileSync } from "node:fs";

const [file, name] = process.argv.slice(2);
const label = name ? `${name}: ` : "";
if (!file || !existsSync(file)) {
  console.log(`${label}no test report (${file ?? "no file given"}): the run stopped before vitest finished`);
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, "utf8"));
const ended = Math.max(report.startTime, ...report.testResults.map((result) => result.endTime ?? 0));
const minutes = ((ended - report.startTime) / 60_000).toFixed(1);
const failedFiles = report.testResults.filter((result) => result.status === "failed").length;
console.log(
  `${label}${report.numPassedTests} passed, ${report.numFailedTests} failed, ${report.numPendingTests + report.numTodoTests} skipped` +
    `${failedFiles > 0 ? ` (${failedFiles} file(s) failed)` : ""}, in ${minutes} min`,
);
// The failures by name, so a CI log cut to its last lines still says what broke.
for (const result of report.testResults.filter((each) => each.status === "failed")) {
  const file = result.name.replace(`${process.cwd()}/`, "");
  const failed = result.assertionResults.filter((each) => each.status === "failed");
  if (failed.length === 0) console.log(`  ${file}: ${firstLine(result.message) || "failed outside its tests"}`);
  for (const test of failed) console.log(`  ${file} > ${test.fullName}: ${firstLine(test.failureMessages[0])}`);
}

function firstLine(text) {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the ANSI colour codes removed here
  return (text ?? "").replace(/\x1b\[[0-9;]*m/g, "").split("\n")[0].slice(0, 200);
}
