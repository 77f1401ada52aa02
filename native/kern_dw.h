// Depthwise convolution (C == group == M: one input and one output channel per group), included by
// kern_impl.h inside the per-ISA namespace.
//
// Row-oriented: lanes run over the output columns of one channel plane. Generic path: each task
// copies the input rows it needs into a zero-padded buffer whose columns are split into `sw` phase
// planes (padded column px goes to phase px % sw, index px / sw), so every tap of any stride,
// dilation and padding is a plain contiguous load at a fixed offset: no masks, gathers or per-pixel
// maps. A "unit" is one vector of L output columns of one output row; NU units are computed at once
// so that enough independent FMA/max chains are in flight. k x k (3, 5) with stride 1 or 2 use
// unrolled blocks over the same buffer, and 3x3 mostly skips the copy (dw_direct_chunk).

#if Q8_W == 512
// lanes 0, 2, 4, ... (odd: 1, 3, 5, ...) of the 2L values a:b
static inline F dw_even(F a, F b) {
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(a, idx, b);
}
static inline F dw_odd(F a, F b) {
  const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  return _mm512_permutex2var_ps(a, idx, b);
}
constexpr int DW_NUF = 8, DW_NUQ = 8;  // units per step (fp32 / int8): 8 (+8) zmm accumulators
#else
static inline F dw_even(F a, F b) {
  __m256 t = _mm256_shuffle_ps(a, b, 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}
static inline F dw_odd(F a, F b) {
  __m256 t = _mm256_shuffle_ps(a, b, 0xDD);  // a1 a3 b1 b3 | a5 a7 b5 b7
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}
constexpr int DW_NUF = 8, DW_NUQ = 4;  // 16 ymm registers
#endif

struct DwCtx {
  const ConvGeom* G;
  const void* P;
  const float* X;
  const Epi* e;
  float* out;
  bool q8;
  int C;        // channels (= planes per image)
  int nv;       // vectors per output row
  int Wq;       // row length of a phase plane (multiple of L)
  int rc;       // output rows per chunk
  int nchunk;   // chunks per plane
  int Hs;       // rows per phase plane in the buffer (for a full chunk)
  int nitems;   // planes * nchunk
  int ipt;      // items per task
  const int* toff;  // [K] offset of tap k in the buffer (phase plane, row, column)
  const struct DwFast* fast;  // unrolled kernels for this shape, or null
  bool direct;   // 3x3 straight from X (dw_direct_chunk)
  size_t xlen;   // floats in X
  // direct path, per output vector v of a row: lanes inside the input row for tap kx
  // (dmask[3v + kx]), and whether any lane is outside (dsel[v]): the same for every row and plane
  const unsigned* dmask;
  const bool* dsel;
};

// Lanes [lo, hi) of the L floats at p, others 0 (a masked load: faults suppressed; measured no
// slower here than a plain load and a lane select).
static inline F dw_part(const float* p, int lo, int hi) {
  return V::floadm(p, V::bits(((hi >= 32 ? ~0u : (1u << hi) - 1)) & ~((1u << lo) - 1)));
}

// xr[ix .. ix+L) with the lanes outside [0, W) zero.
static inline F dw_span(const float* xr, int ix, int W) {
  const int lo = std::min(L, std::max(0, -ix)), hi = std::max(0, std::min(L, W - ix));
  if (hi <= lo) return V::fzero();
  if (lo == 0 && hi == L) return V::fload(xr + ix);
  return dw_part(xr + ix, lo, hi);
}

// One padded input row into d[0, n): d[px] = x[px - pl] inside the image, else 0; |.| into ad.
static inline void dw_row(const float* xr, int W, int pl, int n, float* d, float* ad, bool warm = false) {
  for (int j = 0; j < n; j += L) {
    const int ix = j - pl;  // input column of lane 0
    F v;
    if (ix >= 0 && ix + L <= W) v = V::fload(xr + ix);
    else if (ix + L <= 0 || ix >= W) {
      if (warm) continue;
      v = V::fzero();
    } else v = dw_part(xr + ix, std::max(0, -ix), std::min(L, W - ix));
    V::fstore(d + j, v);
    if (ad) V::fstore(ad + j, V::abs(v));
  }
}

// Fill the phase planes with input rows iy0 .. iy0+nrows-1 (zero outside the image); abuf (int8)
// gets |x| in the same layout, for the per-pixel window maxima. warm: the buffer holds the same
// rows of another plane of this geometry, so its all-padding vectors are zero already (strides
// 1 and 2): only vectors with image columns are written.
static void dw_fill(const DwCtx& c, const float* x, int iy0, int nrows, float* buf, float* abuf, float* tmp, bool warm) {
  const ConvGeom& G = *c.G;
  const int sw = G.sw, Wq = c.Wq;
  for (int py = 0; py < nrows; py++) {
    const int iy = iy0 + py;
    const bool in = iy >= 0 && iy < G.H;
    if (sw == 1) {
      float* d = buf + (size_t)py * Wq;
      float* ad = abuf ? abuf + (size_t)py * Wq : nullptr;
      if (in) dw_row(x + (size_t)iy * G.W, G.W, G.pl, Wq, d, ad, warm);
      else if (!warm) {
        std::fill(d, d + Wq, 0.f);
        if (ad) std::fill(ad, ad + Wq, 0.f);
      }
      continue;
    }
    if (sw == 2) {
      // both phases from one pair of loads per 2L padded columns (straight from the input row)
      if (!in && warm) continue;
      const float* xr = x + (size_t)iy * G.W;
      float* d0 = buf + (size_t)py * Wq;
      float* d1 = buf + ((size_t)c.Hs + py) * Wq;
      float* a0 = abuf ? abuf + (size_t)py * Wq : nullptr;
      float* a1 = abuf ? abuf + ((size_t)c.Hs + py) * Wq : nullptr;
      for (int j = 0; j < Wq; j += L) {
        const int ix = 2 * j - G.pl;  // input column of padded column 2j
        if (warm && (ix + 2 * L <= 0 || ix >= G.W)) continue;
        F u = V::fzero(), v = V::fzero();
        if (in) {
          if (ix >= 0 && ix + 2 * L <= G.W) {
            u = V::fload(xr + ix);
            v = V::fload(xr + ix + L);
          } else {
            u = dw_span(xr, ix, G.W);
            v = dw_span(xr, ix + L, G.W);
          }
        }
        const F e = dw_even(u, v), o = dw_odd(u, v);
        V::fstore(d0 + j, e);
        V::fstore(d1 + j, o);
        if (a0) {
          V::fstore(a0 + j, V::abs(e));
          V::fstore(a1 + j, V::abs(o));
        }
      }
      continue;
    }
    // other strides: the padded row, then split into phases
    if (in) dw_row(x + (size_t)iy * G.W, G.W, G.pl, sw * Wq, tmp, nullptr);
    else std::fill(tmp, tmp + sw * Wq, 0.f);
    for (int ph = 0; ph < sw; ph++) {
      float* d = buf + ((size_t)ph * c.Hs + py) * Wq;
      for (int j = 0; j < Wq; j++) d[j] = tmp[j * sw + ph];
      if (abuf) {
        float* ad = abuf + ((size_t)ph * c.Hs + py) * Wq;
        for (int j = 0; j < Wq; j++) ad[j] = std::fabs(d[j]);
      }
    }
  }
}

// The next NU units of a chunk (row-major over (row r, vector v), advanced in place); past the
// last one, the last repeats (computed, not stored). Returns how many are real.
template <int NU>
static int dw_units(const DwCtx& c, int& r, int& v, int nrow, int* io, int* oo, int* nl) {
  const ConvGeom& G = *c.G;
  int nu = 0;
  for (int u = 0; u < NU; u++) {
    if (r < nrow) {
      io[u] = r * G.sh * c.Wq + v * L;
      oo[u] = r * G.OW + v * L;
      nl[u] = std::min(L, G.OW - v * L);
      nu++;
      if (++v == c.nv) { v = 0; r++; }
    } else {
      io[u] = io[u - 1]; oo[u] = oo[u - 1]; nl[u] = nl[u - 1];
    }
  }
  return nu;
}

static inline void dw_store(float* o, F r, int n) {
  if (n >= L) V::fstore(o, r);
  else V::fstorem(o, r, V::first(n));
}

// fp32: per lane, sum over taps k = 0..K-1 of w[k]*x in tap order (as the pixel-panel kernel did).
static void dw_f32_chunk(const DwCtx& c, const float* buf, const float* w, float bias, float* o, int nrow) {
  const int K = c.G->kh * c.G->kw, nunit = nrow * c.nv;
  const Epi& e = *c.e;
  const F bv = V::fset(bias);
  constexpr int NU = DW_NUF;
  for (int u0 = 0, r = 0, v = 0; u0 < nunit; u0 += NU) {
    int io[NU], oo[NU], nl[NU];
    int nu = dw_units<NU>(c, r, v, nrow, io, oo, nl);
    F acc[NU];
    for (int u = 0; u < NU; u++) acc[u] = V::fzero();
    for (int k = 0; k < K; k++) {
      const float* p = buf + c.toff[k];
      const F wv = V::fset(w[k]);
      for (int u = 0; u < NU; u++) acc[u] = V::fma(wv, V::fload(p + io[u]), acc[u]);
    }
    for (int u = 0; u < nu; u++) dw_store(o + oo[u], clampv(V::add(acc[u], bv), e), nl[u]);
  }
}

// int8, the contract's arithmetic per output pixel: for each activation window (ablock taps, or
// the whole patch) amax = max |x|, scale = amax/127 (true division), q = round-half-even(x *
// 127/amax); per combined block the integer products q*w summed exactly in float (|sum| < 2^24
// for K <= 1040), dequantized with activation scale x weight scale and accumulated in block order.
static void dw_q8_chunk(const DwCtx& c, const float* buf, const float* abuf, int ch, float bias, float* o, int nrow, F* scr) {
  const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
  const int K = P.Kg, B = P.ablock ? P.ablock : K, nab = (K + B - 1) / B, nunit = nrow * c.nv;
  const int8_t* w = P.wraw.data() + (size_t)ch * K;
  const float* ws = P.wsraw.data() + (size_t)ch * P.nwb;
  const Epi& e = *c.e;
  const F bv = V::fset(bias);
  constexpr int NU = DW_NUQ;
  F* inv = scr;                  // [nab][NU]
  F* sav = scr + nab * NU;       // [nab][NU]
  for (int u0 = 0, r = 0, v = 0; u0 < nunit; u0 += NU) {
    int io[NU], oo[NU], nl[NU];
    int nu = dw_units<NU>(c, r, v, nrow, io, oo, nl);
    for (int wi = 0; wi < nab; wi++) {
      const int k0 = wi * B, k1 = std::min(K, k0 + B);
      F am[NU];
      for (int u = 0; u < NU; u++) am[u] = V::fzero();
      for (int k = k0; k < k1; k++) {
        const float* p = abuf + c.toff[k];
        for (int u = 0; u < NU; u++) am[u] = V::max(am[u], V::fload(p + io[u]));
      }
      for (int u = 0; u < NU; u++) {
        inv[wi * NU + u] = V::inv127(am[u]);
        sav[wi * NU + u] = V::div(am[u], V::fset(127.f));
      }
    }
    F acc[NU];
    for (int u = 0; u < NU; u++) acc[u] = V::fzero();
    for (int cb = 0; cb < P.ncb; cb++) {
      const int k0 = cb * P.cblock, k1 = std::min(K, k0 + P.cblock);
      const int ab = P.ablock ? k0 / P.ablock : 0, wb = P.wblock ? k0 / P.wblock : 0;
      const F* iv = inv + ab * NU;
      F d[NU];
      for (int u = 0; u < NU; u++) d[u] = V::fzero();
      for (int k = k0; k < k1; k++) {
        const float* p = buf + c.toff[k];
        const F wv = V::fset((float)w[k]);
        for (int u = 0; u < NU; u++) d[u] = V::fma(V::rnd(V::mul(V::fload(p + io[u]), iv[u])), wv, d[u]);
      }
      const F swv = V::fset(ws[wb]);
      for (int u = 0; u < NU; u++) acc[u] = V::add(acc[u], V::mul(d[u], V::mul(sav[ab * NU + u], swv)));
    }
    for (int u = 0; u < nu; u++) dw_store(o + oo[u], clampv(V::add(acc[u], bv), e), nl[u]);
  }
}

// ---- Common shapes (k x k, stride s, no dilation), unrolled: a block of R output rows x NB
// vectors streams the input rows once each (KW shifted loads per row, reused by every output row
// of the block that has the row in its window). Per output pixel, the taps still arrive in order
// k = ky*KW + kx, so the sums (and NaN propagation) are the generic path's, bit for bit.
#if Q8_W == 512
constexpr int DW_NB = 2;  // vectors per block
#else
constexpr int DW_NB = 1;
#endif
constexpr int DW_R = 4;  // output rows per block
#if Q8_W == 512
constexpr int DW_R1 = 8;  // rows per block when a row is one vector (7x7, 14x14): 8 chains, not 4
#else
constexpr int DW_R1 = 4;  // 16 ymm registers
#endif
constexpr int DW_RM = DW_R1 > DW_R ? DW_R1 : DW_R;


// The NB vectors of tap kx in buffer row p (phase planes at stride hs). fp32 with AVX-512: aligned
// loads and lane shifts (valignd) instead of unaligned loads that span two cache lines (measured a
// few % faster; the int8 kernel, bound by its arithmetic, was not); otherwise plain loads.
template <int S, int NB, bool SHIFT>
struct DwRow {
  F v[S][NB + 1];
  static constexpr bool kShift = Q8_W == 512 && SHIFT;
  DwRow(const float* p, size_t hs, bool need_next) {
    for (int ph = 0; ph < S; ph++)
      for (int j = 0; j <= NB; j++)
        if (kShift && (j < NB || need_next)) v[ph][j] = V::fload(p + ph * hs + j * L);
  }
  template <int KX>
  F tap(const float* p, size_t hs, int j) const {
    constexpr int ph = KX % S, sh = KX / S;
#if Q8_W == 512
    if constexpr (kShift) {
      if constexpr (sh == 0) return v[ph][j];
      else return _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(v[ph][j + 1]), _mm512_castps_si512(v[ph][j]), sh));
    }
#endif
    return V::fload(p + ph * hs + sh + j * L);
  }
};

struct DwBlk {
  const float* x;   // buffer at the block's first input row and column (phase 0)
  const float* ax;  // same in the |x| buffer (int8)
  size_t hs;        // floats per phase plane
  int Wq, OW;
  float* o;         // output at the block's first pixel
  int nl[DW_NB];    // valid lanes per vector
};


template <int KH, int KW, int S, int R, int NB, bool SHIFT, class Fn, int... KX>
static inline __attribute__((always_inline)) void dw_taps(const DwRow<S, NB, SHIFT>& row, const float* p, size_t hs, int py, Fn& fn,
                                                          std::integer_sequence<int, KX...>) {
  (
      [&] {
        constexpr int kx = KX;
        for (int j = 0; j < NB; j++) {
          const F xv = row.template tap<kx>(p, hs, j);
#pragma unroll
          for (int ri = 0; ri < R; ri++) {
            const int ky = py - ri * S;
            if (ky >= 0 && ky < KH) fn(ky, kx, ri, j, xv);
          }
        }
      }(),
      ...);
}

// Streams the block's input rows: for each row py and tap kx (ascending), the NB vectors go to
// every output row ri whose window has row py (ky = py - ri*S), so per output pixel the taps arrive
// in order k = ky*KW + kx.
template <int KH, int KW, int S, int R, int NB, bool SHIFT, class Fn>
static inline __attribute__((always_inline)) void dw_rows(const float* x, const DwBlk& b, Fn&& fn) {
  constexpr bool next = (KW - 1) / S > 0;  // some tap shifted into the next vector
#pragma unroll
  for (int py = 0; py < (R - 1) * S + KH; py++) {
    const float* p = x + py * b.Wq;
    DwRow<S, NB, SHIFT> row(p, b.hs, next);
    dw_taps<KH, KW, S, R, NB>(row, p, b.hs, py, fn, std::make_integer_sequence<int, KW>{});
  }
}

template <int KH, int KW, int S, int R, int NB>
static void dwf_block(const DwBlk& b, const float* w, F bv, const Epi& e) {
  F acc[R][NB];
  for (int ri = 0; ri < R; ri++)
    for (int j = 0; j < NB; j++) acc[ri][j] = V::fzero();
  dw_rows<KH, KW, S, R, NB, true>(b.x, b, [&](int ky, int kx, int ri, int j, F xv) {
    acc[ri][j] = V::fma(V::fset(w[ky * KW + kx]), xv, acc[ri][j]);
  });
  for (int ri = 0; ri < R; ri++)
    for (int j = 0; j < NB; j++) dw_store(b.o + ri * b.OW + j * L, clampv(V::add(acc[ri][j], bv), e), b.nl[j]);
}

// int8 with one window and one combined block over the whole patch (the default depthwise setup).
template <int KH, int KW, int S, int R, int NB>
static void dwq_block(const DwBlk& b, const float* w, F swv, F bv, const Epi& e) {
  F inv[R][NB], d[R][NB];
  for (int ri = 0; ri < R; ri++)
    for (int j = 0; j < NB; j++) inv[ri][j] = V::fzero();
  dw_rows<KH, KW, S, R, NB, false>(b.ax, b, [&](int, int, int ri, int j, F av) {
    inv[ri][j] = V::max(inv[ri][j], av);  // amax so far
  });
  F sa[R][NB];
  for (int ri = 0; ri < R; ri++)
    for (int j = 0; j < NB; j++) {
      sa[ri][j] = V::mul(V::div(inv[ri][j], V::fset(127.f)), swv);
      inv[ri][j] = V::inv127(inv[ri][j]);
      d[ri][j] = V::fzero();
    }
  dw_rows<KH, KW, S, R, NB, false>(b.x, b, [&](int ky, int kx, int ri, int j, F xv) {
    d[ri][j] = V::fma(V::rnd(V::mul(xv, inv[ri][j])), V::fset(w[ky * KW + kx]), d[ri][j]);
  });
  for (int ri = 0; ri < R; ri++)
    for (int j = 0; j < NB; j++) {
      F r = V::add(V::fzero(), V::mul(d[ri][j], sa[ri][j]));
      dw_store(b.o + ri * b.OW + j * L, clampv(V::add(r, bv), e), b.nl[j]);
    }
}

using DwfFn = void (*)(const DwBlk&, const float*, F, const Epi&);
using DwqFn = void (*)(const DwBlk&, const float*, F, F, const Epi&);
struct DwFast { DwfFn f[DW_RM][DW_NB]; DwqFn q[DW_RM][DW_NB]; };

template <int KH, int KW, int S, int... R>
constexpr DwFast dw_fast_table(std::integer_sequence<int, R...>) {
  DwFast t{};
  ((t.f[R][0] = &dwf_block<KH, KW, S, R + 1, 1>, t.q[R][0] = &dwq_block<KH, KW, S, R + 1, 1>), ...);
  if constexpr (DW_NB > 1)  // (rows beyond DW_R: never used with DW_NB vectors)
    ((t.f[R][DW_NB - 1] = &dwf_block<KH, KW, S, (R < DW_R ? R + 1 : DW_R), DW_NB>,
      t.q[R][DW_NB - 1] = &dwq_block<KH, KW, S, (R < DW_R ? R + 1 : DW_R), DW_NB>), ...);
  return t;
}
template <int KH, int KW, int S>
static const DwFast* dw_fast_for() {
  static constexpr DwFast t = dw_fast_table<KH, KW, S>(std::make_integer_sequence<int, DW_RM>{});
  return &t;
}

static const DwFast* dw_fast(const ConvGeom& G) {
  if (G.dh != 1 || G.dw != 1 || G.kh != G.kw || G.sh != G.sw) return nullptr;
  if (G.kh == 3 && G.sh == 1) return dw_fast_for<3, 3, 1>();
  if (G.kh == 3 && G.sh == 2) return dw_fast_for<3, 3, 2>();
  if (G.kh == 5 && G.sh == 1) return dw_fast_for<5, 5, 1>();
  if (G.kh == 5 && G.sh == 2) return dw_fast_for<5, 5, 2>();
  return nullptr;
}

// ---- 3x3 straight from the input plane, no copy (where measured faster, see dw_conv): the copy
// cost as much as the arithmetic, and for stride 2 (two phase planes per input row) more. Each
// block row points at its input row (a zero row outside the image); lanes whose column is outside
// the row [0, W) are zeroed by a select, so the values and their order are the buffered path's.
// Loads may touch a few vectors beyond the row on either side (the neighbouring rows), so rows at
// the very ends of X are read from a padded copy.
struct DwDir {
  const float* row[(DW_R1 - 1) * 2 + 3];  // per block input row py: the value under tap kx=0 of lane 0
  float* o;
  int OW;
  int nl;
  M m[3];  // lanes inside the row, per tap (border blocks)
};

// Tap kx's vector of row p: stride 1 shifted lanes of two loads (AVX-512: valignd; cheaper than
// three unaligned loads) or shifted loads; stride 2 the even/odd lanes of a 2L span (kx = 2: the
// span two columns on).
template <int S>
static inline __attribute__((always_inline)) void dwd_taps(const float* p, F* t) {
  if constexpr (S == 1) {
#if Q8_W == 512
    const __m512i u = _mm512_castps_si512(V::fload(p)), v = _mm512_castps_si512(V::fload(p + L));
    t[0] = _mm512_castsi512_ps(u);
    t[1] = _mm512_castsi512_ps(_mm512_alignr_epi32(v, u, 1));
    t[2] = _mm512_castsi512_ps(_mm512_alignr_epi32(v, u, 2));
#else
    for (int kx = 0; kx < 3; kx++) t[kx] = V::fload(p + kx);
#endif
  } else {
    const F u = V::fload(p), v = V::fload(p + L);
    t[0] = dw_even(u, v);
    t[1] = dw_odd(u, v);
    t[2] = dw_even(V::fload(p + 2), V::fload(p + 2 + L));
  }
}

template <int S, int R, bool SEL, bool ABS, class Fn>
static inline __attribute__((always_inline)) void dwd_rows(const DwDir& b, Fn&& fn) {
#pragma unroll
  for (int py = 0; py < (R - 1) * S + 3; py++) {
    F t[3];
    dwd_taps<S>(b.row[py], t);
#pragma unroll
    for (int kx = 0; kx < 3; kx++) {
      F xv = t[kx];
      if constexpr (SEL) xv = V::fsel(b.m[kx], xv);
      if constexpr (ABS) xv = V::abs(xv);
#pragma unroll
      for (int ri = 0; ri < R; ri++) {
        const int ky = py - ri * S;
        if (ky >= 0 && ky < 3) fn(ky, kx, ri, xv);
      }
    }
  }
}

template <int S, int R, bool SEL>
static void dwfd_block(const DwDir& b, const float* w, F bv, const Epi& e) {
  F acc[R];
  for (int ri = 0; ri < R; ri++) acc[ri] = V::fzero();
  dwd_rows<S, R, SEL, false>(b, [&](int ky, int kx, int ri, F xv) { acc[ri] = V::fma(V::fset(w[ky * 3 + kx]), xv, acc[ri]); });
  for (int ri = 0; ri < R; ri++) dw_store(b.o + ri * b.OW, clampv(V::add(acc[ri], bv), e), b.nl);
}

template <int S, int R, bool SEL>
static void dwqd_block(const DwDir& b, const float* w, F swv, F bv, const Epi& e) {
  F inv[R], d[R], sa[R];
  for (int ri = 0; ri < R; ri++) inv[ri] = V::fzero();
  dwd_rows<S, R, SEL, true>(b, [&](int, int, int ri, F av) { inv[ri] = V::max(inv[ri], av); });  // amax so far
  for (int ri = 0; ri < R; ri++) {
    sa[ri] = V::mul(V::div(inv[ri], V::fset(127.f)), swv);
    inv[ri] = V::inv127(inv[ri]);
    d[ri] = V::fzero();
  }
  dwd_rows<S, R, SEL, false>(b, [&](int ky, int kx, int ri, F xv) {
    d[ri] = V::fma(V::rnd(V::mul(xv, inv[ri])), V::fset(w[ky * 3 + kx]), d[ri]);
  });
  for (int ri = 0; ri < R; ri++) {
    F r = V::add(V::fzero(), V::mul(d[ri], sa[ri]));
    dw_store(b.o + ri * b.OW, clampv(V::add(r, bv), e), b.nl);
  }
}

using DwfdFn = void (*)(const DwDir&, const float*, F, const Epi&);
using DwqdFn = void (*)(const DwDir&, const float*, F, F, const Epi&);
struct DwDirect { DwfdFn f[2][2][DW_R1]; DwqdFn q[2][2][DW_R1]; };  // [stride-1][sel][rows-1]

template <int S, bool SEL, int... R>
constexpr void dw_direct_fill(DwDirect& t, std::integer_sequence<int, R...>) {
  ((t.f[S - 1][SEL][R] = &dwfd_block<S, R + 1, SEL>, t.q[S - 1][SEL][R] = &dwqd_block<S, R + 1, SEL>), ...);
}
constexpr DwDirect dw_direct_table() {
  DwDirect t{};
  dw_direct_fill<1, false>(t, std::make_integer_sequence<int, DW_R1>{});
  dw_direct_fill<1, true>(t, std::make_integer_sequence<int, DW_R1>{});
  dw_direct_fill<2, false>(t, std::make_integer_sequence<int, DW_R1>{});
  dw_direct_fill<2, true>(t, std::make_integer_sequence<int, DW_R1>{});
  return t;
}
static constexpr DwDirect kDwDirect = dw_direct_table();

// Whether the direct path applies: 3x3, stride 1 or 2 (both ways), no dilation, left pad <= 2 (rows
// are read from column -pl), and the fast kernels' int8 windows.
static bool dw_direct_ok(const ConvGeom& G) {
  return G.kh == 3 && G.kw == 3 && G.sh == G.sw && (G.sh == 1 || G.sh == 2) && G.dh == 1 && G.dw == 1 && G.pl >= 0 &&
         G.pl <= 2 && G.pt >= 0;
}

// One chunk of output rows [oy0, oy0+nrow) of plane x (channel ch). zrow: zeros, readable from
// zrow - L to zrow - L + rs; tmp: room for 2*DW_R1 + 1 padded row copies of rs floats.
static void dw_direct_chunk(const DwCtx& c, const float* x, int ch, float bias, float* o, int oy0, int nrow,
                            const float* zrow, float* tmp, int rs) {
  const ConvGeom& G = *c.G;
  const int S = G.sw;
  float wf[9];
  F swv = V::fzero();
  if (c.q8) {
    const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
    for (int k = 0; k < 9; k++) wf[k] = (float)P.wraw[(size_t)ch * 9 + k];
    swv = V::fset(P.wsraw[(size_t)ch * P.nwb]);
  } else {
    const PackF32Conv& P = *(const PackF32Conv*)c.P;
    std::memcpy(wf, P.wraw.data() + (size_t)ch * 9, sizeof(wf));
  }
  const F bv = V::fset(bias);
  const float* xend = c.X + c.xlen;
  const int span = S * c.nv * L + L + 4;  // floats read past a row's column -pl
  DwDir b;
  b.OW = G.OW;
  const float* rows[(DW_R1 - 1) * 2 + 3];
  for (int r0 = 0; r0 < nrow; r0 += DW_R1) {
    const int R = std::min(DW_R1, nrow - r0), nr = (R - 1) * S + 3;
    for (int py = 0; py < nr; py++) {
      const int iy = (oy0 + r0) * S + py - G.pt;
      if (iy < 0 || iy >= G.H) { rows[py] = zrow; continue; }
      const float* xr = x + (size_t)iy * G.W;
      if (xr - G.pl - L >= c.X && xr - G.pl + span + L <= xend) { rows[py] = xr; continue; }
      float* t = tmp + (size_t)py * rs;  // at an end of X: a padded copy
      std::fill(t, t + rs, 0.f);
      std::memcpy(t + L + G.pl, xr, sizeof(float) * G.W);
      rows[py] = t + L + G.pl;
    }
    for (int v0 = 0; v0 < c.nv; v0++) {
      const int ox0 = v0 * L;
      const bool sel = c.dsel[v0];
      for (int py = 0; py < nr; py++) b.row[py] = rows[py] + S * ox0 - G.pl;
      b.nl = std::min(L, G.OW - ox0);
      if (sel)
        for (int kx = 0; kx < 3; kx++) b.m[kx] = V::bits(c.dmask[3 * v0 + kx]);
      b.o = o + (size_t)r0 * G.OW + ox0;
      if (c.q8) kDwDirect.q[S - 1][sel][R - 1](b, wf, swv, bv, *c.e);
      else kDwDirect.f[S - 1][sel][R - 1](b, wf, bv, *c.e);
    }
  }
}

// A chunk through the unrolled blocks. q8: only with whole-patch windows (nab == ncb == 1).
static void dw_fast_chunk(const DwCtx& c, const DwFast& t, const float* buf, const float* abuf, int ch, float bias, float* o, int nrow) {
  const ConvGeom& G = *c.G;
  const int K = G.kh * G.kw;
  float wf[25];
  F swv = V::fzero();
  if (c.q8) {
    const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
    for (int k = 0; k < K; k++) wf[k] = (float)P.wraw[(size_t)ch * K + k];
    swv = V::fset(P.wsraw[(size_t)ch * P.nwb]);
  } else {
    const PackF32Conv& P = *(const PackF32Conv*)c.P;
    std::memcpy(wf, P.wraw.data() + (size_t)ch * K, sizeof(float) * K);
  }
  const F bv = V::fset(bias);
  DwBlk b;
  b.hs = (size_t)c.Hs * c.Wq;
  b.Wq = c.Wq;
  b.OW = G.OW;
  const int RB = c.nv == 1 ? DW_R1 : DW_R;
  for (int r0 = 0; r0 < nrow; r0 += RB) {
    const int R = std::min(RB, nrow - r0);
    for (int v0 = 0; v0 < c.nv; v0 += DW_NB) {
      const int nb = std::min(DW_NB, c.nv - v0);
      const size_t off = (size_t)r0 * G.sh * c.Wq + v0 * L;
      b.x = buf + off;
      b.ax = abuf ? abuf + off : nullptr;
      b.o = o + (size_t)r0 * G.OW + v0 * L;
      for (int j = 0; j < DW_NB; j++) b.nl[j] = std::min(L, G.OW - (v0 + j) * L);
      if (c.q8) t.q[R - 1][nb - 1](b, wf, swv, bv, *c.e);
      else t.f[R - 1][nb - 1](b, wf, bv, *c.e);
    }
  }
}

static void dw_task(void* vc, int t, int th) {
  const DwCtx& c = *(const DwCtx*)vc;
  const ConvGeom& G = *c.G;
  const int i0 = t * c.ipt, i1 = std::min(c.nitems, i0 + c.ipt);
  if (c.direct) {
    const int rs = 4 * L + G.sw * c.nv * L + 8;
    auto* zb = (float*)scratch(th, 0).get(sizeof(float) * ((size_t)rs * (2 * DW_R1 + 2)) + 64);
    std::fill(zb, zb + rs, 0.f);
    for (int it = i0; it < i1; it++) {
      const int p = it / c.nchunk, chunk = it % c.nchunk, ch = p % c.C;
      const int oy0 = chunk * c.rc, nrow = std::min(G.OH, oy0 + c.rc) - oy0;
      float* o = c.out + (size_t)p * G.OH * G.OW + (size_t)oy0 * G.OW;
      dw_direct_chunk(c, c.X + (size_t)p * G.H * G.W, ch, c.e->bias ? c.e->bias[ch] : 0.f, o, oy0, nrow, zb + L, zb + rs, rs);
    }
    return;
  }
  const size_t plane = (size_t)G.sw * c.Hs * c.Wq;
  auto* buf = (float*)scratch(th, 0).get(sizeof(float) * plane * (c.q8 ? 2 : 1) + 64);
  float* abuf = c.q8 ? buf + plane : nullptr;
  int nab = 1;
  if (c.q8) {
    const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
    nab = P.ablock ? (P.Kg + P.ablock - 1) / P.ablock : 1;
  }
  const size_t tmpn = ((size_t)G.sw * c.Wq + 2 * L + 15) & ~size_t(15);
  auto* tmp = (float*)scratch(th, 1).get(sizeof(float) * tmpn + sizeof(F) * 2 * nab * DW_NUQ + 64);
  F* scr = (F*)(tmp + tmpn);  // 64-byte aligned: tmpn is a multiple of 16 floats
  for (int it = i0; it < i1; it++) {
    const int p = it / c.nchunk, chunk = it % c.nchunk, ch = p % c.C;
    const int oy0 = chunk * c.rc, nrow = std::min(G.OH, oy0 + c.rc) - oy0;
    const int nrows = (nrow - 1) * G.sh + (G.kh - 1) * G.dh + 1;
    dw_fill(c, c.X + (size_t)p * G.H * G.W, oy0 * G.sh - G.pt, nrows, buf, abuf, tmp, it > i0 && c.nchunk == 1);
    float* o = c.out + (size_t)p * G.OH * G.OW + (size_t)oy0 * G.OW;
    const float bias = c.e->bias ? c.e->bias[ch] : 0.f;
    if (c.fast) dw_fast_chunk(c, *c.fast, buf, abuf, ch, bias, o, nrow);
    else if (c.q8) dw_q8_chunk(c, buf, abuf, ch, bias, o, nrow, scr);
    else {
      const PackF32Conv& P = *(const PackF32Conv*)c.P;
      dw_f32_chunk(c, buf, P.wraw.data() + (size_t)ch * P.Kg, bias, o, nrow);
    }
  }
}

static void dw_conv(const void* P, bool q8, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  DwCtx c{};
  c.G = &G; c.P = P; c.X = X; c.e = &e; c.out = out; c.q8 = q8; c.C = G.C;
  const int planes = batch * G.C, K = G.kh * G.kw;
  if (planes <= 0) return;
  c.nv = (G.OW + L - 1) / L;
  const int jmax = ((G.kw - 1) * G.dw) / G.sw;  // largest column shift of a tap in its phase plane
  c.Wq = (c.nv * L + jmax + L - 1) / L * L;
  // Rows per chunk: the buffer(s) near L1; more chunks when there are too few planes for the threads
  // (the direct path has no buffer, but splits the same way).
  const int halo = (G.kh - 1) * G.dh + 1;
  const size_t rowbytes = sizeof(float) * G.sw * c.Wq * (q8 ? 2 : 1);
  const int hs = std::max<int>(halo, (int)((24 * 1024) / rowbytes));
  c.rc = std::max(1, std::min(G.OH, (hs - halo) / G.sh + 1));
  const int th = pool_threads();
  if (th > 1 && planes * ((G.OH + c.rc - 1) / c.rc) < 4 * th) {
    int want = (4 * th + planes - 1) / planes;
    c.rc = std::max(1, std::min(c.rc, (G.OH + want - 1) / want));
  }
  c.nchunk = (G.OH + c.rc - 1) / c.rc;
  c.Hs = (c.rc - 1) * G.sh + halo;
  c.nitems = planes * c.nchunk;
  c.ipt = std::max(1, c.nitems / (16 * th));
  int toff_s[64];
  std::vector<int> toff_v;
  int* toff = toff_s;
  if (K > 64) { toff_v.resize(K); toff = toff_v.data(); }
  for (int ky = 0, k = 0; ky < G.kh; ky++)
    for (int kx = 0; kx < G.kw; kx++, k++) {
      const int px = kx * G.dw;
      toff[k] = ((px % G.sw) * c.Hs + ky * G.dh) * c.Wq + px / G.sw;
    }
  c.toff = toff;
  c.fast = dw_fast(G);
  if (q8) {
    const PackQ8Conv& P = *(const PackQ8Conv*)c.P;
    if (P.ncb != 1 || (P.ablock && P.ablock < P.Kg)) c.fast = nullptr;
  }
  c.xlen = (size_t)planes * G.H * G.W;
  // measured per layer: direct wins for stride 2, for int8, and for fp32 rows of up to 2 vectors;
  // wider fp32 stride-1 rows are 4-7% faster through the buffer's aligned loads
  c.direct = c.fast && dw_direct_ok(G) && (G.sw == 2 || q8 || c.nv <= 2);
  std::vector<unsigned> dmask;
  std::unique_ptr<bool[]> dsel;
  if (c.direct) {
    const int S = G.sw;
    dmask.resize(3 * (size_t)c.nv);
    dsel.reset(new bool[c.nv]);
    for (int v0 = 0; v0 < c.nv; v0++) {
      const int ox0 = v0 * L;
      dsel[v0] = !(S * ox0 - G.pl >= 0 && S * (ox0 + L - 1) + 2 - G.pl < G.W);
      for (int kx = 0; kx < 3; kx++) {
        const int c0 = S * ox0 + kx - G.pl;  // input column of lane 0; lane l: c0 + S*l
        const int lo = c0 >= 0 ? 0 : std::min(L, (-c0 + S - 1) / S);
        const int hi = G.W - c0 <= 0 ? 0 : std::min(L, (G.W - c0 + S - 1) / S);
        dmask[3 * v0 + kx] = hi <= lo ? 0u : (((hi >= 32 ? ~0u : (1u << hi) - 1)) & ~((1u << lo) - 1));
      }
    }
    c.dmask = dmask.data();
    c.dsel = dsel.get();
  }
  const int ntask = (c.nitems + c.ipt - 1) / c.ipt;
  run_tasks(ntask, dw_task, &c, (double)planes * G.OH * G.OW * K);
}
