/* quant_avx512.c — AVX-512 (F/BW/VL/DQ; compiled also with VNNI/BF16, FMA,
 * F16C) kernels: the float dot product and dequantizers for every supported
 * quantized type. Only quant.c calls these, after checking the CPU.
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
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * i))));
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
        const __m512i hi = _mm512_mask_or_epi32(_mm512_srli_epi32(v, 4), (__mmask16)(qh >> 16), _mm512_srli_epi32(v, 4), k16);
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
                const __m512i q1 = _mm512_or_si512(_mm512_and_si512(a, k15), _mm512_slli_epi32(_mm512_and_si512(hb, k3), 4));
                const __m512i q2 = _mm512_or_si512(_mm512_and_si512(b, k15),
                                                   _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 2), k3), 4));
                const __m512i q3 = _mm512_or_si512(_mm512_srli_epi32(a, 4),
                                                   _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(hb, 4), k3), 4));
                const __m512i q4 = _mm512_or_si512(_mm512_srli_epi32(b, 4), _mm512_slli_epi32(_mm512_srli_epi32(hb, 6), 4));
                float *y = dst + 16 * c;
                _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q1, k32))));
                _mm512_storeu_ps(y + 32, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 2]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q2, k32))));
                _mm512_storeu_ps(y + 64, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 4]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q3, k32))));
                _mm512_storeu_ps(y + 96, _mm512_mul_ps(_mm512_set1_ps(d * (float)sc[c + 6]), _mm512_cvtepi32_ps(_mm512_sub_epi32(q4, k32))));
            }
        }
    }
}
