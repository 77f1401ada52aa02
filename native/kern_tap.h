// Int8 conv with one activation window per kernel tap (Q8Conv act_tap = 1; included by kern_impl.h).
//
// A tap window is the C values of one input pixel, so every input value has one scale whatever
// patch reads it: the image is quantized once (not once per patch, as patch windows need) into a
// zero-padded byte image, and a panel is only a copy of 4-byte groups. Layout of the byte image, per
// padded row r and 4-channel group c4: [ph][Wq][4] where ph = horizontal stride, phase p holds padded
// columns X = j*ph + p at position j, so the pixels of one tap under consecutive output columns are
// consecutive whatever the stride. The tile dequantizes per tap (one combined block per tap).
// Only group == 1 reaches here (the JS side sends grouped convs with tap windows to the reference).

struct TapCtx {
  const PackQ8Conv* P;
  const ConvGeom* G;
  const float* x;  // this image, NCHW
  const Epi* e;
  float* out;      // this image
  uint8_t* qb;     // [Hp][C4][ph][Wq][4]
  float* sb;       // [Hp][ph][Wq] window scales (amax/127)
  int Hp, Wq, ph, C4, Wt;
};

// Lanes at padded columns X = (j*L + l)*sw + p of a zero-padded row t.
static inline F tap_lanes(const float* t, int sw, int p, int j) {
  if (sw == 1) return V::fload(t + j * L + p);
  if (sw == 2) return V::even2(t + 2 * j * L + p);
  alignas(64) float tmp[L];
  for (int l = 0; l < L; l++) tmp[l] = t[(j * L + l) * sw + p];
  return V::fload(tmp);
}

static void tap_quant_row(void* vc, int r, int th) {
  auto& c = *(TapCtx*)vc;
  const ConvGeom& G = *c.G;
  const size_t rowq = (size_t)c.C4 * c.ph * c.Wq * 4;
  uint8_t* qrow = c.qb + (size_t)r * rowq;
  float* srow = c.sb + (size_t)r * c.ph * c.Wq;
  const int iy = r - G.pt, C = G.C;
  const I z = V::pack4(V::izero(), V::izero(), V::izero(), V::izero());
  if (iy < 0 || iy >= G.H) {
    for (size_t o = 0; o < rowq; o += L * 4) V::istore(qrow + o, z);
    std::fill(srow, srow + (size_t)c.ph * c.Wq, 0.f);
    return;
  }
  // Zero-padded copies of this row of every channel, and the max |x| over channels per column.
  auto* tmp = (float*)scratch(th, 0).get(sizeof(float) * (size_t)(C + 1) * c.Wt + 64);
  float* am = tmp + (size_t)C * c.Wt;
  for (int j = 0; j < c.Wt; j += L) V::fstore(am + j, V::fzero());
  for (int ch = 0; ch < C; ch++) {
    float* t = tmp + (size_t)ch * c.Wt;
    const float* src = c.x + ((size_t)ch * G.H + iy) * G.W;
    std::fill(t, t + G.pl, 0.f);
    std::copy(src, src + G.W, t + G.pl);
    std::fill(t + G.pl + G.W, t + c.Wt, 0.f);
    for (int j = 0; j < c.Wt; j += L) V::fstore(am + j, V::max(V::fload(am + j), V::abs(V::fload(t + j))));
  }
  for (int p = 0; p < c.ph; p++) {
    for (int j = 0; j * L < c.Wq; j++) {
      F amv = tap_lanes(am, c.ph, p, j);
      F inv = V::inv127(amv);
      float* s = srow + (size_t)p * c.Wq + j * L;
      V::fstore(s, amv);
      for (int l = 0; l < L; l++) s[l] /= 127.f;  // true division, as the reference
      for (int c4 = 0; c4 < c.C4; c4++) {
        I q[4];
        for (int u = 0; u < 4; u++) {
          int ch = c4 * 4 + u;
          q[u] = ch < C ? V::cvtr(V::mul(tap_lanes(tmp + (size_t)ch * c.Wt, c.ph, p, j), inv)) : V::izero();
        }
        V::istore(qrow + (((size_t)c4 * c.ph + p) * c.Wq + j * L) * 4, V::pack4(q[0], q[1], q[2], q[3]));
      }
    }
  }
}

// A panel is kPP consecutive output pixels (row-major, so it may span output rows, as in the
// patch path); each vector's lanes form runs of consecutive columns of one output row. A run's
// pixels are consecutive in the byte image too, so a vector is one plain load per run merged by
// lane masks (the buffers have slack, so loads never leave them).
struct TapRun { M mask; int qoff; int soff; };

static void tap_conv_task(void* vc, int task, int th) {
  auto& c = *(TapCtx*)vc;
  const PackQ8Conv& P = *c.P;
  const ConvGeom& G = *c.G;
  const int blk0 = 0, blk1 = P.nblk;
  const int OHW = G.OH * G.OW, p0 = task * kPP, npix = std::min(kPP, OHW - p0);
  const int nv = (npix + L - 1) / L, C4 = c.C4;
  auto* panel = (uint8_t*)scratch(th, 1).get((size_t)P.K4 * kPP * 4 + 64);
  auto* sa = (float*)scratch(th, 2).get(sizeof(float) * (size_t)P.khw * kPP + 64);
  // Runs of each vector, with offsets of lane 0 relative to a tap's base (bytes in qb, floats in sb).
  const size_t qrow = (size_t)C4 * c.ph * c.Wq * 4;  // bytes per padded row
  const size_t srow = (size_t)c.ph * c.Wq;
  auto* runs = (TapRun*)scratch(th, 3).get(sizeof(TapRun) * (size_t)NVC * (L + 1) + 64);
  int nrun[NVC];
  for (int v = 0; v < nv; v++) {
    nrun[v] = 0;
    for_each_run(G, p0, OHW, v, [&](int l, int n, int oy, int ox) {
      unsigned bits = (n >= 32 ? ~0u : ((1u << n) - 1)) << l;
      // lane l reads column ox of row oy*sh: lane 0 of the vector would be at ox - l
      runs[v * (L + 1) + nrun[v]++] = {V::bits(bits), (int)((size_t)oy * G.sh * qrow) + (ox - l) * 4,
                                       (int)((size_t)oy * G.sh * srow) + (ox - l)};
    });
  }
  const size_t cstride = (size_t)c.ph * c.Wq * 4;
  for (int ky = 0, t = 0; ky < G.kh; ky++) {
    for (int kx = 0; kx < G.kw; kx++, t++) {
      const int X = kx * G.dw, ph = X % c.ph, jo = X / c.ph;
      const uint8_t* base = c.qb + (size_t)ky * G.dh * qrow + ((size_t)ph * c.Wq + jo) * 4;
      const float* sbase = c.sb + (size_t)ky * G.dh * srow + (size_t)ph * c.Wq + jo;
      for (int v = 0; v < nv; v++) {
        const TapRun* rv = runs + v * (L + 1);
        F s = V::fzero();
        for (int k = 0; k < nrun[v]; k++) s = V::fmerge(s, rv[k].mask, V::fload(sbase + rv[k].soff));
        V::fstore(sa + (size_t)t * kPP + v * L, s);
        uint8_t* dst = panel + (size_t)t * C4 * kPP * 4 + v * L * 4;
        const uint8_t* src = base;
        if (nrun[v] == 1) {
          const int off = rv[0].qoff;
          for (int c4 = 0; c4 < C4; c4++, src += cstride, dst += kPP * 4)
            V::fstore((float*)dst, V::fload((const float*)(src + off)));  // bytes moved as floats: bit-exact
        } else {
          for (int c4 = 0; c4 < C4; c4++, src += cstride, dst += kPP * 4) {
            F r = V::fzero();
            for (int k = 0; k < nrun[v]; k++) r = V::fmerge(r, rv[k].mask, V::fload((const float*)(src + rv[k].qoff)));
            V::fstore((float*)dst, r);
          }
        }
      }
    }
  }
  q8_conv_blocks(P, 0, blk0, blk1, panel, sa, *c.e, c.out + p0, OHW, npix);
}

static void conv_q8_tap(const PackQ8Conv& P, const ConvGeom& G, int batch, const float* X, const Epi& e, float* out) {
  TapCtx c{};
  c.P = &P; c.G = &G; c.e = &e;
  c.ph = G.sw;
  c.C4 = P.Cg4 / 4;
  c.Hp = (G.OH - 1) * G.sh + (G.kh - 1) * G.dh + 1;
  const int jmax = (G.kw - 1) * G.dw / G.sw;  // furthest tap position past the output column
  c.Wq = (G.OW + L + jmax + 1 + L - 1) / L * L;
  c.Wt = (c.Wq * G.sw + 2 * L + L - 1) / L * L;
  const int tasks = (G.OH * G.OW + kPP - 1) / kPP;
  static thread_local std::vector<uint8_t> qbuf;
  static thread_local std::vector<float> sbuf;
  // Slack of one vector before and after: a run's lane-0 address can precede its row (merged away).
  qbuf.resize((size_t)c.Hp * c.C4 * c.ph * c.Wq * 4 + 2 * 4 * kPP + 64);
  sbuf.resize((size_t)c.Hp * c.ph * c.Wq + 2 * kPP + 16);
  c.qb = qbuf.data() + 4 * kPP;
  c.sb = sbuf.data() + kPP;
  const size_t OHW = (size_t)G.OH * G.OW;
  for (int b = 0; b < batch; b++) {
    c.x = X + (size_t)b * G.C * G.H * G.W;
    c.out = out + (size_t)b * P.M * OHW;
    run_tasks(c.Hp, tap_quant_row, &c, (double)G.C * G.H * G.W * 4);
    run_tasks(tasks, tap_conv_task, &c, (double)OHW * P.M * P.Kg);
  }
}
