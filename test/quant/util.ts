/** Seeded random numbers for the quantization tests (xorshift128+; no constant-filled data). */
export interface Rng {
  next(): number;
  uniform(lo: number, hi: number): number;
  normal(): number;
  int(lo: number, hi: number): number;
}

export function rng(seed: number): Rng {
  let a = (seed * 0x9e3779b1) >>> 0 || 1, b = (seed ^ 0xdeadbeef) >>> 0 || 2;
  const next = () => {
    let t = a; const s = b; a = s; t ^= t << 23; t ^= t >>> 17; t ^= s ^ (s >>> 26); b = t >>> 0;
    return ((a + b) >>> 0) / 4294967296;
  };
  for (let i = 0; i < 8; i++) next();
  return {
    next,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    normal: () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next()),
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
  };
}

export function randomArray(r: Rng, n: number, scale = 1): Float32Array {
  return new Float32Array(n).map(() => r.normal() * scale);
}
