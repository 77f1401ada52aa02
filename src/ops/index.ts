/**
 * All operator schemas, registered once on import. Each group file exports `ops: OpSchema[]`.
 * Adding an operator touches its group file, its test data and nothing else.
 */
import { registerOps } from './registry.js';
import { ops as elementwise } from './elementwise.js';
import { ops as reduce } from './reduce.js';
import { ops as normalization } from './normalization.js';
import { ops as tensorOps } from './tensor-ops.js';
import { ops as nn } from './nn.js';
import { ops as rnn } from './rnn.js';
import { ops as quantLinear } from './quantize-linear.js';
import { ops as controlFlow } from './control-flow.js';
import { ops as fused } from './fused.js';

registerOps([...elementwise, ...reduce, ...normalization, ...tensorOps, ...nn, ...rnn, ...quantLinear, ...controlFlow, ...fused]);

export { getOp, listOps } from './registry.js';
