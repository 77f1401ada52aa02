/** Neural-network operator group: convolutions, pooling, matrix products, box suppression. */
import type { OpSchema } from './registry.js';
import { ops as conv } from './conv.js';
import { ops as pool } from './pool.js';
import { ops as gemm } from './gemm.js';
import { ops as nms } from './nms.js';

export const ops: OpSchema[] = [...conv, ...pool, ...gemm, ...nms];
