/**
 * The `q8` command line: argument parsing and printing only; all work goes through src/api.ts.
 *   q8 inspect MODEL
 *   q8 predict MODEL [--input NAME=FILE]... [--output-dir DIR]
 *   q8 eval MODEL --images IDX --labels IDX [--scale S] [--mean M] [--std D] [--layout nchw|nhwc] [--batch N] [--limit N] [--json]
 *   q8 convert MODEL -o OUT [--quantize] ...
 *   q8 bench MODEL [--batch N] [--threads T] [--warmup W] [--iterations I] [--backend B] [--json]
 */
import { Command } from 'commander';
import { Q8Error } from '../core/errors.js';
import { inspectCommand } from './inspect.js';
import { predictCommand } from './predict.js';
import { evalCommand } from './eval.js';
import { benchCommand } from './bench.js';
import { convertCommand } from './convert.js';

export function buildProgram(): Command {
  const program = new Command('q8')
    .description('Low-precision deep-learning inference: load, quantize, run and measure models.')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .exitOverride(); // set before the verbs are added so they inherit it: usage errors exit 2, not 1
  inspectCommand(program);
  predictCommand(program);
  evalCommand(program);
  convertCommand(program);
  benchCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') process.exit(0);
    if (code?.startsWith('commander.')) process.exit(2); // commander already printed the message
    if (e instanceof Q8Error) {
      console.error(`q8: error: ${e.message}`);
      process.exit(1);
    }
    console.error(`q8: internal error: ${(e as Error).stack ?? e}`);
    process.exit(3);
  }
}
