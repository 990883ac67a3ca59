/* quant_avx512.c — AVX-512 (F/BW/VL/DQ; compiled also with VNNI/BF16, FMA,
 * F16C) kernels: the float dot product, dequantizers for every supported
 * quantized type, and the matmul body (a 6-row x 4-token register tile over
 * dequantized rows; fused dequantize+FMA kernels for one token), and for fast
 * mode the q8a activation quantizer and the integer (VNNI) matmul. Only quant.c
 * calls these, after checking the CPU. The matmul keeps the canonical order
 * of pl_matmul_rows (quant.h) on every path.
 *
 * Dequantizers reproduce the scalar references in quant.c bit for bit: the
 * same integer quant, converted exactly to float, then the same float
 * operations in the same order (separate multiply and add/subtract, never
 * FMA). Loads are unaligned; blocks may sit at any address. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "quant_isa.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* fp16 -> float with F16C (exact; identical to pl_fp16_to_f32). */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 16 bytes at p widened to 16 unsigned 32-bit lanes. */
static inline __m512i load_u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

/* Fixed order: four 16-lane FMA accumulators over 64-element chunks (lane l
 * of accumulator k takes i = 64c + 16k + l), then 16-element chunks into
 * accumulator 0, then a masked tail into accumulator 0; reduction
 * (acc0 + acc1) + (acc2 + acc3), then lanes halved 16 -> 8 -> 4 -> 2 -> 1. */
float pl_dot_avx512(const float *a, const float *b, int64_t n) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
        acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
        acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        acc0 = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0, m);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3));
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s), _mm512_extractf32x8_ps(s, 1));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

/* F16: exact widening (VCVTPH2PS), 16 at a time, masked tail. */
void pl_to_float_f16_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i))));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p + 2 * i)));
    }
}

/* BF16: exact widening (shift into the top half), 16 at a time, masked tail. */
void pl_to_float_bf16_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 2 * i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p + 2 * i));
        _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
}

/* Q4_0: (float)(nibble - 8) * d. */
void pl_to_float_q4_0_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q4_0 *x = src;
    const __m512i k15 = _mm512_set1_epi32(15), k8 = _mm512_set1_epi32(8);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d));
        const __m512i v = load_u8x16(x[i].qs);
        const __m512i lo = _mm512_sub_epi32(_mm512_and_si512(v, k15), k8);
        const __m512i hi = _mm512_sub_epi32(_mm512_srli_epi32(v, 4), k8);
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

/* Q4_1: (float)nibble * d + m. */
void pl_to_float_q4_1_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q4_1 *x = src;
    const __m512i k15 = _mm512_set1_epi32(15);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d)), m = _mm512_set1_ps(h2f(x[i].m));
        const __m512i v = load_u8x16(x[i].qs);
        const __m512i lo = _mm512_and_si512(v, k15), hi = _mm512_srli_epi32(v, 4);
        _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), m));
        _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), m));
    }
}

/* Q5_0: (float)((nibble | bit << 4) - 16) * d; bit e of qh is a mask lane. */
void pl_to_float_q5_0_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q5_0 *x = src;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d));
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        const __m512i v = load_u8x16(x[i].qs);
        __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(v, k15), (__mmask16)qh, _mm512_and_si512(v, k15), k16);
        __m512i hi = _mm512_mask_or_epi32(_mm512_srli_epi32(v, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(v, 4), k16);
        lo = _mm512_sub_epi32(lo, k16);
        hi = _mm512_sub_epi32(hi, k16);
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

/* Q5_1: (float)(nibble | bit << 4) * d + m. */
void pl_to_float_q5_1_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q5_1 *x = src;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d)), m = _mm512_set1_ps(h2f(x[i].m));
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        const __m512i v = load_u8x16(x[i].qs);
        const __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(v, k15), (__mmask16)qh, _mm512_and_si512(v, k15), k16);
        const __m512i hi =
            _mm512_mask_or_epi32(_mm512_srli_epi32(v, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(v, 4), k16);
        _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), m));
        _mm512_storeu_ps(dst + 16, _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), m));
    }
}

/* Q8_0: (float)q * d. */
void pl_to_float_q8_0_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m512 d = _mm512_set1_ps(h2f(x[i].d));
        const __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)x[i].qs));
        const __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(x[i].qs + 16)));
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(q0), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(q1), d));
    }
}

/* The 8 (d * sc, dmin * m) pairs of a Q4_K/Q5_K block, as the reference computes them. */
static inline void k_scales(const uint8_t *scales, float d, float dmin, float *ds, float *ms) {
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        pl_k_scale_min(j, scales, &sc, &m);
        ds[j] = d * (float)sc;
        ms[j] = dmin * (float)m;
    }
}

/* dst[0..16) = ds * (float)q - ms. */
static inline void store_dq_min(float *dst, __m512i q, float ds, float ms) {
    _mm512_storeu_ps(dst, _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(q)), _mm512_set1_ps(ms)));
}

/* Q4_K: d1 * (float)nibble - m1 per 32-value sub-block. */
void pl_to_float_q4_k_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q4_k *x = src;
    const __m512i k15 = _mm512_set1_epi32(15);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        float ds[8], ms[8];
        k_scales(x[i].scales, h2f(x[i].d), h2f(x[i].dmin), ds, ms);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 4; j++, q += 32, dst += 64) {
            const __m512i v0 = load_u8x16(q), v1 = load_u8x16(q + 16);
            store_dq_min(dst, _mm512_and_si512(v0, k15), ds[2 * j], ms[2 * j]);
            store_dq_min(dst + 16, _mm512_and_si512(v1, k15), ds[2 * j], ms[2 * j]);
            store_dq_min(dst + 32, _mm512_srli_epi32(v0, 4), ds[2 * j + 1], ms[2 * j + 1]);
            store_dq_min(dst + 48, _mm512_srli_epi32(v1, 4), ds[2 * j + 1], ms[2 * j + 1]);
        }
    }
}

/* Q5_K: d1 * (float)(nibble + 16 * bit) - m1; the bit is a lane test of qh[l]. */
void pl_to_float_q5_k_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q5_k *x = src;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        float ds[8], ms[8];
        k_scales(x[i].scales, h2f(x[i].d), h2f(x[i].dmin), ds, ms);
        const __m512i h0 = load_u8x16(x[i].qh), h1 = load_u8x16(x[i].qh + 16);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 4; j++, q += 32, dst += 64) {
            const __m512i u1 = _mm512_set1_epi32(1 << (2 * j)), u2 = _mm512_set1_epi32(2 << (2 * j));
            const __m512i v0 = load_u8x16(q), v1 = load_u8x16(q + 16);
            __m512i a = _mm512_and_si512(v0, k15), b = _mm512_and_si512(v1, k15);
            __m512i c = _mm512_srli_epi32(v0, 4), e = _mm512_srli_epi32(v1, 4);
            a = _mm512_mask_add_epi32(a, _mm512_test_epi32_mask(h0, u1), a, k16);
            b = _mm512_mask_add_epi32(b, _mm512_test_epi32_mask(h1, u1), b, k16);
            c = _mm512_mask_add_epi32(c, _mm512_test_epi32_mask(h0, u2), c, k16);
            e = _mm512_mask_add_epi32(e, _mm512_test_epi32_mask(h1, u2), e, k16);
            store_dq_min(dst, a, ds[2 * j], ms[2 * j]);
            store_dq_min(dst + 16, b, ds[2 * j], ms[2 * j]);
            store_dq_min(dst + 32, c, ds[2 * j + 1], ms[2 * j + 1]);
            store_dq_min(dst + 48, e, ds[2 * j + 1], ms[2 * j + 1]);
        }
    }
}

/* Q6_K: (d * (float)sc) * (float)q with q the 6-bit value minus 32. */
void pl_to_float_q6_k_avx512(const void *src, float *dst, int64_t n) {
    const pl_block_q6_k *x = src;
    const __m512i k15 = _mm512_set1_epi32(15), k3 = _mm512_set1_epi32(3), k32 = _mm512_set1_epi32(32);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int c = 0; c < 2; c++) { /* l in [16c, 16c + 16), scale index is = c */
                const __m512i a = load_u8x16(ql + 16 * c), b = load_u8x16(ql + 32 + 16 * c);
                const __m512i hb = load_u8x16(qh + 16 * c);
                const __m512i q1 =
                    _mm512_or_si512(_mm512_and_si512(a, k15), _mm512_slli_epi32(_mm512_and_si512(hb, k3), 4));
                const __m512i q2 = _mm512_or_si512(
                    _mm512_and_si512(b, k15), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), k3), 4));
                const __m512i q3 = _mm512_or_si512(
                    _mm512_srli_epi32(a, 4), _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 4), k3), 4));
                const __m512i q4 =
                    _mm512_or_si512(_mm512_srli_epi32(b, 4), _mm512_slli_epi32(_mm512_srli_epi32(hb, 6), 4));
                float *y = dst + 16 * c;
                _mm512_storeu_ps(
                    y, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q1, k32))));
                _mm512_storeu_ps(y + 32, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 2]),
                                                       _mm512_cvtepi32_ps(_mm512_sub_epi32(q2, k32))));
                _mm512_storeu_ps(y + 64, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 4]),
                                                       _mm512_cvtepi32_ps(_mm512_sub_epi32(q3, k32))));
                _mm512_storeu_ps(y + 96, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 6]),
                                                       _mm512_cvtepi32_ps(_mm512_sub_epi32(q4, k32))));
            }
        }
    }
}

/* ---- matmul (canonical order of pl_matmul_rows) --------------------------- */

/* The fixed reduction: lanes l += l+8, l += l+4, l += l+2, then [0] + [1]. */
static inline float hsum16(__m512 a) {
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

/* Register tile: TILE_R dequantized rows x TILE_T tokens, one 16-lane
 * accumulator each (24 of the 32 zmm registers). */
#define TILE_R PL_MATMUL_ROWS
#define TILE_T 4

/* y[t*ys + r] for r < R, t < T: rows w[r] (dequantized floats) times tokens
 * x + t*xs, n values; each weight load feeds T FMAs, each activation load R. */
static inline __attribute__((always_inline)) void tile_body(const int R, const int T, const float *const *w,
                                                            const float *x, int64_t xs, int64_t n, float *y,
                                                            int64_t ys) {
    __m512 acc[TILE_R][TILE_T];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 xv[TILE_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = _mm512_loadu_ps(x + t * xs + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 wv = _mm512_loadu_ps(w[r] + i);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (i < n) { /* tail: lanes past n keep their sums (mask3 FMA) */
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 xv[TILE_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) xv[t] = _mm512_maskz_loadu_ps(m, x + t * xs + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, w[r] + i);
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) acc[r][t] = _mm512_mask3_fmadd_ps(wv, xv[t], acc[r][t], m);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) y[t * ys + r] = hsum16(acc[r][t]);
}

typedef void (*tile_fn)(const float *const *w, const float *x, int64_t xs, int64_t n, float *y, int64_t ys);
#define TILE_FN(R, T)                                                                                                  \
    static void tile_##R##_##T(const float *const *w, const float *x, int64_t xs, int64_t n, float *y, int64_t ys) {   \
        tile_body(R, T, w, x, xs, n, y, ys);                                                                           \
    }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1)
TILE_ROW(2)
TILE_ROW(3)
TILE_ROW(4)
TILE_ROW(5)
TILE_ROW(6)
#define TILE_ENTRY(R)                                                                                                  \
    { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
_Static_assert(TILE_R == 6 && TILE_T == 4, "tile table matches TILE_R x TILE_T");
static const tile_fn k_tiles[TILE_R][TILE_T] = {TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3),
                                                TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6)};

/* ---- fused decode: dequantize one block into registers and FMA it ---------
 * Each fma_* takes block p, the matching activations x and the row's
 * accumulator, and applies the block's 16-value chunks in order; the
 * dequantized vectors are computed exactly as the to_float kernels above. */

static inline __attribute__((always_inline)) __m512 fma_f16(const uint8_t *p, const float *x, __m512 acc) {
    return _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)), _mm512_loadu_ps(x), acc);
}

static inline __attribute__((always_inline)) __m512 fma_bf16(const uint8_t *p, const float *x, __m512 acc) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), _mm512_loadu_ps(x), acc);
}

static inline __attribute__((always_inline)) __m512 fma_q8_0(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q8_0 *b = (const pl_block_q8_0 *)(const void *)p;
    const __m512 d = _mm512_set1_ps(h2f(b->d));
    const __m512i q0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)b->qs));
    const __m512i q1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b->qs + 16)));
    acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q0), d), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(q1), d), _mm512_loadu_ps(x + 16), acc);
}

/* Q4_0 through a 16-entry table: lut[i] = (float)(i - 8) * d, the same
 * product as the reference, picked by the nibble (VPERMPS uses 4 index bits). */
static inline __attribute__((always_inline)) __m512 fma_q4_0(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q4_0 *b = (const pl_block_q4_0 *)(const void *)p;
    const __m512 iota = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    const __m512 lut = _mm512_mul_ps(iota, _mm512_set1_ps(h2f(b->d)));
    const __m512i v = load_u8x16(b->qs);
    acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(v, lut), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut), _mm512_loadu_ps(x + 16), acc);
}

static inline __attribute__((always_inline)) __m512 fma_q4_1(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q4_1 *b = (const pl_block_q4_1 *)(const void *)p;
    const __m512i k15 = _mm512_set1_epi32(15);
    const __m512 d = _mm512_set1_ps(h2f(b->d)), m = _mm512_set1_ps(h2f(b->m));
    const __m512i v = load_u8x16(b->qs);
    const __m512i lo = _mm512_and_si512(v, k15), hi = _mm512_srli_epi32(v, 4);
    acc = _mm512_fmadd_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), m), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), m), _mm512_loadu_ps(x + 16), acc);
}

/* Q5_0 through a 32-entry table: lut[i] = (float)(i - 16) * d, picked by the
 * 5-bit quant (VPERMT2PS: bit 4 selects the upper 16 entries). */
static inline __attribute__((always_inline)) __m512 fma_q5_0(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q5_0 *b = (const pl_block_q5_0 *)(const void *)p;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    const __m512 lo_iota = _mm512_setr_ps(-16, -15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1);
    const __m512 hi_iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 d = _mm512_set1_ps(h2f(b->d));
    const __m512 lut0 = _mm512_mul_ps(lo_iota, d), lut1 = _mm512_mul_ps(hi_iota, d);
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m512i v = load_u8x16(b->qs);
    const __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(v, k15), (__mmask16)qh, _mm512_and_si512(v, k15), k16);
    const __m512i hi =
        _mm512_mask_or_epi32(_mm512_srli_epi32(v, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(v, 4), k16);
    acc = _mm512_fmadd_ps(_mm512_permutex2var_ps(lut0, lo, lut1), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(_mm512_permutex2var_ps(lut0, hi, lut1), _mm512_loadu_ps(x + 16), acc);
}

static inline __attribute__((always_inline)) __m512 fma_q5_1(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q5_1 *b = (const pl_block_q5_1 *)(const void *)p;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    const __m512 d = _mm512_set1_ps(h2f(b->d)), m = _mm512_set1_ps(h2f(b->m));
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    const __m512i v = load_u8x16(b->qs);
    const __m512i lo = _mm512_mask_or_epi32(_mm512_and_si512(v, k15), (__mmask16)qh, _mm512_and_si512(v, k15), k16);
    const __m512i hi =
        _mm512_mask_or_epi32(_mm512_srli_epi32(v, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(v, 4), k16);
    acc = _mm512_fmadd_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(lo), d), m), _mm512_loadu_ps(x), acc);
    return _mm512_fmadd_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(hi), d), m), _mm512_loadu_ps(x + 16), acc);
}

/* ds * (float)q - ms, as store_dq_min computes it. */
static inline __m512 dq_min(__m512i q, float ds, float ms) {
    return _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(q)), _mm512_set1_ps(ms));
}

/* The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K/Q5_K block,
 * unpacked with 32-bit masks; the same values as pl_k_scale_min. */
static inline void k_unpack(const uint8_t *scales, uint8_t out[16]) {
    uint32_t u[4];
    memcpy(u, scales, 12);
    const uint32_t km1 = 0x3f3f3f3f, km2 = 0x0f0f0f0f, km3 = 0x03030303;
    u[3] = ((u[2] >> 4) & km2) | (((u[1] >> 6) & km3) << 4);
    const uint32_t mins_lo = u[1] & km1;
    u[1] = (u[2] & km2) | (((u[0] >> 6) & km3) << 4);
    u[2] = mins_lo;
    u[0] &= km1;
    memcpy(out, u, 16);
}

/* Q4_K through one 16-entry table per 32-value sub-block j:
 * lut_j[i] = ds_j * (float)i - ms_j (ds_j = d * sc_j, ms_j = dmin * m_j),
 * exactly the reference's two roundings, picked by the nibble. */
static inline __attribute__((always_inline)) __m512 fma_q4_k(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q4_k *b = (const pl_block_q4_k *)(const void *)p;
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    uint8_t sm[16];
    k_unpack(b->scales, sm);
    const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)sm)));
    /* lanes 0..7: d * sc_j; lanes 8..15: dmin * m_j */
    const __m512 dm =
        _mm512_mul_ps(f, _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(h2f(b->d)), _mm512_set1_ps(h2f(b->dmin))));
    float dms[16];
    _mm512_storeu_ps(dms, dm);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 4; j++, q += 32, x += 64) {
        const __m512 lut0 =
            _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dms[2 * j]), iota), _mm512_set1_ps(dms[8 + 2 * j]));
        const __m512 lut1 =
            _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dms[2 * j + 1]), iota), _mm512_set1_ps(dms[8 + 2 * j + 1]));
        const __m512i v0 = load_u8x16(q), v1 = load_u8x16(q + 16);
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(v0, lut0), _mm512_loadu_ps(x), acc);
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(v1, lut0), _mm512_loadu_ps(x + 16), acc);
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v0, 4), lut1), _mm512_loadu_ps(x + 32), acc);
        acc = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v1, 4), lut1), _mm512_loadu_ps(x + 48), acc);
    }
    return acc;
}

static inline __attribute__((always_inline)) __m512 fma_q5_k(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q5_k *b = (const pl_block_q5_k *)(const void *)p;
    const __m512i k15 = _mm512_set1_epi32(15), k16 = _mm512_set1_epi32(16);
    float ds[8], ms[8];
    k_scales(b->scales, h2f(b->d), h2f(b->dmin), ds, ms);
    const __m512i h0 = load_u8x16(b->qh), h1 = load_u8x16(b->qh + 16);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 4; j++, q += 32, x += 64) {
        const __m512i u1 = _mm512_set1_epi32(1 << (2 * j)), u2 = _mm512_set1_epi32(2 << (2 * j));
        const __m512i v0 = load_u8x16(q), v1 = load_u8x16(q + 16);
        __m512i a = _mm512_and_si512(v0, k15), c = _mm512_and_si512(v1, k15);
        __m512i e = _mm512_srli_epi32(v0, 4), f = _mm512_srli_epi32(v1, 4);
        a = _mm512_mask_add_epi32(a, _mm512_test_epi32_mask(h0, u1), a, k16);
        c = _mm512_mask_add_epi32(c, _mm512_test_epi32_mask(h1, u1), c, k16);
        e = _mm512_mask_add_epi32(e, _mm512_test_epi32_mask(h0, u2), e, k16);
        f = _mm512_mask_add_epi32(f, _mm512_test_epi32_mask(h1, u2), f, k16);
        acc = _mm512_fmadd_ps(dq_min(a, ds[2 * j], ms[2 * j]), _mm512_loadu_ps(x), acc);
        acc = _mm512_fmadd_ps(dq_min(c, ds[2 * j], ms[2 * j]), _mm512_loadu_ps(x + 16), acc);
        acc = _mm512_fmadd_ps(dq_min(e, ds[2 * j + 1], ms[2 * j + 1]), _mm512_loadu_ps(x + 32), acc);
        acc = _mm512_fmadd_ps(dq_min(f, ds[2 * j + 1], ms[2 * j + 1]), _mm512_loadu_ps(x + 48), acc);
    }
    return acc;
}

static inline __attribute__((always_inline)) __m512 fma_q6_k(const uint8_t *p, const float *x, __m512 acc) {
    const pl_block_q6_k *b = (const pl_block_q6_k *)(const void *)p;
    const __m512i k15 = _mm512_set1_epi32(15), k3 = _mm512_set1_epi32(3), k32 = _mm512_set1_epi32(32);
    const float d = h2f(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int h = 0; h < 2; h++, x += 128, ql += 64, qh += 32, sc += 8) {
        __m512 v[8]; /* v[2k + c]: values 32k + 16c .. +16 of this half */
        for (int c = 0; c < 2; c++) {
            const __m512i a = load_u8x16(ql + 16 * c), e = load_u8x16(ql + 32 + 16 * c);
            const __m512i hb = load_u8x16(qh + 16 * c);
            const __m512i q1 =
                _mm512_or_si512(_mm512_and_si512(a, k15), _mm512_slli_epi32(_mm512_and_si512(hb, k3), 4));
            const __m512i q2 = _mm512_or_si512(_mm512_and_si512(e, k15),
                                               _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), k3), 4));
            const __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(a, 4),
                                               _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 4), k3), 4));
            const __m512i q4 = _mm512_or_si512(_mm512_srli_epi32(e, 4), _mm512_slli_epi32(_mm512_srli_epi32(hb, 6), 4));
            v[c] = _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q1, k32)));
            v[2 + c] =
                _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 2]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q2, k32)));
            v[4 + c] =
                _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 4]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q3, k32)));
            v[6 + c] =
                _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 6]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q4, k32)));
        }
        for (int c = 0; c < 8; c++) acc = _mm512_fmadd_ps(v[c], _mm512_loadu_ps(x + 16 * c), acc);
    }
    return acc;
}

/* Rows processed together by the fused decode kernels (independent FMA chains). */
#define FUSED_R 8

/* fused_NAME: y[r] for r in [r0, r1), one token, rows of n values in blocks
 * of BS values / BB bytes; FUSED_R rows at a time, then single rows. */
#define DEFINE_FUSED(NAME, BS, BB)                                                                                     \
    static void fused_##NAME(const uint8_t *W, size_t rs, int64_t n, int64_t r0, int64_t r1, const float *x,           \
                             float *y) {                                                                               \
        const int64_t nb = n / (BS);                                                                                   \
        int64_t r = r0;                                                                                                \
        for (; r + FUSED_R <= r1; r += FUSED_R) {                                                                      \
            const uint8_t *p = W + (size_t)r * rs;                                                                     \
            __m512 a[FUSED_R];                                                                                         \
            _Pragma("GCC unroll 8") for (int k = 0; k < FUSED_R; k++) a[k] = _mm512_setzero_ps();                      \
            for (int64_t b = 0; b < nb; b++) {                                                                         \
                const float *xb = x + b * (BS);                                                                        \
                const uint8_t *pb = p + (size_t)b * (BB);                                                              \
                _Pragma("GCC unroll 8") for (int k = 0; k < FUSED_R; k++) a[k] = fma_##NAME(pb + k * rs, xb, a[k]);    \
            }                                                                                                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < FUSED_R; k++) y[r + k] = hsum16(a[k]);                         \
        }                                                                                                              \
        for (; r < r1; r++) {                                                                                          \
            const uint8_t *p = W + (size_t)r * rs;                                                                     \
            __m512 a0 = _mm512_setzero_ps();                                                                           \
            for (int64_t b = 0; b < nb; b++) a0 = fma_##NAME(p + (size_t)b * (BB), x + b * (BS), a0);                  \
            y[r] = hsum16(a0);                                                                                         \
        }                                                                                                              \
    }
DEFINE_FUSED(f16, 16, 32)
DEFINE_FUSED(bf16, 16, 32)
DEFINE_FUSED(q4_0, PL_QK, sizeof(pl_block_q4_0))
DEFINE_FUSED(q4_1, PL_QK, sizeof(pl_block_q4_1))
DEFINE_FUSED(q5_0, PL_QK, sizeof(pl_block_q5_0))
DEFINE_FUSED(q5_1, PL_QK, sizeof(pl_block_q5_1))
DEFINE_FUSED(q8_0, PL_QK, sizeof(pl_block_q8_0))
DEFINE_FUSED(q4_k, PL_QK_K, sizeof(pl_block_q4_k))
DEFINE_FUSED(q5_k, PL_QK_K, sizeof(pl_block_q5_k))
DEFINE_FUSED(q6_k, PL_QK_K, sizeof(pl_block_q6_k))

typedef void (*fused_fn)(const uint8_t *W, size_t rs, int64_t n, int64_t r0, int64_t r1, const float *x, float *y);

/* The fused decode kernel for type (NULL: use the tiled path). */
static fused_fn fused_for(uint32_t type, int64_t n) {
    switch (type) {
    case GGML_F16: return n % 16 == 0 ? fused_f16 : NULL;
    case GGML_BF16: return n % 16 == 0 ? fused_bf16 : NULL;
    case GGML_Q4_0: return fused_q4_0;
    case GGML_Q4_1: return fused_q4_1;
    case GGML_Q5_0: return fused_q5_0;
    case GGML_Q5_1: return fused_q5_1;
    case GGML_Q8_0: return fused_q8_0;
    case GGML_Q4_K: return fused_q4_k;
    case GGML_Q5_K: return fused_q5_k;
    case GGML_Q6_K: return fused_q6_k;
    default: return NULL;
    }
}

/* Tokens swept per pass over the rows: all of them up to 64 (each weight
 * byte read once per call), more while their activations fit in ~512 KiB of
 * L2; a long prefill re-reads (and re-dequantizes) the weights once per
 * group instead of streaming every activation from L3 once per row tile.
 * Grouping never changes a (row, token) result. */
static int64_t token_group(int64_t n) {
    int64_t g = ((int64_t)1 << 19) / (4 * (n > 0 ? n : 1));
    if (g < 64) g = 64;
    return g / TILE_T * TILE_T;
}

/* Single token: fused kernels where the type has one (y has stride ys for
 * t = 0 only, so its rows are contiguous); otherwise the tiled path below.
 * Several tokens: per block of TILE_R rows, dequantize each row once into
 * scratch (F32 rows are read in place when aligned), then sweep the tokens
 * (of one token group) in TILE_T tiles. */
void pl_matmul_avx512(pl_to_float_fn to_float, const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0,
                      int64_t r1, const float *x, int64_t xs, int64_t nt, float *y, int64_t ys, float *scratch) {
    if (nt == 1) {
        const fused_fn f = fused_for(type, n);
        if (f) {
            f((const uint8_t *)W, rs, n, r0, r1, x, y);
            return;
        }
    }
    const int64_t ld = (n + 15) / 16 * 16;
    float *sc = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    const int64_t group = token_group(n);
    for (int64_t g0 = 0; g0 < nt; g0 += group) {
        const int64_t gn = nt - g0 < group ? nt - g0 : group;
        const float *xg = x + g0 * xs;
        float *yg = y + g0 * ys;
        for (int64_t rb = r0; rb < r1; rb += TILE_R) {
            const int R = (int)(r1 - rb < TILE_R ? r1 - rb : TILE_R);
            const float *w[TILE_R];
            for (int r = 0; r < R; r++) {
                const uint8_t *row = (const uint8_t *)W + (size_t)(rb + r) * rs;
                if (type == GGML_F32 && ((uintptr_t)row % _Alignof(float)) == 0)
                    w[r] = (const float *)(const void *)row;
                else {
                    to_float(row, sc + r * ld, n);
                    w[r] = sc + r * ld;
                }
            }
            const tile_fn full = k_tiles[R - 1][TILE_T - 1];
            int64_t t = 0;
            for (; t + TILE_T <= gn; t += TILE_T) full(w, xg + t * xs, xs, n, yg + t * ys + rb, ys);
            if (t < gn) k_tiles[R - 1][gn - t - 1](w, xg + t * xs, xs, n, yg + t * ys + rb, ys);
        }
    }
}

/* ---- attention ------------------------------------------------------------------ */

/* exp(x) for 16 lanes: x = n*ln2 + r with |r| <= ln2/2 (n rounded to
 * nearest), exp(r) by a degree-7 Taylor polynomial (Horner, relative error
 * below 2e-7 on that interval), then scaled by 2^n with VSCALEFPS.
 * Inputs below -87.3 flush towards 0; the attention caller only passes
 * x <= 0 (max subtracted). NaN propagates. */
static inline __m512 exp16(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

void pl_silu_mul_avx512(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), sgn = _mm512_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 e = exp16(_mm512_xor_ps(x, sgn));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_loadu_ps(u + i)));
    }
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        const __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        const __m512 e = exp16(_mm512_xor_ps(x, sgn));
        _mm512_mask_storeu_ps(g + i, m,
                              _mm512_mul_ps(_mm512_div_ps(x, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

void pl_rmsnorm_avx512(float *out, const float *x, const float *w, int64_t n, float eps) {
    __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd(); /* lanes 0..7, 8..15 */
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), b = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        lo = _mm512_add_pd(lo, _mm512_mul_pd(a, a)), hi = _mm512_add_pd(hi, _mm512_mul_pd(b, b));
    }
    if (i < n) {
        const __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1), x + i);
        const __m512d a = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), b = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        const __mmask8 ma = (__mmask8)(n - i >= 8 ? 0xFF : (1u << (n - i)) - 1),
                       mb = (__mmask8)(n - i > 8 ? (1u << (n - i - 8)) - 1 : 0);
        lo = _mm512_mask_add_pd(lo, ma, lo, _mm512_mul_pd(a, a)),
        hi = _mm512_mask_add_pd(hi, mb, hi, _mm512_mul_pd(b, b));
    }
    /* halving tree: l += l+8, l+4, l+2, then [0] + [1] */
    const __m512d s8 = _mm512_add_pd(lo, hi);
    const __m256d s4 = _mm256_add_pd(_mm512_castpd512_pd256(s8), _mm512_extractf64x4_pd(s8, 1));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s4), _mm256_extractf128_pd(s4, 1));
    const double ss = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    const __m512 sc = _mm512_set1_ps((float)(1.0 / sqrt(ss / (double)n + eps)));
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), sc), _mm512_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = (x[i] * _mm512_cvtss_f32(sc)) * w[i];
}

uint64_t pl_stream_sum_avx512(const uint8_t *p, size_t n) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        for (int o = 0; o < 256; o += 64) _mm_prefetch((const char *)(p + i + PL_STREAM_AHEAD + o), _MM_HINT_T0);
        a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
        b = _mm512_add_epi64(b, _mm512_load_si512(p + i + 64));
        c = _mm512_add_epi64(c, _mm512_load_si512(p + i + 128));
        d = _mm512_add_epi64(d, _mm512_load_si512(p + i + 192));
    }
    for (size_t i = n / 256 * 256; i < n; i += 64) a = _mm512_add_epi64(a, _mm512_load_si512(p + i));
    uint64_t lanes[8], sum = 0; /* unsigned: the wrapping sum (_mm512_reduce_add_epi64 adds signed) */
    _mm512_storeu_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d)));
    for (int l = 0; l < 8; l++) sum += lanes[l];
    return sum;
}

#define ATT_MAX_Q 16
#define ATT_G 4  /* query heads per pass over the keys (register tile) */
#define ATT_CW 4 /* 16-dim value chunks per pass (register tile) */

/* Raw scores (before scale) of the 16 keys of each of NB consecutive K
 * blocks (kb, kb + bs, ...) for G queries (q + h*qs) into r[b*G + h], in
 * the canonical order of attn_score_ref in quant.c, lane by lane: an even-d
 * and an odd-d FMA chain from +0, then their sum. Each lane sees only its
 * own key, so a key's score does not depend on its lane or block mates.
 * G and NB are constants at every call (the tile stays in registers). */
static inline __attribute__((always_inline)) void att_score_tile(const float *kb, int64_t bs, const float *q,
                                                                 int64_t qs, int64_t hd, const int G, const int NB,
                                                                 __m512 *r) {
    __m512 e[2 * ATT_G], o[2 * ATT_G];
    _Pragma("GCC unroll 16") for (int i = 0; i < NB * G; i++) e[i] = o[i] = _mm512_setzero_ps();
    int64_t d = 0;
    for (; d + 2 <= hd; d += 2) _Pragma("GCC unroll 16") for (int b = 0; b < NB; b++) {
            const __m512 k0 = _mm512_loadu_ps(kb + b * bs + d * 16), k1 = _mm512_loadu_ps(kb + b * bs + d * 16 + 16);
            _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) {
                e[b * G + h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * qs + d]), k0, e[b * G + h]);
                o[b * G + h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * qs + d + 1]), k1, o[b * G + h]);
            }
        }
    if (d < hd) _Pragma("GCC unroll 16") for (int b = 0; b < NB; b++) {
            const __m512 k0 = _mm512_loadu_ps(kb + b * bs + d * 16);
            _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) e[b * G + h] =
                _mm512_fmadd_ps(_mm512_set1_ps(q[h * qs + d]), k0, e[b * G + h]);
        }
    _Pragma("GCC unroll 16") for (int i = 0; i < NB * G; i++) r[i] = _mm512_add_ps(e[i], o[i]);
}

/* Scores of G queries against the keys in slots [lo, hi), written at key
 * positions off.. of each query's row of sc (rows n_keys apart); vmx[h]
 * takes the lane-wise max of the scores written. Blocks go two at a time
 * (one at the end); partial blocks at the range edges are compressed onto
 * their key positions. G is a constant at every call. */
static inline __attribute__((always_inline)) void att_scores_tile(const float *K, int32_t lo, int32_t hi, int32_t off,
                                                                  const float *q, int64_t qs, int64_t hd, float scale,
                                                                  float *sc, int32_t n_keys, __m512 *vmx, const int G) {
    const int64_t bs = hd * 16, last = (hi - 1) / 16;
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 mx[ATT_G];
    _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) mx[h] = vmx[h];
    for (int64_t blk = lo / 16; blk <= last;) {
        const int nb = blk < last ? 2 : 1;
        __m512 r[2 * ATT_G];
        if (nb == 2)
            att_score_tile(K + blk * bs, bs, q, qs, hd, G, 2, r);
        else
            att_score_tile(K + blk * bs, bs, q, qs, hd, G, 1, r);
        _Pragma("GCC unroll 2") for (int b = 0; b < 2; b++) {
            if (b >= nb) break;
            const int64_t base = (blk + b) * 16;
            const int l0 = base < lo ? (int)(lo - base) : 0, l1 = hi - base < 16 ? (int)(hi - base) : 16;
            const int64_t pos = off + base + l0 - lo;
            if (l0 == 0 && l1 == 16) {
                _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) {
                    const __m512 v = _mm512_mul_ps(r[b * G + h], vs);
                    _mm512_storeu_ps(sc + (int64_t)h * n_keys + pos, v);
                    mx[h] = _mm512_max_ps(mx[h], v);
                }
            } else {
                const __mmask16 m = (__mmask16)(((1u << l1) - 1) & ~((1u << l0) - 1));
                const __mmask16 mo = (__mmask16)((1u << (l1 - l0)) - 1);
                _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) {
                    const __m512 v = _mm512_mul_ps(r[b * G + h], vs);
                    _mm512_mask_storeu_ps(sc + (int64_t)h * n_keys + pos, mo, _mm512_maskz_compress_ps(m, v));
                    mx[h] = _mm512_mask_max_ps(mx[h], m, mx[h], v);
                }
            }
        }
        blk += nb;
    }
    _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) vmx[h] = mx[h];
}

static void att_scores_range(const float *K, int32_t lo, int32_t hi, int32_t off, const float *q, int64_t qs, int G,
                             int64_t hd, float scale, float *sc, int32_t n_keys, __m512 *vmx) {
    if (lo >= hi) return;
    switch (G) {
    case 1: att_scores_tile(K, lo, hi, off, q, qs, hd, scale, sc, n_keys, vmx, 1); break;
    case 2: att_scores_tile(K, lo, hi, off, q, qs, hd, scale, sc, n_keys, vmx, 2); break;
    case 3: att_scores_tile(K, lo, hi, off, q, qs, hd, scale, sc, n_keys, vmx, 3); break;
    default: att_scores_tile(K, lo, hi, off, q, qs, hd, scale, sc, n_keys, vmx, 4); break;
    }
}

/* out[h][c*16..] (h < G, c < CW) = sum over the keys in list order of
 * p[h][j] * V[key j][c0*16 + c*16 ..], one FMA per key into 16-lane sums,
 * then times inv[h]. G and CW are constants at every call. */
static inline __attribute__((always_inline)) void att_value_tile(const float *V, int64_t vs, int32_t a0, int32_t a1,
                                                                 int32_t b0, int32_t b1, const float *p, int32_t n_keys,
                                                                 const float *inv, const int G, const int CW,
                                                                 float *out, int64_t os) {
    __m512 acc[ATT_G * ATT_CW];
    _Pragma("GCC unroll 16") for (int i = 0; i < G * CW; i++) acc[i] = _mm512_setzero_ps();
    int32_t j = 0;
    for (int rg = 0; rg < 2; rg++) {
        const int32_t lo = rg ? b0 : a0, hi = rg ? b1 : a1;
        for (int32_t s = lo; s < hi; s++, j++) {
            const float *vr = V + (int64_t)s * vs;
            _Pragma("GCC unroll 16") for (int c = 0; c < CW; c++) {
                const __m512 v = _mm512_loadu_ps(vr + 16 * c);
                _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) acc[h * CW + c] =
                    _mm512_fmadd_ps(_mm512_set1_ps(p[(int64_t)h * n_keys + j]), v, acc[h * CW + c]);
            }
        }
    }
    _Pragma("GCC unroll 16") for (int h = 0; h < G; h++) _Pragma("GCC unroll 16") for (int c = 0; c < CW; c++)
        _mm512_storeu_ps(out + h * os + 16 * c, _mm512_mul_ps(acc[h * CW + c], _mm512_set1_ps(inv[h])));
}

/* Exact max of 16 lanes. */
static inline float hmax16(__m512 v) {
    __m256 a = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
}

/* Order: scores by att_score_tile (the canonical per-key order of
 * attn_score_ref, no horizontal sums: a lane per key, all queries of the
 * group reusing each K load); the max; exponentials with a 16-lane
 * polynomial exp, summed in double into 16 lane sums by key position
 * (position j into lane j % 16, tail lanes adding +0), reduced by a fixed
 * halving tree; the values accumulated key by key in list order into
 * 16-lane sums of e_j * v, then scaled by 1/sum. Nothing depends on the
 * slots' places in blocks or on the split into ranges. hd must be a
 * multiple of 16 and 1 <= n_q <= 16, else the generic kernel runs. */
void pl_attn_avx512(const float *q, int64_t q_stride, int n_q, const float *K, const float *V, int64_t v_stride,
                    int32_t a0, int32_t a1, int32_t b0, int32_t b1, int64_t hd, float scale, float *out,
                    int64_t out_stride, float *scores) {
    if (hd % 16 != 0 || hd < 16 || n_q > ATT_MAX_Q || n_q < 1) {
        pl_attn_generic(q, q_stride, n_q, K, V, v_stride, a0, a1, b0, b1, hd, scale, out, out_stride, scores);
        return;
    }
    if (a1 < a0) a1 = a0;
    if (b1 < b0) b1 = b0;
    const int32_t na = a1 - a0, n_keys = na + (b1 - b0);
    __m512 vmx[ATT_MAX_Q];
    for (int h = 0; h < n_q; h++) vmx[h] = _mm512_set1_ps(-INFINITY);
    for (int h0 = 0; h0 < n_q; h0 += ATT_G) {
        const int G = n_q - h0 < ATT_G ? n_q - h0 : ATT_G;
        float *sc = scores + (int64_t)h0 * n_keys;
        att_scores_range(K, a0, a1, 0, q + h0 * q_stride, q_stride, G, hd, scale, sc, n_keys, vmx + h0);
        att_scores_range(K, b0, b1, na, q + h0 * q_stride, q_stride, G, hd, scale, sc, n_keys, vmx + h0);
    }
    /* exponentials and their sums */
    float inv[ATT_MAX_Q];
    for (int h = 0; h < n_q; h++) {
        float *sc = scores + (int64_t)h * n_keys;
        const __m512 m = _mm512_set1_ps(hmax16(vmx[h]));
        __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
        int32_t j = 0;
        for (; j + 16 <= n_keys; j += 16) {
            const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(sc + j), m));
            _mm512_storeu_ps(sc + j, e);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
        }
        if (j < n_keys) {
            const __mmask16 mk = (__mmask16)((1u << (n_keys - j)) - 1);
            const __m512 e = _mm512_maskz_mov_ps(mk, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, sc + j), m)));
            _mm512_mask_storeu_ps(sc + j, mk, e);
            s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
            s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
        }
        s0 = _mm512_add_pd(s0, s1);
        __m256d t = _mm256_add_pd(_mm512_castpd512_pd256(s0), _mm512_extractf64x4_pd(s0, 1));
        __m128d u = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
        u = _mm_add_sd(u, _mm_unpackhi_pd(u, u));
        inv[h] = (float)(1.0 / _mm_cvtsd_f64(u));
    }
    /* values: tiles of up to ATT_G queries x ATT_CW chunks of 16 dims */
    const int64_t nc = hd / 16;
    for (int h0 = 0; h0 < n_q; h0 += ATT_G) {
        const int G = n_q - h0 < ATT_G ? n_q - h0 : ATT_G;
        const float *p = scores + (int64_t)h0 * n_keys;
        float *o = out + h0 * out_stride;
        for (int64_t c0 = 0; c0 < nc; c0 += ATT_CW) {
            const int CW = nc - c0 < ATT_CW ? (int)(nc - c0) : ATT_CW;
            const float *vc = V + 16 * c0;
            float *oc = o + 16 * c0;
            switch ((G - 1) * ATT_CW + CW - 1) {
#define ATT_VALUE_CASE(g, cw)                                                                                          \
    case ((g)-1) * ATT_CW + (cw)-1:                                                                                    \
        att_value_tile(vc, v_stride, a0, a1, b0, b1, p, n_keys, inv + h0, g, cw, oc, out_stride);                      \
        break;
                ATT_VALUE_CASE(1, 1)
                ATT_VALUE_CASE(1, 2)
                ATT_VALUE_CASE(1, 3)
                ATT_VALUE_CASE(1, 4)
                ATT_VALUE_CASE(2, 1)
                ATT_VALUE_CASE(2, 2)
                ATT_VALUE_CASE(2, 3)
                ATT_VALUE_CASE(2, 4)
                ATT_VALUE_CASE(3, 1)
                ATT_VALUE_CASE(3, 2)
                ATT_VALUE_CASE(3, 3)
                ATT_VALUE_CASE(3, 4)
                ATT_VALUE_CASE(4, 1)
                ATT_VALUE_CASE(4, 2)
                ATT_VALUE_CASE(4, 3)
                ATT_VALUE_CASE(4, 4)
#undef ATT_VALUE_CASE
            default: break; /* unreachable */
            }
        }
    }
}

/* ---- fast mode: q8a quantizer and integer (VNNI) matmul --------------------
 * Both reproduce the references in quant.c bit for bit: the quantizer makes
 * the same float operations per value (one multiply, round to nearest even),
 * the matmul computes the same exact integer block sums S_b and then the
 * same float operations per lane (see pl_matmul_rows_q8 in quant.h). */

/* Stores the 32 bytes v of block lane l into a q8a-layout group G
 * (byte s*64 + 4l + k = v[4s + k]). */
static inline void q8_put32(uint8_t *G, int l, __m256i v) {
    uint32_t w[8];
    _mm256_storeu_si256((__m256i *)w, v);
    for (int s = 0; s < 8; s++) memcpy(G + s * 64 + 4 * l, &w[s], 4);
}

void pl_quant_act_avx512(const float *x, int64_t xs, int64_t n, int64_t nt, uint8_t *dst, int parts) {
    const int64_t nb = n / PL_QK, stride = pl_q8a_stride(n), full = nb / 16 * PL_Q8A_GROUP_BYTES,
                  gbytes = pl_q8a_groups_bytes(n);
    const bool groups = parts & PL_Q8A_GROUPS, natural = parts & PL_Q8A_NATURAL;
    const __m512 sgn = _mm512_set1_ps(-0.0f);
    for (int64_t t = 0; t < nt; t++) {
        uint8_t *o = dst + t * stride;
        if (groups && gbytes > full) memset(o + full, 0, (size_t)(gbytes - full));
        for (int64_t b = 0; b < nb; b++) {
            const float *v = x + t * xs + b * PL_QK;
            const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
            const float amax =
                _mm512_reduce_max_ps(_mm512_max_ps(_mm512_andnot_ps(sgn, v0), _mm512_andnot_ps(sgn, v1)));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            const __m512 vid = _mm512_set1_ps(id);
            const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)),
                          q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vid));
            const int32_t sumh = _mm512_reduce_add_epi32(q0), sum = sumh + _mm512_reduce_add_epi32(q1);
            const __m256i codes =
                _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)), _mm512_cvtepi32_epi8(q1), 1);
            const float ax = d * (float)sum;
            const int32_t off = -128 * sum;
            if (groups) {
                uint8_t *G = o + b / 16 * PL_Q8A_GROUP_BYTES;
                const int l = (int)(b % 16);
                q8_put32(G, l, codes);
                memcpy(G + 512 + 4 * l, &d, 4);
                memcpy(G + 576 + 4 * l, &ax, 4);
                memcpy(G + 640 + 4 * l, &sum, 4);
                memcpy(G + 704 + 4 * l, &sumh, 4);
                memcpy(G + 768 + 4 * l, &off, 4);
            }
            if (natural) { /* one 64-byte record: codes, d, ax, off, -32 sumh, -32 (sum - sumh), zeros */
                int32_t di, ai;
                memcpy(&di, &d, 4);
                memcpy(&ai, &ax, 4);
                const __m256i meta = _mm256_setr_epi32(di, ai, off, -32 * sumh, -32 * (sum - sumh), 0, 0, 0);
                _mm512_storeu_si512(o + gbytes + b * PL_Q8A_NAT_BYTES,
                                    _mm512_inserti64x4(_mm512_castsi256_si512(codes), meta, 1));
            }
        }
    }
}

/* Repacked weight row (same group geometry as q8a): per group, bytes
 * [0, 512) the unsigned weight codes u transposed like the activations
 * (Q8_0: q + 128; Q4_x: nibble; Q5_x: 5-bit q; Q4_K/Q5_K: nibble / 5-bit q;
 * Q6_K: 6-bit q); float dw[16] at 512; float mw[16] at 576 (signed min
 * factor, 0 if none); at 640 / 704 (Q6_K) the scales of the first / second
 * 16 values of each block as int32 lanes holding the int16 scale twice.
 * Padding lanes are all zero. */

/* 32 nibbles of 16 bytes: element i < 16 low nibble of q[i], i >= 16 high. */
static inline __m256i nib32(const uint8_t *q) {
    const __m128i v = _mm_loadu_si128((const __m128i *)q), m = _mm_set1_epi8(0xF);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(v, m)), _mm_and_si128(_mm_srli_epi16(v, 4), m),
                                   1);
}

/* Sets bit 4 of byte i where bit i of qh is set. */
static inline __m256i or_bit4(__m256i u, uint32_t qh) {
    return _mm256_or_si256(u, _mm256_maskz_mov_epi8((__mmask32)qh, _mm256_set1_epi8(16)));
}

/* The codes u of block b of a row; writes its dw, mw (and Q6_K scales) into
 * lane l of group G. */
static inline __attribute__((always_inline)) __m256i q8_block_u(uint32_t type, const uint8_t *row, int64_t b,
                                                                uint8_t *G, int l) {
    const __m256i k15 = _mm256_set1_epi8(0xF);
    float dw = 0.0f, mw = 0.0f;
    __m256i u;
    {
        switch (type) {
        case GGML_Q8_0: {
            const pl_block_q8_0 *x = (const pl_block_q8_0 *)(const void *)row + b;
            dw = h2f(x->d);
            u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs), _mm256_set1_epi8((char)0x80));
            break;
        }
        case GGML_Q4_0: {
            const pl_block_q4_0 *x = (const pl_block_q4_0 *)(const void *)row + b;
            dw = h2f(x->d), u = nib32(x->qs);
            break;
        }
        case GGML_Q4_1: {
            const pl_block_q4_1 *x = (const pl_block_q4_1 *)(const void *)row + b;
            dw = h2f(x->d), mw = h2f(x->m), u = nib32(x->qs);
            break;
        }
        case GGML_Q5_0: {
            const pl_block_q5_0 *x = (const pl_block_q5_0 *)(const void *)row + b;
            uint32_t qh;
            memcpy(&qh, x->qh, 4);
            dw = h2f(x->d), u = or_bit4(nib32(x->qs), qh);
            break;
        }
        case GGML_Q5_1: {
            const pl_block_q5_1 *x = (const pl_block_q5_1 *)(const void *)row + b;
            uint32_t qh;
            memcpy(&qh, x->qh, 4);
            dw = h2f(x->d), mw = h2f(x->m), u = or_bit4(nib32(x->qs), qh);
            break;
        }
        case GGML_Q4_K:
        case GGML_Q5_K: {
            const int j = (int)(b % 8);
            const uint8_t *scales, *qs, *qh = NULL;
            float d, dmin;
            if (type == GGML_Q4_K) {
                const pl_block_q4_k *x = (const pl_block_q4_k *)(const void *)row + b / 8;
                d = h2f(x->d), dmin = h2f(x->dmin), scales = x->scales, qs = x->qs;
            } else {
                const pl_block_q5_k *x = (const pl_block_q5_k *)(const void *)row + b / 8;
                d = h2f(x->d), dmin = h2f(x->dmin), scales = x->scales, qs = x->qs, qh = x->qh;
            }
            uint8_t sc, m;
            pl_k_scale_min(j, scales, &sc, &m);
            dw = d * (float)sc;
            mw = -(dmin * (float)m);
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + (j / 2) * 32));
            u = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(q, 4), k15) : _mm256_and_si256(q, k15);
            if (qh) {
                const __mmask32 hb =
                    _mm256_test_epi8_mask(_mm256_loadu_si256((const __m256i *)qh), _mm256_set1_epi8((char)(1u << j)));
                u = _mm256_mask_add_epi8(u, hb, u, _mm256_set1_epi8(16));
            }
            break;
        }
        case GGML_Q6_K: {
            const pl_block_q6_k *x = (const pl_block_q6_k *)(const void *)row + b / 8;
            const int j = (int)(b % 8), h = j / 4, k = j % 4;
            dw = h2f(x->d);
            const __m256i ql = _mm256_loadu_si256((const __m256i *)(x->ql + 64 * h + (k & 1) * 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x->qh + 32 * h));
            const __m256i nib = k < 2 ? _mm256_and_si256(ql, k15) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), k15);
            /* ((qh >> 2k) & 3) << 4 == (qh << (4 - 2k)) & 0x30 for k <= 2, (qh >> 2) & 0x30 for k = 3 */
            const __m256i hi = k == 3 ? _mm256_srli_epi16(qh, 2) : _mm256_slli_epi16(qh, 4 - 2 * k);
            u = _mm256_or_si256(nib, _mm256_and_si256(hi, _mm256_set1_epi8(0x30)));
            const int32_t sa = x->scales[8 * h + 2 * k], sb = x->scales[8 * h + 2 * k + 1];
            const int32_t pa = (int32_t)(((uint32_t)(uint16_t)sa << 16) | (uint16_t)sa);
            const int32_t pb = (int32_t)(((uint32_t)(uint16_t)sb << 16) | (uint16_t)sb);
            memcpy(G + 640 + 4 * l, &pa, 4);
            memcpy(G + 704 + 4 * l, &pb, 4);
            break;
        }
        default:
            u = _mm256_setzero_si256();
            dw = __builtin_nanf("");
            break;
        }
        memcpy(G + 512 + 4 * l, &dw, 4);
        memcpy(G + 576 + 4 * l, &mw, 4);
    }
    return u;
}

/* Round 1 and 2 indices of the 16 x 8 dword transpose in q8_repack_row. */
static const int32_t k_tr1[2][16] = {{0, 8, 16, 24, 1, 9, 17, 25, 2, 10, 18, 26, 3, 11, 19, 27},
                                     {4, 12, 20, 28, 5, 13, 21, 29, 6, 14, 22, 30, 7, 15, 23, 31}};
static const int32_t k_tr2[2][16] = {{0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23},
                                     {8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31}};

/* Repacks one row: per group, the codes of its 16 blocks (zero past the
 * row's end) are transposed in registers (three shuffle rounds) so that
 * vector s holds dword s of every block. */
static void q8_repack_row(uint32_t type, const uint8_t *row, int64_t n, uint8_t *out) {
    const int64_t nb = n / PL_QK, ng = (nb + 15) / 16;
    const __m512i i10 = _mm512_loadu_si512(k_tr1[0]), i11 = _mm512_loadu_si512(k_tr1[1]);
    const __m512i i20 = _mm512_loadu_si512(k_tr2[0]), i21 = _mm512_loadu_si512(k_tr2[1]);
    for (int64_t g = 0; g < ng; g++) {
        uint8_t *G = out + g * PL_Q8A_GROUP_BYTES;
        const int nl = nb - 16 * g < 16 ? (int)(nb - 16 * g) : 16;
        if (nl < 16) memset(G + 512, 0, PL_Q8A_GROUP_BYTES - 512);
        __m512i A[8];
        for (int p = 0; p < 8; p++) {
            const __m256i u0 = 2 * p < nl ? q8_block_u(type, row, 16 * g + 2 * p, G, 2 * p) : _mm256_setzero_si256();
            const __m256i u1 =
                2 * p + 1 < nl ? q8_block_u(type, row, 16 * g + 2 * p + 1, G, 2 * p + 1) : _mm256_setzero_si256();
            A[p] = _mm512_inserti64x4(_mm512_castsi256_si512(u0), u1, 1);
        }
        __m512i B[4][2], C[2][2][2];
        for (int p = 0; p < 4; p++) {
            B[p][0] = _mm512_permutex2var_epi32(A[2 * p], i10, A[2 * p + 1]);
            B[p][1] = _mm512_permutex2var_epi32(A[2 * p], i11, A[2 * p + 1]);
        }
        for (int q = 0; q < 2; q++)
            for (int h = 0; h < 2; h++) {
                C[q][h][0] = _mm512_permutex2var_epi32(B[2 * q][h], i20, B[2 * q + 1][h]);
                C[q][h][1] = _mm512_permutex2var_epi32(B[2 * q][h], i21, B[2 * q + 1][h]);
            }
        for (int h = 0; h < 2; h++)
            for (int m = 0; m < 2; m++) {
                _mm512_storeu_si512(G + (4 * h + 2 * m) * 64, _mm512_shuffle_i64x2(C[0][h][m], C[1][h][m], 0x44));
                _mm512_storeu_si512(G + (4 * h + 2 * m + 1) * 64, _mm512_shuffle_i64x2(C[0][h][m], C[1][h][m], 0xEE));
            }
    }
}

/* Register tile of the integer matmul: Q8_TR rows x Q8_TT tokens, an int32
 * and a float accumulator each. */
#define Q8_TR PL_Q8_ROWS
#define Q8_TT 3
#define Q8_TOK_GROUP 64 /* tokens per pass over the rows (weights repacked once per pass) */

/* Kinds: 0 legacy with an integer offset (S starts at -off * sum_b);
 * 1 no offset, a min term (Q4_1, Q5_1, Q4_K, Q5_K); 2 Q6_K (16-value scales
 * through VPMADDUBSW + VPDPWSSD, offset -32 * sum of scale * a). */
static inline __attribute__((always_inline)) void q8_tile_body(const int KIND, const int R, const int T,
                                                               const uint8_t *const *w, const uint8_t *x, int64_t xst,
                                                               int64_t ng, int off, float *y, int64_t ys) {
    __m512 acc[Q8_TR][Q8_TT];
    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) acc[r][t] =
        _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *xg[Q8_TT], *wg[Q8_TR];
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) xg[t] = x + t * xst + g * PL_Q8A_GROUP_BYTES;
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) wg[r] = w[r] + g * PL_Q8A_GROUP_BYTES;
        __m512i S[Q8_TR][Q8_TT];
        if (KIND == 0) {
            const __m512i k = _mm512_set1_epi32(-off);
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                const __m512i init = _mm512_mullo_epi32(_mm512_loadu_si512(xg[t] + 640), k);
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) S[r][t] = init;
            }
        } else if (KIND == 1) {
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
                S[r][t] = _mm512_setzero_si512();
        } else {
            /* -32 * (sca * sumh + scb * (sum - sumh)) */
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
                const __m512i sh = _mm512_loadu_si512(xg[t] + 704);
                const __m512i sr = _mm512_sub_epi32(_mm512_loadu_si512(xg[t] + 640), sh);
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                    const __m512i sa = _mm512_srai_epi32(_mm512_loadu_si512(wg[r] + 640), 16);
                    const __m512i sb = _mm512_srai_epi32(_mm512_loadu_si512(wg[r] + 704), 16);
                    const __m512i p = _mm512_add_epi32(_mm512_mullo_epi32(sa, sh), _mm512_mullo_epi32(sb, sr));
                    S[r][t] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(p, 5));
                }
            }
        }
        _Pragma("GCC unroll 8") for (int s = 0; s < 8; s++) {
            __m512i A[Q8_TT];
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) A[t] = _mm512_loadu_si512(xg[t] + s * 64);
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                const __m512i U = _mm512_loadu_si512(wg[r] + s * 64);
                if (KIND == 2) {
                    const __m512i sc = _mm512_loadu_si512(wg[r] + (s < 4 ? 640 : 704));
                    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) S[r][t] =
                        _mm512_dpwssd_epi32(S[r][t], _mm512_maddubs_epi16(U, A[t]), sc);
                } else {
                    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) S[r][t] = _mm512_dpbusd_epi32(S[r][t], U, A[t]);
                }
            }
        }
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
            const __m512 dx = _mm512_loadu_ps((const float *)(const void *)(xg[t] + 512));
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                const __m512 dw = _mm512_loadu_ps((const float *)(const void *)(wg[r] + 512));
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[r][t]), _mm512_mul_ps(dw, dx), acc[r][t]);
                if (KIND == 1)
                    acc[r][t] = _mm512_fmadd_ps(_mm512_loadu_ps((const float *)(const void *)(wg[r] + 576)),
                                                _mm512_loadu_ps((const float *)(const void *)(xg[t] + 576)), acc[r][t]);
            }
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
        y[t * ys + r] = hsum16(acc[r][t]);
}

typedef void (*q8_tile_fn)(const uint8_t *const *w, const uint8_t *x, int64_t xst, int64_t ng, int off, float *y,
                           int64_t ys);
#define Q8_FN(K, R, T)                                                                                                 \
    static void q8_tile_##K##_##R##_##T(const uint8_t *const *w, const uint8_t *x, int64_t xst, int64_t ng, int off,   \
                                        float *y, int64_t ys) {                                                        \
        q8_tile_body(K, R, T, w, x, xst, ng, off, y, ys);                                                              \
    }
#define Q8_ROW(K, R) Q8_FN(K, R, 1) Q8_FN(K, R, 2) Q8_FN(K, R, 3)
#define Q8_KIND(K) Q8_ROW(K, 1) Q8_ROW(K, 2) Q8_ROW(K, 3) Q8_ROW(K, 4)
Q8_KIND(0)
Q8_KIND(1)
Q8_KIND(2)
#define Q8_E(K, R)                                                                                                     \
    { q8_tile_##K##_##R##_1, q8_tile_##K##_##R##_2, q8_tile_##K##_##R##_3 }
_Static_assert(Q8_TR == 4 && Q8_TT == 3, "q8 tile table matches Q8_TR x Q8_TT");
static const q8_tile_fn k_q8_tiles[3][Q8_TR][Q8_TT] = {
    {Q8_E(0, 1), Q8_E(0, 2), Q8_E(0, 3), Q8_E(0, 4)},
    {Q8_E(1, 1), Q8_E(1, 2), Q8_E(1, 3), Q8_E(1, 4)},
    {Q8_E(2, 1), Q8_E(2, 2), Q8_E(2, 3), Q8_E(2, 4)},
};

/* Per pass of up to Q8_TOK_GROUP tokens: per block of Q8_TR rows, repack
 * each row once into scratch, then sweep the tokens in Q8_TT tiles. */
void pl_matmul_q8_avx512(const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1, const uint8_t *xq,
                         int64_t nt, float *y, int64_t ys, uint8_t *scratch) {
    const int64_t st = pl_q8a_stride(n), ng = pl_q8a_groups_bytes(n) / PL_Q8A_GROUP_BYTES;
    uint8_t *sc = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    int kind = 1, off = 0;
    switch (type) {
    case GGML_Q8_0: kind = 0, off = 128; break;
    case GGML_Q4_0: kind = 0, off = 8; break;
    case GGML_Q5_0: kind = 0, off = 16; break;
    case GGML_Q6_K: kind = 2; break;
    default: break;
    }
    for (int64_t g0 = 0; g0 < nt; g0 += Q8_TOK_GROUP) {
        const int64_t gn = nt - g0 < Q8_TOK_GROUP ? nt - g0 : Q8_TOK_GROUP;
        for (int64_t rb = r0; rb < r1; rb += Q8_TR) {
            const int R = (int)(r1 - rb < Q8_TR ? r1 - rb : Q8_TR);
            const uint8_t *w[Q8_TR];
            for (int r = 0; r < R; r++) {
                q8_repack_row(type, (const uint8_t *)W + (size_t)(rb + r) * rs, n, sc + r * ng * PL_Q8A_GROUP_BYTES);
                w[r] = sc + r * ng * PL_Q8A_GROUP_BYTES;
            }
            /* Pull the next row block toward the cache while this one computes:
             * the repack is otherwise a stall on memory reads. */
            if (rb + Q8_TR < r1) {
                const uint8_t *nx = (const uint8_t *)W + (size_t)(rb + Q8_TR) * rs;
                const int64_t nr = r1 - rb - Q8_TR < Q8_TR ? r1 - rb - Q8_TR : Q8_TR;
                for (size_t o = 0; o < (size_t)nr * rs; o += 64) _mm_prefetch((const char *)(nx + o), _MM_HINT_T0);
            }
            int64_t t = g0;
            for (; t + Q8_TT <= g0 + gn; t += Q8_TT)
                k_q8_tiles[kind][R - 1][Q8_TT - 1](w, xq + t * st, st, ng, off, y + t * ys + rb, ys);
            if (t < g0 + gn) k_q8_tiles[kind][R - 1][g0 + gn - t - 1](w, xq + t * st, st, ng, off, y + t * ys + rb, ys);
        }
    }
}
