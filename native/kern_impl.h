// The vector kernels, written once against the traits in simd.h and compiled per ISA by
// kern_avx512vnni.cc / kern_avxvnni.cc / kern_avx2.cc (each defines Q8_W, Q8_VNNI, Q8_NAME).
//
// Two orientations:
//  - GEMM (row-major A[M,K], out[M,N]): lanes run over output columns; A values are broadcast.
//    A rows are quantized into a row-major byte buffer; weights are packed in panels of kNR columns.
//  - Conv (NCHW): lanes run over output pixels, so the output row of one channel is contiguous and
//    no transpose is needed; weights are broadcast. im2col and quantization happen in one pass per
//    panel of kPP pixels, written straight into the layout vpdpbusd reads (4 k-bytes per pixel lane).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"
#include "simd.h"

namespace q8 {
namespace Q8_NS {

using F = V::F;
using I = V::I;
using M = V::M;
using DV = V::D;  // double lanes (Softmax's exp)
constexpr int LD = V::LD;
constexpr int L = V::L;
constexpr int NVG = kNR / L;  // vectors per GEMM panel
constexpr int NVC = kPP / L;  // vectors per conv pixel panel
#if Q8_W == 512
constexpr int MRQ = 12, MRF = 12;  // GEMM rows per tile: 12 x 2 zmm = 24 accumulators
constexpr int CMI = 8;             // conv tile: 8 channels x 3 zmm = 24 accumulators
#elif Q8_VNNI
constexpr int MRQ = 3, MRF = 3;    // 3 x 4 ymm = 12 accumulators
constexpr int CMI = 4;
#else
constexpr int MRQ = 2, MRF = 3;    // the sign trick needs spare registers
constexpr int CMI = 4;
#endif
constexpr int CNV = (Q8_W == 512) ? 3 : 3;  // conv tile pixel vectors

// Waking the pool costs microseconds; tiny layers run on the calling thread.
static void run_tasks(int n, TaskFn fn, void* ctx, double macs) {
  if (macs < 2e5) {
    for (int t = 0; t < n; t++) fn(ctx, t, 0);
  } else {
    parallel_for(n, fn, ctx);
  }
}

// The activation's clamp. x86 max/min return the second operand when either is NaN (and for
// +0 vs -0), so v goes second: NaN stays NaN and -0 stays -0, as in ONNX Relu/Clip and the
// reference kernels (with v first, a NaN conv output came out as the lower bound: 0 or -Inf).
inline F clampv(F v, const Epi& e) { return V::min(V::fset(e.hi), V::max(V::fset(e.lo), v)); }
// Fetch the residual under an MI x NV tile of outputs at o (rows ldo apart) while the tile computes:
// it comes from L2 or farther, and the store would wait for it.
template <int MI, int NV> inline void prefetch_res(const Epi& e, const float* o, size_t ldo) {
  if (!e.res) return;
  const float* r = e.res_at(o);
  for (int i = 0; i < MI; i++)
    for (int j = 0; j < NV; j++) __builtin_prefetch(r + i * ldo + j * L, 0, 3);
}
// The residual under nrows output rows (ldo apart) of npix pixels from o, into L2, for a later tile
// or task: the epilogue's residual loads, one short run per row, are more streams than the hardware
// prefetcher follows.
inline void prefetch_res_rows(const Epi& e, const float* o, size_t ldo, int nrows, int npix) {
  if (!e.res) return;
  const float* r = e.res_at(o);
  for (int i = 0; i < nrows; i++, r += ldo)
    for (int l = 0; l < npix; l += 16) __builtin_prefetch(r + l, 0, 2);
}
// A conv store's last steps for the n (<= L) outputs at o: plus the residual there (Epi::res), then
// the activation.
inline F finish(F v, const Epi& e, const float* o, int n) {
  if (e.res) {
    const float* r = e.res_at(o);
    v = V::add(v, n >= L ? V::fload(r) : V::floadm(r, V::first(n)));
  }
  return clampv(v, e);
}

// ---------------------------------------------------------------- GEMM, int8
// Quantize `rows` rows of A (stride K) per window into bytes q[r*lda + k] (k < K4*4, padded with 0).
static void quant_rows(const float* A, int K, int rows, int ablock, uint8_t* q, int lda, float* sa, int nab) {
  int B = ablock ? ablock : K;
  for (int r = 0; r < rows; r++) {
    const float* x = A + (size_t)r * K;
    uint8_t* qr = q + (size_t)r * lda;
    for (int w = 0, k0 = 0; k0 < K; w++, k0 += B) {
      int k1 = std::min(K, k0 + B);
      // four independent max chains: one chain would be bound by vmaxps latency
      F am = V::fzero(), am1 = V::fzero(), am2 = V::fzero(), am3 = V::fzero();
      int k = k0;
      for (; k + 4 * L <= k1; k += 4 * L) {
        am = V::max(am, V::abs(V::fload(x + k)));
        am1 = V::max(am1, V::abs(V::fload(x + k + L)));
        am2 = V::max(am2, V::abs(V::fload(x + k + 2 * L)));
        am3 = V::max(am3, V::abs(V::fload(x + k + 3 * L)));
      }
      am = V::max(V::max(am, am1), V::max(am2, am3));
      for (; k + L <= k1; k += L) am = V::max(am, V::abs(V::fload(x + k)));
      if (k < k1) am = V::max(am, V::abs(V::fsel(V::first(k1 - k), V::floadm(x + k, V::first(k1 - k)))));
      float amax = V::hmax(am);
      float inv = amax != 0.f ? 127.f / amax : 0.f;
      sa[r * nab + w] = amax / 127.f;
      F iv = V::fset(inv);
      for (k = k0; k + L <= k1; k += L) V::store_bytes(qr + k, V::cvtr(V::mul(V::fload(x + k), iv)), L);
      if (k < k1) V::store_bytes(qr + k, V::cvtr(V::mul(V::floadm(x + k, V::first(k1 - k)), iv)), k1 - k);
    }
    for (int k = K; k < lda; k++) qr[k] = V::kU8 ? 0x80 : 0;
  }
}

// One combined block (whole-row windows): int32 accumulators straight into the store, so the 24
// accumulators are the only long-lived registers.
template <int MR>
__attribute__((noinline)) static void q8_gemm_tile1(const PackQ8Gemm& P, int pn, const uint8_t* A, int lda, const float* sa, int nab,
                          const Epi& e, float* out, int ldo, int ncols) {
  const int8_t* w = P.w.data() + (size_t)pn * P.K4 * kNR * 4;
  const int32_t* init = (V::kU8 ? P.init : P.zinit).data() + (size_t)pn * kNR;
  const float* ws = P.wscale.data() + (size_t)pn * kNR;
  I acc[MR][NVG];
  for (int j = 0; j < NVG; j++) {
    I iv = V::iload(init + j * L);
    for (int i = 0; i < MR; i++) acc[i][j] = iv;
  }
  const uint8_t* a = A;
  for (int k4 = 0; k4 < P.K4; k4++, w += kNR * 4, a += 4) {
    I wv[NVG];
    for (int j = 0; j < NVG; j++) wv[j] = V::iload(w + j * L * 4);
    for (int i = 0; i < MR; i++) {
      I av = V::ibcast(a + (size_t)i * lda);
      for (int j = 0; j < NVG; j++) acc[i][j] = V::dot(acc[i][j], av, wv[j]);
    }
  }
  // Park the sums in L1 before the store: with the epilogue's values live across the loop, clang
  // otherwise spills the accumulators inside it.
  alignas(64) int32_t sums[MR][kNR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NVG; j++) V::istore(&sums[i][j * L], acc[i][j]);
  for (int j = 0; j < NVG; j++) {
    int n = ncols - j * L;
    if (n <= 0) break;
    M m = V::first(n);
    F b = e.bias ? V::floadm(e.bias + j * L, m) : V::fzero();
    F s = V::fload(ws + j * L);
    for (int i = 0; i < MR; i++) {
      F v = clampv(V::add(V::mul(V::cvt(V::iload(&sums[i][j * L])), V::mul(s, V::fset(sa[i * nab]))), b), e);
      if (n >= L) V::fstore(out + (size_t)i * ldo + j * L, v);
      else V::fstorem(out + (size_t)i * ldo + j * L, v, m);
    }
  }
}

template <int MR>
static void q8_gemm_tile(const PackQ8Gemm& P, int pn, const uint8_t* A, int lda, const float* sa, int nab,
                         const Epi& e, float* out, int ldo, int ncols) {
  if (P.ncb == 1) return q8_gemm_tile1<MR>(P, pn, A, lda, sa, nab, e, out, ldo, ncols);
  const int8_t* wp = P.w.data() + (size_t)pn * P.K4 * kNR * 4;
  const int32_t* init = (V::kU8 ? P.init : P.zinit).data() + (size_t)pn * P.ncb * kNR;
  const float* ws = P.wscale.data() + (size_t)pn * P.nwb * kNR;
  const int cb4 = (P.cblock + 3) / 4;
  // Several blocks: the float sums live in memory (L1) between blocks.
  alignas(64) float f[MR][kNR];
  for (int cb = 0; cb < P.ncb; cb++) {
    int k40 = cb * cb4, k41 = std::min(P.K4, k40 + cb4);
    I acc[MR][NVG];
    for (int j = 0; j < NVG; j++) {
      I iv = V::iload(init + cb * kNR + j * L);
      for (int i = 0; i < MR; i++) acc[i][j] = iv;
    }
    const int8_t* w = wp + (size_t)k40 * kNR * 4;
    const uint8_t* a = A + (size_t)k40 * 4;
    for (int k4 = k40; k4 < k41; k4++, w += kNR * 4, a += 4) {
      I wv[NVG];
      for (int j = 0; j < NVG; j++) wv[j] = V::iload(w + j * L * 4);
      for (int i = 0; i < MR; i++) {
        I av = V::ibcast(a + (size_t)i * lda);
        for (int j = 0; j < NVG; j++) acc[i][j] = V::dot(acc[i][j], av, wv[j]);
      }
    }
    int ab = P.ablock ? cb * P.cblock / P.ablock : 0, wb = P.wblock ? cb * P.cblock / P.wblock : 0;
    for (int j = 0; j < NVG; j++) {
      F s = V::fload(ws + wb * kNR + j * L);
      for (int i = 0; i < MR; i++) {
        F v = V::mul(V::cvt(acc[i][j]), V::mul(s, V::fset(sa[i * nab + ab])));
        V::fstore(&f[i][j * L], cb == 0 ? v : V::add(V::fload(&f[i][j * L]), v));
      }
    }
  }
  for (int j = 0; j < NVG; j++) {
    int n = ncols - j * L;
    if (n <= 0) break;
    M m = V::first(n);
    F b = e.bias ? V::floadm(e.bias + j * L, m) : V::fzero();
    for (int i = 0; i < MR; i++) {
      F v = clampv(V::add(V::fload(&f[i][j * L]), b), e);
      if (n >= L) V::fstore(out + (size_t)i * ldo + j * L, v);
      else V::fstorem(out + (size_t)i * ldo + j * L, v, m);
    }
  }
}

using Q8TileFn = void (*)(const PackQ8Gemm&, int, const uint8_t*, int, const float*, int, const Epi&, float*, int, int);
template <int... R> struct Q8Tiles { static constexpr Q8TileFn fns[] = {nullptr, &q8_gemm_tile<R>...}; };

template <int... R> constexpr auto seq_tiles(std::integer_sequence<int, R...>) { return Q8Tiles<(R + 1)...>{}; }

static Q8TileFn q8_tile_fn(int mr) {
  static constexpr auto t = seq_tiles(std::make_integer_sequence<int, MRQ>{});
  return decltype(t)::fns[mr];
}

struct GemmQ8Ctx {
  const PackQ8Gemm* P; const float* A; int M; const Epi* e; float* out; int nrb, ncc, ppc;
};

static void gemm_q8_task(void* vc, int t, int th) {
  auto& c = *(GemmQ8Ctx*)vc;
  const PackQ8Gemm& P = *c.P;
  int rb = t / c.ncc, cc = t % c.ncc;
  int m0 = rb * MRQ, mr = std::min(MRQ, c.M - m0);
  int lda = P.K4 * 4, nab = P.ablock ? (P.K + P.ablock - 1) / P.ablock : 1;
  auto* q = (uint8_t*)scratch(th, 0).get((size_t)MRQ * lda + 64);
  auto* sa = (float*)scratch(th, 1).get(sizeof(float) * MRQ * nab + 64);
  quant_rows(c.A + (size_t)m0 * P.K, P.K, mr, P.ablock, q, lda, sa, nab);
  Q8TileFn fn = q8_tile_fn(mr);
  int p1 = std::min(P.npanel, (cc + 1) * c.ppc);
  for (int pn = cc * c.ppc; pn < p1; pn++) {
    int n0 = pn * kNR;
    Epi e = *c.e;
    if (e.bias) e.bias += n0;
    fn(P, pn, q, lda, sa, nab, e, c.out + (size_t)m0 * P.N + n0, P.N, std::min(kNR, P.N - n0));
  }
}

static void split(int nrb, int npanel, int& ncc, int& ppc) {
  // Enough tasks for every thread (x4 for balance) without re-quantizing rows more than needed.
  int want = 4 * pool_threads();
  ncc = nrb >= want ? 1 : std::min(npanel, (want + nrb - 1) / nrb);
  ppc = (npanel + ncc - 1) / ncc;
  ncc = (npanel + ppc - 1) / ppc;
}

static void gemm_q8(const PackQ8Gemm& P, const float* A, int M, const Epi& e, float* out) {
  GemmQ8Ctx c{&P, A, M, &e, out, (M + MRQ - 1) / MRQ, 1, P.npanel};
  split(c.nrb, P.npanel, c.ncc, c.ppc);
  run_tasks(c.nrb * c.ncc, gemm_q8_task, &c, (double)M * P.N * P.K);
}

// ---------------------------------------------------------------- GEMM, fp32
template <int MR>
__attribute__((noinline)) static void f32_gemm_tile(const PackF32Gemm& P, int pn, const float* A, const Epi& e, float* out, int ldo, int ncols) {
  const float* w = P.w.data() + (size_t)pn * P.K * kNR;
  const int K = P.K;
  F acc[MR][NVG];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NVG; j++) acc[i][j] = V::fzero();
  for (int k = 0; k < K; k++, w += kNR) {
    F wv[NVG];
    for (int j = 0; j < NVG; j++) wv[j] = V::fload(w + j * L);
    for (int i = 0; i < MR; i++) {
      F av = V::fset(A[(size_t)i * K + k]);
      for (int j = 0; j < NVG; j++) acc[i][j] = V::fma(av, wv[j], acc[i][j]);
    }
  }
  alignas(64) float sums[MR][kNR];  // see q8_gemm_tile1: keeps the accumulators out of the stack
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NVG; j++) V::fstore(&sums[i][j * L], acc[i][j]);
  for (int j = 0; j < NVG; j++) {
    int n = ncols - j * L;
    if (n <= 0) break;
    M m = V::first(n);
    F b = e.bias ? V::floadm(e.bias + j * L, m) : V::fzero();
    for (int i = 0; i < MR; i++) {
      F v = clampv(V::add(V::fload(&sums[i][j * L]), b), e);
      if (n >= L) V::fstore(out + (size_t)i * ldo + j * L, v);
      else V::fstorem(out + (size_t)i * ldo + j * L, v, m);
    }
  }
}

using F32TileFn = void (*)(const PackF32Gemm&, int, const float*, const Epi&, float*, int, int);
template <int... R> struct F32Tiles { static constexpr F32TileFn fns[] = {nullptr, &f32_gemm_tile<R>...}; };
template <int... R> constexpr auto seq_ftiles(std::integer_sequence<int, R...>) { return F32Tiles<(R + 1)...>{}; }
static F32TileFn f32_tile_fn(int mr) {
  static constexpr auto t = seq_ftiles(std::make_integer_sequence<int, MRF>{});
  return decltype(t)::fns[mr];
}

// fp32 weights larger than L2 were streamed from memory once per row block of 12 (conv pixel rows
// on 7x7 maps: 5 times for 49 rows, the last block a single row). Instead the rows go in groups
// whose A stays in L2; each task takes a run of panels (read once) over its group's row blocks,
// balanced in size (49 rows: 10+10+10+10+9). Measured: 7x7 layers of ResNet50 4-9% faster; the
// int8 GEMM, whose weights are 4x smaller, gained nothing and is left as it was.
struct RowGroups {
  int rows = 0;  // rows per group; 0: not grouped
  static RowGroups plan(int M, int K, int N, int mr) {
    RowGroups g;
    if ((size_t)N * K * sizeof(float) <= (1u << 20) || M <= mr) return g;
    size_t fit = ((size_t)384 << 10) / ((size_t)K * sizeof(float));
    g.rows = (int)std::max<size_t>(mr, std::min<size_t>(M, fit / mr * mr));
    // equal groups
    int n = (M + g.rows - 1) / g.rows;
    g.rows = (M + n - 1) / n;
    return g;
  }
  int count(int M) const { return (M + rows - 1) / rows; }
  // fn(m0, mr) for the balanced row blocks of group gi
  template <class Fn> void blocks(int gi, int M, int mr, Fn fn) const {
    int r0 = gi * rows, n = std::min(rows, M - r0), nb = (n + mr - 1) / mr, base = n / nb, extra = n % nb;
    for (int b = 0; b < nb; b++) {
      int len = base + (b < extra);
      fn(r0, len);
      r0 += len;
    }
  }
};

struct GemmF32Ctx { const PackF32Gemm* P; const float* A; int M; const Epi* e; float* out; int nrb, ncc, ppc; RowGroups rg; };

static void gemm_f32_task(void* vc, int t, int) {
  auto& c = *(GemmF32Ctx*)vc;
  const PackF32Gemm& P = *c.P;
  if (c.rg.rows) {  // panel outer, the group's row blocks inner
    int gi = t / c.ncc, cc = t % c.ncc, p1 = std::min(P.npanel, (cc + 1) * c.ppc);
    for (int pn = cc * c.ppc; pn < p1; pn++) {
      int n0 = pn * kNR;
      Epi e = *c.e;
      if (e.bias) e.bias += n0;
      c.rg.blocks(gi, c.M, MRF, [&](int m0, int mr) {
        f32_tile_fn(mr)(P, pn, c.A + (size_t)m0 * P.K, e, c.out + (size_t)m0 * P.N + n0, P.N, std::min(kNR, P.N - n0));
      });
    }
    return;
  }
  int rb = t / c.ncc, cc = t % c.ncc;
  int m0 = rb * MRF, mr = std::min(MRF, c.M - m0);
  F32TileFn fn = f32_tile_fn(mr);
  int p1 = std::min(P.npanel, (cc + 1) * c.ppc);
  for (int pn = cc * c.ppc; pn < p1; pn++) {
    int n0 = pn * kNR;
    Epi e = *c.e;
    if (e.bias) e.bias += n0;
    fn(P, pn, c.A + (size_t)m0 * P.K, e, c.out + (size_t)m0 * P.N + n0, P.N, std::min(kNR, P.N - n0));
  }
}

static void gemm_f32(const PackF32Gemm& P, const float* A, int M, const Epi& e, float* out) {
  GemmF32Ctx c{&P, A, M, &e, out, (M + MRF - 1) / MRF, 1, P.npanel, RowGroups::plan(M, P.K, P.N, MRF)};
  split(c.rg.rows ? c.rg.count(M) : c.nrb, P.npanel, c.ncc, c.ppc);
  run_tasks((c.rg.rows ? c.rg.count(M) : c.nrb) * c.ncc, gemm_f32_task, &c, (double)M * P.N * P.K);
}

// Channel planes a multiple of 4 KB apart (224x224 floats) share L1 sets: a pass that reads many
// channels at one pixel offset keeps only as many of them in L1 as the cache has ways (12).
static inline bool planes_alias(int HW) { return ((size_t)HW * sizeof(float)) % 4096 == 0; }

// ---------------------------------------------------------------- Conv: pixel maps
// For one panel of kPP output pixels and each kernel tap (ky, kx): where the tap's input values
// lie. With stride 1 a vector's lanes fall on at most a few input rows, each a contiguous run:
// one masked load per run (padding and the panel tail are masked lanes, fault-free). Other
// strides, or very narrow images, gather.
constexpr int kMaxSeg = 4;
struct Tap {
  M mask[kMaxSeg];
  int off[kMaxSeg];
  int nseg;  // -1: gather
  bool full;  // one run covering every lane: a plain load
  bool safe[kMaxSeg];  // the whole vector span lies inside the input plane: plain load + select
  bool s2;             // stride 2: lane l of run s reads off[s] + 2*l (two loads, even lanes)
};

struct PixMap {
  int khw;
  Tap* taps;       // [khw][NVC]
  int32_t* idx;    // [khw][kPP] gather offsets
  const Tap& tap(int t, int v) const { return taps[t * NVC + v]; }
  F load(const float* xc, const Tap& e, int t, int v) const {
    // Masked (fault-suppressing) loads are slow on Zen: use them only where the span could
    // leave the plane; elsewhere a plain load and a lane select.
    if (e.nseg == 0) return V::fzero();
    if (e.s2) {
      F r = V::fsel(e.mask[0], V::even2(xc + e.off[0]));
      for (int s = 1; s < e.nseg; s++) r = V::fmerge(r, e.mask[s], V::even2(xc + e.off[s]));
      return r;
    }
    if (e.full) return V::fload(xc + e.off[0]);
    if (e.nseg >= 1) {
      F r = e.safe[0] ? V::fsel(e.mask[0], V::fload(xc + e.off[0])) : V::floadm(xc + e.off[0], e.mask[0]);
      for (int s = 1; s < e.nseg; s++)
        r = e.safe[s] ? V::fmerge(r, e.mask[s], V::fload(xc + e.off[s])) : V::floadm_merge(r, xc + e.off[s], e.mask[s]);
      return r;
    }
    if (e.nseg == 0) return V::fzero();
    return V::gather(xc, V::iload(idx + t * kPP + v * L), e.mask[0]);
  }
  F load(const float* xc, int t, int v) const { return load(xc, tap(t, v), t, v); }
};

// A tap vector that plain loads can fetch whole: one run covering every lane, or one or two runs
// (stride 2: even lanes) that may read their whole span, whose lanes are selected. Then
// fn(ld, off), with ld(q) the vector for the channel plane at q - off (what PixMap::load gives,
// decided once for all channels), and true; otherwise false (PixMap::load per channel).
template <class Fn>
static inline bool plain_tap(const Tap& e, Fn&& fn) {
  const int off = e.off[0];
  if (e.full) {
    fn([](const float* q) { return V::fload(q); }, off);
    return true;
  }
  if (e.nseg < 1 || e.nseg > 2 || !e.safe[0] || (e.nseg == 2 && !e.safe[1])) return false;
  const M m0 = e.mask[0], m1 = e.mask[e.nseg - 1];
  const ptrdiff_t d1 = e.off[e.nseg - 1] - off;
  const bool two = e.nseg == 2;
  if (e.s2) {
    fn([=](const float* q) {
      F r = V::fsel(m0, V::even2(q));
      return two ? V::fmerge(r, m1, V::even2(q + d1)) : r;
    }, off);
  } else {
    fn([=](const float* q) {
      F r = V::fsel(m0, V::fload(q));
      return two ? V::fmerge(r, m1, V::fload(q + d1)) : r;
    }, off);
  }
  return true;
}

// Vector v of the panel starting at output pixel p0 covers lanes that fall into runs of one output
// row: fn(l0, n, oy, ox0) for lanes [l0, l0 + n) = row oy, columns ox0.. (pixels past OHW: none).
template <class Fn>
static inline void for_each_run(const ConvGeom& G, int p0, int OHW, int v, Fn fn) {
  for (int l = 0; l < L;) {
    int p = p0 + v * L + l;
    if (p >= OHW) break;
    int oy = p / G.OW, ox = p % G.OW, n = std::min(L - l, std::min(G.OW - ox, OHW - p));
    fn(l, n, oy, ox);
    l += n;
  }
}

// Bytes of a panel's map (taps, then gather offsets), and the map's view of them.
static size_t map_bytes(int khw) {
  return ((sizeof(Tap) * khw * NVC + 63) & ~size_t(63)) + sizeof(int32_t) * khw * kPP;
}
static PixMap map_at(int khw, void* mem) {
  PixMap mp;
  mp.khw = khw;
  mp.taps = (Tap*)mem;
  mp.idx = (int32_t*)((char*)mem + ((sizeof(Tap) * khw * NVC + 63) & ~size_t(63)));
  return mp;
}

static PixMap make_map_at(const ConvGeom& G, int p0, int OHW, void* mem) {
  PixMap mp = map_at(G.kh * G.kw, mem);
  // Output-row runs of each vector: lanes [l0, l1) share output row oy, starting at column ox0.
  struct Run { int l0, l1, oy, ox0; };
  Run runs[NVC][L + 1];
  int nrun[NVC];
  const int sw = G.sw;
  bool fast = sw == 1 || sw == 2;
  for (int v = 0; v < NVC; v++) {
    nrun[v] = 0;
    for_each_run(G, p0, OHW, v, [&](int l, int n, int oy, int ox) { runs[v][nrun[v]++] = {l, l + n, oy, ox}; });
    if (nrun[v] > kMaxSeg) fast = false;
  }
  for (int ky = 0, t = 0; ky < G.kh; ky++)
    for (int kx = 0; kx < G.kw; kx++, t++)
      for (int v = 0; v < NVC; v++) {
        Tap& e = mp.taps[t * NVC + v];
        if (fast) {
          // Stride 1: each run is one contiguous load (lanes outside the image masked off).
          // Stride 2: each run is two contiguous loads keeping the even lanes.
          e.nseg = 0;
          e.full = false;
          e.s2 = sw == 2;
          bool ok = true;
          for (int r = 0; r < nrun[v]; r++) {
            const Run& u = runs[v][r];
            int iy = u.oy * G.sh - G.pt + ky * G.dh;
            if (iy < 0 || iy >= G.H) continue;
            int ix0 = u.ox0 * sw - G.pl + kx * G.dw;  // input column of lane u.l0
            // lanes l in [la, lb) have 0 <= ix0 + sw*(l - l0) < W
            int la = u.l0 + (ix0 < 0 ? (-ix0 + sw - 1) / sw : 0);
            int lb = std::min(u.l1, u.l0 + (G.W - ix0 + sw - 1) / sw);
            if (la >= lb) continue;
            unsigned bits = (lb - la >= 32 ? ~0u : ((1u << (lb - la)) - 1)) << la;
            int off = iy * G.W + ix0 - sw * u.l0;
            e.off[e.nseg] = off;
            e.safe[e.nseg] = off >= 0 && off + sw * L <= G.H * G.W;
            if (sw == 2 && !e.safe[e.nseg]) ok = false;
            e.mask[e.nseg++] = V::bits(bits);
            if (sw == 1 && la == 0 && lb == L) e.full = true;
          }
          if (ok) continue;
        }
        e.s2 = false;
        unsigned all = 0;
        for (int l = 0; l < L; l++) {
          int ll = v * L + l, p = p0 + ll;
          bool ok = p < OHW;
          int idx = 0;
          if (ok) {
            int iy = (p / G.OW) * G.sh - G.pt + ky * G.dh, ix = (p % G.OW) * G.sw - G.pl + kx * G.dw;
            ok = iy >= 0 && iy < G.H && ix >= 0 && ix < G.W;
            idx = ok ? iy * G.W + ix : 0;
          }
          mp.idx[t * kPP + ll] = idx;
          if (ok) all |= 1u << l;
        }
        e.nseg = -1;
        e.full = false;
        e.s2 = false;
        e.mask[0] = V::bits(all);
      }
  return mp;
}

static PixMap make_map(const ConvGeom& G, int p0, int OHW, Scratch& s) {
  return make_map_at(G, p0, OHW, s.get(map_bytes(G.kh * G.kw) + 64));
}

// A fresh nonzero tag per conv call (taken under pool().call, as every conv entry holds it): the
// per-thread state a call builds (pixel maps, channel-max rows) carries it, so the next call
// starts clean.
static uint32_t call_tag() {
  static uint32_t n = 0;
  return ++n ? n : ++n;
}
// One thread's state for a call: renew() says whether it must be rebuilt (another call, key or
// buffer than it was built for) and takes the new ones.
struct ThreadState {
  uint32_t tag = 0;
  int key = -1;
  void* buf = nullptr;
  bool renew(uint32_t t, int k, void* b) {
    if (tag == t && key == k && buf == b) return false;
    tag = t; key = k; buf = b;
    return true;
  }
};

// Maps repeat down the image: two whole panels starting in the same column (p0 % OW), whose taps
// all read rows 1 .. H-2, see the same runs, lanes and load kinds, their input offsets apart by
// whole rows (on maps at least max(pads) + sw*L wide, every plain load stays inside the plane in
// both). So each thread keeps, per start column, the map of the first such panel of the call, and
// a later one takes it with `shift` to add to its plane pointers. The map was up to 40% of the
// pack on 3-channel images (many taps, little to pack per tap), ~10% on 64 channels.
static ThreadState g_map_cache[kMaxThreads];

struct MapPlan {
  uint32_t tag = 0;     // the call; 0: no cache (make_map every panel)
  int gcd = 1, nres = 0;  // start columns are multiples of gcd(kPP, OW): nres of them
  size_t slot = 0;      // bytes per start column: 64 (its row) + the map
};

static MapPlan plan_maps(const ConvGeom& G, int OHW) {
  MapPlan m;
  const int pr = std::max(0, (G.OW - 1) * G.sw + (G.kw - 1) * G.dw + 1 - G.W - G.pl);
  if ((G.sw != 1 && G.sw != 2) || G.W < std::max(G.pl, pr) + G.sw * L || OHW < 4 * kPP) return m;
  int a = kPP, b = G.OW;
  while (b) { int t = a % b; a = b; b = t; }
  m.gcd = a;
  m.nres = G.OW / a;
  m.slot = 64 + ((map_bytes(G.kh * G.kw) + 63) & ~size_t(63));
  if (m.slot * m.nres > (512u << 10)) return m;
  m.tag = call_tag();
  return m;
}

static PixMap panel_map(const MapPlan& m, const ConvGeom& G, int p0, int OHW, int th, ptrdiff_t& shift) {
  shift = 0;
  const int oy0 = p0 / G.OW, oy1 = (p0 + kPP - 1) / G.OW;
  if (!m.tag || p0 + kPP > OHW || oy0 * G.sh - G.pt < 1 || oy1 * G.sh - G.pt + (G.kh - 1) * G.dh > G.H - 2)
    return make_map(G, p0, OHW, scratch(th, 0));
  auto* base = (uint8_t*)scratch(th, 4).get(m.slot * m.nres + 64);
  if (g_map_cache[th].renew(m.tag, 0, base))
    for (int r = 0; r < m.nres; r++) *(int*)(base + r * m.slot) = -1;
  uint8_t* slot = base + (size_t)((p0 % G.OW) / m.gcd) * m.slot;
  int& row = *(int*)slot;
  if (row < 0) {
    row = oy0;
    return make_map_at(G, p0, OHW, slot + 64);
  }
  shift = (ptrdiff_t)(oy0 - row) * G.sh * G.W;
  return map_at(G.kh * G.kw, slot + 64);
}

// ---------------------------------------------------------------- Conv, int8
// Quantize one panel: for each activation window (whole patch or a block of it), per pixel lane:
// amax pass, then quantize and write 4 k-bytes per pixel lane: panel[k4][kPP][4]. sa[win][kPP].
static void q8_pack_panel(const PackQ8Conv& P, const PixMap& mp, const float* x, int HW, uint8_t* panel, float* sa) {
  const int K = P.Kg, khw = mp.khw, B = P.ablock ? P.ablock : K;
  for (int w = 0, k0 = 0; k0 < K; w++, k0 += B) {
    int k1 = std::min(K, k0 + B);
    F am[NVC];
    for (int v = 0; v < NVC; v++) am[v] = V::fzero();
    int c = k0 / khw, t = k0 % khw;
    for (int k = k0; k < k1; k++) {
      const float* xc = x + (size_t)c * HW;
      for (int v = 0; v < NVC; v++) am[v] = V::max(am[v], V::abs(mp.load(xc, t, v)));
      if (++t == khw) { t = 0; c++; }
    }
    F inv[NVC];
    for (int v = 0; v < NVC; v++) {
      inv[v] = V::inv127(am[v]);
      V::fstore(sa + w * kPP + v * L, am[v]);
    }
    // scale = amax / 127 as a true division, bit-identical to the reference.
    for (int l = 0; l < kPP; l++) sa[w * kPP + l] /= 127.f;
    c = k0 / khw; t = k0 % khw;
    for (int g = k0 / 4; g * 4 < k1; g++) {
      I q[4][NVC];
      for (int u = 0; u < 4; u++) {
        int k = g * 4 + u;
        if (k < k1) {
          const float* xc = x + (size_t)c * HW;
          for (int v = 0; v < NVC; v++) q[u][v] = V::cvtr(V::mul(mp.load(xc, t, v), inv[v]));
          if (++t == khw) { t = 0; c++; }
        } else {
          for (int v = 0; v < NVC; v++) q[u][v] = V::izero();
        }
      }
      uint8_t* dst = panel + (size_t)g * kPP * 4;
      for (int v = 0; v < NVC; v++) V::istore(dst + v * L * 4, V::pack4(q[0][v], q[1][v], q[2][v], q[3][v]));
    }
  }
}

// Tap-major panel (one window over the whole patch): amax per pixel from the channel-max plane
// (max over channels of |x|, computed once per image), then per tap 4 channels at a time.
static void q8_pack_panel_tm(const PackQ8Conv& P, const PixMap& mp, const float* x, int HW, const float* cmax,
                             uint8_t* panel, float* sa) {
  const int khw = mp.khw, Cg = P.Kg / khw, C4 = P.Cg4 / 4;
  F inv[NVC];
  for (int v = 0; v < NVC; v++) {
    F am = V::fzero();
    for (int t = 0; t < khw; t++) am = V::max(am, mp.load(cmax, t, v));
    inv[v] = V::inv127(am);
    V::fstore(sa + v * L, am);
  }
  for (int l = 0; l < kPP; l++) sa[l] /= 127.f;
  // Blocks of channels outermost, then per tap and vector the load kind is decided once for the
  // block's channel groups. Measured over VGG's, ResNet's and SSD's 3x3 shapes (pack phase, 4-128
  // channels per block): 64 on planes of 16 KB and less (56x56 and below: fewer decisions per
  // packed byte), 32 on larger planes (64 loses there, its rows no longer stay in cache across
  // the taps), 8 where the planes alias in the L1 sets (224x224).
  const int CB4 = planes_alias(HW) ? 2 : HW * sizeof(float) <= 16384 ? 16 : 8;
  const int C4full = Cg / 4;  // groups with 4 real channels
  for (int cb0 = 0; cb0 < C4; cb0 += CB4) {
    const int cb1 = std::min(C4, cb0 + CB4), cf1 = std::min(cb1, C4full);
    for (int t = 0; t < khw; t++) {
      for (int v = 0; v < NVC; v++) {
        const Tap& e = mp.tap(t, v);
        const F iv = inv[v];
        uint8_t* dst = panel + (size_t)t * C4 * kPP * 4 + v * L * 4;
        int c4 = cb0;
        // Images larger than L2 stream from memory, one line sequence per channel and tap row:
        // more than the hardware prefetcher follows. A full stride-1 vector fetches the panel after
        // next (its input shifts by kPP pixels per panel; elsewhere a prefetch is only wasted).
        auto groups = [&](auto ld, int off, auto prefetch) {
          const float* p = x + off + (size_t)cb0 * 4 * HW;
          for (; c4 < cf1; c4++, p += 4 * (size_t)HW) {
            if constexpr (decltype(prefetch)::value)
              for (int u = 0; u < 4; u++) __builtin_prefetch(p + u * (size_t)HW + 2 * kPP, 0, 3);
            I q0 = V::cvtr(V::mul(ld(p), iv));
            I q1 = V::cvtr(V::mul(ld(p + HW), iv));
            I q2 = V::cvtr(V::mul(ld(p + 2 * (size_t)HW), iv));
            I q3 = V::cvtr(V::mul(ld(p + 3 * (size_t)HW), iv));
            V::istore(dst + (size_t)c4 * kPP * 4, V::pack4(q0, q1, q2, q3));
          }
        };
        plain_tap(e, [&](auto ld, int off) {
          if (e.full) groups(ld, off, std::true_type{});
          else groups(ld, off, std::false_type{});
        });
        for (; c4 < cb1; c4++) {
          const float* xc = x + (size_t)c4 * 4 * HW;
          const int nc = std::min(4, Cg - c4 * 4);
          I q[4];
          for (int u = 0; u < 4; u++) q[u] = u < nc ? V::cvtr(V::mul(mp.load(xc + (size_t)u * HW, e, t, v), iv)) : V::izero();
          V::istore(dst + (size_t)c4 * kPP * 4, V::pack4(q[0], q[1], q[2], q[3]));
        }
      }
    }
  }
}

// One combined block (a whole-patch window and channel windows: P.ncb == 1), the common case: the
// sums are parked in L1 for the store, so only the 24 accumulators live through the loop (the
// general tile below keeps per-block partial results, which clang spills).
template <int MI, int NV>
__attribute__((noinline)) static void q8_conv_tile1(const PackQ8Conv& P, const int8_t* wblk, const int32_t* init, const float* ws,
                         int ci0, int v0, const uint8_t* panel, const float* sa, const float* bias,
                         const Epi& e, float* out, size_t ldo, int nch, int npix) {
  I acc[MI][NV];
  for (int i = 0; i < MI; i++) {
    I iv = V::ibcast(init + ci0 + i);
    for (int j = 0; j < NV; j++) acc[i][j] = iv;
  }
  prefetch_res<MI, NV>(e, out + (size_t)ci0 * ldo + v0 * L, ldo);
  const int8_t* w = wblk + ci0 * 4;
  const uint8_t* a = panel + v0 * L * 4;
  for (int k4 = 0; k4 < P.K4; k4++, w += kCB * 4, a += kPP * 4) {
    I av[NV];
    for (int j = 0; j < NV; j++) av[j] = V::iload(a + j * L * 4);
    for (int i = 0; i < MI; i++) {
      I wv = V::ibcast(w + i * 4);
      for (int j = 0; j < NV; j++) acc[i][j] = V::dot(acc[i][j], av[j], wv);
    }
  }
  alignas(64) int32_t sums[MI][NV * L];
  for (int i = 0; i < MI; i++)
    for (int j = 0; j < NV; j++) V::istore(&sums[i][j * L], acc[i][j]);
  if (ci0 + MI <= nch && (v0 + NV) * L <= npix) {
    // Whole tile: the same steps without the per-vector tests (small-K layers spend most of their
    // time here: 16->96 1x1 has 4 k-steps per tile).
    F s[NV];
    for (int j = 0; j < NV; j++) s[j] = V::fload(sa + (v0 + j) * L);
    auto store = [&](auto res) {
      for (int i = 0; i < MI; i++) {
        const F b = V::fset(bias ? bias[ci0 + i] : 0.f), sw = V::fset(ws[ci0 + i]);
        float* o = out + (size_t)(ci0 + i) * ldo + v0 * L;
        for (int j = 0; j < NV; j++) {
          F v = V::add(V::mul(V::cvt(V::iload(&sums[i][j * L])), V::mul(s[j], sw)), b);
          if constexpr (decltype(res)::value) v = V::add(v, V::fload(e.res_at(o + j * L)));
          V::fstore(o + j * L, clampv(v, e));
        }
      }
    };
    if (e.res) store(std::true_type{});
    else store(std::false_type{});
    return;
  }
  for (int i = 0; i < MI && ci0 + i < nch; i++) {
    const F b = V::fset(bias ? bias[ci0 + i] : 0.f), sw = V::fset(ws[ci0 + i]);
    for (int j = 0; j < NV; j++) {
      int n = npix - (v0 + j) * L;
      if (n <= 0) break;
      // the same operations, in the same order, as the general tile: acc * (sa * ws) + bias
      float* o = out + (size_t)(ci0 + i) * ldo + (v0 + j) * L;
      F v = finish(V::add(V::mul(V::cvt(V::iload(&sums[i][j * L])), V::mul(V::fload(sa + (v0 + j) * L), sw)), b), e, o, n);
      if (n >= L) V::fstore(o, v);
      else V::fstorem(o, v, V::first(n));
    }
  }
}

template <int MI, int NV>
__attribute__((noinline)) static void q8_conv_tile(const PackQ8Conv& P, const int8_t* wblk, const int32_t* init, const float* ws,
                         int ci0, int v0, const uint8_t* panel, const float* sa, const float* bias,
                         const Epi& e, float* out, size_t ldo, int nch, int npix) {
  const int cb4 = (P.cblock + 3) / 4;
  I acc[MI][NV];
  F f[MI][NV];
  prefetch_res<MI, NV>(e, out + (size_t)ci0 * ldo + v0 * L, ldo);
  for (int cb = 0; cb < P.ncb; cb++) {
    int k40 = cb * cb4, k41 = P.ncb == 1 ? P.K4 : std::min(P.K4, k40 + cb4);
    for (int i = 0; i < MI; i++) {
      I iv = V::ibcast(init + cb * kCB + ci0 + i);
      for (int j = 0; j < NV; j++) acc[i][j] = iv;
    }
    const int8_t* w = wblk + (size_t)k40 * kCB * 4 + ci0 * 4;
    const uint8_t* a = panel + (size_t)k40 * kPP * 4 + v0 * L * 4;
    for (int k4 = k40; k4 < k41; k4++, w += kCB * 4, a += kPP * 4) {
      I av[NV];
      for (int j = 0; j < NV; j++) av[j] = V::iload(a + j * L * 4);
      for (int i = 0; i < MI; i++) {
        I wv = V::ibcast(w + i * 4);
        for (int j = 0; j < NV; j++) acc[i][j] = V::dot(acc[i][j], av[j], wv);
      }
    }
    int ab = P.ablock ? cb * P.cblock / P.ablock : 0, wb = P.wblock ? cb * P.cblock / P.wblock : 0;
    for (int j = 0; j < NV; j++) {
      F s = V::fload(sa + ab * kPP + (v0 + j) * L);
      for (int i = 0; i < MI; i++) {
        F v = V::mul(V::cvt(acc[i][j]), V::mul(s, V::fset(ws[wb * kCB + ci0 + i])));
        f[i][j] = cb == 0 ? v : V::add(f[i][j], v);
      }
    }
  }
  for (int i = 0; i < MI && ci0 + i < nch; i++) {
    F b = V::fset(bias ? bias[ci0 + i] : 0.f);
    for (int j = 0; j < NV; j++) {
      int n = npix - (v0 + j) * L;
      if (n <= 0) break;
      float* o = out + (size_t)(ci0 + i) * ldo + (v0 + j) * L;
      F v = finish(V::add(f[i][j], b), e, o, n);
      if (n >= L) V::fstore(o, v);
      else V::fstorem(o, v, V::first(n));
    }
  }
}

// The output-channel blocks [blk0, blk1) of group g over one packed panel of npix pixels; `out`
// points at pixel p0 of output channel 0 of this image, ldo is the channel plane size.
static void q8_conv_blocks(const PackQ8Conv& P, int g, int blk0, int blk1, const uint8_t* panel, const float* sa,
                           const Epi& e, float* out, size_t ldo, int npix) {
  // the next panel's (a thread's next task is usually that one)
  prefetch_res_rows(e, out + ((size_t)g * P.Mg + blk0 * kCB) * ldo + kPP, ldo, std::min(P.Mg, blk1 * kCB) - blk0 * kCB, kPP);
  for (int blk = blk0; blk < blk1; blk++) {
    size_t bi = (size_t)g * P.nblk + blk;
    const int8_t* w = P.w.data() + bi * P.K4 * kCB * 4;
    const int32_t* init = (V::kU8 ? P.init : P.zinit).data() + bi * P.ncb * kCB;
    const float* ws = P.wscale.data() + bi * P.nwb * kCB;
    int n0 = g * P.Mg + blk * kCB, nch = std::min(kCB, P.Mg - blk * kCB);
    const float* bias = e.bias ? e.bias + n0 : nullptr;
    float* o = out + (size_t)n0 * ldo;
    for (int ci = 0; ci < kCB && ci < nch; ci += CMI)
      for (int v0 = 0; v0 < NVC && v0 * L < npix; v0 += CNV) {
        // A partial last panel (e.g. 7x7 = 49 pixels = 48 + 1) computes only the vectors it has.
        int nv = std::min(CNV, (npix - v0 * L + L - 1) / L);
        if (P.ncb == 1) {
          if (nv >= CNV) q8_conv_tile1<CMI, CNV>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
          else if (nv == 2) q8_conv_tile1<CMI, 2>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
          else q8_conv_tile1<CMI, 1>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
        } else if (nv >= CNV) q8_conv_tile<CMI, CNV>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
        else if (nv == 2) q8_conv_tile<CMI, 2>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
        else q8_conv_tile<CMI, 1>(P, w, init, ws, ci, v0, panel, sa, bias, e, o, ldo, nch, npix);
      }
  }
}

struct ConvCtx {
  const void* P; const ConvGeom* G; const float* X; const Epi* e; float* out;
  int group, npanel, OHW, M;
  const float* cmax;  // [batch][group][H*W] channel max of |x| (tap-major int8 path), or null
  int ppg;     // pixel panels per task (fp32 conv: weight chunks reused across them)
  // int8 conv with few pixel panels: stage 1 packs each (image, group, panel) of the npt into the
  // shared panels, stage 2 runs nchunk chunks of output-channel blocks over each; stage 0 does both
  // per task in the thread's own scratch.
  int stage = 0, nchunk = 1, npt = 0;
  uint32_t lazy = 0;  // tap-major, cmax null: each thread fills the cmax rows it needs (cmax_rows; the call's tag)
  MapPlan maps{};     // per-thread pixel maps by panel start column (panel_map)
  uint8_t* spanel = nullptr;
  float* ssa = nullptr;
  size_t pbytes = 0, sfl = 0;  // int8 conv: bytes of one packed panel, floats of its scales (aligned)
};

// Channel max of |x| per pixel over n consecutive pixels of a (image, group): x and o at the first
// pixel of channel 0 and of the plane. Each channel contributes one sequential run (a few
// prefetchable streams, not one per channel).
constexpr int kCmaxPix = 1024;
static void cmax_run(const float* x, int Cg, int HW, int n, float* o) {
  alignas(64) float am[kCmaxPix];
  for (int i0 = 0; i0 < n; i0 += kCmaxPix, x += kCmaxPix, o += kCmaxPix) {
    const int m = std::min(kCmaxPix, n - i0);
    for (int ch = 0; ch < Cg; ch++) {
      const float* xc = x + (size_t)ch * HW;
      int i = 0;
      if (ch == 0)
        for (; i + L <= m; i += L) V::fstore(am + i, V::abs(V::fload(xc + i)));
      else
        for (; i + L <= m; i += L) V::fstore(am + i, V::max(V::fload(am + i), V::abs(V::fload(xc + i))));
      if (i < m) {  // masked loads are slow on Zen: only for the tail
        F a = V::abs(V::floadm(xc + i, V::first(m - i)));
        V::fstore(am + i, ch == 0 ? a : V::max(V::fload(am + i), a));
      }
    }
    for (int i = 0; i < m; i += L) V::fstorem(o + i, V::fload(am + i), V::first(std::min(L, m - i)));
  }
}

// One task per block of kCmaxPix pixels of one (image, group), into the whole cmax plane.
static void cmax_task(void* vc, int task, int) {
  auto& c = *(ConvCtx*)vc;
  const ConvGeom& G = *c.G;
  int HW = G.H * G.W, Cg = G.C / c.group, nb = (HW + kCmaxPix - 1) / kCmaxPix;
  int bg = task / nb, i0 = (task % nb) * kCmaxPix;
  cmax_run(c.X + (size_t)bg * Cg * HW + i0, Cg, HW, std::min(kCmaxPix, HW - i0), (float*)c.cmax + (size_t)bg * HW + i0);
}

// Large maps (10,000+ pixels, over 1 MB per image and group): the separate channel-max pass reads
// the input from memory once more before the pack (without it, timing only: 64->64 on 224x224 -11%,
// on 300x300 -13%). There each thread keeps its own cmax plane and fills the input rows its panels'
// taps touch just before the pack reads them; rows are tagged with the call and (image, group).
// In-process A/B, 1 thread: 224x224 and 300x300 -5%, 150x150 -2%, 112x112 -1 to -4%; 2 threads
// within 1%. On 56x56 and below it gained nothing (rows too short to stream), so those keep the pass.
static ThreadState g_cmax_rows[kMaxThreads];

static const float* cmax_rows(const ConvCtx& c, int th, int b, int g, const float* x, int p0, int npix) {
  const ConvGeom& G = *c.G;
  const int HW = G.H * G.W, Cg = G.C / c.group, bg = b * c.group + g;
  const size_t vb = ((size_t)G.H + 63) & ~size_t(63);
  auto* base = (uint8_t*)scratch(th, 3).get(vb + sizeof(float) * ((size_t)HW + 64));
  uint8_t* valid = base;
  float* plane = (float*)(base + vb);
  if (g_cmax_rows[th].renew(c.lazy, bg, base)) std::memset(valid, 0, G.H);
  const int oy0 = p0 / G.OW, oy1 = (p0 + npix - 1) / G.OW;
  // runs of consecutive rows still missing, each in one pass
  int r0 = -1, r1 = -1;
  auto flush = [&] {
    if (r0 >= 0) cmax_run(x + (size_t)r0 * G.W, Cg, HW, (r1 - r0 + 1) * G.W, plane + (size_t)r0 * G.W);
    r0 = -1;
  };
  const int lo = std::max(0, oy0 * G.sh - G.pt), hi = std::min(G.H - 1, oy1 * G.sh - G.pt + (G.kh - 1) * G.dh);
  for (int r = lo; r <= hi; r++) {
    bool need = false;
    if (!valid[r])
      for (int ky = 0; ky < G.kh && !need; ky++) {
        const int d = r + G.pt - ky * G.dh;  // = oy * sh for an output row oy in [oy0, oy1]
        need = d >= oy0 * G.sh && d <= oy1 * G.sh && d % G.sh == 0;
      }
    if (need) {
      valid[r] = 1;
      if (r0 < 0) r0 = r;
      r1 = r;
    } else {
      flush();
    }
  }
  flush();
  return plane;
}

static void conv_q8_task(void* vc, int task, int th) {
  auto& c = *(ConvCtx*)vc;
  const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
  const ConvGeom& G = *c.G;
  int blk0 = 0, blk1 = P.nblk;
  if (c.stage == 2) {  // chunk-major, so each thread's home range holds whole chunks (of every panel)
    const int chunk = task / c.npt;
    blk0 = chunk * P.nblk / c.nchunk;
    blk1 = (chunk + 1) * P.nblk / c.nchunk;
    task %= c.npt;
  }
  int pp = task % c.npanel, g = (task / c.npanel) % c.group, b = task / (c.npanel * c.group);
  int p0 = pp * kPP, npix = std::min(kPP, c.OHW - p0);
  int Cg = G.C / c.group, HW = G.H * G.W;
  const size_t pbytes = c.pbytes, sfl = c.sfl;
  auto* panel = c.stage ? c.spanel + task * pbytes : (uint8_t*)scratch(th, 1).get(pbytes + 64);
  auto* sa = c.stage ? c.ssa + task * sfl : (float*)scratch(th, 2).get(sizeof(float) * sfl + 64);
  const float* x = c.X + ((size_t)b * G.C + (size_t)g * Cg) * HW;
  const int phase = c.e->phase;
  if (phase != 2 && c.stage != 2) {
    ptrdiff_t sh;  // the map's offsets are for planes at x + sh, cmax + sh
    PixMap mp = panel_map(c.maps, G, p0, c.OHW, th, sh);
    if (c.lazy) q8_pack_panel_tm(P, mp, x + sh, HW, cmax_rows(c, th, b, g, x, p0, npix) + sh, panel, sa);
    else if (c.cmax) q8_pack_panel_tm(P, mp, x + sh, HW, c.cmax + ((size_t)b * c.group + g) * HW + sh, panel, sa);
    else q8_pack_panel(P, mp, x + sh, HW, panel, sa);
  }
  if (phase != 1 && c.stage != 1) q8_conv_blocks(P, g, blk0, blk1, panel, sa, *c.e, c.out + (size_t)b * c.M * c.OHW + p0, c.OHW, npix);
}

#include "kern_dw.h"

#include "kern_tap.h"

static void conv_q8(const PackQ8Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  int OHW = G.OH * G.OW;
  const size_t nout = (size_t)batch * P.M * OHW;
  if (P.acttap) { with_residual(e, out, nout, [&](const Epi& p) { conv_q8_tap(P, G, batch, X, p, out); }); return; }
  ConvCtx c{&P, &G, X, &e, out, P.group, (OHW + kPP - 1) / kPP, OHW, P.M, nullptr, 1};
  bool dw = P.Mg == 1 && G.C == P.group;
  if (dw) {
    with_residual(e, out, nout, [&](const Epi& p) { dw_conv(&P, true, G, batch, X, p, out); });
    return;
  }
  if (P.tapmajor && G.H * G.W >= 10000 && (size_t)(G.C / P.group) * G.H * G.W * sizeof(float) > (1u << 20) && e.phase == 0) {
    c.lazy = call_tag();
  } else if (P.tapmajor) {
    // one plane per (image, group) in thread 0's slot 3, which the tasks leave alone here
    c.cmax = (const float*)scratch(0, 3).get(sizeof(float) * ((size_t)batch * P.group * G.H * G.W + 64));
    if (e.phase != 2) run_tasks(batch * P.group * ((G.H * G.W + kCmaxPix - 1) / kCmaxPix), cmax_task, &c, (double)batch * G.C * G.H * G.W * 4);
  }
  c.npt = batch * P.group * c.npanel;
  c.maps = plan_maps(G, OHW);
  const int nab = P.ablock ? (P.Kg + P.ablock - 1) / P.ablock : 1;
  c.pbytes = ((size_t)P.K4 * kPP * 4 + 63) & ~size_t(63);
  c.sfl = ((size_t)nab * kPP + 15) & ~size_t(15);
  const int T = pool_threads();
  if (T > 1 && c.npt < 2 * T && P.Mg >= 256 && e.phase == 0) {
    // Fewer pixel panels than two per thread (7x7 maps: 48 + 1 pixels) leave threads idle: pack
    // the panels once into shared memory, then split each panel's output channels over the threads.
    // With fewer than 256 channels the second region costs more than it balances (960->160 on
    // 7x7 measured 35 -> 45 us at 2 threads; 160->960 38 -> 27 us, 512->2048 140 -> 107 us).
    c.nchunk = std::min(P.nblk, (4 * T + c.npt - 1) / c.npt);
    static Scratch shared;  // guarded by pool().call, as every conv entry holds it
    c.spanel = (uint8_t*)shared.get((c.pbytes + sizeof(float) * c.sfl) * c.npt + 64);
    c.ssa = (float*)(c.spanel + c.pbytes * c.npt);
    c.stage = 1;
    run_tasks(c.npt, conv_q8_task, &c, (double)batch * OHW * P.Kg * 16);
    c.stage = 2;
    run_tasks(c.npt * c.nchunk, conv_q8_task, &c, (double)batch * OHW * P.M * P.Kg);
    return;
  }
  run_tasks(c.npt, conv_q8_task, &c, (double)batch * OHW * P.M * P.Kg);
}

// ---------------------------------------------------------------- Conv, fp32
// K chunk: between chunks each tile reloads and restores its partial sums in the output, which cost
// more than streaming a long panel from L2 (measured: 128 < 256 < 512 < 1024 < 2560 <= 8192 for
// VGG's and ResNet's convs, 1 and 2 threads), so chunking only bounds the scratch for huge K.
constexpr int KC = 8192;

template <int MI, int NV>
__attribute__((noinline)) static void f32_conv_tile(const float* w /*[k][kCB] from chunk start*/, int kc, int ci0, int v0, const float* panel,
                          bool first, bool last, const float* bias, const Epi& e, float* out, size_t ldo, int nch, int npix) {
  const bool whole = ci0 + MI <= nch && (v0 + NV) * L <= npix;
  F acc[MI][NV];
  for (int i = 0; i < MI; i++)
    for (int j = 0; j < NV; j++) {
      int n = npix - (v0 + j) * L;
      if (first || n <= 0 || ci0 + i >= nch) acc[i][j] = V::fzero();
      else {
        const float* o = out + (size_t)(ci0 + i) * ldo + (v0 + j) * L;
        acc[i][j] = n >= L ? V::fload(o) : V::floadm(o, V::first(n));
      }
    }
  if (last) prefetch_res<MI, NV>(e, out + (size_t)ci0 * ldo + v0 * L, ldo);
  const float* a = panel + v0 * L;
  w += ci0;
  for (int k = 0; k < kc; k++, a += kPP, w += kCB) {
    F av[NV];
    for (int j = 0; j < NV; j++) av[j] = V::fload(a + j * L);
    for (int i = 0; i < MI; i++) {
      F wv = V::fset(w[i]);
      for (int j = 0; j < NV; j++) acc[i][j] = V::fma(wv, av[j], acc[i][j]);
    }
  }
  alignas(64) float sums[MI][NV * L];
  for (int i = 0; i < MI; i++)
    for (int j = 0; j < NV; j++) V::fstore(&sums[i][j * L], acc[i][j]);
  if (whole && last) {  // the same steps without the per-vector tests (as q8_conv_tile1)
    auto store = [&](auto res) {
      for (int i = 0; i < MI; i++) {
        const F b = V::fset(bias ? bias[ci0 + i] : 0.f);
        float* o = out + (size_t)(ci0 + i) * ldo + v0 * L;
        for (int j = 0; j < NV; j++) {
          F v = V::add(V::fload(&sums[i][j * L]), b);
          if constexpr (decltype(res)::value) v = V::add(v, V::fload(e.res_at(o + j * L)));
          V::fstore(o + j * L, clampv(v, e));
        }
      }
    };
    if (e.res) store(std::true_type{});
    else store(std::false_type{});
    return;
  }
  for (int i = 0; i < MI && ci0 + i < nch; i++) {
    F b = V::fset(bias ? bias[ci0 + i] : 0.f);
    for (int j = 0; j < NV; j++) {
      int n = npix - (v0 + j) * L;
      if (n <= 0) break;
      F v = V::fload(&sums[i][j * L]);
      float* o = out + (size_t)(ci0 + i) * ldo + (v0 + j) * L;
      if (last) v = finish(V::add(v, b), e, o, n);
      if (n >= L) V::fstore(o, v);
      else V::fstorem(o, v, V::first(n));
    }
  }
}

static void conv_f32_task(void* vc, int task, int th) {
  auto& c = *(ConvCtx*)vc;
  const PackF32Conv& P = *(const PackF32Conv*)c.P;
  const ConvGeom& G = *c.G;
  const int blk0 = 0, blk1 = P.nblk;
  const int ngrp = (c.npanel + c.ppg - 1) / c.ppg;
  int pg = task % ngrp, g = (task / ngrp) % c.group, b = task / (ngrp * c.group);
  int pp0 = pg * c.ppg, np = std::min(c.ppg, c.npanel - pp0);
  int Cg = G.C / c.group, HW = G.H * G.W, K = P.Kg, khw = G.kh * G.kw;
  auto* panels = (float*)scratch(th, 1).get(sizeof(float) * KC * kPP * np + 64);
  const float* x = c.X + ((size_t)b * G.C + (size_t)g * Cg) * HW;
  for (int k0 = 0; k0 < K; k0 += KC) {
    int kc = std::min(KC, K - k0);
    // im2col of this K chunk for each panel of the group; K is tap-major (k = tap*Cg + c), so a
    // run of channels shares one pixel-map entry.
    for (int q = 0; q < np; q++) {
      int p0 = (pp0 + q) * kPP;
      ptrdiff_t sh;  // the map's offsets are for planes at x + sh
      PixMap mp = panel_map(c.maps, G, p0, c.OHW, th, sh);
      const float* xs = x + sh;
      float* panel = panels + (size_t)q * KC * kPP;
      if (P.tapmajor) {
        // Where channel planes alias in the L1 sets, the chunk's taps go in blocks of 16 channels
        // (outer), so the lines a block shares across neighbouring taps stay in L1; elsewhere
        // one block of all channels (measured best there).
        const int imch = planes_alias(HW) ? 16 : Cg;
        for (int c0 = 0; c0 < Cg; c0 += imch)
          for (int t = k0 / Cg; t * Cg < k0 + kc; t++) {
            int ca = std::max(c0, k0 - t * Cg), cb = std::min({c0 + imch, Cg, k0 + kc - t * Cg});
            if (ca >= cb) continue;
            float* d0 = panel + (size_t)(t * Cg + ca - k0) * kPP;
            for (int v = 0; v < NVC; v++) {
              const Tap& e = mp.tap(t, v);
              float* dst = d0 + v * L;
              const float* src = xs + (size_t)ca * HW;
              const bool plain = plain_tap(e, [&](auto ld, int off) {
                for (int r = 0; r < cb - ca; r++) V::fstore(dst + (size_t)r * kPP, ld(src + off + (size_t)r * HW));
              });
              if (!plain)
                for (int r = 0; r < cb - ca; r++) V::fstore(dst + (size_t)r * kPP, mp.load(src + (size_t)r * HW, e, t, v));
            }
          }
      } else {
        int ch = k0 / khw, t = k0 % khw;
        for (int k = 0; k < kc; k++) {
          for (int v = 0; v < NVC; v++) V::fstore(panel + (size_t)k * kPP + v * L, mp.load(xs + (size_t)ch * HW, t, v));
          if (++t == khw) { t = 0; ch++; }
        }
      }
    }
    for (int blk = blk0; blk < blk1; blk++) {
      const float* w = P.w.data() + (((size_t)g * P.nblk + blk) * K + k0) * kCB;
      int n0 = g * P.Mg + blk * kCB, nch = std::min(kCB, P.Mg - blk * kCB);
      const float* bias = c.e->bias ? c.e->bias + n0 : nullptr;
      for (int q = 0; q < np; q++) {  // the weight chunk (KC x 8) is reused from L1 across the panels
        int p0 = (pp0 + q) * kPP, npix = std::min(kPP, c.OHW - p0);
        float* o = c.out + ((size_t)b * c.M + n0) * c.OHW + p0;
        const float* panel = panels + (size_t)q * KC * kPP;
        for (int ci = 0; ci < kCB && ci < nch; ci += CMI)
          for (int v0 = 0; v0 < NVC && v0 * L < npix; v0 += CNV) {
            int nv = std::min(CNV, (npix - v0 * L + L - 1) / L);  // partial last panel: only its vectors
            if (nv >= CNV) f32_conv_tile<CMI, CNV>(w, kc, ci, v0, panel, k0 == 0, k0 + kc >= K, bias, *c.e, o, c.OHW, nch, npix);
            else if (nv == 2) f32_conv_tile<CMI, 2>(w, kc, ci, v0, panel, k0 == 0, k0 + kc >= K, bias, *c.e, o, c.OHW, nch, npix);
            else f32_conv_tile<CMI, 1>(w, kc, ci, v0, panel, k0 == 0, k0 + kc >= K, bias, *c.e, o, c.OHW, nch, npix);
          }
      }
    }
  }
}

static void conv_f32(const PackF32Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  int OHW = G.OH * G.OW;
  ConvCtx c{&P, &G, X, &e, out, P.group, (OHW + kPP - 1) / kPP, OHW, P.M, nullptr, 1};
  bool dw = P.Mg == 1 && G.C == P.group;
  if (dw) {
    with_residual(e, out, (size_t)batch * P.M * OHW, [&](const Epi& p) { dw_conv(&P, false, G, batch, X, p, out); });
  }
  else if (e.res == out && P.Kg > KC) {
    // in place over K chunks: the output holds partial sums between chunks, so the residual moves out
    std::vector<float> r(e.res, e.res + (size_t)batch * P.M * OHW);
    Epi c2 = e;
    c2.res = r.data(); c2.out0 = out;
    conv_f32(P, G, batch, X, c2, out);
  } else {
    // Up to 4 panels per task (each weight block then serves them all) while every thread still gets
    // several tasks and the task's panels stay within half of L2. A panel holds K x kPP floats, 442 KB
    // on 256-channel 3x3 convs, where four spilled out of L2. In-process A/B against 4 panels on
    // 128- to 512-channel 3x3 convs: 1 thread -2 to -6%; 2 threads -6% (256 on 56x56) to +1%.
    int tasks = batch * P.group * c.npanel;
    c.maps = plan_maps(G, OHW);
    const size_t pbytes = sizeof(float) * (size_t)std::min(P.Kg, KC) * kPP;
    const int fit = (int)std::max<size_t>(1, (512u << 10) / pbytes);
    c.ppg = std::max(1, std::min({4, fit, pool_threads() == 1 ? tasks : tasks / (4 * pool_threads())}));
    int ngrp = (c.npanel + c.ppg - 1) / c.ppg;
    run_tasks(batch * P.group * ngrp, conv_f32_task, &c, (double)batch * OHW * P.M * P.Kg);
  }
}

// Peak probes: 24 independent accumulator chains of the int8 dot (or fp32 FMA), no memory traffic.
// Returns the number of operations done (2 per multiply-add) so the caller can time them.
static double peak_i8(long n) {
  I acc[24];
  for (int i = 0; i < 24; i++) acc[i] = V::izero();
  I a = V::ibcast("\x01\x02\x03\x04"), w = V::ibcast("\x05\xfa\x07\x08");
  for (long it = 0; it < n; it++) {
    __asm__ volatile("" : "+x"(a), "+x"(w));
    for (int i = 0; i < 24; i++) acc[i] = V::dot(acc[i], a, w);
  }
  I s = acc[0];
  for (int i = 1; i < 24; i++) s = V::dot(s, acc[i], w);
  alignas(64) int32_t tmp[L];
  V::istore(tmp, s);
  __asm__ volatile("" : : "r"(tmp[0]) : "memory");
  return (double)n * 24 * L * 4 * 2;
}

static double peak_f32(long n) {
  F acc[24];
  for (int i = 0; i < 24; i++) acc[i] = V::fzero();
  F a = V::fset(1.0001f), w = V::fset(0.9999f);
  for (long it = 0; it < n; it++) {
    __asm__ volatile("" : "+x"(a), "+x"(w));
    for (int i = 0; i < 24; i++) acc[i] = V::fma(a, w, acc[i]);
  }
  F s = acc[0];
  for (int i = 1; i < 24; i++) s = V::add(s, acc[i]);
  alignas(64) float tmp[L];
  V::fstore(tmp, s);
  __asm__ volatile("" : : "r"(tmp[0]) : "memory");
  return (double)n * 24 * L * 2;
}

// ---------------------------------------------------------------- MaxPool, element-wise (fp32)
// max keeping NaN: vmaxps(v, m) is "v > m ? v : m", which keeps a NaN m and the earlier of equal
// values (as the reference's strict >); a NaN v is merged in explicitly.
static inline F nmax(F m, F v) { return V::fmerge(V::max(v, m), V::isnan(v), v); }

struct PoolCtx { const ConvGeom* G; const float* X; float* out; int len; };

// 2x2 windows, stride 2, no padding, every window inside the input (VGG's pools): each output row
// reads its two input rows once; even/odd lanes give the window's columns, combined in the
// reference's order (row by row, left to right).
static void maxpool2_plane(const ConvGeom& G, const float* x, float* out) {
  const int W = G.W, OH = G.OH, OW = G.OW;
  for (int oy = 0; oy < OH; oy++) {
    const float* r0 = x + (size_t)(2 * oy) * W;
    const float* r1 = r0 + W;
    float* o = out + (size_t)oy * OW;
    for (int ox = 0; ox < OW; ox += L) {
      int c0 = 2 * ox, n = std::min(L, OW - ox);
      F a0, a1, b0, b1;
      if (c0 + 2 * L <= W) {
        a0 = V::fload(r0 + c0); a1 = V::fload(r0 + c0 + L);
        b0 = V::fload(r1 + c0); b1 = V::fload(r1 + c0 + L);
      } else {  // the row's tail: lanes past the input are never kept (n outputs need 2n values)
        M m0 = V::first(std::min(L, W - c0)), m1 = V::first(std::max(0, std::min(L, W - c0 - L)));
        a0 = V::floadm(r0 + c0, m0); a1 = V::floadm(r0 + c0 + L, m1);
        b0 = V::floadm(r1 + c0, m0); b1 = V::floadm(r1 + c0 + L, m1);
      }
      F m = nmax(nmax(nmax(dw_even(a0, a1), dw_odd(a0, a1)), dw_even(b0, b1)), dw_odd(b0, b1));
      if (n >= L) V::fstore(o + ox, m);
      else V::fstorem(o + ox, m, V::first(n));
    }
  }
}

// One plane: per output row, the window's input rows are reduced into a row buffer padded with
// -inf (so padded taps never win), then each output column takes the max of its kw buffer values.
static void maxpool_task(void* vc, int p, int th) {
  auto& c = *(PoolCtx*)vc;
  const ConvGeom& G = *c.G;
  const int H = G.H, W = G.W, OH = G.OH, OW = G.OW, kh = G.kh, kw = G.kw, sh = G.sh, sw = G.sw, pl = G.pl;
  if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && G.pt == 0 && pl == 0 && 2 * OH <= H && 2 * OW <= W) {
    maxpool2_plane(G, c.X + (size_t)p * H * W, c.out + (size_t)p * OH * OW);
    return;
  }
  auto* rb = (float*)scratch(th, 0).get(sizeof(float) * c.len + 64);
  for (int j = 0; j < c.len; j++) rb[j] = -INFINITY;
  const float* x = c.X + (size_t)p * H * W;
  float* out = c.out + (size_t)p * OH * OW;
  float* row = rb + pl;
  for (int oy = 0; oy < OH; oy++) {
    int y0 = oy * sh - G.pt, lo = std::max(0, -y0), hi = std::min(kh, H - y0);
    float* o = out + (size_t)oy * OW;
    if (lo >= hi) { std::fill(o, o + OW, 0.f); continue; }
    const float* r0 = x + (size_t)(y0 + lo) * W;
    int nr = hi - lo, cidx = 0;
    for (; cidx + L <= W; cidx += L) {
      F m = V::fload(r0 + cidx);
      for (int k = 1; k < nr; k++) m = nmax(m, V::fload(r0 + (size_t)k * W + cidx));
      V::fstore(row + cidx, m);
    }
    if (cidx < W) {
      M mk = V::first(W - cidx);
      F m = V::floadm(r0 + cidx, mk);
      for (int k = 1; k < nr; k++) m = nmax(m, V::floadm(r0 + (size_t)k * W + cidx, mk));
      V::fstorem(row + cidx, m, mk);
    }
    // output column ox reads rb[ox*sw + kx]
    for (int ox = 0; ox < OW; ox += L) {
      int n = std::min(L, OW - ox);
      F m = V::fset(-INFINITY);
      if (sw == 1) {
        for (int kx = 0; kx < kw; kx++) m = nmax(m, V::fload(rb + ox + kx));
      } else if (sw == 2) {
        for (int kx = 0; kx < kw; kx++) m = nmax(m, V::even2(rb + 2 * ox + kx));
      } else {
        alignas(64) float t[L];
        for (int l = 0; l < L; l++) {
          float b = -INFINITY;
          if (l < n) {
            const float* q = rb + (size_t)(ox + l) * sw;
            for (int kx = 0; kx < kw; kx++) { float v = q[kx]; if (v > b || v != v) { if (b == b) b = v; } }
          }
          t[l] = b;
        }
        m = V::fload(t);
      }
      if (n >= L) V::fstore(o + ox, m);
      else V::fstorem(o + ox, m, V::first(n));
    }
    // windows lying wholly in the padding (or past the input in ceil mode) have no value: 0
    for (int ox = 0; ox < OW && ox * sw - pl + kw <= 0; ox++) o[ox] = 0.f;
    for (int ox = OW - 1; ox >= 0 && ox * sw - pl >= W; ox--) o[ox] = 0.f;
  }
}

static void maxpool_f32(const ConvGeom& G, int planes, const float* X, float* out) {
  int span = std::max(G.W + G.pl, (G.OW - 1) * G.sw + G.kw);
  PoolCtx c{&G, X, out, span + std::max(2, G.sw) * L + 16};
  run_tasks(planes, maxpool_task, &c, (double)planes * G.OH * G.OW * G.kh * G.kw);
}

constexpr size_t kEwChunk = 16384;  // elements per task: big enough to amortize a task, L2-sized

// A unary element-wise op over n values, kEwChunk per task, the tail masked. op: F -> F (a
// function or a lambda holding its constants).
template <class Op> struct EwCtx { const float* x; size_t n; float* out; Op op; };

template <class Op>
static void unary_task(void* vc, int t, int) {
  auto& c = *(EwCtx<Op>*)vc;
  size_t i0 = (size_t)t * kEwChunk, i1 = std::min(c.n, i0 + kEwChunk), i = i0;
  for (; i + L <= i1; i += L) V::fstore(c.out + i, c.op(V::fload(c.x + i)));
  if (i < i1) {
    M m = V::first((int)(i1 - i));
    V::fstorem(c.out + i, c.op(V::floadm(c.x + i, m)), m);
  }
}

// cost: the run_tasks work estimate per value
template <class Op>
static void unary_run(const float* x, size_t n, float* out, double cost, Op op) {
  EwCtx<Op> c{x, n, out, op};
  run_tasks((int)((n + kEwChunk - 1) / kEwChunk), unary_task<Op>, &c, (double)n * cost);
}

template <int OP>
static inline F bop(F a, F b) {
  if (OP == 0) return V::add(a, b);
  if (OP == 1) return V::sub(a, b);
  if (OP == 2) return V::mul(a, b);
  return V::div(a, b);
}

// One run of n outputs; SA/SB: the operand advances (1) or repeats one value (0).
template <int OP, bool SA, bool SB>
static void brun(const float* a, const float* b, int n, bool act, float* o) {
  const F z = V::fzero(), ca = SA ? z : V::fset(*a), cb = SB ? z : V::fset(*b);
  int i = 0;
  for (; i + L <= n; i += L) {
    F v = bop<OP>(SA ? V::fload(a + i) : ca, SB ? V::fload(b + i) : cb);
    V::fstore(o + i, act ? V::max(z, v) : v);  // max(0, v) = 0 > v ? 0 : v
  }
  if (i < n) {
    M m = V::first(n - i);
    F v = bop<OP>(SA ? V::floadm(a + i, m) : ca, SB ? V::floadm(b + i, m) : cb);
    V::fstorem(o + i, act ? V::max(z, v) : v, m);
  }
}

template <int OP>
static void brun_op(const float* a, int sa, const float* b, int sb, int n, bool act, float* o) {
  if (sa && sb) brun<OP, true, true>(a, b, n, act, o);
  else if (sa) brun<OP, true, false>(a, b, n, act, o);
  else if (sb) brun<OP, false, true>(a, b, n, act, o);
  else brun<OP, false, false>(a, b, n, act, o);
}

struct BinCtx {
  int op, act; const float* a; const int32_t* offa; int sa; const float* b; const int32_t* offb; int sb;
  int outer, inner; float* out;
};

// Task t: outputs [t*kEwChunk, (t+1)*kEwChunk) of the flat outer x inner range, run by run.
static void binary_task(void* vc, int t, int) {
  auto& c = *(BinCtx*)vc;
  size_t e0 = (size_t)t * kEwChunk, e1 = std::min((size_t)c.outer * c.inner, e0 + kEwChunk);
  while (e0 < e1) {
    size_t o = e0 / c.inner, j = e0 % c.inner;
    int n = (int)std::min(e1 - e0, c.inner - j);
    const float* a = c.a + c.offa[o] + j * c.sa;
    const float* b = c.b + c.offb[o] + j * c.sb;
    float* y = c.out + e0;
    switch (c.op) {
      case 0: brun_op<0>(a, c.sa, b, c.sb, n, c.act, y); break;
      case 1: brun_op<1>(a, c.sa, b, c.sb, n, c.act, y); break;
      case 2: brun_op<2>(a, c.sa, b, c.sb, n, c.act, y); break;
      default: brun_op<3>(a, c.sa, b, c.sb, n, c.act, y); break;
    }
    e0 += n;
  }
}

// exp(x) for softmax (x <= 0 there; NaN stays NaN): n = round(x/ln2), r = x - n*ln2 in two parts,
// a degree-6 Taylor polynomial on |r| <= ln2/2 (error ~1e-7 relative), then p * 2^n.
static inline F vexp(F x) {
  x = V::max(V::fset(-104.f), V::min(V::fset(88.7228394f), x));  // operand order keeps NaN
  F n = V::rnd(V::mul(x, V::fset(1.44269504088896341f)));
  F r = V::fma(n, V::fset(-0.693145751953125f), x);
  r = V::fma(n, V::fset(-1.42860682030941723212e-6f), r);
  F p = V::fset(1.f / 720);
  p = V::fma(p, r, V::fset(1.f / 120));
  p = V::fma(p, r, V::fset(1.f / 24));
  p = V::fma(p, r, V::fset(1.f / 6));
  p = V::fma(p, r, V::fset(0.5f));
  p = V::fma(p, r, V::fset(1.f));
  p = V::fma(p, r, V::fset(1.f));
  return V::scale2(p, n);
}

// erf(x) to ~1.2e-7 relative (measured against double erf on 2M float32 points of [0, 4.2]):
// |x| < 0.875: |x|*C0 + |x|*Q(x^2); else 1 - exp(-x^2)*R(|x| - 2.4375) with |x| capped at 4 (erf
// rounds to 1 beyond 3.92); the sign of x last (so erf(-0) = -0; NaN stays NaN). Q and R are
// least-squares fits to erf(x)/x - C0 and erfc(x)*exp(x^2), made for q8 (weighted to relative error).
static inline F verf(F x) {
  static constexpr float kQ[8] = {-5.864407270905758e-08f, -0.37612637877464294f, 0.11283789575099945f,
                                  -0.026865942403674126f, 0.005222830455750227f, -0.0008516412926837802f,
                                  0.00011553766671568155f, -1.0673441465769429e-05f};
  static constexpr float kR[13] = {0.21555247902870178f, -0.07756081223487854f, 0.026497934013605118f,
                                   -0.008648283779621124f, 0.0027092890813946724f, -0.000817013205960393f,
                                   0.00023831665748730302f, -6.853022205177695e-05f, 1.8874008674174547e-05f,
                                   -4.261124558979645e-06f, 1.094382923838566e-06f, -5.382174208534707e-07f,
                                   1.358583432420346e-07f};
  const F ax = V::abs(x), t = V::mul(ax, ax);
  F q = V::fset(kQ[7]);
  for (int i = 6; i >= 0; i--) q = V::fma(q, t, V::fset(kQ[i]));
  F small = V::fma(ax, V::fset(1.128379225730896f), V::mul(ax, q));
  F xc = V::min(V::fset(4.f), ax);  // operand order keeps NaN
  F u = V::sub(xc, V::fset(2.4375f));
  F r = V::fset(kR[12]);
  for (int i = 11; i >= 0; i--) r = V::fma(r, u, V::fset(kR[i]));
  F large = V::sub(V::fset(1.f), V::mul(vexp(V::sub(V::fzero(), V::mul(xc, xc))), r));
  return V::copysign(V::fmerge(large, V::lt(ax, V::fset(0.875f)), small), x);
}

static void erf_f32(const float* x, size_t n, float* out) { unary_run(x, n, out, 40, [](F v) { return verf(v); }); }

// q8.Gelu: the five ops of the exported chain in one pass, each step rounded to float32 as the
// separate kernels round it (Div, this Erf, Add, Mul, Mul), so the fused graph gives the same bits.
static void gelu_f32(const float* x, size_t n, float div, float add, float mul, float* out) {
  unary_run(x, n, out, 44, [d = V::fset(div), a = V::fset(add), m = V::fset(mul)](F v) {
    return V::mul(V::mul(v, V::add(verf(V::div(v, d)), a)), m);
  });
}

struct LnCtx { const float* x; int rows, C, rpt; const float* g; const float* b; float eps; float* out; };

// The reference's steps per row: mean (summed in double like the reference, so the float32 mean
// and hence every centred value d = x - mean come out the same), mean square (a float sum here),
// sd, (d / sd) * gamma + beta.
static void layernorm_task(void* vc, int t, int) {
  auto& c = *(LnCtx*)vc;
  const int n = c.C;
  const M tail = V::first(n % L);
  const int nv = n - n % L;
  for (int r = t * c.rpt, r1 = std::min(c.rows, r + c.rpt); r < r1; r++) {
    const float* x = c.x + (size_t)r * n;
    float* y = c.out + (size_t)r * n;
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) { a0 += x[i]; a1 += x[i + 1]; a2 += x[i + 2]; a3 += x[i + 3]; }
    for (; i < n; i++) a0 += x[i];
    const F mean = V::fset((float)((a0 + a1 + a2 + a3) / n));
    F s2 = V::fzero();
    for (i = 0; i < nv; i += L) { F d = V::sub(V::fload(x + i), mean); V::fstore(y + i, d); s2 = V::fma(d, d, s2); }
    if (nv < n) { F d = V::fsel(tail, V::sub(V::floadm(x + nv, tail), mean)); V::fstorem(y + nv, d, tail); s2 = V::fma(d, d, s2); }
    const F sd = V::fset(std::sqrt(V::hsum(s2) / n + c.eps));
    for (i = 0; i < nv; i += L) V::fstore(y + i, V::add(V::mul(V::div(V::fload(y + i), sd), V::fload(c.g + i)), V::fload(c.b + i)));
    if (nv < n) {
      F v = V::add(V::mul(V::div(V::floadm(y + nv, tail), sd), V::floadm(c.g + nv, tail)), V::floadm(c.b + nv, tail));
      V::fstorem(y + nv, v, tail);
    }
  }
}

static void layernorm_f32(const float* x, int rows, int C, const float* gamma, const float* beta, float eps, float* out) {
  int rpt = std::max(1, (int)(kEwChunk / std::max(1, C)));
  LnCtx c{x, rows, C, rpt, gamma, beta, eps, out};
  run_tasks((rows + rpt - 1) / rpt, layernorm_task, &c, (double)rows * C * 8);
}

// Softmax computes exp in double, as the reference does (Math.exp of x - max, each value stored
// as float32, the sum in double, then value * (1/sum)): a float32 exp, though within 2e-7, reorders
// near-tied scores and so changes which boxes an SSD detector keeps. The double lanes are V::D.
//
// exp(d) in double for d <= 0 (NaN stays NaN): n = round(d/ln2), r = d - n*ln2 (two parts),
// Taylor to r^13 on |r| <= ln2/2 (truncation ~1e-17), times 2^n.
static inline DV dexp(DV d) {
  d = V::dmax(V::dset(-746.0), d);  // operand order keeps NaN; below -745 exp is 0
  DV n = V::drnd(V::dmul(d, V::dset(1.4426950408889634)));
  DV r = V::dfma(n, V::dset(-0.6931471803691238), d);
  r = V::dfma(n, V::dset(-1.9082149292705877e-10), r);
  static constexpr double kInvFact[14] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040,
                                          1.0 / 40320, 1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800,
                                          1.0 / 479001600, 1.0 / 6227020800.0};
  DV p = V::dset(kInvFact[13]);
  for (int i = 12; i >= 0; i--) p = V::dfma(p, r, V::dset(kInvFact[i]));
  return V::dscale2(p, n);
}

struct SoftCtx { const float* x; int rows, cols, rpt; float* out; };

// Rows [t*rpt, (t+1)*rpt). A NaN makes the sum NaN and so the whole row, as in the reference (so
// does +Inf: Inf - Inf); a row of -Inf is NaN too.
static void softmax_task(void* vc, int t, int) {
  auto& c = *(SoftCtx*)vc;
  const int n = c.cols;
  for (int r = t * c.rpt, r1 = std::min(c.rows, r + c.rpt); r < r1; r++) {
    const float* x = c.x + (size_t)r * n;
    float* y = c.out + (size_t)r * n;
    // The row's max, as the scalar loop below takes it (a NaN never replaces it; the row comes out
    // NaN anyway through its sum). One dependent compare per vector, not per value: the scalar
    // loop's chain was about 40% of the kernel's time on BERT's 128-wide rows.
    F vmx = V::fset(-INFINITY);
    int j = 0;
    for (; j + L <= n; j += L) vmx = V::max(V::fload(x + j), vmx);
    float mx = V::hmax(vmx);
    for (; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    const DV vm = V::dset(mx);
    DV s = V::dset(0.0);
    int i = 0;
    for (; i + LD <= n; i += LD) {
      DV e = dexp(V::dsub(V::dload(x + i), vm));
      V::dstore(y + i, e);
      s = V::dadd(s, e);
    }
    double sum = V::dsum(s);
    for (; i < n; i++) {
      double e = std::exp((double)x[i] - (double)mx);
      y[i] = (float)e;
      sum += e;
    }
    const double inv = 1.0 / sum;
    const DV vi = V::dset(inv);
    for (i = 0; i + LD <= n; i += LD) V::dstore(y + i, V::dmul(V::dload(y + i), vi));
    for (; i < n; i++) y[i] = (float)((double)y[i] * inv);
  }
}

static void binary_f32(int op, int act, const float* a, const int32_t* offa, int sa, const float* b,
                       const int32_t* offb, int sb, int outer, int inner, float* out) {
  BinCtx c{op, act, a, offa, sa, b, offb, sb, outer, inner, out};
  size_t n = (size_t)outer * inner;
  run_tasks((int)((n + kEwChunk - 1) / kEwChunk), binary_task, &c, (double)n * 4);
}

static void softmax_f32(const float* x, int rows, int cols, float* out) {
  int rpt = std::max(1, (int)(kEwChunk / std::max(1, cols)));
  SoftCtx c{x, rows, cols, rpt, out};
  run_tasks((rows + rpt - 1) / rpt, softmax_task, &c, (double)rows * cols * 30);
}

// ONNX Relu: max(v, 0) = v > 0 ? v : 0, then NaN back in
static inline F relu1(F v) { return V::fmerge(V::max(v, V::fzero()), V::isnan(v), v); }

static void relu_f32(const float* x, size_t n, float* out) { unary_run(x, n, out, 4, [](F v) { return relu1(v); }); }

}  // namespace Q8_NS

const Kernels Q8_TABLE = {Q8_NAME, V::kU8, Q8_NS::gemm_q8, Q8_NS::conv_q8, Q8_NS::gemm_f32, Q8_NS::conv_f32,
                          Q8_NS::peak_i8, Q8_NS::peak_f32, Q8_NS::maxpool_f32, Q8_NS::binary_f32,
                          Q8_NS::softmax_f32, Q8_NS::relu_f32, Q8_NS::erf_f32, Q8_NS::layernorm_f32,
                          Q8_NS::gelu_f32};

}  // namespace q8
