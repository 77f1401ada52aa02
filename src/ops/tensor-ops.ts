/**
 * Tensor-manipulation operators, grouped by file: shape/data movement (shape-ops.ts), indexing
 * (gather-scatter.ts), resampling (resize.ts) and Einsum (einsum.ts). This file only collects them.
 */
import type { OpSchema } from './registry.js';
import { ops as shapeOps } from './shape-ops.js';
import { ops as gatherScatter } from './gather-scatter.js';
import { ops as resize } from './resize.js';
import { ops as einsum } from './einsum.js';

export const ops: OpSchema[] = [...shapeOps, ...gatherScatter, ...resize, ...einsum];
