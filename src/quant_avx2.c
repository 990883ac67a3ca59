/* quant_avx2.c — AVX2 + FMA + F16C kernels: the float dot product and
 * dequantizers for every supported quantized type. Only quant.c calls these,
 * after checking the CPU.
 *
 * Dequantizers reproduce the scalar references in quant.c bit for bit: the
 * same integer quant, converted exactly to float, then the same float
 * operations in the same order (separate multiply and add/subtract, never
 * FMA). Loads are unaligned; blocks may sit at any address. */
#include <immintrin.h>
#include <string.h>

#include "quant_isa.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* fp16 -> float with F16C (exact; identical to pl_fp16_to_f32). */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

/* 8 bytes at p widened to 8 unsigned 32-bit lanes. */
static inline __m256i load_u8x8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)); }

/* Fixed order: four 8-lane FMA accumulators over 32-element chunks (lane l of
 * accumulator k takes i = 32c + 8k + l), then 8-element chunks into
 * accumulator 0, then a masked tail into accumulator 0; reduction
 * (acc0 + acc1) + (acc2 + acc3), then lanes halved 8 -> 4 -> 2 -> 1. */
float pl_dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    if (i < n) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), acc0);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

/* F16: exact widening (VCVTPH2PS), 8 at a time, scalar F16C tail. */
void pl_to_float_f16_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = h2f(h);
    }
}

/* BF16: exact widening (shift into the top half), 8 at a time, scalar tail. */
void pl_to_float_bf16_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(dst + i, &u, 4);
    }
}

/* dst[0..8) = (float)q * d. */
static inline void store_mul(float *dst, __m256i q, __m256 d) {
    _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
}

/* dst[0..8) = (float)q * d + m. */
static inline void store_mul_add(float *dst, __m256i q, __m256 d, __m256 m) {
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(q), d), m));
}

/* Q4_0: (float)(nibble - 8) * d. */
void pl_to_float_q4_0_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q4_0 *x = src;
    const __m256i k15 = _mm256_set1_epi32(15), k8 = _mm256_set1_epi32(8);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d));
        for (int c = 0; c < 2; c++) {
            const __m256i v = load_u8x8(x[i].qs + 8 * c);
            store_mul(dst + 8 * c, _mm256_sub_epi32(_mm256_and_si256(v, k15), k8), d);
            store_mul(dst + 16 + 8 * c, _mm256_sub_epi32(_mm256_srli_epi32(v, 4), k8), d);
        }
    }
}

/* Q4_1: (float)nibble * d + m. */
void pl_to_float_q4_1_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q4_1 *x = src;
    const __m256i k15 = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d)), m = _mm256_set1_ps(h2f(x[i].m));
        for (int c = 0; c < 2; c++) {
            const __m256i v = load_u8x8(x[i].qs + 8 * c);
            store_mul_add(dst + 8 * c, _mm256_and_si256(v, k15), d, m);
            store_mul_add(dst + 16 + 8 * c, _mm256_srli_epi32(v, 4), d, m);
        }
    }
}

/* Fifth bits (0 or 16) of elements base..base+7 from the Q5 qh word. */
static inline __m256i q5_high(uint32_t qh, int base) {
    const __m256i sh = _mm256_add_epi32(_mm256_set1_epi32(base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i bit = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)qh), sh), _mm256_set1_epi32(1));
    return _mm256_slli_epi32(bit, 4);
}

/* Q5_0: (float)((nibble | bit << 4) - 16) * d. */
void pl_to_float_q5_0_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q5_0 *x = src;
    const __m256i k15 = _mm256_set1_epi32(15), k16 = _mm256_set1_epi32(16);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d));
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int c = 0; c < 2; c++) {
            const __m256i v = load_u8x8(x[i].qs + 8 * c);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(v, k15), q5_high(qh, 8 * c));
            const __m256i hi = _mm256_or_si256(_mm256_srli_epi32(v, 4), q5_high(qh, 16 + 8 * c));
            store_mul(dst + 8 * c, _mm256_sub_epi32(lo, k16), d);
            store_mul(dst + 16 + 8 * c, _mm256_sub_epi32(hi, k16), d);
        }
    }
}

/* Q5_1: (float)(nibble | bit << 4) * d + m. */
void pl_to_float_q5_1_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q5_1 *x = src;
    const __m256i k15 = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d)), m = _mm256_set1_ps(h2f(x[i].m));
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        for (int c = 0; c < 2; c++) {
            const __m256i v = load_u8x8(x[i].qs + 8 * c);
            store_mul_add(dst + 8 * c, _mm256_or_si256(_mm256_and_si256(v, k15), q5_high(qh, 8 * c)), d, m);
            store_mul_add(dst + 16 + 8 * c, _mm256_or_si256(_mm256_srli_epi32(v, 4), q5_high(qh, 16 + 8 * c)), d, m);
        }
    }
}

/* Q8_0: (float)q * d. */
void pl_to_float_q8_0_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q8_0 *x = src;
    for (int64_t i = 0; i < n / PL_QK; i++, dst += PL_QK) {
        const __m256 d = _mm256_set1_ps(h2f(x[i].d));
        for (int c = 0; c < 4; c++)
            store_mul(dst + 8 * c, _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(x[i].qs + 8 * c))), d);
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

/* dst[0..8) = ds * (float)q - ms. */
static inline void store_dq_min(float *dst, __m256i q, float ds, float ms) {
    _mm256_storeu_ps(dst, _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(ds), _mm256_cvtepi32_ps(q)), _mm256_set1_ps(ms)));
}

/* Q4_K: d1 * (float)nibble - m1 per 32-value sub-block. */
void pl_to_float_q4_k_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q4_k *x = src;
    const __m256i k15 = _mm256_set1_epi32(15);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        float ds[8], ms[8];
        k_scales(x[i].scales, h2f(x[i].d), h2f(x[i].dmin), ds, ms);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 4; j++, q += 32, dst += 64) {
            for (int c = 0; c < 4; c++) {
                const __m256i v = load_u8x8(q + 8 * c);
                store_dq_min(dst + 8 * c, _mm256_and_si256(v, k15), ds[2 * j], ms[2 * j]);
                store_dq_min(dst + 32 + 8 * c, _mm256_srli_epi32(v, 4), ds[2 * j + 1], ms[2 * j + 1]);
            }
        }
    }
}

/* Q5_K: d1 * (float)(nibble + 16 * bit) - m1; the bit is a lane test of qh[l]. */
void pl_to_float_q5_k_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q5_k *x = src;
    const __m256i k15 = _mm256_set1_epi32(15), k16 = _mm256_set1_epi32(16);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        float ds[8], ms[8];
        k_scales(x[i].scales, h2f(x[i].d), h2f(x[i].dmin), ds, ms);
        const uint8_t *q = x[i].qs;
        for (int j = 0; j < 4; j++, q += 32, dst += 64) {
            const __m256i u1 = _mm256_set1_epi32(1 << (2 * j)), u2 = _mm256_set1_epi32(2 << (2 * j));
            for (int c = 0; c < 4; c++) {
                const __m256i v = load_u8x8(q + 8 * c), h = load_u8x8(x[i].qh + 8 * c);
                const __m256i b1 = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(h, u1), u1), k16);
                const __m256i b2 = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(h, u2), u2), k16);
                store_dq_min(dst + 8 * c, _mm256_add_epi32(_mm256_and_si256(v, k15), b1), ds[2 * j], ms[2 * j]);
                store_dq_min(dst + 32 + 8 * c, _mm256_add_epi32(_mm256_srli_epi32(v, 4), b2), ds[2 * j + 1], ms[2 * j + 1]);
            }
        }
    }
}

/* Q6_K: (d * (float)sc) * (float)q with q the 6-bit value minus 32. */
void pl_to_float_q6_k_avx2(const void *src, float *dst, int64_t n) {
    const pl_block_q6_k *x = src;
    const __m256i k15 = _mm256_set1_epi32(15), k3 = _mm256_set1_epi32(3), k32 = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < n / PL_QK_K; i++) {
        const float d = h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, dst += 128, ql += 64, qh += 32, sc += 8) {
            for (int c = 0; c < 4; c++) { /* l in [8c, 8c + 8), scale index is = c / 2 */
                const int is = c / 2;
                const __m256i a = load_u8x8(ql + 8 * c), b = load_u8x8(ql + 32 + 8 * c);
                const __m256i hb = load_u8x8(qh + 8 * c);
                const __m256i q1 = _mm256_or_si256(_mm256_and_si256(a, k15), _mm256_slli_epi32(_mm256_and_si256(hb, k3), 4));
                const __m256i q2 = _mm256_or_si256(_mm256_and_si256(b, k15),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), k3), 4));
                const __m256i q3 = _mm256_or_si256(_mm256_srli_epi32(a, 4),
                                                   _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), k3), 4));
                const __m256i q4 = _mm256_or_si256(_mm256_srli_epi32(b, 4), _mm256_slli_epi32(_mm256_srli_epi32(hb, 6), 4));
                float *y = dst + 8 * c;
                store_mul(y, _mm256_sub_epi32(q1, k32), _mm256_set1_ps(d * (float)sc[is]));
                store_mul(y + 32, _mm256_sub_epi32(q2, k32), _mm256_set1_ps(d * (float)sc[is + 2]));
                store_mul(y + 64, _mm256_sub_epi32(q3, k32), _mm256_set1_ps(d * (float)sc[is + 4]));
                store_mul(y + 96, _mm256_sub_epi32(q4, k32), _mm256_set1_ps(d * (float)sc[is + 6]));
            }
        }
    }
}
