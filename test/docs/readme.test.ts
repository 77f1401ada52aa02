/** The README's generated sections match the registries and the latest conformance summary. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { regenerate, repoRoot, SECTIONS } from './generate.js';

test('README generated sections are current (npm run docs rewrites them)', () => {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  for (const name of Object.keys(SECTIONS)) assert.ok(readme.includes(`<!-- generated:${name} -->`), `README lacks section ${name}`);
  assert.equal(regenerate(readme), readme);
});
