import * as fs from 'node:fs';
import { Q8Error } from '../core/errors.js';
import { formatReport, type Q8Model, type QuantizeOptions } from '../api.js';
import type { ConvertFlags } from './convert.js';
import { bytes } from './format.js';

const WEIGHT_WINDOWS = { channel: 'channel', '32': 32, '64': 64, '128': 128, '256': 256 } as const;

export function parseActivationWindow(v: string | undefined): QuantizeOptions['activationWindow'] {
  if (v === undefined) return undefined;  // the library's per-layer default
  if (v === 'row' || v === 'patch' || v === 'tap') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Q8Error(`--activation-window must be row, patch, tap or a positive integer, got '${v}'`);
  return n;
}

export async function quantizeForCli(model: Q8Model, file: string, flags: ConvertFlags): Promise<void> {
  const options: QuantizeOptions = {
    weightWindow: WEIGHT_WINDOWS[flags.weightWindow as keyof typeof WEIGHT_WINDOWS],
    report: Boolean(flags.report),
  };
  const aw = parseActivationWindow(flags.activationWindow);
  if (aw !== undefined) options.activationWindow = aw;
  if (flags.exclude) options.exclude = flags.exclude.split(',').map((s) => s.trim()).filter(Boolean);
  const q = await model.quantize(options);
  await q.save(flags.output);
  const report = q.lastReport!;
  if (flags.report && flags.json) {
    console.log(formatReport(report, { json: true }));
    return;
  }
  if (flags.report) console.log(formatReport(report) + '\n');
  const before = fs.existsSync(file) && fs.statSync(file).isFile() ? fs.statSync(file).size : report.weightBytesFp32;
  const after = fs.statSync(flags.output).size;
  const n = report.layers.filter((l) => l.quantized).length;
  console.log(`wrote ${flags.output}: ${bytes(after)} (from ${bytes(before)}, ${(before / after).toFixed(2)}x smaller); ` +
    `${n}/${report.layers.length} layers int8 in ${report.seconds.toFixed(2)} s`);
}
