/** Rounding shared by the ONNX quantized operators and q8's own codecs (ties to even, as ONNX and numpy do). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds ties up; pull exact .5 ties on odd results back to the even neighbour.
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
