/** Importing this registers q8's int8 operators (domain 'q8') and the load-time int8 rewrite. */
import { getOp, registerOps } from '../ops/registry.js';
import { Q8_OPS } from './kernels.js';
import './rewrite.js';

if (!getOp('q8', 'Q8Gemm')) registerOps(Q8_OPS);
