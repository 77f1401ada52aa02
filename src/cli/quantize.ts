import { Q8Error } from '../core/errors.js';
import type { Q8Model } from '../api.js';
import type { ConvertFlags } from './convert.js';

/** Wired to src/quant once it lands. */
export async function quantizeForCli(_model: Q8Model, _file: string, _flags: ConvertFlags): Promise<void> {
  throw new Q8Error('quantization is not available in this build');
}
