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
  int Hp, Wq, ph, C4, Wt, ppr, nsplit;
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

static void tap_conv_task(void* vc, int task, int th) {
  auto& c = *(TapCtx*)vc;
  const PackQ8Conv& P = *c.P;
  const ConvGeom& G = *c.G;
  int sp = task % c.nsplit;
  task /= c.nsplit;
  int bpc = (P.nblk + c.nsplit - 1) / c.nsplit, blk0 = sp * bpc, blk1 = std::min(P.nblk, blk0 + bpc);
  if (blk0 >= blk1) return;
  const int oy = task / c.ppr, ox0 = (task % c.ppr) * kPP, npix = std::min(kPP, G.OW - ox0);
  const int nv = (npix + L - 1) / L, C4 = c.C4, OHW = G.OH * G.OW;
  auto* panel = (uint8_t*)scratch(th, 1).get((size_t)P.K4 * kPP * 4 + 64);
  auto* sa = (float*)scratch(th, 2).get(sizeof(float) * (size_t)P.khw * kPP + 64);
  const size_t cstride = (size_t)c.ph * c.Wq * 4;
  for (int ky = 0, t = 0; ky < G.kh; ky++) {
    const int r = oy * G.sh + ky * G.dh;
    for (int kx = 0; kx < G.kw; kx++, t++) {
      const int X = kx * G.dw, p = X % c.ph, jo = ox0 + X / c.ph;
      const uint8_t* src = c.qb + (((size_t)r * C4 * c.ph + p) * c.Wq + jo) * 4;
      uint8_t* dst = panel + (size_t)t * C4 * kPP * 4;
      for (int c4 = 0; c4 < C4; c4++, src += cstride, dst += kPP * 4)
        for (int v = 0; v < nv; v++) V::istore(dst + v * L * 4, V::iload(src + v * L * 4));
      const float* ss = c.sb + ((size_t)r * c.ph + p) * c.Wq + jo;
      for (int v = 0; v < nv; v++) V::fstore(sa + (size_t)t * kPP + v * L, V::fload(ss + v * L));
    }
  }
  for (int blk = blk0; blk < blk1; blk++) {
    const int8_t* w = P.w.data() + (size_t)blk * P.K4 * kCB * 4;
    const int32_t* init = (V::kU8 ? P.init : P.zinit).data() + (size_t)blk * P.ncb * kCB;
    const float* ws = P.wscale.data() + (size_t)blk * P.nwb * kCB;
    int n0 = blk * kCB, nch = std::min(kCB, P.M - n0);
    const float* bias = c.e->bias ? c.e->bias + n0 : nullptr;
    float* o = c.out + (size_t)n0 * OHW + (size_t)oy * G.OW + ox0;
    for (int ci = 0; ci < kCB && ci < nch; ci += CMI)
      for (int v0 = 0; v0 < NVC && v0 * L < npix; v0 += CNV) {
        int n = std::min(CNV, (npix - v0 * L + L - 1) / L);
        if (n >= CNV) q8_conv_tile<CMI, CNV>(P, w, init, ws, ci, v0, panel, sa, bias, *c.e, o, OHW, nch, npix);
        else if (n == 2) q8_conv_tile<CMI, 2>(P, w, init, ws, ci, v0, panel, sa, bias, *c.e, o, OHW, nch, npix);
        else q8_conv_tile<CMI, 1>(P, w, init, ws, ci, v0, panel, sa, bias, *c.e, o, OHW, nch, npix);
      }
  }
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
  c.ppr = (G.OW + kPP - 1) / kPP;
  const int tasks = G.OH * c.ppr;
  c.nsplit = conv_split(tasks, P.nblk);
  static thread_local std::vector<uint8_t> qbuf;
  static thread_local std::vector<float> sbuf;
  qbuf.resize((size_t)c.Hp * c.C4 * c.ph * c.Wq * 4 + 64);
  sbuf.resize((size_t)c.Hp * c.ph * c.Wq + 16);
  c.qb = qbuf.data();
  c.sb = sbuf.data();
  const size_t OHW = (size_t)G.OH * G.OW;
  for (int b = 0; b < batch; b++) {
    c.x = X + (size_t)b * G.C * G.H * G.W;
    c.out = out + (size_t)b * P.M * OHW;
    run_tasks(c.Hp, tap_quant_row, &c, (double)G.C * G.H * G.W * 4);
    run_tasks(tasks * c.nsplit, tap_conv_task, &c, (double)OHW * P.M * P.Kg);
  }
}
