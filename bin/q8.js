#!/usr/bin/env node
import('../dist/src/cli/main.js').then((m) => m.main(process.argv)).catch((e) => {
  console.error(`q8: ${e && e.message ? e.message : e}`);
  if (String(e && e.code) === 'ERR_MODULE_NOT_FOUND') console.error('q8: run `npm install` (it builds dist/) first');
  process.exit(2);
});
