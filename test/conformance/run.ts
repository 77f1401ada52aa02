/**
 * Command-line conformance runner for development:
 *   node dist/test/conformance/run.js [--filter REGEX] [--suite node,...] [--all] [--backend ref|native|auto]
 * Prints one line per in-scope case (or every case with --all) and a summary.
 */
import { listCases, runCase } from './runner.js';
import { SUITES, TESTDATA_ROOT } from './scope.js';
import { EXCLUSIONS } from './exclusions.js';
import type { BackendChoice } from '../../src/kernels/registry.js';

const args = process.argv.slice(2);
const opt = (k: string) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : undefined; };
const filter = new RegExp(opt('--filter') ?? '.');
const suites = (opt('--suite')?.split(',') ?? [...SUITES]);
const all = args.includes('--all');
const backend = (opt('--backend') ?? 'ref') as BackendChoice;
let pass = 0, fail = 0, out = 0;
for (const suite of suites) {
  for (const name of listCases(TESTDATA_ROOT, suite)) {
    if (!filter.test(name)) continue;
    const r = runCase(TESTDATA_ROOT, suite, name, backend);
    if (!r.inScope) { out++; if (all) console.log(`OUT  ${suite}/${name} [${r.ops.join(' ')}]`); continue; }
    if (r.pass) { pass++; if (all) console.log(`PASS ${suite}/${name}`); }
    else { fail++; console.log(`FAIL ${suite}/${name}${EXCLUSIONS[name] ? ' (excluded)' : ''}: ${r.error}`); }
  }
}
console.log(`in scope: ${pass + fail}, passed: ${pass}, failed: ${fail}, out of scope: ${out}`);
