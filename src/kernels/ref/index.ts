/** Plain TypeScript kernels shared by the reference operators and reused by the int8 kernels. */
export { gemmF32Ref, gemmF64Ref, type GemmOptions } from './gemm.js';
export { im2colRef, im2rowRef, im2colNdRef, col2imRef, col2imNdAddRef, type Conv2DGeom, type ConvNDGeom } from './im2col.js';
