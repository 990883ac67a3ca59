/* quant_avx2.c — AVX2 + FMA + F16C kernels: the float dot product,
 * dequantizers for every supported quantized type, and the matmul body (a
 * 3-row x 2-token register tile, the canonical 16 lanes as two ymm halves,
 * so results equal the scalar and AVX-512 ones bit for bit). Only quant.c
 * calls these, after checking the CPU.
 *
 * Dequantizers reproduce the scalar references in quant.c bit for bit: the
 * same integer quant, converted exactly to float, then the same float
 * operations in the same order (separate multiply and add/subtract, never
 * FMA). Loads are unaligned; blocks may sit at any address. */
#include <immintrin.h>
#include <string.h>

#include "gguf.h"
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
        const __m256i m =
            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
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
                store_dq_min(dst + 32 + 8 * c, _mm256_add_epi32(_mm256_srli_epi32(v, 4), b2), ds[2 * j + 1],
                             ms[2 * j + 1]);
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
                const __m256i q1 =
                    _mm256_or_si256(_mm256_and_si256(a, k15), _mm256_slli_epi32(_mm256_and_si256(hb, k3), 4));
                const __m256i q2 = _mm256_or_si256(
                    _mm256_and_si256(b, k15), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 2), k3), 4));
                const __m256i q3 = _mm256_or_si256(
                    _mm256_srli_epi32(a, 4), _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hb, 4), k3), 4));
                const __m256i q4 =
                    _mm256_or_si256(_mm256_srli_epi32(b, 4), _mm256_slli_epi32(_mm256_srli_epi32(hb, 6), 4));
                float *y = dst + 8 * c;
                store_mul(y, _mm256_sub_epi32(q1, k32), _mm256_set1_ps(d * (float)sc[is]));
                store_mul(y + 32, _mm256_sub_epi32(q2, k32), _mm256_set1_ps(d * (float)sc[is + 2]));
                store_mul(y + 64, _mm256_sub_epi32(q3, k32), _mm256_set1_ps(d * (float)sc[is + 4]));
                store_mul(y + 96, _mm256_sub_epi32(q4, k32), _mm256_set1_ps(d * (float)sc[is + 6]));
            }
        }
    }
}

/* ---- matmul (canonical order of pl_matmul_rows) ---------------------------
 * The 16 canonical lanes are two ymm halves: lo = lanes 0..7, hi = 8..15. */

/* The fixed reduction: lanes l += l+8 (lo + hi), l += l+4, l += l+2, [0] + [1]. */
static inline float hsum16(__m256 lo, __m256 hi) {
    const __m256 s8 = _mm256_add_ps(lo, hi);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

/* Register tile: TILE_R rows x TILE_T tokens x 2 halves = 12 accumulators. */
#define TILE_R 3
#define TILE_T 2
_Static_assert(TILE_R <= PL_MATMUL_ROWS, "scratch holds a tile of rows");

/* y[t*ys + r] for r < R, t < T: rows w[r] (dequantized floats) times tokens
 * x + t*xs, n values. */
static inline __attribute__((always_inline)) void tile_body(const int R, const int T, const float *const *w,
                                                            const float *x, int64_t xs, int64_t n, float *y,
                                                            int64_t ys) {
    __m256 acc[TILE_R][TILE_T][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256 xv[TILE_T];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) xv[t] = _mm256_loadu_ps(x + t * xs + i + 8 * h);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const __m256 wv = _mm256_loadu_ps(w[r] + i + 8 * h);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) acc[r][t][h] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][h]);
            }
        }
    }
    if (i < n) { /* tail: lanes past n keep their sums (FMA on zeros, then blend) */
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i rem = _mm256_set1_epi32((int)(n - i));
        const __m256i m[2] = {_mm256_cmpgt_epi32(rem, lane),
                              _mm256_cmpgt_epi32(rem, _mm256_add_epi32(lane, _mm256_set1_epi32(8)))};
        for (int h = 0; h < 2; h++) {
            for (int r = 0; r < R; r++) {
                const __m256 wv = _mm256_maskload_ps(w[r] + i + 8 * h, m[h]);
                for (int t = 0; t < T; t++) {
                    const __m256 f =
                        _mm256_fmadd_ps(wv, _mm256_maskload_ps(x + t * xs + i + 8 * h, m[h]), acc[r][t][h]);
                    acc[r][t][h] = _mm256_blendv_ps(acc[r][t][h], f, _mm256_castsi256_ps(m[h]));
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) y[t * ys + r] = hsum16(acc[r][t][0], acc[r][t][1]);
}

typedef void (*tile_fn)(const float *const *w, const float *x, int64_t xs, int64_t n, float *y, int64_t ys);
#define TILE_FN(R, T)                                                                                                  \
    static void tile_##R##_##T(const float *const *w, const float *x, int64_t xs, int64_t n, float *y, int64_t ys) {   \
        tile_body(R, T, w, x, xs, n, y, ys);                                                                           \
    }
TILE_FN(1, 1)
TILE_FN(1, 2)
TILE_FN(2, 1)
TILE_FN(2, 2)
TILE_FN(3, 1)
TILE_FN(3, 2)
_Static_assert(TILE_R == 3 && TILE_T == 2, "tile table matches TILE_R x TILE_T");
static const tile_fn k_tiles[TILE_R][TILE_T] = {{tile_1_1, tile_1_2}, {tile_2_1, tile_2_2}, {tile_3_1, tile_3_2}};

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

/* Per token group, per block of TILE_R rows: dequantize each row once into
 * scratch (F32 rows are read in place when aligned), then sweep the group's
 * tokens in TILE_T tiles. */
void pl_matmul_avx2(pl_to_float_fn to_float, const void *W, uint32_t type, size_t rs, int64_t n, int64_t r0, int64_t r1,
                    const float *x, int64_t xs, int64_t nt, float *y, int64_t ys, float *scratch) {
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

uint64_t pl_stream_sum_avx2(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        _mm_prefetch((const char *)(p + i + PL_STREAM_AHEAD), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i + PL_STREAM_AHEAD + 64), _MM_HINT_T0);
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(const void *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(const void *)(p + i + 32)));
        c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(const void *)(p + i + 64)));
        d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(const void *)(p + i + 96)));
    }
    for (size_t i = n / 128 * 128; i < n; i += 32)
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(const void *)(p + i)));
    const __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
