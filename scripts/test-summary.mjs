// Prints vitest's JSON report as one plain closing line, "N passed, N failed, N skipped", for CI logs.
import { readFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2], "utf8"));
const label = process.argv[3] ? `${process.argv[3]}: ` : "";
console.log(`${label}${report.numPassedTests} passed, ${report.numFailedTests} failed, ${report.numPendingTests + report.numTodoTests} skipped`);
