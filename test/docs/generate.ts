/**
 * Generates the README sections that would otherwise drift: the conformance figure (from the
 * summary the conformance suite writes), the operator list (from the op registry) and the
 * per-format layer/op lists (from the loaders' tables). `npm run docs` writes them; the docs test
 * fails when the README is stale.
 *
 * A section is the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { listOps } from '../../src/ops/index.js';
import { CAFFE_LAYERS } from '../../src/formats/caffe/index.js';
import { TENSORFLOW_OPS } from '../../src/formats/tensorflow/index.js';
import { TFJS_LAYERS } from '../../src/formats/tfjs/index.js';
import * as bigdl from '../../src/formats/bigdl/index.js';
import { ENGINE_OPS, QUANT_OPS } from '../conformance/scope.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function conformance(): string {
  const f = path.join(repoRoot, 'test/conformance/summary.json');
  if (!fs.existsSync(f)) return '_Run `npm test` to produce the conformance figure._';
  const s = JSON.parse(fs.readFileSync(f, 'utf8')) as {
    in_scope: number; passed: number; excluded: number; out_of_scope: number; total_cases: number;
    per_suite: Record<string, { in_scope: number; passed: number }>;
  };
  const pct = ((100 * s.passed) / s.in_scope).toFixed(1);
  const rows = Object.entries(s.per_suite).map(([k, v]) => `| ${k} | ${v.passed} / ${v.in_scope} |`);
  return [
    `**${s.passed} of ${s.in_scope} in-scope cases pass (${pct}%)**; ${s.excluded} are excluded with a reason each in`,
    '[`test/conformance/exclusions.ts`](test/conformance/exclusions.ts). A case is in scope when every operator of its model is',
    `in q8's list; ${s.out_of_scope} of the ${s.total_cases} cases use other operators (training, sequences, strings, signal processing).`,
    'All of them run in CI on every push.',
    '',
    '| suite | passed / in scope |',
    '|---|---|',
    ...rows,
  ].join('\n');
}

function operators(): string {
  const ops = listOps();
  const onnx = ops.filter((o) => !o.domain).map((o) => o.opType);
  const q8 = ops.filter((o) => o.domain === 'q8').map((o) => o.opType);
  const missing = [...ENGINE_OPS, ...QUANT_OPS].filter((o) => !onnx.includes(o));
  const lines = [
    `${onnx.length} ONNX operators, each with a TypeScript reference kernel (opsets 1–21):`,
    '',
    onnx.map((o) => `\`${o}\``).join(' '),
  ];
  if (q8.length) lines.push('', `q8's own operators (domain \`q8\`): ${q8.map((o) => `\`${o}\``).join(' ')}`);
  if (missing.length) lines.push('', `Not yet implemented from the planned list: ${missing.join(', ')}`);
  return lines.join('\n');
}

function formats(): string {
  const bigdlModules = (bigdl as Record<string, unknown>)['BIGDL_MODULES'] as readonly string[] | undefined;
  const row = (name: string, what: string, list: readonly string[] | undefined) =>
    `| ${name} | ${list ? list.length : '—'} ${what} | ${list ? list.join(', ') : ''} |`;
  return [
    '| format | supported | list |',
    '|---|---|---|',
    `| ONNX | ${listOps().filter((o) => !o.domain).length} operators | see above |`,
    row('Caffe', 'layer types', CAFFE_LAYERS),
    row('TensorFlow', 'ops', TENSORFLOW_OPS),
    row('TF.js', 'layer/op types', TFJS_LAYERS),
    row('BigDL', 'module types', bigdlModules),
  ].join('\n');
}

export const SECTIONS: Record<string, () => string> = { conformance, operators, formats };

/** The README with every generated section brought up to date. */
export function regenerate(readme: string): string {
  let out = readme;
  for (const [name, make] of Object.entries(SECTIONS)) {
    const re = new RegExp(`(<!-- generated:${name} -->)[\\s\\S]*?(<!-- /generated:${name} -->)`);
    out = out.replace(re, (_, a: string, b: string) => `${a}\n${make()}\n${b}`);
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = path.join(repoRoot, 'README.md');
  const before = fs.readFileSync(file, 'utf8');
  const after = regenerate(before);
  if (process.argv.includes('--write')) {
    fs.writeFileSync(file, after);
    console.log(after === before ? 'README.md is up to date' : 'README.md regenerated');
  } else if (after !== before) {
    console.log('README.md is stale: run npm run docs');
    process.exitCode = 1;
  }
}
