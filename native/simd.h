// Thin SIMD traits so one kernel source (kern_impl.h) compiles to AVX-512 (zmm, 16 lanes, k-masks)
// and AVX2 (ymm, 8 lanes, vector masks). Q8_W selects the width, Q8_VNNI the int8 dot instruction:
// 512 = AVX-512 VNNI vpdpbusd, 1 = AVX-VNNI (ymm vpdpbusd), 0 = AVX2 vpmaddubsw sign trick.
#pragma once
#include <immintrin.h>
#include <cstdint>
#include <cstring>

namespace q8 {

#if Q8_W == 512
struct V {
  static constexpr int L = 16;
  static constexpr bool kU8 = true;  // activations stored as q+128 (u8 operand of vpdpbusd)
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static F fzero() { return _mm512_setzero_ps(); }
  static F fset(float v) { return _mm512_set1_ps(v); }
  static F fload(const float* p) { return _mm512_loadu_ps(p); }
  static F floadm(const float* p, M m) { return _mm512_maskz_loadu_ps(m, p); }
  static F floadm_merge(F src, const float* p, M m) { return _mm512_mask_loadu_ps(src, m, p); }
  static F fsel(M m, F v) { return _mm512_maskz_mov_ps(m, v); }
  // p[0], p[2], ..., p[2L-2] (p[0..2L) must be readable)
  static F even2(const float* p) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
  }
  static F fmerge(F src, M m, F v) { return _mm512_mask_mov_ps(src, m, v); }
  static M isnan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static void fstore(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void fstorem(float* p, F v, M m) { _mm512_mask_storeu_ps(p, m, v); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  // p * 2^n for integral n in [-150, 128] (IEEE overflow/underflow, denormals included).
  static F scale2(F p, F n) { return _mm512_scalef_ps(p, n); }
  static float hsum(F a) { return _mm512_reduce_add_ps(a); }
  // Double lanes, for an exp as exact as the reference's (Softmax).
  using D = __m512d;
  static constexpr int LD = 8;
  static D dload(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static void dstore(float* p, D v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
  static D dset(double v) { return _mm512_set1_pd(v); }
  static D dadd(D a, D b) { return _mm512_add_pd(a, b); }
  static D dsub(D a, D b) { return _mm512_sub_pd(a, b); }
  static D dmul(D a, D b) { return _mm512_mul_pd(a, b); }
  static D dfma(D a, D b, D c) { return _mm512_fmadd_pd(a, b, c); }
  static D dmax(D a, D b) { return _mm512_max_pd(a, b); }
  static D drnd(D a) { return _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static D dscale2(D p, D n) { return _mm512_scalef_pd(p, n); }
  static double dsum(D a) { return _mm512_reduce_add_pd(a); }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  // |mag| with the sign of sgn
  static F copysign(F mag, F sgn) {
    const __m512i s = _mm512_set1_epi32((int)0x80000000u);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(s, _mm512_castps_si512(mag)),
                                               _mm512_and_si512(s, _mm512_castps_si512(sgn))));
  }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F abs(F a) { return _mm512_abs_ps(a); }
  static F rnd(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 127/amax where amax != 0, else 0 (contract: a zero window quantizes to zeros).
  static F inv127(F am) {
    M nz = _mm512_cmp_ps_mask(am, fzero(), _CMP_NEQ_OQ);
    return _mm512_maskz_div_ps(nz, fset(127.f), am);
  }
  static float hmax(F a) { return _mm512_reduce_max_ps(a); }
  static F gather(const float* base, I idx, M m) { return _mm512_mask_i32gather_ps(fzero(), m, idx, base, 4); }
  static I izero() { return _mm512_setzero_si512(); }
  static I iload(const void* p) { return _mm512_loadu_si512(p); }
  static I ibcast(const void* p) { int32_t v; std::memcpy(&v, p, 4); return _mm512_set1_epi32(v); }
  static void istore(void* p, I v) { _mm512_storeu_si512(p, v); }
  static I cvtr(F a) { return _mm512_cvtps_epi32(a); }
  static F cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static M first(int n) { return n >= 16 ? (M)0xFFFF : (M)((1u << n) - 1); }
  static M bits(unsigned b) { return (M)b; }
  static I dot(I acc, I a, I w) { return _mm512_dpbusd_epi32(acc, a, w); }
  // Four int32 vectors (k = 4g..4g+3, lanes = pixels) -> one vector of 4 bytes per pixel.
  static I pack4(I q0, I q1, I q2, I q3) {
    I b = _mm512_packs_epi16(_mm512_packs_epi32(q0, q1), _mm512_packs_epi32(q2, q3));
    const I sh = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    return _mm512_xor_si512(_mm512_shuffle_epi8(b, sh), _mm512_set1_epi8((char)0x80));
  }
  // Store the first n (<= L) lanes of q as bytes (u8 form).
  static void store_bytes(uint8_t* p, I q, int n) {
    __m128i b = _mm_xor_si128(_mm512_cvtepi32_epi8(q), _mm_set1_epi8((char)0x80));
    if (n >= 16) _mm_storeu_si128((__m128i*)p, b);
    else _mm_mask_storeu_epi8(p, (__mmask16)((1u << n) - 1), b);
  }
};
#else
struct V {
  static constexpr int L = 8;
#if Q8_VNNI
  static constexpr bool kU8 = true;
#else
  static constexpr bool kU8 = false;  // signed activations for the vpmaddubsw sign trick
#endif
  using F = __m256;
  using I = __m256i;
  using M = __m256i;
  static F fzero() { return _mm256_setzero_ps(); }
  static F fset(float v) { return _mm256_set1_ps(v); }
  static F fload(const float* p) { return _mm256_loadu_ps(p); }
  static F floadm(const float* p, M m) { return _mm256_maskload_ps(p, m); }
  static F floadm_merge(F src, const float* p, M m) { return _mm256_blendv_ps(src, _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m)); }
  static F fsel(M m, F v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
  static F even2(const float* p) {
    __m256 t = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
  }
  static F fmerge(F src, M m, F v) { return _mm256_blendv_ps(src, v, _mm256_castsi256_ps(m)); }
  static M isnan(F a) { return _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  static void fstore(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void fstorem(float* p, F v, M m) { _mm256_maskstore_ps(p, m, v); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  // p * 2^n for integral n in [-150, 128]: two factors 2^(n/2) and 2^(n - n/2), each a normal float.
  static F scale2(F p, F n) {
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    F s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    F s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  }
  static M lt(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_LT_OQ)); }
  static F copysign(F mag, F sgn) {
    const F s = _mm256_set1_ps(-0.f);
    return _mm256_or_ps(_mm256_andnot_ps(s, mag), _mm256_and_ps(s, sgn));
  }
  static float hsum(F a) {
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  // Double lanes, for an exp as exact as the reference's (Softmax).
  using D = __m256d;
  static constexpr int LD = 4;
  static D dload(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static void dstore(float* p, D v) { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
  static D dset(double v) { return _mm256_set1_pd(v); }
  static D dadd(D a, D b) { return _mm256_add_pd(a, b); }
  static D dsub(D a, D b) { return _mm256_sub_pd(a, b); }
  static D dmul(D a, D b) { return _mm256_mul_pd(a, b); }
  static D dfma(D a, D b, D c) { return _mm256_fmadd_pd(a, b, c); }
  static D dmax(D a, D b) { return _mm256_max_pd(a, b); }
  static D drnd(D a) { return _mm256_round_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^n for integral n in [-1080, 0]: two factors 2^(n/2), 2^(n - n/2), each a normal double.
  static D dscale2(D p, D n) {
    __m256i ni = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n));
    __m256i n1 = _mm256_sub_epi64(_mm256_setzero_si256(), _mm256_srli_epi64(_mm256_sub_epi64(_mm256_setzero_si256(), ni), 1));
    __m256i n2 = _mm256_sub_epi64(ni, n1);
    const __m256i bias = _mm256_set1_epi64x(1023);
    D s1 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n1, bias), 52));
    D s2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(n2, bias), 52));
    return _mm256_mul_pd(_mm256_mul_pd(p, s1), s2);
  }
  static double dsum(D a) {
    __m128d m = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(m, _mm_unpackhi_pd(m, m)));
  }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static F rnd(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static F inv127(F am) {
    F nz = _mm256_cmp_ps(am, fzero(), _CMP_NEQ_OQ);
    return _mm256_and_ps(nz, _mm256_div_ps(fset(127.f), am));
  }
  static float hmax(F a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static F gather(const float* base, I idx, M m) {
    return _mm256_mask_i32gather_ps(fzero(), base, idx, _mm256_castsi256_ps(m), 4);
  }
  static I izero() { return _mm256_setzero_si256(); }
  static I iload(const void* p) { return _mm256_loadu_si256((const __m256i*)p); }
  static I ibcast(const void* p) { int32_t v; std::memcpy(&v, p, 4); return _mm256_set1_epi32(v); }
  static void istore(void* p, I v) { _mm256_storeu_si256((__m256i*)p, v); }
  static I cvtr(F a) { return _mm256_cvtps_epi32(a); }
  static F cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static M first(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static M bits(unsigned b) {
    const I lb = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)b), lb), lb);
  }
#if Q8_VNNI
  static I dot(I acc, I a, I w) { return _mm256_dpbusd_avx_epi32(acc, a, w); }
#else
  // a, w signed in [-127, 127]: |a|*sign(w,a) pairs sum to at most 2*127*127 = 32258 < 32767, so
  // vpmaddubsw never saturates (u8 = q+128 would reach 2*255*127 and saturate).
  static I dot(I acc, I a, I w) {
    I p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(w, a));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
#endif
  static I pack4(I q0, I q1, I q2, I q3) {
    I b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    const I sh = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                  0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    b = _mm256_shuffle_epi8(b, sh);
    if (kU8) b = _mm256_xor_si256(b, _mm256_set1_epi8((char)0x80));
    return b;
  }
  static void store_bytes(uint8_t* p, I q, int n) {
    I b = _mm256_packs_epi16(_mm256_packs_epi32(q, q), _mm256_setzero_si256());
    uint64_t lo = (uint32_t)_mm_cvtsi128_si32(_mm256_castsi256_si128(b));
    uint64_t hi = (uint32_t)_mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
    uint64_t v = lo | (hi << 32);
    if (kU8) v ^= 0x8080808080808080ull;
    std::memcpy(p, &v, n >= 8 ? 8 : n);
  }
};
#endif

}  // namespace q8
