// q8's WebAssembly SIMD128 kernels: the fallback for the hot paths (fp32 GEMM/Conv, int8 Q8Gemm/Q8Conv)
// where the native addon is unavailable. Freestanding C (no libc): a small allocator over linear memory,
// everything else is loops over wasm_simd128.h intrinsics. Built by wasm/build.mjs with clang + wasm-ld.
//
// One micro-kernel shape serves GEMM and Conv: out[i, j] for MR rows i of a row-major "A" operand and
// one panel of 8 columns j of a packed "B" operand; lanes run over columns, A values are broadcast.
//  - GEMM: A = the activations [M, K], B = the weights packed at load, out row-major [M, N].
//  - Conv: A = the weights [M, Kg], B = im2col panels of 8 output pixels built per call, so each output
//    channel's row comes out contiguous (NCHW) with no transpose.
// i32x4.dot_i16x8_s multiplies pairs of consecutive k, so a B panel stores, per pair of k, the int8 values
// [c0k0 c0k1 c1k0 c1k1 c2k0 c2k1 c3k0 c3k1][c4.. c7..] (sign-extended to int16 by the load itself,
// v128.load8x8_s), and A rows are held as int16 so a pair is broadcast as one i32.
// The int8 arithmetic follows notes/quant-contract.md exactly (quantized integers and the float32 order of
// the block sums are those of src/quant/kernels.ts).
#include <wasm_simd128.h>

typedef __SIZE_TYPE__ size_t;
typedef short i16;
typedef signed char i8;

#define EXPORT(name) __attribute__((export_name(#name)))
#define INLINE static inline __attribute__((always_inline))
#ifndef MR
#define MR 4
#endif
#define NR 8

// ------------------------------------------------------------------------------------------ allocator
// First fit over an address-ordered free list with coalescing; a free block at the top of the heap is
// returned to the bump region. Blocks carry a 16-byte header so payloads stay 16-byte aligned.
extern unsigned char __heap_base;
typedef struct Blk { size_t size; struct Blk* next; size_t pad[2]; } Blk;
static Blk* free_list;
static size_t heap_top;

EXPORT(q8_malloc) void* q8_malloc(size_t n) {
  if (!heap_top) heap_top = ((size_t)&__heap_base + 15) & ~(size_t)15;
  if (n > 0xF0000000u) return 0;
  size_t need = ((n + 15) & ~(size_t)15) + sizeof(Blk);
  for (Blk **pp = &free_list, *b = free_list; b; pp = &b->next, b = b->next) {
    if (b->size < need) continue;
    if (b->size - need >= 64) {
      Blk* rest = (Blk*)((char*)b + need);
      rest->size = b->size - need;
      rest->next = b->next;
      *pp = rest;
      b->size = need;
    } else {
      *pp = b->next;
    }
    return (char*)b + sizeof(Blk);
  }
  size_t end = heap_top + need;
  if (end < heap_top) return 0;
  size_t have = __builtin_wasm_memory_size(0) * 65536;
  if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (size_t)-1) return 0;
  Blk* b = (Blk*)heap_top;
  b->size = need;
  heap_top = end;
  return (char*)b + sizeof(Blk);
}

EXPORT(q8_free) void q8_free(void* p) {
  if (!p) return;
  Blk* b = (Blk*)((char*)p - sizeof(Blk));
  Blk **pp = &free_list, *prev = 0, **prevp = 0;
  while (*pp && *pp < b) { prevp = pp; prev = *pp; pp = &(*pp)->next; }
  b->next = *pp;
  *pp = b;
  if (b->next && (char*)b + b->size == (char*)b->next) { b->size += b->next->size; b->next = b->next->next; }
  Blk** bp = pp;
  if (prev && (char*)prev + prev->size == (char*)b) { prev->size += b->size; prev->next = b->next; b = prev; bp = prevp; }
  if (!b->next && (char*)b + b->size == (char*)heap_top) { heap_top = (size_t)b; *bp = 0; }
}

// Grow-only scratch buffers for per-call temporaries.
static void* scratch_buf[4];
static size_t scratch_len[4];
static void* scratch(int slot, size_t bytes) {
  if (scratch_len[slot] < bytes) {
    q8_free(scratch_buf[slot]);
    scratch_buf[slot] = q8_malloc(bytes + bytes / 4);
    scratch_len[slot] = scratch_buf[slot] ? bytes + bytes / 4 : 0;
  }
  return scratch_buf[slot];
}

static void zero_bytes(void* p, size_t n) {
  char* c = (char*)p;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) wasm_v128_store(c + i, wasm_i32x4_splat(0));
  for (; i < n; i++) c[i] = 0;
}
INLINE int imin(int a, int b) { return a < b ? a : b; }
INLINE int imax(int a, int b) { return a > b ? a : b; }

// ------------------------------------------------------------------------------------------ epilogue
// Store: v = res (+ bias[row] or bias[col]), then Relu (v < 0 ? 0 : v) or Clip (v < lo ? lo : v > hi ? hi : v),
// the reference's comparisons (NaN passes through, lo wins over hi).
typedef struct { const float* bias; int bias_rows; int act; float lo, hi; } Epi;

INLINE v128_t act4(v128_t v, const Epi* e) {
  if (e->act == 1) return wasm_f32x4_pmax(v, wasm_f32x4_splat(0.f));
  if (e->act == 2) {
    v128_t lo = wasm_f32x4_splat(e->lo);
    v128_t t = wasm_f32x4_pmin(v, wasm_f32x4_splat(e->hi));
    return wasm_v128_bitselect(lo, t, wasm_f32x4_lt(v, lo));
  }
  return v;
}
INLINE float act1(float v, const Epi* e) {
  if (e->act == 1) return v < 0.f ? 0.f : v;
  if (e->act == 2) return v < e->lo ? e->lo : v > e->hi ? e->hi : v;
  return v;
}

// res[i][0..1] hold columns 0..7 of row i; rows row0.., columns col0.. of C (leading dim ldc).
INLINE void store_tile(int mr, int nc, v128_t res[MR][2], float* C, int ldc, int row0, int col0, const Epi* e) {
  for (int i = 0; i < mr; i++) {
    v128_t v0 = res[i][0], v1 = res[i][1];
    if (e->bias) {
      if (e->bias_rows) {
        v128_t b = wasm_f32x4_splat(e->bias[row0 + i]);
        v0 = wasm_f32x4_add(v0, b);
        v1 = wasm_f32x4_add(v1, b);
      } else if (nc == NR) {
        v0 = wasm_f32x4_add(v0, wasm_v128_load(e->bias + col0));
        v1 = wasm_f32x4_add(v1, wasm_v128_load(e->bias + col0 + 4));
      }
    }
    float* c = C + (size_t)(row0 + i) * ldc + col0;
    if (nc == NR) {
      wasm_v128_store(c, act4(v0, e));
      wasm_v128_store(c + 4, act4(v1, e));
    } else {
      float t[8];
      wasm_v128_store(t, v0);
      wasm_v128_store(t + 4, v1);
      for (int j = 0; j < nc; j++) {
        float v = t[j];
        if (e->bias && !e->bias_rows) v += e->bias[col0 + j];
        c[j] = act1(v, e);
      }
    }
  }
}

// ------------------------------------------------------------------------------------------ fp32 tiles
INLINE void tile_f32(const int mr, const float* A, int lda, const float* Bp, int K, v128_t res[MR][2]) {
  v128_t c[MR][2];
  for (int i = 0; i < mr; i++) c[i][0] = c[i][1] = wasm_f32x4_splat(0.f);
  for (int k = 0; k < K; k++) {
    v128_t b0 = wasm_v128_load(Bp + NR * k), b1 = wasm_v128_load(Bp + NR * k + 4);
    for (int i = 0; i < mr; i++) {
      v128_t a = wasm_v128_load32_splat(A + (size_t)i * lda + k);
      c[i][0] = wasm_f32x4_add(c[i][0], wasm_f32x4_mul(a, b0));
      c[i][1] = wasm_f32x4_add(c[i][1], wasm_f32x4_mul(a, b1));
    }
  }
  for (int i = 0; i < mr; i++) { res[i][0] = c[i][0]; res[i][1] = c[i][1]; }
}

static void run_tile_f32(int mr, int nc, const float* A, int lda, const float* Bp, int K,
                         float* C, int ldc, int row0, int col0, const Epi* e) {
  v128_t res[MR][2];
  switch (mr) {
#if MR >= 6
    case 6: tile_f32(6, A, lda, Bp, K, res); break;
#endif
#if MR >= 5
    case 5: tile_f32(5, A, lda, Bp, K, res); break;
#endif
    case 4: tile_f32(4, A, lda, Bp, K, res); break;
    case 3: tile_f32(3, A, lda, Bp, K, res); break;
    case 2: tile_f32(2, A, lda, Bp, K, res); break;
    default: tile_f32(1, A, lda, Bp, K, res); break;
  }
  store_tile(mr, nc, res, C, ldc, row0, col0, e);
}

// ------------------------------------------------------------------------------------------ int8 tiles
// Block sums: for each combined block, out += fround(fround(sr*sc) * dot). A block dot below 1041
// products of |v| <= 127 stays under 2^24, so its float32 conversion is exact; longer blocks go through
// float64 like the reference's double sum.
INLINE void tile_q8(const int mr, const i16* A, int lda, const i8* Bp, int K, int cb,
                    const float* rs, int nbr, int br, const float* cs, int bc, v128_t res[MR][2]) {
  for (int i = 0; i < mr; i++) res[i][0] = res[i][1] = wasm_f32x4_splat(0.f);
  for (int k0 = 0; k0 < K; k0 += cb) {
    int len = imin(cb, K - k0);
    int kp0 = k0 >> 1, kp1 = (k0 + len + 1) >> 1;
    v128_t c[MR][2];
    for (int i = 0; i < mr; i++) c[i][0] = c[i][1] = wasm_i32x4_splat(0);
    const i8* b = Bp + (size_t)kp0 * 16;
    for (int kp = kp0; kp < kp1; kp++, b += 16) {
      v128_t b0 = wasm_i16x8_load8x8(b), b1 = wasm_i16x8_load8x8(b + 8);
      for (int i = 0; i < mr; i++) {
        v128_t a = wasm_v128_load32_splat(A + (size_t)i * lda + 2 * kp);
        c[i][0] = wasm_i32x4_add(c[i][0], wasm_i32x4_dot_i16x8(a, b0));
        c[i][1] = wasm_i32x4_add(c[i][1], wasm_i32x4_dot_i16x8(a, b1));
      }
    }
    const float* s = cs + (size_t)(k0 / bc) * NR;
    v128_t s0 = wasm_v128_load(s), s1 = wasm_v128_load(s + 4);
    int ir = k0 / br;
    for (int i = 0; i < mr; i++) {
      v128_t r = wasm_f32x4_splat(rs[(size_t)i * nbr + ir]);
      v128_t t0 = wasm_f32x4_mul(r, s0), t1 = wasm_f32x4_mul(r, s1);
      if (len <= 1040) {
        res[i][0] = wasm_f32x4_add(res[i][0], wasm_f32x4_mul(t0, wasm_f32x4_convert_i32x4(c[i][0])));
        res[i][1] = wasm_f32x4_add(res[i][1], wasm_f32x4_mul(t1, wasm_f32x4_convert_i32x4(c[i][1])));
      } else {
        for (int h = 0; h < 2; h++) {
          v128_t t = h ? t1 : t0, d = c[i][h];
          v128_t lo = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(t), wasm_f64x2_convert_low_i32x4(d));
          v128_t hi = wasm_f64x2_mul(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(t, t, 2, 3, 0, 1)),
                                     wasm_f64x2_convert_low_i32x4(wasm_i32x4_shuffle(d, d, 2, 3, 0, 1)));
          v128_t p = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
          res[i][h] = wasm_f32x4_add(res[i][h], p);
        }
      }
    }
  }
}

static void run_tile_q8(int mr, int nc, const i16* A, int lda, const i8* Bp, int K, int cb,
                        const float* rs, int nbr, int br, const float* cs, int bc,
                        float* C, int ldc, int row0, int col0, const Epi* e) {
  v128_t res[MR][2];
  switch (mr) {
#if MR >= 6
    case 6: tile_q8(6, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
#endif
#if MR >= 5
    case 5: tile_q8(5, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
#endif
    case 4: tile_q8(4, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
    case 3: tile_q8(3, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
    case 2: tile_q8(2, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
    default: tile_q8(1, A, lda, Bp, K, cb, rs, nbr, br, cs, bc, res); break;
  }
  store_tile(mr, nc, res, C, ldc, row0, col0, e);
}

// ------------------------------------------------------------------------------------------ quantization
// The contract's scale: amax / 127 in float32, stepped down while scale * 127 overflows (as the reference).
static float scale_of(float amax) {
  float sc = amax / 127.f;
  while (sc * 127.f == __builtin_inff()) sc = sc - sc * 0x1p-23f;
  return sc;
}

// q = clamp(roundHalfEven(x * inv), -127, 127) for 4 lanes; NaN becomes 0 (trunc_sat), as in the reference.
INLINE v128_t quant4(v128_t x, v128_t inv) {
  v128_t r = wasm_f32x4_nearest(wasm_f32x4_mul(x, inv));
  r = wasm_f32x4_pmin(wasm_f32x4_pmax(r, wasm_f32x4_splat(-127.f)), wasm_f32x4_splat(127.f));
  return wasm_i32x4_trunc_sat_f32x4(r);
}

INLINE v128_t inv_of(v128_t amax) {
  v128_t inv = wasm_f32x4_div(wasm_f32x4_splat(127.f), amax);
  return wasm_v128_andnot(inv, wasm_f32x4_eq(amax, wasm_f32x4_splat(0.f)));
}

// Rows of A [rows, K] (stride K) into int16 rows q[r*lda + k] (zero padded to lda) and scales [rows, nb].
static void quant_rows(const float* A, int K, int rows, int block, i16* q, int lda, float* sa, int nb) {
  int B = block ? block : K;
  for (int r = 0; r < rows; r++) {
    const float* x = A + (size_t)r * K;
    i16* qr = q + (size_t)r * lda;
    for (int w = 0, k0 = 0; k0 < K; w++, k0 += B) {
      int k1 = imin(K, k0 + B), k = k0;
      v128_t m0 = wasm_f32x4_splat(0.f), m1 = m0;
      for (; k + 8 <= k1; k += 8) {
        m0 = wasm_f32x4_pmax(m0, wasm_f32x4_abs(wasm_v128_load(x + k)));
        m1 = wasm_f32x4_pmax(m1, wasm_f32x4_abs(wasm_v128_load(x + k + 4)));
      }
      float t[8];
      wasm_v128_store(t, m0);
      wasm_v128_store(t + 4, m1);
      float amax = 0.f;
      for (int j = 0; j < 8; j++) if (t[j] > amax) amax = t[j];
      for (; k < k1; k++) { float a = __builtin_fabsf(x[k]); if (a > amax) amax = a; }
      sa[(size_t)r * nb + w] = amax == 0.f ? 0.f : scale_of(amax);
      v128_t inv = inv_of(wasm_f32x4_splat(amax));
      for (k = k0; k + 8 <= k1; k += 8) {
        v128_t q0 = quant4(wasm_v128_load(x + k), inv), q1 = quant4(wasm_v128_load(x + k + 4), inv);
        wasm_v128_store(qr + k, wasm_i16x8_narrow_i32x4(q0, q1));
      }
      for (; k < k1; k++) qr[k] = (i16)wasm_i32x4_extract_lane(quant4(wasm_f32x4_splat(x[k]), inv), 0);
    }
    for (int k = K; k < lda; k++) qr[k] = 0;
  }
}

// ------------------------------------------------------------------------------------------ packs
// Packs live in wasm memory for the life of a compiled node; the header is followed by the data.
typedef struct {
  int kind;         // 1 fp32 GEMM, 2 fp32 conv, 3 int8 GEMM, 4 int8 conv
  int N, K, group;  // GEMM: N outputs, K. Conv: N = M output channels, K = Kg
  int wb;           // int8: weight block (0 = channel)
  int nbw;          // int8: weight blocks per output
  void* data;       // fp32 GEMM: panels [N/8][K][8]; fp32 conv: W [M][Kg]; int8 GEMM: panels
                    // [N/8][Kp/2][16] int8; int8 conv: rows [M][Kp] int16
  float* scales;    // int8 GEMM: [N/8][nbw][8]; int8 conv: [M][nbw]
} Pack;

static int panels(int n) { return (n + NR - 1) / NR; }

static Pack* new_pack(int kind, int N, int K, int group, int wb, size_t data_bytes, size_t scale_bytes) {
  Pack* p = (Pack*)q8_malloc(sizeof(Pack) + 16 + data_bytes + scale_bytes);
  if (!p) return 0;
  p->kind = kind; p->N = N; p->K = K; p->group = group; p->wb = wb;
  p->nbw = wb ? (K + wb - 1) / wb : 1;
  p->data = (void*)(((size_t)(p + 1) + 15) & ~(size_t)15);
  p->scales = (float*)((char*)p->data + data_bytes);
  zero_bytes(p->data, data_bytes + scale_bytes);
  return p;
}

EXPORT(q8_pack_free) void q8_pack_free(Pack* p) { q8_free(p); }

// W [N, K] (out = A·Wᵀ).
EXPORT(q8_pack_f32) Pack* q8_pack_f32(const float* W, int N, int K) {
  Pack* p = new_pack(1, N, K, 1, 0, (size_t)panels(N) * K * NR * 4, 0);
  if (!p) return 0;
  float* d = (float*)p->data;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) d[((size_t)(n / NR) * K + k) * NR + n % NR] = W[(size_t)n * K + k];
  return p;
}

// W [M, Kg] in ONNX order.
EXPORT(q8_pack_conv_f32) Pack* q8_pack_conv_f32(const float* W, int M, int Kg, int group) {
  Pack* p = new_pack(2, M, Kg, group, 0, (size_t)M * Kg * 4, 0);
  if (!p) return 0;
  float* d = (float*)p->data;
  for (size_t i = 0; i < (size_t)M * Kg; i++) d[i] = W[i];
  return p;
}

// Wq [N, K] int8, Ws [N, nbw].
EXPORT(q8_pack_i8) Pack* q8_pack_i8(const i8* Wq, const float* Ws, int N, int K, int wb) {
  int nbw = wb ? (K + wb - 1) / wb : 1, Kh = (K + 1) / 2;
  Pack* p = new_pack(3, N, K, 1, wb, (size_t)panels(N) * Kh * 16, (size_t)panels(N) * nbw * NR * 4);
  if (!p) return 0;
  i8* d = (i8*)p->data;
  for (int n = 0; n < N; n++) {
    int pn = n / NR, c = n % NR;
    i8* panel = d + (size_t)pn * Kh * 16;
    for (int k = 0; k < K; k++) panel[(size_t)(k >> 1) * 16 + (c >> 2) * 8 + (c & 3) * 2 + (k & 1)] = Wq[(size_t)n * K + k];
    for (int b = 0; b < nbw; b++) p->scales[((size_t)pn * nbw + b) * NR + c] = Ws[(size_t)n * nbw + b];
  }
  return p;
}

// Wq [M, Kg] int8 (ONNX order), Ws [M, nbw]: int16 rows padded to even K.
EXPORT(q8_pack_conv_i8) Pack* q8_pack_conv_i8(const i8* Wq, const float* Ws, int M, int Kg, int group, int wb) {
  int nbw = wb ? (Kg + wb - 1) / wb : 1, Kp = (Kg + 1) & ~1;
  Pack* p = new_pack(4, M, Kg, group, wb, (size_t)M * Kp * 2, (size_t)M * nbw * 4);
  if (!p) return 0;
  i16* d = (i16*)p->data;
  for (int m = 0; m < M; m++) {
    for (int k = 0; k < Kg; k++) d[(size_t)m * Kp + k] = Wq[(size_t)m * Kg + k];
    for (int b = 0; b < nbw; b++) p->scales[(size_t)m * nbw + b] = Ws[(size_t)m * nbw + b];
  }
  return p;
}

// ------------------------------------------------------------------------------------------ GEMM drivers
// Row blocks of A sized for the cache; inside one, each weight panel stays in L1 across the row tiles.
static int row_block(int K, int elem) {
  int rb = (128 * 1024) / (K * elem + 1);
  rb = rb / MR * MR;
  return rb < MR ? MR : rb;
}

EXPORT(q8_gemm_f32) int q8_gemm_f32(const float* A, int M, int K, const Pack* p, const float* bias,
                                     int act, float lo, float hi, float* out) {
  int N = p->N, np = panels(N);
  Epi e = { bias, 0, act, lo, hi };
  int rb = row_block(K, 4);
  for (int r0 = 0; r0 < M; r0 += rb) {
    int r1 = imin(M, r0 + rb);
    for (int pn = 0; pn < np; pn++) {
      const float* Bp = (const float*)p->data + (size_t)pn * K * NR;
      int nc = imin(NR, N - pn * NR);
      for (int i = r0; i < r1; i += MR)
        run_tile_f32(imin(MR, r1 - i), nc, A + (size_t)i * K, K, Bp, K, out, N, i, pn * NR, &e);
    }
  }
  return 0;
}

static int combined_block(int K, int a, int b) {
  int c = K;
  if (a && a < c) c = a;
  if (b && b < c) c = b;
  return c;
}

EXPORT(q8_gemm_q8) int q8_gemm_q8(const float* A, int M, int K, const Pack* p, int ab, const float* bias,
                                   int act, float lo, float hi, float* out) {
  int N = p->N, np = panels(N), Kp = (K + 1) & ~1;
  int nba = ab ? (K + ab - 1) / ab : 1;
  int cb = combined_block(K, ab, p->wb);
  Epi e = { bias, 0, act, lo, hi };
  int rb = imin(row_block(Kp, 2), (M + MR - 1) / MR * MR);
  i16* q = (i16*)scratch(0, (size_t)rb * Kp * 2);
  float* sa = (float*)scratch(1, (size_t)rb * nba * 4);
  if (!q || !sa) return -1;
  for (int r0 = 0; r0 < M; r0 += rb) {
    int r1 = imin(M, r0 + rb);
    quant_rows(A + (size_t)r0 * K, K, r1 - r0, ab, q, Kp, sa, nba);
    for (int pn = 0; pn < np; pn++) {
      const i8* Bp = (const i8*)p->data + (size_t)pn * (Kp / 2) * 16;
      const float* cs = p->scales + (size_t)pn * p->nbw * NR;
      int nc = imin(NR, N - pn * NR);
      for (int i = r0; i < r1; i += MR)
        run_tile_q8(imin(MR, r1 - i), nc, q + (size_t)(i - r0) * Kp, Kp, Bp, K, cb,
                    sa + (size_t)(i - r0) * nba, nba, ab ? ab : K, cs, p->wb ? p->wb : K, out, N, i, pn * NR, &e);
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------ Conv
// geometry: [batch, C, H, W, kh, kw, sh, sw, dh, dw, padTop, padLeft, OH, OW] (1-D: H = kh = 1).
typedef struct { int B, C, H, W, kh, kw, sh, sw, dh, dw, pt, pl, OH, OW; } Geo;

// im2col for pixels p0..p0+8 of one group (x points at its first channel): panel[k*8 + j], zeros for
// padding and for pixels past P. The 8 source offsets of each kernel tap are worked out once per panel
// (they do not depend on the channel): a tap whose 8 pixels are consecutive inside the input is two
// vector loads per channel, one inside but scattered is 8 plain loads, one touching padding checks each.
// tap != 0: K in tap-major order (k = tap*Cg + c) for one activation window per tap.
static void im2col_panel(const float* x, const Geo* g, int Cg, int p0, int P, float* panel, int tap) {
  int khw = g->kh * g->kw;
  int* off = (int*)scratch(3, (size_t)khw * (NR + 1) * 4);
  int* mode = off + (size_t)khw * NR;
  int oy[NR], ox[NR];
  for (int j = 0; j < NR; j++) { int p = p0 + j; oy[j] = p < P ? p / g->OW : -1; ox[j] = p < P ? p % g->OW : 0; }
  for (int ky = 0, t = 0; ky < g->kh; ky++) {
    for (int kx = 0; kx < g->kw; kx++, t++) {
      int inside = 0, consecutive = 1;
      for (int j = 0; j < NR; j++) {
        int iy = oy[j] * g->sh - g->pt + ky * g->dh, ix = ox[j] * g->sw - g->pl + kx * g->dw;
        int ok = oy[j] >= 0 && iy >= 0 && iy < g->H && ix >= 0 && ix < g->W;
        off[t * NR + j] = ok ? iy * g->W + ix : -1;
        inside += ok;
        if (j && off[t * NR + j] != off[t * NR] + j) consecutive = 0;
      }
      mode[t] = inside == NR ? (consecutive ? 0 : 1) : inside == 0 ? 3 : 2;
    }
  }
  size_t plane = (size_t)g->H * g->W;
  for (int c = 0; c < Cg; c++) {
    const float* xc = x + c * plane;
    for (int t = 0; t < khw; t++) {
      float* d = panel + (size_t)(tap ? t * Cg + c : c * khw + t) * NR;
      const int* o = off + t * NR;
      switch (mode[t]) {
        case 0:
          wasm_v128_store(d, wasm_v128_load(xc + o[0]));
          wasm_v128_store(d + 4, wasm_v128_load(xc + o[0] + 4));
          break;
        case 1:
          for (int j = 0; j < NR; j++) d[j] = xc[o[j]];
          break;
        case 2:
          for (int j = 0; j < NR; j++) d[j] = o[j] >= 0 ? xc[o[j]] : 0.f;
          break;
        default:
          wasm_v128_store(d, wasm_f32x4_splat(0.f));
          wasm_v128_store(d + 4, wasm_f32x4_splat(0.f));
      }
    }
  }
}

// Pixels per tile: enough panels to amortise the weight rows, few enough to stay in L2.
static int pixel_tile(int K, int elem) {
  int pt = (192 * 1024) / (K * elem + 1);
  pt = pt / NR * NR;
  return pt < NR ? NR : pt > 512 ? 512 : pt;
}

// Depthwise (one input channel per group): a direct loop over output rows, 4 output columns per vector
// where the whole window row lies inside the input (stride 1 or 2), scalar with bounds at the edges.
// im2col + GEMM would waste the vector width on a 1-row A operand.
static void depthwise_f32(const float* X, const Geo* g, const float* Wt, int M, const float* bias, const Epi* e, float* out) {
  int Mg = M / g->C, khw = g->kh * g->kw;
  int OH = g->OH, OW = g->OW, H = g->H, W = g->W, sw = g->sw, dw = g->dw;
  int span = (g->kw - 1) * dw;
  // Columns whose window lies inside [0, W): ox*sw - pl >= 0 and ox*sw - pl + span < W.
  int lo = (g->pl + sw - 1) / sw;
  int hi = W - 1 - span + g->pl < 0 ? 0 : (W - 1 - span + g->pl) / sw + 1;
  lo = imin(lo, OW);
  hi = imax(lo, imin(hi, OW));
  int vec = sw == 1 || sw == 2;
  for (int n = 0; n < g->B; n++) {
    for (int m = 0; m < M; m++) {
      const float* x = X + ((size_t)n * g->C + m / Mg) * H * W;
      const float* w = Wt + (size_t)m * khw;
      float* y = out + ((size_t)n * M + m) * OH * OW;
      float b = bias ? bias[m] : 0.f;
      for (int oy = 0; oy < OH; oy++) {
        int iy0 = oy * g->sh - g->pt;
        float* yr = y + (size_t)oy * OW;
        int ox = 0;
        for (;;) {
          int end = ox < lo ? lo : ox < hi ? hi : OW;
          if (ox >= lo && ox < hi && vec) {
            for (; ox + 4 <= hi; ox += 4) {
              v128_t acc = wasm_f32x4_splat(0.f);
              for (int ky = 0; ky < g->kh; ky++) {
                int iy = iy0 + ky * g->dh;
                if (iy < 0 || iy >= H) continue;
                const float* r = x + (size_t)iy * W + ox * sw - g->pl;
                for (int kx = 0; kx < g->kw; kx++) {
                  v128_t v;
                  if (sw == 1) v = wasm_v128_load(r + kx * dw);
                  else {
                    // Stride 2: window offsets 0, 2, 4, 6, all inside because column ox+3 is.
                    const float* q = r + kx * dw;
                    v = wasm_i32x4_shuffle(wasm_v128_load(q), wasm_v128_load32_splat(q + 4), 0, 2, 4, 4);
                    v = wasm_f32x4_replace_lane(v, 3, q[6]);
                  }
                  acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_splat(w[ky * g->kw + kx]), v));
                }
              }
              v128_t v = wasm_f32x4_add(acc, wasm_f32x4_splat(b));
              wasm_v128_store(yr + ox, act4(v, e));
            }
          }
          for (; ox < end; ox++) {
            int ix0 = ox * sw - g->pl;
            float acc = 0.f;
            for (int ky = 0; ky < g->kh; ky++) {
              int iy = iy0 + ky * g->dh;
              if (iy < 0 || iy >= H) continue;
              for (int kx = 0; kx < g->kw; kx++) {
                int ix = ix0 + kx * dw;
                if (ix >= 0 && ix < W) acc += w[ky * g->kw + kx] * x[(size_t)iy * W + ix];
              }
            }
            yr[ox] = act1(acc + b, e);
          }
          if (ox >= OW) break;
        }
      }
    }
  }
}

EXPORT(q8_conv_f32) int q8_conv_f32(const float* X, const int* geo, const Pack* p, const float* bias,
                                     int act, float lo, float hi, float* out) {
  const Geo* g = (const Geo*)geo;
  int M = p->N, Kg = p->K, group = p->group, Mg = M / group, Cg = g->C / group;
  int P = g->OH * g->OW;
  int pt = pixel_tile(Kg, 4);
  float* panelsb = (float*)scratch(2, (size_t)pt * Kg * 4);
  if (!panelsb || !scratch(3, (size_t)g->kh * g->kw * (NR + 1) * 4)) return -1;
  Epi e = { bias, 1, act, lo, hi };
  if (Cg == 1 && group > 1) { depthwise_f32(X, g, (const float*)p->data, M, bias, &e, out); return 0; }
  for (int n = 0; n < g->B; n++) {
    for (int gi = 0; gi < group; gi++) {
      const float* x = X + ((size_t)n * g->C + (size_t)gi * Cg) * g->H * g->W;
      float* y = out + ((size_t)n * M + (size_t)gi * Mg) * P;
      const float* W = (const float*)p->data + (size_t)gi * Mg * Kg;
      for (int p0 = 0; p0 < P; p0 += pt) {
        int pc = imin(pt, P - p0), npn = panels(pc);
        for (int j = 0; j < npn; j++) im2col_panel(x, g, Cg, p0 + j * NR, P, panelsb + (size_t)j * Kg * NR, 0);
        for (int m = 0; m < Mg; m += MR) {
          int mr = imin(MR, Mg - m);
          Epi em = e;
          if (bias) em.bias = bias + gi * Mg;
          for (int j = 0; j < npn; j++)
            run_tile_f32(mr, imin(NR, pc - j * NR), W + (size_t)m * Kg, Kg, panelsb + (size_t)j * Kg * NR, Kg,
                         y, P, m, p0 + j * NR, &em);
        }
      }
    }
  }
  return 0;
}

// Quantize a float panel [K][8] per pixel and act window into the int8 pair layout, scales [nba][8].
static void quant_panel(const float* f, int K, int ab, i8* q, float* sc) {
  int B = ab ? ab : K;
  for (int w = 0, k0 = 0; k0 < K; w++, k0 += B) {
    int k1 = imin(K, k0 + B);
    v128_t m0 = wasm_f32x4_splat(0.f), m1 = m0;
    for (int k = k0; k < k1; k++) {
      m0 = wasm_f32x4_pmax(m0, wasm_f32x4_abs(wasm_v128_load(f + k * NR)));
      m1 = wasm_f32x4_pmax(m1, wasm_f32x4_abs(wasm_v128_load(f + k * NR + 4)));
    }
    float am[NR];
    wasm_v128_store(am, m0);
    wasm_v128_store(am + 4, m1);
    for (int j = 0; j < NR; j++) sc[w * NR + j] = am[j] == 0.f ? 0.f : scale_of(am[j]);
    v128_t i0 = inv_of(m0), i1 = inv_of(m1);
    // Blocks are even except a short last one, so k pairs never straddle two windows.
    for (int k = k0; k < k1; k += 2) {
      v128_t a0 = quant4(wasm_v128_load(f + k * NR), i0), a1 = quant4(wasm_v128_load(f + k * NR + 4), i1);
      v128_t b0 = wasm_i32x4_splat(0), b1 = b0;
      if (k + 1 < k1) { b0 = quant4(wasm_v128_load(f + (k + 1) * NR), i0); b1 = quant4(wasm_v128_load(f + (k + 1) * NR + 4), i1); }
      // [k: p0..p3, k+1: p0..p3, k: p4..p7, k+1: p4..p7] as bytes, then pairs per pixel.
      v128_t b = wasm_i8x16_narrow_i16x8(wasm_i16x8_narrow_i32x4(a0, b0), wasm_i16x8_narrow_i32x4(a1, b1));
      wasm_v128_store(q + (size_t)(k >> 1) * 16, wasm_i8x16_shuffle(b, b, 0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15));
    }
  }
}

// Depthwise int8 with one window per patch (K = kh*kw within one weight and one activation window):
// a direct loop like depthwise_f32. Per output pixel: amax over its patch, quantize, integer dot with
// the channel's weights, out = fround(fround(sa*sw) * dot) + bias. The products are integers below
// 2^14 and at most 1040 of them are summed, so float32 accumulates the dot exactly in any order.
static float dwq_pixel(const float* x, const Geo* g, const i16* w, float wsc, int oy, int ox) {
  int iy0 = oy * g->sh - g->pt, ix0 = ox * g->sw - g->pl;
  float amax = 0.f;
  for (int ky = 0; ky < g->kh; ky++) {
    int iy = iy0 + ky * g->dh;
    if (iy < 0 || iy >= g->H) continue;
    for (int kx = 0; kx < g->kw; kx++) {
      int ix = ix0 + kx * g->dw;
      if (ix < 0 || ix >= g->W) continue;
      float a = __builtin_fabsf(x[(size_t)iy * g->W + ix]);
      if (a > amax) amax = a;
    }
  }
  v128_t inv = inv_of(wasm_f32x4_splat(amax));
  float dot = 0.f;
  for (int ky = 0; ky < g->kh; ky++) {
    int iy = iy0 + ky * g->dh;
    if (iy < 0 || iy >= g->H) continue;
    for (int kx = 0; kx < g->kw; kx++) {
      int ix = ix0 + kx * g->dw;
      if (ix < 0 || ix >= g->W) continue;
      int q = wasm_i32x4_extract_lane(quant4(wasm_f32x4_splat(x[(size_t)iy * g->W + ix]), inv), 0);
      dot += (float)(q * w[ky * g->kw + kx]);
    }
  }
  float sa = amax == 0.f ? 0.f : scale_of(amax);
  return (sa * wsc) * dot;
}

INLINE v128_t dw_load(const float* q, int sw) {
  if (sw == 1) return wasm_v128_load(q);
  v128_t v = wasm_i32x4_shuffle(wasm_v128_load(q), wasm_v128_load32_splat(q + 4), 0, 2, 4, 4);
  return wasm_f32x4_replace_lane(v, 3, q[6]);
}

#define DW_MAX_TAPS 49
// Tap vectors for output columns ox..ox+3 of one row: plain (strided) loads where the 4 windows lie
// inside the input, else a gather with zeros for padding (and for columns past the row's end, which
// are computed but not stored).
static void dw_taps(const float* x, const Geo* g, int iy0, int ox, int interior, v128_t* tv) {
  for (int ky = 0, t = 0; ky < g->kh; ky++) {
    int iy = iy0 + ky * g->dh;
    for (int kx = 0; kx < g->kw; kx++, t++) {
      if (iy < 0 || iy >= g->H) { tv[t] = wasm_f32x4_splat(0.f); continue; }
      const float* r = x + (size_t)iy * g->W;
      if (interior) { tv[t] = dw_load(r + ox * g->sw - g->pl + kx * g->dw, g->sw); continue; }
      float v[4];
      for (int j = 0; j < 4; j++) {
        int ix = (ox + j) * g->sw - g->pl + kx * g->dw;
        v[j] = ix >= 0 && ix < g->W ? r[ix] : 0.f;
      }
      tv[t] = wasm_v128_load(v);
    }
  }
}

static void depthwise_q8(const float* X, const Geo* g, const Pack* p, const float* bias, const Epi* e, float* out) {
  int M = p->N, Mg = M / g->C, Kp = (p->K + 1) & ~1, khw = g->kh * g->kw;
  int OH = g->OH, OW = g->OW, H = g->H, W = g->W, sw = g->sw;
  int span = (g->kw - 1) * g->dw;
  int lo = (g->pl + sw - 1) / sw;
  int hi = W - 1 - span + g->pl < 0 ? 0 : (W - 1 - span + g->pl) / sw + 1;
  lo = imin(lo, OW);
  hi = imax(lo, imin(hi, OW));
  int vec = (sw == 1 || sw == 2) && khw <= DW_MAX_TAPS;
  v128_t tv[DW_MAX_TAPS];
  for (int n = 0; n < g->B; n++) {
    for (int m = 0; m < M; m++) {
      const float* x = X + ((size_t)n * g->C + m / Mg) * H * W;
      const i16* w = (const i16*)p->data + (size_t)m * Kp;
      float wsc = p->scales[(size_t)m * p->nbw];
      float* y = out + ((size_t)n * M + m) * OH * OW;
      float b = bias ? bias[m] : 0.f;
      for (int oy = 0; oy < OH; oy++) {
        int iy0 = oy * g->sh - g->pt;
        float* yr = y + (size_t)oy * OW;
        if (!vec) {
          for (int ox = 0; ox < OW; ox++) yr[ox] = act1(dwq_pixel(x, g, w, wsc, oy, ox) + b, e);
          continue;
        }
        for (int ox = 0; ox < OW; ox += 4) {
          dw_taps(x, g, iy0, ox, ox >= lo && ox + 4 <= hi, tv);
          v128_t amax = wasm_f32x4_splat(0.f);
          for (int t = 0; t < khw; t++) amax = wasm_f32x4_pmax(amax, wasm_f32x4_abs(tv[t]));
          v128_t inv = inv_of(amax), dot = wasm_f32x4_splat(0.f);
          for (int t = 0; t < khw; t++)
            dot = wasm_f32x4_add(dot, wasm_f32x4_mul(wasm_f32x4_convert_i32x4(quant4(tv[t], inv)), wasm_f32x4_splat((float)w[t])));
          float am[4], sa[4];
          wasm_v128_store(am, amax);
          for (int j = 0; j < 4; j++) sa[j] = am[j] == 0.f ? 0.f : scale_of(am[j]);
          v128_t t = wasm_f32x4_mul(wasm_v128_load(sa), wasm_f32x4_splat(wsc));
          v128_t v = act4(wasm_f32x4_add(wasm_f32x4_mul(t, dot), wasm_f32x4_splat(b)), e);
          if (ox + 4 <= OW) wasm_v128_store(yr + ox, v);
          else { float r[4]; wasm_v128_store(r, v); for (int j = 0; ox + j < OW; j++) yr[ox + j] = r[j]; }
        }
      }
    }
  }
}

EXPORT(q8_conv_q8) int q8_conv_q8(const float* X, const int* geo, const Pack* p, int ab, const float* bias,
                                   int act, float lo, float hi, float* out) {
  const Geo* g = (const Geo*)geo;
  // ab < 0: one activation window per tap, of -ab = C/group values; weights packed tap-major.
  int tap = ab < 0;
  if (tap) ab = -ab;
  int M = p->N, Kg = p->K, group = p->group, Mg = M / group, Cg = g->C / group;
  if (tap && (ab != Cg || group != 1 || p->wb)) return -2;
  int Kp = (Kg + 1) & ~1, nba = ab ? (Kg + ab - 1) / ab : 1;
  int P = g->OH * g->OW;
  int cb = combined_block(Kg, ab, p->wb);
  int pt = pixel_tile(Kp, 2);
  float* fpanel = (float*)scratch(2, (size_t)Kg * NR * 4);
  i8* qpanels = (i8*)scratch(0, (size_t)pt * Kp);
  float* scs = (float*)scratch(1, (size_t)(pt / NR) * nba * NR * 4);
  if (!fpanel || !qpanels || !scs || !scratch(3, (size_t)g->kh * g->kw * (NR + 1) * 4)) return -1;
  Epi e = { bias, 1, act, lo, hi };
  if (Cg == 1 && group > 1 && cb >= Kg) { depthwise_q8(X, g, p, bias, &e, out); return 0; }
  for (int n = 0; n < g->B; n++) {
    for (int gi = 0; gi < group; gi++) {
      const float* x = X + ((size_t)n * g->C + (size_t)gi * Cg) * g->H * g->W;
      float* y = out + ((size_t)n * M + (size_t)gi * Mg) * P;
      const i16* W = (const i16*)p->data + (size_t)gi * Mg * Kp;
      const float* ws = p->scales + (size_t)gi * Mg * p->nbw;
      for (int p0 = 0; p0 < P; p0 += pt) {
        int pc = imin(pt, P - p0), npn = panels(pc);
        for (int j = 0; j < npn; j++) {
          im2col_panel(x, g, Cg, p0 + j * NR, P, fpanel, tap);
          quant_panel(fpanel, Kg, ab, qpanels + (size_t)j * Kp * NR, scs + (size_t)j * nba * NR);
        }
        for (int m = 0; m < Mg; m += MR) {
          int mr = imin(MR, Mg - m);
          Epi em = e;
          if (bias) em.bias = bias + gi * Mg;
          for (int j = 0; j < npn; j++)
            run_tile_q8(mr, imin(NR, pc - j * NR), W + (size_t)m * Kp, Kp, qpanels + (size_t)j * Kp * NR, Kg, cb,
                        ws + (size_t)m * p->nbw, p->nbw, p->wb ? p->wb : Kg, scs + (size_t)j * nba * NR, ab ? ab : Kg,
                        y, P, m, p0 + j * NR, &em);
        }
      }
    }
  }
  return 0;
}
