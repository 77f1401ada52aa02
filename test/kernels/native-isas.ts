/** The native addon as the kernel tests see it: whether it loaded, the ISAs to cover, and a loop over them. */
import assert from 'node:assert/strict';
import { nativeAddon, nativeBackend, nativeLoadError, type NativeIsa } from '../../src/kernels/native/index.js';
import { againstReference } from './kernel-test-util.js';

export const addon = nativeAddon();
export const skip = addon ? false : `native addon not built: ${nativeLoadError}`;
export const ALL_ISAS: NativeIsa[] = ['scalar', 'avx2', 'avxvnni', 'avx512vnni'];
/** Every ISA this machine runs, up to the best one. */
export const ISAS = addon ? ALL_ISAS.slice(0, ALL_ISAS.indexOf(addon.info().best) + 1) : [];
export const both = againstReference(nativeBackend);

/** Run fn once per ISA (forced with setIsa), restoring the best ISA afterwards. */
export function forEachIsa(fn: (isa: NativeIsa) => void): void {
  const best = addon!.info().best;
  try {
    for (const isa of ISAS) {
      assert.equal(addon!.setIsa(isa), isa);
      fn(isa);
    }
  } finally {
    addon!.setIsa(best);
  }
}
