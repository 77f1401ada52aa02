/**
 * ONNX `If`. The session runs it (src/runtime/session.ts compiles both branches as nested sessions
 * that read outer-scope values by name); this schema only registers the operator.
 */
import { Q8Error } from '../core/errors.js';
import type { OpSchema } from './registry.js';

export const ops: OpSchema[] = [
  {
    opType: 'If',
    half: 'native',
    run: () => {
      throw new Q8Error('If runs inside a session (it needs its branches compiled)');
    },
  },
];
