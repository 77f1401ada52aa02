/**
 * ONNX backend conformance (Debian's libonnx-testdata): every case whose operators are all in
 * q8's list must pass at ONNX's tolerances, except those in exclusions.ts (each with a reason,
 * at most 2% of the in-scope cases). Also writes the counts to test/conformance/summary.json,
 * from which the README's figure is generated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCases, runCase, type CaseResult } from './runner.js';
import { SUITES, TESTDATA_ROOT } from './scope.js';
import { EXCLUSIONS } from './exclusions.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const present = fs.existsSync(TESTDATA_ROOT);

test('ONNX backend conformance (libonnx-testdata)', { skip: present ? false : `${TESTDATA_ROOT} is absent: apt-get install libonnx-testdata` }, () => {
  const results: CaseResult[] = [];
  for (const suite of SUITES) for (const name of listCases(TESTDATA_ROOT, suite)) results.push(runCase(TESTDATA_ROOT, suite, name));
  const inScope = results.filter((r) => r.inScope);
  const passed = inScope.filter((r) => r.pass);
  const failed = inScope.filter((r) => !r.pass);
  const unexpected = failed.filter((r) => !(r.name in EXCLUSIONS));
  const stale = Object.keys(EXCLUSIONS).filter((n) => inScope.some((r) => r.name === n && r.pass));
  const summary = {
    total_cases: results.length,
    in_scope: inScope.length,
    passed: passed.length,
    excluded: failed.length - unexpected.length,
    unexpected_failures: unexpected.length,
    out_of_scope: results.length - inScope.length,
    per_suite: Object.fromEntries(SUITES.map((s) => [s, {
      in_scope: inScope.filter((r) => r.suite === s).length,
      passed: passed.filter((r) => r.suite === s).length,
    }])),
  };
  fs.writeFileSync(path.join(repoRoot, 'test/conformance/summary.json'), JSON.stringify(summary, null, 2) + '\n');
  console.log(`conformance: ${passed.length}/${inScope.length} in-scope cases pass (${(100 * passed.length / inScope.length).toFixed(1)}%), ${summary.excluded} excluded, ${summary.out_of_scope} out of scope`);
  assert.deepEqual(unexpected.map((r) => `${r.suite}/${r.name}: ${r.error}`), [], 'in-scope cases that fail and are not excluded');
  assert.deepEqual(stale, [], 'excluded cases that now pass: remove them from exclusions.ts');
  assert.ok(Object.keys(EXCLUSIONS).length <= 0.02 * inScope.length, `exclusions (${Object.keys(EXCLUSIONS).length}) exceed 2% of ${inScope.length}`);
  assert.ok(inScope.length > 700, `only ${inScope.length} in-scope cases found`);
});
