#!/usr/bin/env node
// Plants each survivor of a Stryker JSON report (reports/mutation/<folder>.json) by hand, one at a
// time, into a scratch copy of the checkout (.stryker-tmp/plant) and runs the given test files on
// it: "killed" when they fail. Checks that a test written after a run kills what it was written
// for, without a new Stryker run. The checkout itself is never modified.
// Usage:
//   node bench/plant-mutants.mjs reports/mutation/methods.json src/methods/ test/methods/a.test.ts,test/methods/b.test.ts
//   LINES=merge.ts:23,index.ts:27 node bench/plant-mutants.mjs …   # only mutants on these file:line
// Copy the report first if a Stryker run may overwrite it meanwhile.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const [report, fileFilter, tests, statuses = "Survived,NoCoverage"] = process.argv.slice(2);
if (!report || !fileFilter || !tests) {
  console.error("usage: node bench/plant-mutants.mjs REPORT.json FILE-FILTER TEST[,TEST…] [STATUSES]");
  process.exit(2);
}
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Beside the Stryker sandboxes, so tests reach ../shared through the link bench/mutation.mjs makes.
const copy = path.join(root, ".stryker-tmp", "plant");
fs.rmSync(copy, { recursive: true, force: true });
fs.mkdirSync(copy, { recursive: true });
for (const d of ["src", "test"]) fs.cpSync(path.join(root, d), path.join(copy, d), { recursive: true });
for (const f of ["package.json", "tsconfig.json", "vitest.config.ts"]) fs.copyFileSync(path.join(root, f), path.join(copy, f));
fs.symlinkSync(path.join(root, "node_modules"), path.join(copy, "node_modules"));

const wanted = new Set(statuses.split(","));
const lines = process.env.LINES ? new Set(process.env.LINES.split(",")) : null;
for (const [file, { mutants }] of Object.entries(JSON.parse(fs.readFileSync(report, "utf8")).files)) {
  if (!file.includes(fileFilter)) continue;
  const original = fs.readFileSync(path.join(root, file), "utf8");
  const starts = [0];
  for (const l of original.split("\n")) starts.push(starts[starts.length - 1] + l.length + 1);
  // Stryker's locations are 1-based lines and columns.
  const offset = ({ line, column }) => starts[line - 1] + column - 1;
  for (const m of mutants) {
    if (!wanted.has(m.status) || (lines && !lines.has(`${path.basename(file)}:${m.location.start.line}`))) continue;
    fs.writeFileSync(path.join(copy, file), original.slice(0, offset(m.location.start)) + m.replacement + original.slice(offset(m.location.end)));
    const r = spawnSync("npx", ["vitest", "run", ...tests.split(",")], { cwd: copy, encoding: "utf8" });
    console.log(`${r.status === 0 ? "SURVIVES" : "killed  "} ${path.basename(file)}:${m.location.start.line} ${m.mutatorName} ${JSON.stringify(m.replacement.slice(0, 60))}`);
  }
  fs.writeFileSync(path.join(copy, file), original);
}
