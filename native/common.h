// Shared declarations between the N-API glue (addon.cc, baseline x86-64) and the per-ISA kernel
// translation units (kern_*.cc, each compiled with its own -m flags and only called after cpuid).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace q8 {

// Fixed packing geometry shared by every ISA, so packing is done once, ISA-independently.
constexpr int kNR = 32;  // GEMM (row-major A): packed weight panel width in output columns
constexpr int kCB = 8;   // Conv: output channels per packed weight block
constexpr int kPP = 48;  // Conv: output pixels per activation panel

// Activation after bias: out = min(max(v, lo), hi). None: lo=-inf, hi=+inf; Relu: lo=0.
struct Epi {
  const float* bias;  // [N] or null
  float lo, hi;
  // Benchmark only (convQ8Phase, bench/gemm.ts): the int8 conv runs only its pack phase (1:
  // channel max, im2col and quantization) or only its GEMM phase on stale panels (2); 0: both.
  int phase = 0;
  // A residual input (conv fused with the Add that reads its output, graph/passes.ts
  // fuseResiduals): same layout as the whole output `out0`; the store adds res[o - out0] to the
  // biased value before the activation. Null: none. It may be out0 itself (in place: each store
  // reads its own element first), but no other overlap.
  const float* res = nullptr;
  const float* out0 = nullptr;
  // The residual under output element o (Epi::res non-null).
  const float* res_at(const float* o) const { return res + (o - out0); }
};

// For the paths that do not add the residual in their store: run with a plain epilogue (no
// residual, no activation), then one pass out[i] = act(out[i] + res[i]) over the n outputs: the
// rounding steps of Conv then Add then the activation, as the unfused graph takes them. A residual
// in out's own memory (the in-place join) is copied first.
template <class Run> inline void with_residual(const Epi& e, float* out, size_t n, Run run) {
  if (!e.res) { run(e); return; }
  Epi p = e;
  p.res = nullptr;
  p.lo = -__builtin_inff(); p.hi = __builtin_inff();
  const float* r = e.res_at(out);
  std::vector<float> copy;
  if (r == out) { copy.assign(r, r + n); r = copy.data(); }
  run(p);
  for (size_t i = 0; i < n; i++) {
    float v = out[i] + r[i];
    out[i] = v < e.lo ? e.lo : v > e.hi ? e.hi : v;
  }
}

// int8 weights for row-major GEMM, out[m,n] = sum_k A[m,k] W[n,k].
struct PackQ8Gemm {
  int N, K, K4, npanel;    // K4 = ceil(K/4)
  int wblock, ablock, cblock;  // window sizes (0 = whole K); cblock = combined block (never 0)
  int ncb, nwb;            // number of combined blocks, weight blocks
  std::vector<int8_t> w;   // [npanel][K4][kNR][4]
  std::vector<int32_t> init;  // [npanel][ncb][kNR]: -128*colsum (u8 form) per combined block
  std::vector<int32_t> zinit;  // zeros, same shape (signed-activation kernels)
  std::vector<float> wscale;  // [npanel][nwb][kNR]
};

// int8 weights for NCHW conv, out[n,p] = sum_k W[n,k] col[k,p] per group.
struct PackQ8Conv {
  int M, Kg, K4, group, Mg, nblk;  // nblk = ceil(Mg/kCB) blocks per group
  // Tap-major K order (k' = tap*Cg4 + c, channels padded to Cg4 = roundup(Cg, 4)) when one combined
  // block spans the whole patch, so the order of the int32 sum is free: 4 channels of one tap share
  // a pixel map entry. Otherwise the contract's order k = c*khw + tap.
  bool tapmajor;
  // act_tap: one activation window per tap (tap-major, one combined block of Cg4 per tap, channel
  // weight windows); run by conv_q8_tap, which quantizes each image once.
  bool acttap;
  int khw, Cg4;
  int wblock, ablock, cblock, ncb, nwb;
  std::vector<int8_t> w;      // [group][nblk][K4][kCB][4]
  std::vector<int32_t> init;  // [group][nblk][ncb][kCB]
  std::vector<int32_t> zinit;
  std::vector<float> wscale;  // [group][nblk][nwb][kCB]
  std::vector<int8_t> wraw;   // [M][Kg] original (depthwise kernel reads it directly)
  std::vector<float> wsraw;   // [M][nwb]
  // Small output maps, whole-patch activation and channel weight windows: the conv runs as a GEMM
  // over pixel rows (addon.cc conv_rows), each row quantized as one window, as the patch would be.
  std::unique_ptr<PackQ8Gemm> rows;
};

struct PackF32Gemm {
  int N, K, npanel;
  std::vector<float> w;  // [npanel][K][kNR]
};

struct PackF32Conv {
  int M, Kg, group, Mg, nblk;
  bool tapmajor;  // K order k = tap*Cg + c (when khw was given), else the ONNX order c*khw + tap
  int khw;
  std::vector<float> w;     // [group][nblk][Kg][kCB]
  std::vector<float> wraw;  // [M][Kg]
  // Small output maps run as a GEMM over pixel rows (addon.cc conv_f32_rows): Wᵀ packed for it
  // with K tap-major, built on first use.
  std::unique_ptr<PackF32Gemm> rows;
};

struct ConvGeom {
  int C, H, W;        // input per image
  int kh, kw, sh, sw, dh, dw, pt, pl;
  int OH, OW;
};

// Per-thread scratch, grown on demand, 64-byte aligned.
struct Scratch {
  void* p = nullptr;
  size_t n = 0;
  void* get(size_t bytes);
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch();
};

// Runs fn(task, thread) for task in [0, n) on the pool (caller participates).
using TaskFn = void (*)(void* ctx, int task, int thread);
void parallel_for(int n, TaskFn fn, void* ctx);
Scratch& scratch(int thread, int which);
int pool_threads();
// The pool never has more threads (kernels keep per-thread state in arrays of this size).
constexpr int kMaxThreads = 256;

// One kernel table per ISA.
struct Kernels {
  const char* name;
  bool u8act;  // activations stored as q+128 (VNNI u8 x s8); false: signed (AVX2 sign trick, scalar)
  void (*gemm_q8)(const PackQ8Gemm&, const float* A, int M, const Epi&, float* out);
  void (*conv_q8)(const PackQ8Conv&, const ConvGeom&, int batch, const float* X, const Epi&, float* out);
  void (*gemm_f32)(const PackF32Gemm&, const float* A, int M, const Epi&, float* out);
  void (*conv_f32)(const PackF32Conv&, const ConvGeom&, int batch, const float* X, const Epi&, float* out);
  double (*peak_i8)(long iters);   // ops done by a tight int8-dot loop (null: none)
  double (*peak_f32)(long iters);  // ops done by a tight FMA loop (null: none)
  // MaxPool over batch*C planes (G.dh = G.dw = 1): padded taps are skipped, a window with no input
  // gives 0, a NaN anywhere in the window gives NaN (the reference's rules).
  void (*maxpool_f32)(const ConvGeom& G, int planes, const float* X, float* out);
  // Broadcasting binary op over `outer` runs of `inner` outputs: run o reads a from offa[o] with
  // step sa (1, or 0: one value repeated) and b likewise. op: 0 Add, 1 Sub, 2 Mul, 3 Div.
  // act 1 (Add only): then v < 0 ? 0 : v (q8.AddAct's store; keeps -0 and NaN).
  void (*binary_f32)(int op, int act, const float* a, const int32_t* offa, int sa, const float* b,
                     const int32_t* offb, int sb, int outer, int inner, float* out);
  // Softmax over each of `rows` contiguous rows of `cols` values (the reference's NaN/Inf rules).
  void (*softmax_f32)(const float* x, int rows, int cols, float* out);
  // ONNX Relu: v > 0 ? v : (NaN stays NaN, everything else 0).
  void (*relu_f32)(const float* x, size_t n, float* out);
  // ONNX Erf (GELU in transformer models calls it on every hidden activation).
  void (*erf_f32)(const float* x, size_t n, float* out);
  // q8.LayerNorm over rows of C: (x - mean) / sqrt(var + eps) * gamma + beta.
  void (*layernorm_f32)(const float* x, int rows, int C, const float* gamma, const float* beta, float eps, float* out);
  // q8.Gelu, the exported erf GELU chain in its own float32 steps: ((x * (erf(x / div) + add)) * mul).
  void (*gelu_f32)(const float* x, size_t n, float div, float add, float mul, float* out);
};

extern const Kernels kern_avx512vnni, kern_avxvnni, kern_avx2, kern_scalar;

}  // namespace q8
