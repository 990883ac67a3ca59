/* quant_r16_avx512.c — fast mode's integer matmul on r16-packed weights
 * (row-interleaved, layout in quant.h), AVX-512 VNNI: register tiles of row
 * groups x tokens for batches; for one-token calls one row group at a time
 * as a single prefetched stream (K-quants in natural block order). Only
 * quant.c calls pl_matmul_r16_avx512, after checking the CPU; it reproduces
 * the scalar reference (matmul_q8_scalar on the unpacked rows) bit for bit. */
#include <immintrin.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "quant_isa.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ---- fast mode on r16-packed weights (layout in quant.h) ------------------
 * Rows sit in the 16 lanes: per block, the eight dword vectors of codes are
 * loaded once per group of rows and multiplied with a broadcast dword of each
 * token's q8a block (VPDPBUSD), so no lane is padding and the weights are
 * read as stored. The canonical order of pl_matmul_rows_q8 needs, per row,
 * 16 partial sums over the blocks b with b % 16 = l: the kernel visits the
 * blocks residue by residue, keeps each residue's sums in `part` and ends
 * with the same halving tree. */
#define R16_G 2       /* groups of 16 rows per register tile */
#define R16_CHUNK 128 /* tokens per pass over the rows (measured: 64-128 best at 512 tokens) */
#define R16_T 6       /* tokens per register tile */

/* Unsigned codes of dword vector s of a (group, block) entry. KIND 0 Q8_0,
 * 1 Q4_0, 2 Q5_0, 3 Q4_K, 4 Q6_K, 5 Q5_K (K-quants: e the super-block
 * entry, j the sub-block). */
static inline __attribute__((always_inline)) __m512i r16_codes(const int KIND, const uint8_t *e, int s, int j) {
    if (KIND == 0) return _mm512_loadu_si512(e + 32 + 64 * s);
    if (KIND == 3 || KIND == 5) {
        const __m512i v = _mm512_loadu_si512(e + 256 + 512 * (j / 2) + 64 * s), m = _mm512_set1_epi8(0xF);
        const __m512i u = j % 2 ? _mm512_and_si512(_mm512_srli_epi16(v, 4), m) : _mm512_and_si512(v, m);
        if (KIND == 3) return u;
        uint64_t hm; /* Q5_K: the fifth bits of these 64 codes */
        memcpy(&hm, e + 2304 + 64 * j + 8 * s, 8);
        return _mm512_mask_add_epi8(u, _cvtu64_mask64(hm), u, _mm512_set1_epi8(16));
    }
    if (KIND == 4) { /* Q6_K: 6-bit q = nibble | two high bits << 4 */
        const int h = j / 4, k = j % 4;
        const __m512i ql = _mm512_loadu_si512(e + 288 + 512 * (2 * h + (k & 1)) + 64 * s);
        const __m512i qh = _mm512_loadu_si512(e + 2336 + 512 * h + 64 * s), m = _mm512_set1_epi8(0xF);
        const __m512i nib = k < 2 ? _mm512_and_si512(ql, m) : _mm512_and_si512(_mm512_srli_epi16(ql, 4), m);
        const __m512i hi = k == 3 ? _mm512_srli_epi16(qh, 2) : _mm512_slli_epi16(qh, 4 - 2 * k);
        return _mm512_or_si512(nib, _mm512_and_si512(hi, _mm512_set1_epi8(0x30)));
    }
    const __m512i v = _mm512_loadu_si512(e + 32 + 64 * (s & 3)), m = _mm512_set1_epi8(0xF);
    __m512i u = s < 4 ? _mm512_and_si512(v, m) : _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
    if (KIND == 2) {
        uint64_t hm;
        memcpy(&hm, e + 32 + 256 + 8 * s, 8);
        u = _mm512_mask_add_epi8(u, _cvtu64_mask64(hm), u, _mm512_set1_epi8(16));
    }
    return u;
}

/* One block (32 values) of G row groups x T tokens: the exact integer sums
 * S of the canonical order, then A[g][t] = fma(S, dw * dx, A) (and the
 * min term). e[g]: the block's entry of row group g (K-quants: its
 * super-block entry, j the sub-block); xb[t]: token t's natural q8a block. */
static inline __attribute__((always_inline)) void r16_block(const int KIND, const int G, const int T,
                                                            const uint8_t *const *e, const uint8_t *const *xb,
                                                            const int j, __m512 A[R16_G][R16_T]) {
    const int sh = KIND == 1 ? 4 : 3; /* -128 * sum >> sh: offset 8 (Q4_0), 16 (Q5_0) */
    const __m512 sign = _mm512_set1_ps(-0.0f);
    /* S starts at the offset term: -128, -8 or -16 times the block sum */
    __m512i S[R16_G][R16_T];
    /* Q6_K: S = sc_a * Sa + sc_b * Sb, Sa / Sb over the two 16-value halves,
     * starting at -32 sumh / -32 (sum - sumh); sc_a, sc_b per row as int32 */
    __m512i SB[R16_G][R16_T], SCA[R16_G], SCB[R16_G];
    if (KIND == 4) {
        const int h = j / 4, k = j % 4;
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) {
            SCA[g] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(e[g] + 32 + 16 * (8 * h + 2 * k))));
            SCB[g] = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(e[g] + 32 + 16 * (8 * h + 2 * k + 1))));
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
        int32_t o;
        memcpy(&o, xb[t] + 40, 4);
        if (KIND == 4) {
            int32_t nh, nr;
            memcpy(&nh, xb[t] + 44, 4);
            memcpy(&nr, xb[t] + 48, 4);
            const __m512i ia = _mm512_set1_epi32(nh), ib = _mm512_set1_epi32(nr);
            _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) S[g][t] = ia, SB[g][t] = ib;
        } else {
            __m512i init = KIND == 3 || KIND == 5 ? _mm512_setzero_si512() : _mm512_set1_epi32(o);
            if (KIND == 1 || KIND == 2) init = _mm512_srai_epi32(init, sh);
            _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) S[g][t] = init;
        }
    }
    _Pragma("GCC unroll 8") for (int s = 0; s < 8; s++) {
        __m512i U[R16_G];
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) U[g] = r16_codes(KIND, e[g], s, j);
        _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
            int32_t a;
            memcpy(&a, xb[t] + 4 * s, 4);
            const __m512i X = _mm512_set1_epi32(a);
            if (KIND == 4 && s >= 4) {
                _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) SB[g][t] = _mm512_dpbusd_epi32(SB[g][t], U[g], X);
            } else {
                _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) S[g][t] = _mm512_dpbusd_epi32(S[g][t], U[g], X);
            }
        }
    }
    if (KIND == 4)
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            S[g][t] = _mm512_add_epi32(_mm512_mullo_epi32(S[g][t], SCA[g]), _mm512_mullo_epi32(SB[g][t], SCB[g]));
    __m512 DW[R16_G], MW[R16_G];
    _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) {
        DW[g] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)e[g]));
        if (KIND == 3 || KIND == 5) { /* dw = d * sc_j, mw = -(dmin * m_j), 16 rows at once (pl_k_scale_min) */
            const uint8_t *k = e[g] + 64;
            const __m128i m63 = _mm_set1_epi8(63), m15 = _mm_set1_epi8(0xF), m48 = _mm_set1_epi8(0x30);
            __m128i sc, mn;
            if (j < 4) {
                sc = _mm_and_si128(_mm_loadu_si128((const __m128i *)(k + 16 * j)), m63);
                mn = _mm_and_si128(_mm_loadu_si128((const __m128i *)(k + 16 * (j + 4))), m63);
            } else {
                const __m128i hi = _mm_loadu_si128((const __m128i *)(k + 16 * (j + 4)));
                const __m128i lo = _mm_loadu_si128((const __m128i *)(k + 16 * (j - 4)));
                const __m128i mid = _mm_loadu_si128((const __m128i *)(k + 16 * j));
                sc = _mm_or_si128(_mm_and_si128(hi, m15), _mm_and_si128(_mm_srli_epi16(lo, 2), m48));
                mn =
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(hi, 4), m15), _mm_and_si128(_mm_srli_epi16(mid, 2), m48));
            }
            const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(e[g] + 32)));
            DW[g] = _mm512_mul_ps(DW[g], _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sc)));
            MW[g] = _mm512_xor_ps(_mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(mn))), sign);
        }
    }
    _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) {
        float dx, ax;
        memcpy(&dx, xb[t] + 32, 4);
        memcpy(&ax, xb[t] + 36, 4);
        const __m512 vdx = _mm512_set1_ps(dx), vax = _mm512_set1_ps(ax);
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) {
            A[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[g][t]), _mm512_mul_ps(DW[g], vdx), A[g][t]);
            if (KIND == 3 || KIND == 5) A[g][t] = _mm512_fmadd_ps(MW[g], vax, A[g][t]);
        }
    }
}

static inline __attribute__((always_inline)) void r16_tile(const int KIND, const int G, const int T, const uint8_t *P,
                                                           int64_t nb, size_t bb, const uint8_t *x, int64_t xst,
                                                           float *y, int64_t ys) {
    const size_t gb = (size_t)nb * bb; /* bytes per group of rows */
    const int L = nb < 16 ? (int)nb : 16;
    __m512 part[16][R16_G][R16_T];
    const uint8_t *el = P; /* residue l's first entry (entries are residue-major, see quant.h) */
    for (int l = 0; l < L; l++) {
        __m512 A[R16_G][R16_T];
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            A[g][t] = _mm512_setzero_ps();
        const int j = l % 8; /* Q4_K: the sub-block of every block of residue l */
        for (int64_t b = l; b < nb; b += 16, el += bb) {
            const uint8_t *e[R16_G], *xb[R16_T];
            if (T == 1 && G == 1) /* one-token calls: the group's stream ahead (see PL_STREAM_AHEAD) */
                for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)(el + PL_STREAM_AHEAD + o), _MM_HINT_T0);
            _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) e[g] =
                KIND >= 3 ? P + (size_t)g * gb + (size_t)(b / 8) * 8 * bb : el + (size_t)g * gb;
            _Pragma("GCC unroll 8") for (int t = 0; t < T; t++) xb[t] = x + t * xst + b * PL_Q8A_NAT_BYTES;
            r16_block(KIND, G, T, e, xb, j, A);
        }
        _Pragma("GCC unroll 8") for (int g = 0; g < G; g++) _Pragma("GCC unroll 8") for (int t = 0; t < T; t++)
            part[l][g][t] = A[g][t];
    }
    for (int l = L; l < 16; l++)
        for (int g = 0; g < G; g++)
            for (int t = 0; t < T; t++) part[l][g][t] = _mm512_setzero_ps();
    for (int g = 0; g < G; g++)
        for (int t = 0; t < T; t++) {
            __m512 a[16];
            _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) a[l] = part[l][g][t];
            _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) a[l] = _mm512_add_ps(a[l], a[l + 8]);
            _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++) a[l] = _mm512_add_ps(a[l], a[l + 4]);
            a[0] = _mm512_add_ps(a[0], a[2]), a[1] = _mm512_add_ps(a[1], a[3]);
            _mm512_storeu_ps(y + t * ys + 16 * g, _mm512_add_ps(a[0], a[1]));
        }
}

/* One token, one group of 16 rows, blocks visited in their natural order
 * (sequential reads) with the 16 canonical lane sums live in registers: the
 * block of lane l in round k is b = 16k + l, so each lane still sums its
 * blocks in increasing order. For one-token calls (generation), where the
 * residue-major walk of r16_tile would jump through the weights. */
static inline __attribute__((always_inline)) void r16_dec_nat(const int KIND, const uint8_t *P, int64_t nb, size_t bb,
                                                              const uint8_t *x, float *y) {
    const int64_t q = nb / 16, rem = nb % 16;
    __m512 acc[16];
    _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) acc[l] = _mm512_setzero_ps();
    for (int64_t k = 0; k <= q; k++) {
        _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) {
            const int64_t b = 16 * k + l;
            if (b < nb) {
                /* residue-major entries: residue l starts at l*q + min(l, rem) */
                const uint8_t *e =
                    KIND >= 3 ? P + (size_t)(b / 8) * 8 * bb : P + (size_t)(l * q + (l < rem ? l : rem) + k) * bb;
                const uint8_t *xb = x + b * PL_Q8A_NAT_BYTES;
                for (size_t o = 0; o < bb; o += 64) /* the stream ahead (see PL_STREAM_AHEAD) */
                    _mm_prefetch((const char *)(P + (size_t)b * bb + PL_STREAM_AHEAD + o), _MM_HINT_T0);
                __m512 A[R16_G][R16_T];
                A[0][0] = acc[l];
                r16_block(KIND, 1, 1, &e, &xb, l % 8, A);
                acc[l] = A[0][0];
            }
        }
    }
    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) acc[l] = _mm512_add_ps(acc[l], acc[l + 8]);
    _Pragma("GCC unroll 4") for (int l = 0; l < 4; l++) acc[l] = _mm512_add_ps(acc[l], acc[l + 4]);
    acc[0] = _mm512_add_ps(acc[0], acc[2]), acc[1] = _mm512_add_ps(acc[1], acc[3]);
    _mm512_storeu_ps(y, _mm512_add_ps(acc[0], acc[1]));
}

typedef void (*r16_dec_fn)(const uint8_t *P, int64_t nb, size_t bb, const uint8_t *x, float *y);
#define R16_DN(K)                                                                                                      \
    static void r16_dec_nat_##K(const uint8_t *P, int64_t nb, size_t bb, const uint8_t *x, float *y) {                 \
        r16_dec_nat(K, P, nb, bb, x, y);                                                                               \
    }
R16_DN(0)
R16_DN(1)
R16_DN(2)
R16_DN(3)
R16_DN(4)
R16_DN(5)
static const r16_dec_fn k_r16_dec_nat[6] = {r16_dec_nat_0, r16_dec_nat_1, r16_dec_nat_2,
                                            r16_dec_nat_3, r16_dec_nat_4, r16_dec_nat_5};

typedef void (*r16_tile_fn)(const uint8_t *P, int64_t nb, size_t bb, const uint8_t *x, int64_t xst, float *y,
                            int64_t ys);
#define R16_FN(K, G, T)                                                                                                \
    static void r16_tile_##K##_##G##_##T(const uint8_t *P, int64_t nb, size_t bb, const uint8_t *x, int64_t xst,       \
                                         float *y, int64_t ys) {                                                       \
        r16_tile(K, G, T, P, nb, bb, x, xst, y, ys);                                                                   \
    }
#define R16_ROW(K, G) R16_FN(K, G, 1) R16_FN(K, G, 2) R16_FN(K, G, 3) R16_FN(K, G, 4) R16_FN(K, G, 5) R16_FN(K, G, 6)
#define R16_KIND(K) R16_ROW(K, 1) R16_ROW(K, 2)
R16_KIND(0)
R16_KIND(1)
R16_KIND(2)
R16_KIND(3)
R16_KIND(4)
R16_KIND(5)
#define R16_E(K, G)                                                                                                    \
    {                                                                                                                  \
        r16_tile_##K##_##G##_1, r16_tile_##K##_##G##_2, r16_tile_##K##_##G##_3, r16_tile_##K##_##G##_4,                \
            r16_tile_##K##_##G##_5, r16_tile_##K##_##G##_6                                                             \
    }
_Static_assert(R16_G == 2 && R16_T == 6, "r16 tile table matches R16_G x R16_T");
static const r16_tile_fn k_r16_tiles[6][R16_G][R16_T] = {
    {R16_E(0, 1), R16_E(0, 2)}, {R16_E(1, 1), R16_E(1, 2)}, {R16_E(2, 1), R16_E(2, 2)},
    {R16_E(3, 1), R16_E(3, 2)}, {R16_E(4, 1), R16_E(4, 2)}, {R16_E(5, 1), R16_E(5, 2)},
};

/* Batches: per tile of R16_G row groups, every token tile in turn (the
 * groups' weights stay in L1/L2), each preceded by its share of the
 * prefetches of the next tile's weights (one burst before the first token
 * tile measured 5-13 % slower per probe). */
void pl_matmul_r16_avx512(const uint8_t *P, uint32_t type, int64_t n, int64_t r0, int64_t r1, const uint8_t *xq,
                          int64_t nt, float *y, int64_t ys) {
    const int kind = type == GGML_Q8_0   ? 0
                     : type == GGML_Q4_0 ? 1
                     : type == GGML_Q5_0 ? 2
                     : type == GGML_Q4_K ? 3
                     : type == GGML_Q6_K ? 4
                                         : 5;
    const int64_t nb = n / PL_QK, st = pl_q8a_stride(n), nat = pl_q8a_groups_bytes(n);
    static const size_t k_bb[6] = {544, 288, 352, 288, 420, 352}; /* bytes per (group, block); K-quants: per 8 */
    const size_t bb = k_bb[kind], gb = (size_t)nb * bb;
    if (nt > R16_CHUNK) { /* long batches in chunks of tokens: their activations stay in L2 */
        for (int64_t t0 = 0; t0 < nt; t0 += R16_CHUNK)
            pl_matmul_r16_avx512(P, type, n, r0, r1, xq + t0 * st, nt - t0 < R16_CHUNK ? nt - t0 : R16_CHUNK,
                                 y + t0 * ys, ys);
        return;
    }
    if (nt == 1 && kind >= 3) { /* one token, K-quants: row group by row group, blocks in natural order */
        for (int64_t g = r0 / 16; g < r1 / 16; g++) {
            const uint8_t *pg = P + (size_t)g * gb;
            k_r16_dec_nat[kind](pg, nb, bb, xq + nat, y + 16 * g);
        }
        return;
    }
    if (nt == 1) { /* one token, residue-major entries: one row group at a time, one sequential stream */
        for (int64_t g = r0 / 16; g < r1 / 16; g++)
            k_r16_tiles[kind][0][0](P + (size_t)g * gb, nb, bb, xq + nat, st, y + 16 * g, ys);
        return;
    }
    for (int64_t g = r0 / 16; g < r1 / 16; g += R16_G) {
        const int G = (int)(r1 / 16 - g < R16_G ? r1 / 16 - g : R16_G);
        const uint8_t *pg = P + (size_t)g * gb;
        /* the next tile's weights, prefetched a share before each token tile */
        const int64_t ng = g + G < r1 / 16 ? (r1 / 16 - g - G < R16_G ? r1 / 16 - g - G : R16_G) : 0;
        const uint8_t *nx = pg + (size_t)G * gb;
        /* token tiles as even as the cap allows (43 = 6+6+6+5+5+5+5+5, not 7 x 6 + 1) */
        const int64_t tmax = kind == 4 ? 4 : R16_T; /* Q6_K holds two accumulators per (rows, token) */
        const int64_t n_tiles = (nt + tmax - 1) / tmax, base = nt / n_tiles, extra = nt % n_tiles;
        const size_t pf_all = (size_t)ng * gb, pf_share = (pf_all / (size_t)n_tiles + 63) / 64 * 64;
        for (int64_t i = 0, t = 0; i < n_tiles; i++) {
            const int64_t tn = base + (i < extra);
            for (size_t o = (size_t)i * pf_share; o < pf_all && o < (size_t)(i + 1) * pf_share; o += 64)
                _mm_prefetch((const char *)(nx + o), _MM_HINT_T1);
            k_r16_tiles[kind][G - 1][tn - 1](pg, nb, bb, xq + t * st + nat, st, y + t * ys + 16 * g, ys);
            t += tn;
        }
    }
}
