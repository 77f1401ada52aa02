// Portable kernels: straight loops over the packed layouts, used when the CPU has no AVX2 (or when
// Q8_NATIVE_ISA=scalar). Same arithmetic as the contract: int32 dots per combined block, float32 scaling.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.h"

namespace q8 {
namespace {

inline float clampf(float v, const Epi& e) { return std::min(std::max(v, e.lo), e.hi); }

// Quantize x[0..n) per window of `block` (0 = all): q (int8) and one scale per window.
void quant_row(const float* x, int n, int block, int8_t* q, float* scales) {
  int b = block ? block : n;
  for (int k0 = 0, w = 0; k0 < n; k0 += b, w++) {
    int k1 = std::min(n, k0 + b);
    float amax = 0.f;
    for (int k = k0; k < k1; k++) amax = std::max(amax, std::fabs(x[k]));
    float inv = amax != 0.f ? 127.f / amax : 0.f;
    scales[w] = amax / 127.f;
    for (int k = k0; k < k1; k++) {
      float r = std::nearbyint(x[k] * inv);
      q[k] = (int8_t)std::min(127.f, std::max(-127.f, r));
    }
  }
}

void gemm_q8(const PackQ8Gemm& P, const float* A, int M, const Epi& e, float* out) {
  struct Ctx { const PackQ8Gemm* P; const float* A; const Epi* e; float* out; } c{&P, A, &e, out};
  parallel_for(M, [](void* vc, int m, int th) {
    auto& c = *(Ctx*)vc; const PackQ8Gemm& P = *c.P;
    int K = P.K, nab = P.ablock ? (K + P.ablock - 1) / P.ablock : 1;
    auto* q = (int8_t*)scratch(th, 0).get(K + 64);
    auto* sa = (float*)scratch(th, 1).get(sizeof(float) * (nab + 16));
    quant_row(c.A + (size_t)m * K, K, P.ablock, q, sa);
    for (int n = 0; n < P.N; n++) {
      int pn = n / kNR, col = n % kNR;
      const int8_t* wp = P.w.data() + (size_t)pn * P.K4 * kNR * 4;
      float acc = 0.f;
      for (int cb = 0; cb < P.ncb; cb++) {
        int k0 = cb * P.cblock, k1 = std::min(K, k0 + P.cblock);
        int32_t d = 0;
        for (int k = k0; k < k1; k++) d += (int32_t)q[k] * wp[((k >> 2) * kNR + col) * 4 + (k & 3)];
        float s = sa[P.ablock ? k0 / P.ablock : 0] * P.wscale[((size_t)pn * P.nwb + (P.wblock ? k0 / P.wblock : 0)) * kNR + col];
        acc += s * (float)d;
      }
      if (c.e->bias) acc += c.e->bias[n];
      c.out[(size_t)m * P.N + n] = clampf(acc, *c.e);
    }
  }, &c);
}

// Gathers the im2col patch of output pixel (oy, ox) for group g: K = Cg*kh*kw values.
void patch(const ConvGeom& G, const float* x, int Cg, int oy, int ox, float* col) {
  int k = 0;
  for (int c = 0; c < Cg; c++)
    for (int ky = 0; ky < G.kh; ky++)
      for (int kx = 0; kx < G.kw; kx++, k++) {
        int iy = oy * G.sh - G.pt + ky * G.dh, ix = ox * G.sw - G.pl + kx * G.dw;
        col[k] = (iy >= 0 && iy < G.H && ix >= 0 && ix < G.W) ? x[((size_t)c * G.H + iy) * G.W + ix] : 0.f;
      }
}

static void conv_q8_store(const PackQ8Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  struct Ctx { const PackQ8Conv* P; const ConvGeom* G; const float* X; const Epi* e; float* out; } c{&P, &G, X, &e, out};
  int P_ = G.OH * G.OW;
  parallel_for(batch * P.group * G.OH, [](void* vc, int t, int th) {
    auto& c = *(Ctx*)vc; const PackQ8Conv& P = *c.P; const ConvGeom& G = *c.G;
    int oy = t % G.OH, g = (t / G.OH) % P.group, b = t / (G.OH * P.group);
    int K = P.Kg, Cg = G.C / P.group, nab = P.ablock ? (K + P.ablock - 1) / P.ablock : 1;
    auto* col = (float*)scratch(th, 0).get(sizeof(float) * K);
    auto* q = (int8_t*)scratch(th, 1).get(K + 64);
    auto* sa = (float*)scratch(th, 2).get(sizeof(float) * (nab + 16));
    const float* x = c.X + ((size_t)b * G.C + (size_t)g * Cg) * G.H * G.W;
    for (int ox = 0; ox < G.OW; ox++) {
      patch(G, x, Cg, oy, ox, col);
      if (P.acttap) {
        // one window per tap: reorder the patch tap-major, windows of Cg values
        const int khw = P.khw;
        auto* col2 = (float*)scratch(th, 3).get(sizeof(float) * K);
        for (int ch = 0; ch < Cg; ch++)
          for (int t = 0; t < khw; t++) col2[t * Cg + ch] = col[ch * khw + t];
        auto* st = (float*)scratch(th, 2).get(sizeof(float) * (khw + 16));
        quant_row(col2, K, Cg, q, st);
        for (int nn = 0; nn < P.Mg; nn++) {
          int n = g * P.Mg + nn;
          const int8_t* w = P.wraw.data() + (size_t)n * K;
          float acc = 0.f;
          for (int t = 0; t < khw; t++) {
            int32_t d = 0;
            for (int ch = 0; ch < Cg; ch++) d += (int32_t)q[t * Cg + ch] * w[ch * khw + t];
            acc += st[t] * P.wsraw[n] * (float)d;
          }
          if (c.e->bias) acc += c.e->bias[n];
          c.out[((size_t)b * P.M + n) * G.OH * G.OW + (size_t)oy * G.OW + ox] = clampf(acc, *c.e);
        }
        continue;
      }
      quant_row(col, K, P.ablock, q, sa);
      for (int nn = 0; nn < P.Mg; nn++) {
        int n = g * P.Mg + nn;
        const int8_t* w = P.wraw.data() + (size_t)n * K;
        float acc = 0.f;
        for (int cb = 0; cb < P.ncb; cb++) {
          int k0 = cb * P.cblock, k1 = std::min(K, k0 + P.cblock);
          int32_t d = 0;
          for (int k = k0; k < k1; k++) d += (int32_t)q[k] * w[k];
          acc += sa[P.ablock ? k0 / P.ablock : 0] * P.wsraw[(size_t)n * P.nwb + (P.wblock ? k0 / P.wblock : 0)] * (float)d;
        }
        if (c.e->bias) acc += c.e->bias[n];
        c.out[((size_t)b * P.M + n) * G.OH * G.OW + (size_t)oy * G.OW + ox] = clampf(acc, *c.e);
      }
    }
  }, &c);
  (void)P_;
}

void gemm_f32(const PackF32Gemm& P, const float* A, int M, const Epi& e, float* out) {
  struct Ctx { const PackF32Gemm* P; const float* A; const Epi* e; float* out; } c{&P, A, &e, out};
  parallel_for(M, [](void* vc, int m, int) {
    auto& c = *(Ctx*)vc; const PackF32Gemm& P = *c.P;
    const float* a = c.A + (size_t)m * P.K;
    for (int n = 0; n < P.N; n++) {
      const float* wp = P.w.data() + (size_t)(n / kNR) * P.K * kNR + n % kNR;
      float acc = 0.f;
      for (int k = 0; k < P.K; k++) acc += a[k] * wp[(size_t)k * kNR];
      if (c.e->bias) acc += c.e->bias[n];
      c.out[(size_t)m * P.N + n] = clampf(acc, *c.e);
    }
  }, &c);
}

static void conv_f32_store(const PackF32Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  struct Ctx { const PackF32Conv* P; const ConvGeom* G; const float* X; const Epi* e; float* out; } c{&P, &G, X, &e, out};
  parallel_for(batch * P.group * G.OH, [](void* vc, int t, int th) {
    auto& c = *(Ctx*)vc; const PackF32Conv& P = *c.P; const ConvGeom& G = *c.G;
    int oy = t % G.OH, g = (t / G.OH) % P.group, b = t / (G.OH * P.group);
    int K = P.Kg, Cg = G.C / P.group;
    auto* col = (float*)scratch(th, 0).get(sizeof(float) * K);
    const float* x = c.X + ((size_t)b * G.C + (size_t)g * Cg) * G.H * G.W;
    for (int ox = 0; ox < G.OW; ox++) {
      patch(G, x, Cg, oy, ox, col);
      for (int nn = 0; nn < P.Mg; nn++) {
        int n = g * P.Mg + nn;
        const float* w = P.wraw.data() + (size_t)n * K;
        float acc = 0.f;
        for (int k = 0; k < K; k++) acc += col[k] * w[k];
        if (c.e->bias) acc += c.e->bias[n];
        c.out[((size_t)b * P.M + n) * G.OH * G.OW + (size_t)oy * G.OW + ox] = clampf(acc, *c.e);
      }
    }
  }, &c);
}

// Same rules as the reference: padded taps skipped, empty window 0, NaN anywhere gives NaN.
void maxpool_f32(const ConvGeom& G, int planes, const float* X, float* out) {
  struct Ctx { const ConvGeom* G; const float* X; float* out; } c{&G, X, out};
  parallel_for(planes, [](void* vc, int p, int) {
    auto& c = *(Ctx*)vc; const ConvGeom& G = *c.G;
    const float* x = c.X + (size_t)p * G.H * G.W;
    float* o = c.out + (size_t)p * G.OH * G.OW;
    for (int oy = 0; oy < G.OH; oy++) {
      int y0 = oy * G.sh - G.pt, ylo = std::max(0, -y0), yhi = std::min(G.kh, G.H - y0);
      for (int ox = 0; ox < G.OW; ox++) {
        int x0 = ox * G.sw - G.pl, xlo = std::max(0, -x0), xhi = std::min(G.kw, G.W - x0);
        float best = 0.f;
        bool any = false;
        for (int ky = ylo; ky < yhi; ky++)
          for (int kx = xlo; kx < xhi; kx++) {
            float v = x[(size_t)(y0 + ky) * G.W + x0 + kx];
            if (!any) { best = v; any = true; }
            else if ((v > best || v != v) && best == best) best = v;
          }
        o[(size_t)oy * G.OW + ox] = best;
      }
    }
  }, &c);
}

void binary_f32(int op, int act, const float* a, const int32_t* offa, int sa, const float* b,
                const int32_t* offb, int sb, int outer, int inner, float* out) {
  for (int o = 0; o < outer; o++) {
    const float* x = a + offa[o];
    const float* y = b + offb[o];
    float* r = out + (size_t)o * inner;
    for (int j = 0; j < inner; j++) {
      float u = x[(size_t)j * sa], w = y[(size_t)j * sb];
      float v = op == 0 ? u + w : op == 1 ? u - w : op == 2 ? u * w : u / w;
      r[j] = act && v < 0.f ? 0.f : v;
    }
  }
}

void softmax_f32(const float* x, int rows, int cols, float* out) {
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * cols;
    float* y = out + (size_t)r * cols;
    // exp and the sum in double, values stored as float32: the reference's steps
    float mx = -INFINITY;
    double sum = 0;
    for (int i = 0; i < cols; i++) mx = xr[i] > mx ? xr[i] : mx;
    for (int i = 0; i < cols; i++) {
      double e = std::exp((double)xr[i] - (double)mx);
      y[i] = (float)e;
      sum += e;
    }
    const double inv = 1.0 / sum;
    for (int i = 0; i < cols; i++) y[i] = (float)((double)y[i] * inv);
  }
}

void erf_f32(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; i++) out[i] = std::erf(x[i]);
}

void layernorm_f32(const float* x, int rows, int C, const float* gamma, const float* beta, float eps, float* out) {
  for (int r = 0; r < rows; r++) {
    const float* xr = x + (size_t)r * C;
    float* y = out + (size_t)r * C;
    double s = 0, s2 = 0;
    for (int i = 0; i < C; i++) s += xr[i];
    float mean = (float)(s / C);
    for (int i = 0; i < C; i++) { float d = xr[i] - mean; y[i] = d; s2 += d * d; }
    float sd = std::sqrt((float)(s2 / C) + eps);
    for (int i = 0; i < C; i++) y[i] = y[i] / sd * gamma[i] + beta[i];
  }
}

void gelu_f32(const float* x, size_t n, float div, float add, float mul, float* out) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i], d = v / div, e = std::erf(d), s = e + add, p = v * s;
    out[i] = p * mul;
  }
}

void relu_f32(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; i++) { float v = x[i]; out[i] = v > 0.f ? v : v == v ? 0.f : v; }
}

}  // namespace

// The residual (Epi::res) as a pass after the store.
void conv_q8(const PackQ8Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  with_residual(e, out, (size_t)batch * P.M * G.OH * G.OW, [&](const Epi& p) { conv_q8_store(P, G, batch, X, p, out); });
}
void conv_f32(const PackF32Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  with_residual(e, out, (size_t)batch * P.M * G.OH * G.OW, [&](const Epi& p) { conv_f32_store(P, G, batch, X, p, out); });
}

const Kernels kern_scalar = {"scalar", false, gemm_q8, conv_q8, gemm_f32, conv_f32, nullptr, nullptr, maxpool_f32, binary_f32, softmax_f32,
                             relu_f32, erf_f32, layernorm_f32, gelu_f32};

}  // namespace q8
