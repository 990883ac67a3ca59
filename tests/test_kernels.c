/* test_kernels.c — weight-format kernels and the thread pool:
 *   1. SIMD dequantizers equal the scalar reference bit for bit (random
 *      blocks, every supported type, every ISA this CPU has, odd alignments);
 *   2. dot products within DOT_REL_TOL of a double-precision sum, exact on
 *      exactly representable inputs;
 *   3. hand-built blocks with known values (pins every block layout);
 *   4. fp16 / bf16 conversions: rounding, inf, NaN, subnormals;
 *   5. pl_matmul_rows against a double-precision reference;
 *   6. determinism: a row's result does not depend on n_tok, token offset,
 *      row range, single-row calls or thread count, and scalar, avx2 and
 *      avx512 give the same bits (one canonical order, see quant.h);
 *   7. the thread pool: every share runs once per run, many runs, sizes 1..4,
 *      with idle gaps long enough for workers to sleep;
 *   8. attention (pl_attn_fn) on the slot-blocked K layout: every ISA within
 *      ATTN_TOL of a double-precision reference and of the generic kernel,
 *      and, per ISA, bitwise invariance to how the key sequence is split
 *      into the two slot ranges and to where its slots fall in blocks;
 *   9. fast mode: the q8a activation quantizer and the integer matmul of
 *      every type with an integer kernel equal the scalar references bit for
 *      bit, are invariant to tiles, edges, row ranges and n_tok, and sit
 *      within Q8_REL_TOL of a double-precision dot of the dequantized
 *      weights with the dequantized int8 activations. */
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "quant.h"
#include "quant_isa.h"
#include "testlib.h"
#include "threadpool.h"

/* |dot - exact| <= DOT_REL_TOL * sum |a_i * b_i| (float accumulation of up
 * to a few thousand terms split over 16+ lanes). */
#define DOT_REL_TOL 1e-5
/* Same bound for a matmul output against its double reference. */
#define MATMUL_REL_TOL 1e-5
/* |attention output - double reference| <= ATTN_TOL * max_j |V[j][d]| (float
 * scores over head_dim, polynomial or libm exp, float value sums), and the
 * same bound between the generic and a SIMD kernel. */
#define ATTN_TOL 2e-6
/* Integer matmul against the double dot of dequantized weights and
 * dequantized int8 activations: |got - exact| <= Q8_REL_TOL * sum |w_i a_i|
 * (per-block float products, float lanes over up to ~160 blocks). */
#define Q8_REL_TOL 1e-5

static const uint32_t k_types[] = {GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q4_0, GGML_Q4_1, GGML_Q5_0,
                                   GGML_Q5_1, GGML_Q8_0, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
#define N_TYPES (sizeof k_types / sizeof k_types[0])
static const char *const k_isas[] = {"scalar", "avx2", "avx512"};

/* xorshift64* — deterministic test randomness. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}
/* Uniform float in [lo, hi). */
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)((rnd() >> 40) * 0x1p-24); }

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

/* Offsets of the fp16 scale fields in a block of type t (-1 terminated). */
static void scale_offsets(uint32_t t, int off[3]) {
    off[0] = off[1] = off[2] = -1;
    switch (t) {
    case GGML_Q4_0: off[0] = offsetof(pl_block_q4_0, d); break;
    case GGML_Q5_0: off[0] = offsetof(pl_block_q5_0, d); break;
    case GGML_Q8_0: off[0] = offsetof(pl_block_q8_0, d); break;
    case GGML_Q6_K: off[0] = offsetof(pl_block_q6_k, d); break;
    case GGML_Q4_1: off[0] = offsetof(pl_block_q4_1, d), off[1] = offsetof(pl_block_q4_1, m); break;
    case GGML_Q5_1: off[0] = offsetof(pl_block_q5_1, d), off[1] = offsetof(pl_block_q5_1, m); break;
    case GGML_Q4_K: off[0] = offsetof(pl_block_q4_k, d), off[1] = offsetof(pl_block_q4_k, dmin); break;
    case GGML_Q5_K: off[0] = offsetof(pl_block_q5_k, d), off[1] = offsetof(pl_block_q5_k, dmin); break;
    default: break;
    }
}

/* Fills n values of type t at dst with random data: random bytes with the
 * fp16 scales replaced by small random finite halves; F32 gets random
 * floats; F16/BF16 get random bit patterns (NaN and inf included) when
 * any_bits, else small values. */
static void fill_random(uint32_t t, uint8_t *dst, int64_t n, bool any_bits) {
    const pl_type_traits *tr = pl_type_traits_get(t);
    size_t bytes = pl_row_size(t, n);
    for (size_t i = 0; i < bytes; i++) dst[i] = (uint8_t)rnd();
    if (t == GGML_F32) {
        for (int64_t i = 0; i < n; i++) {
            float f = rndf(-2, 2);
            memcpy(dst + 4 * i, &f, 4);
        }
        return;
    }
    if (t == GGML_F16 || t == GGML_BF16) {
        if (!any_bits)
            for (int64_t i = 0; i < n; i++)
                put16(dst + 2 * i, t == GGML_F16 ? pl_f32_to_fp16(rndf(-2, 2)) : pl_f32_to_bf16(rndf(-2, 2)));
        return;
    }
    int off[3];
    scale_offsets(t, off);
    for (int64_t b = 0; b < n / tr->blck_size; b++)
        for (int k = 0; off[k] >= 0; k++) put16(dst + b * tr->type_size + off[k], pl_f32_to_fp16(rndf(-0.1f, 0.1f)));
}

/* ---- 1. SIMD == scalar reference ---------------------------------------- */

static void test_dequant_matches_reference(void) {
    enum { MAXN = 4096 + 256 };
    uint8_t *src = malloc(pl_row_size(GGML_F32, MAXN) + 64);
    float *ref = malloc((MAXN + 16) * sizeof(float));
    float *got = malloc((MAXN + 16) * sizeof(float));
    for (size_t ii = 0; ii < sizeof k_isas / sizeof k_isas[0]; ii++) {
        const pl_kernels *k = pl_kernels_for(k_isas[ii]);
        if (!k) {
            printf("note: ISA %s not available on this CPU, skipped\n", k_isas[ii]);
            continue;
        }
        CHECK(!strcmp(k->isa, k_isas[ii]), "isa name %s", k->isa);
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t t = k_types[ti];
            const pl_type_traits *tr = pl_type_traits_get(t);
            CHECK(k->to_float[t] != NULL, "%s has no %s kernel", k->isa, tr->name);
            if (!k->to_float[t]) continue;
            int mismatches = 0;
            for (int trial = 0; trial < 40; trial++) {
                /* block counts 1..; for block size 1 any length, tails included */
                int64_t nblk = trial < 20 ? trial + 1 : (int64_t)(rnd() % (MAXN / tr->blck_size)) + 1;
                int64_t n = nblk * tr->blck_size;
                if (n > MAXN) n = MAXN / tr->blck_size * tr->blck_size;
                size_t so = (size_t)(trial % 3), doff = (size_t)(trial % 5); /* odd alignments */
                fill_random(t, src + so, n, trial % 2 == 0);
                for (int64_t i = 0; i < n + 8; i++) ref[i] = got[doff + i] = -12345.0f;
                tr->to_float_ref(src + so, ref, n);
                k->to_float[t](src + so, got + doff, n);
                if (memcmp(ref, got + doff, (size_t)n * sizeof(float)) != 0) mismatches++;
                if (got[doff + n] != -12345.0f) mismatches++; /* wrote past the end */
            }
            CHECK(mismatches == 0, "%s %s: %d trials differ from the reference", k->isa, tr->name, mismatches);
        }
    }
    /* every 16-bit pattern through F16 / BF16, against hardware paths too */
    uint16_t *all = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    const pl_type_traits *f16 = pl_type_traits_get(GGML_F16), *bf16 = pl_type_traits_get(GGML_BF16);
    float *r2 = malloc(65536 * sizeof(float)), *g2 = malloc(65536 * sizeof(float));
    for (size_t ii = 1; ii < 3; ii++) {
        const pl_kernels *k = pl_kernels_for(k_isas[ii]);
        if (!k) continue;
        f16->to_float_ref(all, r2, 65536);
        k->to_float[GGML_F16](all, g2, 65536);
        CHECK(!memcmp(r2, g2, 65536 * sizeof(float)), "%s F16 exhaustive differs", k->isa);
        bf16->to_float_ref(all, r2, 65536);
        k->to_float[GGML_BF16](all, g2, 65536);
        CHECK(!memcmp(r2, g2, 65536 * sizeof(float)), "%s BF16 exhaustive differs", k->isa);
    }
    free(r2);
    free(g2);
    free(all);
    free(src);
    free(ref);
    free(got);
}

/* ---- 2. dot products ---------------------------------------------------- */

static void test_dot(void) {
    enum { MAXN = 5000 };
    float *a = malloc((MAXN + 1) * sizeof(float)), *b = malloc((MAXN + 1) * sizeof(float));
    static const int64_t lens[] = {0,  1,  2,  3,  7,   8,   9,   15,   16,   17,   31,  32,
                                   33, 63, 64, 65, 100, 255, 256, 4095, 4096, 4097, 5000};
    for (size_t ii = 0; ii < 3; ii++) {
        const pl_kernels *k = pl_kernels_for(k_isas[ii]);
        if (!k) continue;
        int bad = 0, inexact = 0;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const int64_t n = lens[li];
            for (int al = 0; al < 2; al++) { /* aligned and 4-byte-offset inputs */
                float *pa = a + al, *pb = b + al;
                double exact = 0, mag = 0;
                for (int64_t i = 0; i < n; i++) {
                    pa[i] = rndf(-1, 1);
                    pb[i] = rndf(-1, 1);
                    exact += (double)pa[i] * pb[i];
                    mag += fabs((double)pa[i] * pb[i]);
                }
                float d = k->dot(pa, pb, n);
                if (!(fabs(d - exact) <= DOT_REL_TOL * mag)) {
                    bad++;
                    fprintf(stderr, "%s dot n=%lld: %.9g vs %.9g\n", k->isa, (long long)n, d, exact);
                }
                /* small integers: every partial sum is exact, so the result is */
                long long isum = 0;
                for (int64_t i = 0; i < n; i++) {
                    int x = (int)(rnd() % 15) - 7, y = (int)(rnd() % 15) - 7;
                    pa[i] = (float)x;
                    pb[i] = (float)y;
                    isum += x * y;
                }
                if (k->dot(pa, pb, n) != (float)isum) inexact++;
            }
        }
        CHECK(bad == 0, "%s: %d dot products outside DOT_REL_TOL", k->isa, bad);
        CHECK(inexact == 0, "%s: %d integer dot products not exact", k->isa, inexact);
        /* NaN and inf propagate */
        for (int i = 0; i < 40; i++) a[i] = b[i] = 1.0f;
        a[37] = NAN;
        CHECK(isnan(k->dot(a, b, 40)), "%s: NaN lost in tail", k->isa);
        a[37] = INFINITY;
        CHECK(isinf(k->dot(a, b, 40)), "%s: inf lost", k->isa);
    }
    free(a);
    free(b);
}

/* ---- 3. hand-built blocks ----------------------------------------------- */

/* Dequantizes one hand-built block with every ISA and compares with want. */
static void check_block(uint32_t t, const void *blk, const float *want, int n) {
    float got[256];
    for (size_t ii = 0; ii < 3; ii++) {
        const pl_kernels *k = pl_kernels_for(k_isas[ii]);
        if (!k) continue;
        k->to_float[t](blk, got, n);
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (got[i] != want[i]) {
                if (bad++ < 4)
                    fprintf(stderr, "  %s %s [%d] = %g, want %g\n", k->isa, pl_type_traits_get(t)->name, i, got[i],
                            want[i]);
            }
        CHECK(bad == 0, "%s %s: %d values differ from the hand-computed block", k->isa, pl_type_traits_get(t)->name,
              bad);
    }
}

static void test_known_blocks(void) {
    float want[256];
    { /* Q4_0: d = 0.5; element j = low nibble j, element j+16 = high nibble 15-j */
        pl_block_q4_0 b;
        b.d = 0x3800;
        for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
        for (int j = 0; j < 16; j++) want[j] = (float)(j - 8) * 0.5f, want[j + 16] = (float)(7 - j) * 0.5f;
        check_block(GGML_Q4_0, &b, want, 32);
    }
    { /* Q4_1: d = 0.5, m = -1 */
        pl_block_q4_1 b;
        b.d = 0x3800, b.m = 0xbc00;
        for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
        for (int j = 0; j < 16; j++) want[j] = (float)j * 0.5f - 1, want[j + 16] = (float)(15 - j) * 0.5f - 1;
        check_block(GGML_Q4_1, &b, want, 32);
    }
    { /* Q5_0: d = 1; qh bytes 01 00 01 80: fifth bit on elements 0, 16 and 31 */
        pl_block_q5_0 b;
        b.d = 0x3c00;
        const uint8_t qh[4] = {0x01, 0x00, 0x01, 0x80};
        memcpy(b.qh, qh, 4);
        for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
        for (int j = 0; j < 16; j++) want[j] = (float)(j - 16), want[j + 16] = (float)(15 - j - 16);
        want[0] = 0, want[16] = 15, want[31] = 0;
        check_block(GGML_Q5_0, &b, want, 32);
    }
    { /* Q5_1: d = 1, m = 0.5, fifth bit on elements 1 and 17 (qh bytes 02 00 02 00) */
        pl_block_q5_1 b;
        b.d = 0x3c00, b.m = 0x3800;
        const uint8_t qh[4] = {0x02, 0x00, 0x02, 0x00};
        memcpy(b.qh, qh, 4);
        for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
        for (int j = 0; j < 16; j++) want[j] = (float)j + 0.5f, want[j + 16] = (float)(15 - j) + 0.5f;
        want[1] = 17.5f, want[17] = 30.5f;
        check_block(GGML_Q5_1, &b, want, 32);
    }
    { /* Q8_0: d = 0.25, q_j = j - 16 */
        pl_block_q8_0 b;
        b.d = 0x3400;
        for (int j = 0; j < 32; j++) b.qs[j] = (int8_t)(j - 16);
        for (int j = 0; j < 32; j++) want[j] = (float)(j - 16) * 0.25f;
        check_block(GGML_Q8_0, &b, want, 32);
    }
    /* K-quant 6-bit scales/mins, unpacked by hand:
     *   j<4: sc = byte j & 63, m = byte j+4 & 63;
     *   j>=4: sc = (byte j+4 & 15) | (byte j-4 >> 6) << 4, m = (byte j+4 >> 4) | (byte j >> 6) << 4 */
    static const uint8_t ks[12] = {0x41, 0x02, 0x03, 0xC4, 0x05, 0x46, 0x07, 0x08, 0x21, 0x43, 0x65, 0x87};
    static const float ksc[8] = {1, 2, 3, 4, 17, 3, 5, 55}, kmn[8] = {5, 6, 7, 8, 2, 20, 6, 8};
    { /* Q4_K: d = 1, dmin = 0.5; chunk j: qs[32j+l] = (l & 15) | ((l + j) & 15) << 4 */
        pl_block_q4_k b;
        b.d = 0x3c00, b.dmin = 0x3800;
        memcpy(b.scales, ks, 12);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) b.qs[32 * j + l] = (uint8_t)((l & 15) | ((l + j) & 15) << 4);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                want[64 * j + l] = ksc[2 * j] * (float)(l & 15) - 0.5f * kmn[2 * j];
                want[64 * j + 32 + l] = ksc[2 * j + 1] * (float)((l + j) & 15) - 0.5f * kmn[2 * j + 1];
            }
        check_block(GGML_Q4_K, &b, want, 256);
    }
    { /* Q5_K: as Q4_K plus qh[l] = 1 << (l % 8): value 64j+l gets +16 when
       * l % 8 == 2j, value 64j+32+l when l % 8 == 2j+1 */
        pl_block_q5_k b;
        b.d = 0x3c00, b.dmin = 0x3800;
        memcpy(b.scales, ks, 12);
        for (int l = 0; l < 32; l++) b.qh[l] = (uint8_t)(1u << (l % 8));
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) b.qs[32 * j + l] = (uint8_t)((l & 15) | ((l + j) & 15) << 4);
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                int q0 = (l & 15) + (l % 8 == 2 * j ? 16 : 0), q1 = ((l + j) & 15) + (l % 8 == 2 * j + 1 ? 16 : 0);
                want[64 * j + l] = ksc[2 * j] * (float)q0 - 0.5f * kmn[2 * j];
                want[64 * j + 32 + l] = ksc[2 * j + 1] * (float)q1 - 0.5f * kmn[2 * j + 1];
            }
        check_block(GGML_Q5_K, &b, want, 256);
    }
    { /* Q6_K: d = 2, scale i = i - 8 (value e uses scale e / 16); all quants 0
       * (-> -32) except: ql[0] = 0x21 (e0 low 1, e64 high 2), ql[37] = 0x43
       * (e37 low 3, e101 high 4), qh[5] = 0xE4 (e5 +0, e37 +16, e69 +32,
       * e101 +48), ql[64] = 0x0F and qh[32] = 0x03 (e128 = 15 + 48). */
        pl_block_q6_k b;
        memset(&b, 0, sizeof b);
        b.d = 0x4000;
        for (int i = 0; i < 16; i++) b.scales[i] = (int8_t)(i - 8);
        b.ql[0] = 0x21, b.ql[37] = 0x43, b.qh[5] = 0xE4, b.ql[64] = 0x0F, b.qh[32] = 0x03;
        int q[256];
        for (int e = 0; e < 256; e++) q[e] = 0;
        q[0] = 1, q[64] = 2, q[37] = 19, q[101] = 52, q[69] = 32, q[128] = 63;
        for (int e = 0; e < 256; e++) want[e] = 2.0f * (float)(e / 16 - 8) * (float)(q[e] - 32);
        check_block(GGML_Q6_K, &b, want, 256);
    }
    { /* F16 / BF16 / F32 rows */
        const uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
        const float wh[4] = {1, -2, 65504, 0x1p-24f};
        check_block(GGML_F16, h, wh, 4);
        const uint16_t bh[3] = {0x3f80, 0xc040, 0x0001};
        const float wb[3] = {1, -3, bitsf(0x00010000)};
        check_block(GGML_BF16, bh, wb, 3);
        const float f[3] = {1.5f, -0.0f, 3e38f};
        check_block(GGML_F32, f, f, 3);
    }
    /* geometry */
    static const struct {
        uint32_t t, blck, size;
    } geo[] = {
        {GGML_F32, 1, 4},      {GGML_F16, 1, 2},      {GGML_BF16, 1, 2},     {GGML_Q4_0, 32, 18},
        {GGML_Q4_1, 32, 20},   {GGML_Q5_0, 32, 22},   {GGML_Q5_1, 32, 24},   {GGML_Q8_0, 32, 34},
        {GGML_Q4_K, 256, 144}, {GGML_Q5_K, 256, 176}, {GGML_Q6_K, 256, 210},
    };
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++) {
        const pl_type_traits *tr = pl_type_traits_get(geo[i].t);
        CHECK(tr && tr->blck_size == geo[i].blck && tr->type_size == geo[i].size, "geometry of type %u", geo[i].t);
    }
    CHECK(pl_type_traits_get(GGML_Q2_K) == NULL && pl_type_traits_get(GGML_Q8_K) == NULL &&
              pl_type_traits_get(GGML_TYPE_COUNT) == NULL && pl_type_traits_get(4) == NULL,
          "unsupported types have no traits");
    CHECK(pl_row_size(GGML_Q4_K, 4096) == 16 * 144, "row size Q4_K");
    CHECK(pl_row_size(GGML_Q4_K, 100) == 0 && pl_row_size(GGML_Q2_K, 256) == 0 && pl_row_size(GGML_F32, -1) == 0,
          "row size of bad lengths/types is 0");
    CHECK(pl_row_size(GGML_F16, 3) == 6, "row size F16");
}

/* ---- 4. conversions ----------------------------------------------------- */

/* True when h is the round-to-nearest-even fp16 of finite f (checked
 * against both neighbours in double). */
static bool is_rne_fp16(float f, uint16_t h) {
    double x = f, v = pl_fp16_to_f32(h);
    if ((h & 0x7fff) == 0x7c00) return fabs(x) >= 65520.0 && (h & 0x8000) == (fbits(f) >> 16 & 0x8000);
    if (((h >> 15) != 0) != (fbits(f) >> 31 != 0)) return false;
    uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
    double err = fabs(x - v);
    if ((up & 0x7fff) <= 0x7c00) {
        double e2 = fabs(x - pl_fp16_to_f32(up));
        if ((up & 0x7fff) == 0x7c00) e2 = fabs(fabs(x) - 65536.0); /* inf acts like 2^16 for rounding */
        if (e2 < err || (e2 == err && (h & 1))) return false;
    }
    if ((h & 0x7fff) != 0) {
        double e2 = fabs(x - pl_fp16_to_f32(dn));
        if (e2 < err || (e2 == err && (h & 1))) return false;
    }
    return true;
}

static void test_conversions(void) {
    /* fp16 known values */
    static const struct {
        float f;
        uint16_t h;
    } fh[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},
        {1e9f, 0x7c00},
        {-1e9f, 0xfc00},
        {0x1p-14f, 0x0400},
        {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000},
        {0x1.8p-25f, 0x0001},
        {0x3p-25f, 0x0002},
        {0x5p-25f, 0x0002},
        {0x7p-25f, 0x0004},
        {-0x1p-24f, 0x8001},
        {0x1.ffcp-15f, 0x0400},
        {1.0f + 0x1p-11f, 0x3c00},
        {1.0f + 0x3p-11f, 0x3c02},
        {0x1.002002p+0f, 0x3c01},
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1e-30f, 0x0000},
        {0.1f, 0x2e66},
    };
    for (size_t i = 0; i < sizeof fh / sizeof fh[0]; i++)
        CHECK(pl_f32_to_fp16(fh[i].f) == fh[i].h, "fp16(%a) = %04x, want %04x", fh[i].f, pl_f32_to_fp16(fh[i].f),
              fh[i].h);
    CHECK(pl_f32_to_fp16(INFINITY) == 0x7c00 && pl_f32_to_fp16(-INFINITY) == 0xfc00, "fp16 inf");
    uint16_t hn = pl_f32_to_fp16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "fp16(NaN) is NaN: %04x", hn);
    hn = pl_f32_to_fp16(bitsf(0x7f800001)); /* signalling NaN with a low payload only */
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "fp16(sNaN) stays NaN: %04x", hn);
    CHECK(pl_fp16_to_f32(0x7c00) == INFINITY && pl_fp16_to_f32(0xfc00) == -INFINITY, "fp16 inf widen");
    CHECK(isnan(pl_fp16_to_f32(0x7e00)) && isnan(pl_fp16_to_f32(0x7c01)), "fp16 NaN widen");
    CHECK(fbits(pl_fp16_to_f32(0x7c01)) == 0x7fc02000, "sNaN widens quiet with payload: %08x",
          fbits(pl_fp16_to_f32(0x7c01)));
    CHECK(pl_fp16_to_f32(0x03ff) == 0x3ffp-24f && pl_fp16_to_f32(0x8001) == -0x1p-24f, "fp16 subnormal widen");
    CHECK(fbits(pl_fp16_to_f32(0x8000)) == 0x80000000u, "fp16 -0 widen");
    /* exhaustive round trip of every non-NaN half */
    int rt_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        if (pl_f32_to_fp16(pl_fp16_to_f32((uint16_t)h)) != h) rt_bad++;
    }
    CHECK(rt_bad == 0, "fp16 round trip: %d halves", rt_bad);
    /* random floats in and around the half range round to nearest even */
    int rne_bad = 0;
    for (int i = 0; i < 300000; i++) {
        uint32_t u = (uint32_t)rnd();
        u = (u & 0x80000000u) | ((0x30000000u + (u & 0x7fffffff) % 0x18000000u)); /* ~2^-31 .. 2^17 */
        if (i % 3 == 0) u = (u & ~0x1fffu) | 0x1000u;                             /* exact ties at normal halves */
        float f = bitsf(u);
        if (!is_rne_fp16(f, pl_f32_to_fp16(f))) {
            if (rne_bad++ < 3) fprintf(stderr, "  fp16(%a) = %04x not RNE\n", f, pl_f32_to_fp16(f));
        }
    }
    CHECK(rne_bad == 0, "fp16 rounding: %d not round-to-nearest-even", rne_bad);

    /* bf16 */
    CHECK(pl_f32_to_bf16(1.0f) == 0x3f80 && pl_bf16_to_f32(0x3f80) == 1.0f, "bf16 1.0");
    CHECK(pl_f32_to_bf16(bitsf(0x3f808000)) == 0x3f80, "bf16 tie to even (down)");
    CHECK(pl_f32_to_bf16(bitsf(0x3f818000)) == 0x3f82, "bf16 tie to even (up)");
    CHECK(pl_f32_to_bf16(bitsf(0x3f808001)) == 0x3f81, "bf16 above tie");
    CHECK(pl_f32_to_bf16(bitsf(0x3f807fff)) == 0x3f80, "bf16 below tie");
    CHECK(pl_f32_to_bf16(INFINITY) == 0x7f80 && pl_f32_to_bf16(-INFINITY) == 0xff80, "bf16 inf");
    CHECK(pl_f32_to_bf16(bitsf(0x7f7fffff)) == 0x7f80, "bf16 FLT_MAX rounds to inf");
    CHECK(pl_f32_to_bf16(bitsf(0x7f800001)) == 0x7fc0, "bf16 sNaN -> quiet NaN 0x7fc0");
    CHECK(isnan(pl_bf16_to_f32(pl_f32_to_bf16(NAN))), "bf16 NaN round trip");
    CHECK(pl_f32_to_bf16(bitsf(0x00010000)) == 0x0001 && fbits(pl_bf16_to_f32(0x0001)) == 0x00010000, "bf16 subnormal");
    CHECK(pl_f32_to_bf16(bitsf(0x00018000)) == 0x0002, "bf16 subnormal tie to even");
    CHECK(pl_f32_to_bf16(-0.0f) == 0x8000, "bf16 -0");
    int bf_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        if (pl_f32_to_bf16(pl_bf16_to_f32((uint16_t)h)) != h) bf_bad++;
    }
    CHECK(bf_bad == 0, "bf16 round trip: %d", bf_bad);
}

/* ---- 5 + 6. matmul ------------------------------------------------------ */

typedef struct mm_job {
    const pl_kernels *k;
    const void *W;
    uint32_t type;
    int64_t n_in, n_out, n_tok;
    const float *x;
    int64_t x_stride;
    float *y;
    float *scratch; /* nth * PL_MATMUL_SCRATCH(n_in) floats */
} mm_job;

/* Thread-pool task: rows split evenly over nth shares. */
static void mm_task(void *arg, int ith, int nth) {
    mm_job *j = arg;
    int64_t r0 = j->n_out * ith / nth, r1 = j->n_out * (ith + 1) / nth;
    pl_matmul_rows(j->k, j->W, j->type, j->n_in, r0, r1, j->x, j->x_stride, j->n_tok, j->y, j->n_out,
                   j->scratch + (size_t)ith * (size_t)PL_MATMUL_SCRATCH(j->n_in));
}

/* Row lengths for the matmul tests: every type takes the multiples of 256;
 * 576 and 896 only 32-block types; 37 and 100 (tails) only F32/F16/BF16. */
static const int64_t k_mm_lens[] = {32, 256, 576, 896, 1536, 4864, 37, 100};
enum { MM_OUT = 13, MM_TOK = 70, MM_MAXN = 4864 }; /* 70 tokens: two token groups at n = 4864 */

/* Number of y values (over n_tok tokens, rows [0, MM_OUT)) that differ in
 * bits from want (token stride MM_OUT). */
static int mm_diff(const float *got, int64_t got_ys, const float *want, int64_t t0, int64_t nt, int64_t r0,
                   int64_t r1) {
    int d = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t r = r0; r < r1; r++) d += fbits(got[t * got_ys + r]) != fbits(want[(t0 + t) * MM_OUT + r]);
    return d;
}

static void test_matmul(void) {
    const int64_t XS = MM_MAXN + 5, SCR = PL_MATMUL_SCRATCH(MM_MAXN);
    uint8_t *Wbuf = malloc(pl_row_size(GGML_F32, (int64_t)MM_MAXN * MM_OUT) + 64);
    float *x = malloc(sizeof(float) * (size_t)XS * MM_TOK);
    float *yfull = malloc(sizeof(float) * MM_OUT * MM_TOK), *y = malloc(sizeof(float) * (MM_OUT + 3) * MM_TOK);
    float *yisa[3] = {malloc(sizeof(float) * MM_OUT * MM_TOK), malloc(sizeof(float) * MM_OUT * MM_TOK),
                      malloc(sizeof(float) * MM_OUT * MM_TOK)};
    bool have_isa[3] = {false, false, false};
    float *scratch = malloc(sizeof(float) * (size_t)(SCR * 3 + 1)), *wrow = malloc(sizeof(float) * MM_MAXN);
    float *xc = malloc(sizeof(float) * (size_t)MM_MAXN * MM_TOK);
    pl_threadpool *pools[3] = {pl_threadpool_create(1), pl_threadpool_create(2), pl_threadpool_create(3)};
    for (int64_t i = 0; i < XS * MM_TOK; i++) x[i] = rndf(-1, 1);
    int cross_isa_diff = 0, cross_isa_cases = 0;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = k_types[ti];
        const pl_type_traits *tr = pl_type_traits_get(t);
        for (size_t li = 0; li < sizeof k_mm_lens / sizeof k_mm_lens[0]; li++) {
            const int64_t n = k_mm_lens[li];
            if (n % tr->blck_size) continue;
            if (n % 32 && tr->blck_size != 1) continue;
            if ((n == 37 || n == 100) && tr->blck_size != 1) continue;
            const size_t rs = pl_row_size(t, n);
            /* F32 rows at an odd address take the copy path, else read in place */
            uint8_t *W = Wbuf + (t == GGML_F32 && li % 2 ? 2 : 0);
            fill_random(t, W, n * MM_OUT, false);
            for (size_t ii = 0; ii < 3; ii++) {
                const pl_kernels *k = pl_kernels_for(k_isas[ii]);
                have_isa[ii] = k != NULL;
                if (!k) continue;
                float *scr = scratch + 1; /* 4-byte aligned only */
                /* 5. the full product against a double-precision reference */
                pl_matmul_rows(k, W, t, n, 0, MM_OUT, x, XS, MM_TOK, yfull, MM_OUT, scr);
                memcpy(yisa[ii], yfull, sizeof(float) * MM_OUT * MM_TOK);
                int bad = 0;
                for (int r = 0; r < MM_OUT; r++) {
                    tr->to_float_ref(W + r * rs, wrow, n);
                    for (int tk = 0; tk < MM_TOK; tk++) {
                        double s = 0, mag = 0;
                        for (int64_t i = 0; i < n; i++) {
                            s += (double)wrow[i] * x[tk * XS + i];
                            mag += fabs((double)wrow[i] * x[tk * XS + i]);
                        }
                        if (!(fabs(yfull[tk * MM_OUT + r] - s) <= MATMUL_REL_TOL * mag + 1e-30)) bad++;
                    }
                }
                CHECK(bad == 0, "%s %s n=%lld matmul: %d outputs off the double reference", k->isa, tr->name,
                      (long long)n, bad);

                /* 6. determinism: every n_tok (at varying token offsets), row
                 * ranges cut anywhere, single-row calls on a row pointer */
                int nondet = 0, outside = 0;
                static const int64_t ntoks[] = {1, 3, 7, 16, 45, 70};
                for (size_t q = 0; q < sizeof ntoks / sizeof ntoks[0]; q++) {
                    const int64_t nt = ntoks[q], t0 = (MM_TOK - nt) * (int64_t)q / 5;
                    for (int64_t i = 0; i < (MM_OUT + 3) * nt; i++) y[i] = -777.0f;
                    const int64_t ys = MM_OUT + 3;
                    /* rows cut at a point that moves with q, then one row alone */
                    const int64_t cut = 1 + (int64_t)q * 3 % (MM_OUT - 2);
                    pl_matmul_rows(k, W, t, n, 0, cut, x + t0 * XS, XS, nt, y, ys, scr);
                    pl_matmul_rows(k, W, t, n, cut, MM_OUT - 1, x + t0 * XS, XS, nt, y, ys, scr);
                    pl_matmul_rows(k, W, t, n, MM_OUT - 1, MM_OUT, x + t0 * XS, XS, nt, y, ys, scr);
                    nondet += mm_diff(y, ys, yfull, t0, nt, 0, MM_OUT);
                    for (int64_t tk = 0; tk < nt; tk++)
                        for (int64_t r = MM_OUT; r < ys; r++) outside += y[tk * ys + r] != -777.0f;
                    /* each row alone through a row pointer (r0 = 0, r1 = 1) */
                    for (int64_t r = 0; r < MM_OUT; r++) {
                        pl_matmul_rows(k, W + r * rs, t, n, 0, 1, x + t0 * XS, XS, nt, y + r, ys, scr);
                    }
                    nondet += mm_diff(y, ys, yfull, t0, nt, 0, MM_OUT);
                }
                /* every row range [r0, r1) with one token and with 7 */
                for (int64_t r0 = 0; r0 < MM_OUT; r0 += 2)
                    for (int64_t r1 = r0 + 1; r1 <= MM_OUT; r1 += 3) {
                        pl_matmul_rows(k, W, t, n, r0, r1, x + 5 * XS, XS, 7, y, MM_OUT, scr);
                        nondet += mm_diff(y, MM_OUT, yfull, 5, 7, r0, r1);
                        pl_matmul_rows(k, W, t, n, r0, r1, x + 44 * XS, XS, 1, y, MM_OUT, scr);
                        nondet += mm_diff(y, MM_OUT, yfull, 44, 1, r0, r1);
                    }
                /* thread pools of 1..3 (contiguous activations, x_stride = n) */
                for (int tk = 0; tk < MM_TOK; tk++) memcpy(xc + tk * n, x + tk * XS, sizeof(float) * (size_t)n);
                for (int p = 0; p < 3; p++) {
                    if (!pools[p]) continue;
                    mm_job j = {k, W, t, n, MM_OUT, MM_TOK, xc, n, y, scratch};
                    pl_threadpool_run(pools[p], mm_task, &j);
                    nondet += mm_diff(y, MM_OUT, yfull, 0, MM_TOK, 0, MM_OUT);
                }
                CHECK(nondet == 0, "%s %s n=%lld: %d results depend on n_tok/row range/threads", k->isa, tr->name,
                      (long long)n, nondet);
                CHECK(outside == 0, "%s %s n=%lld: matmul wrote outside [r0, r1)", k->isa, tr->name, (long long)n);
            }
            /* one canonical order on every ISA: scalar, avx2 and avx512 agree */
            for (size_t ii = 1; ii < 3; ii++) {
                if (!have_isa[ii] || !have_isa[0]) continue;
                cross_isa_cases++;
                const int d = mm_diff(yisa[ii], MM_OUT, yisa[0], 0, MM_TOK, 0, MM_OUT);
                if (d)
                    fprintf(stderr, "  %s %s n=%lld: %d outputs differ from scalar\n", k_isas[ii], tr->name,
                            (long long)n, d);
                cross_isa_diff += d != 0;
            }
        }
    }
    CHECK(cross_isa_diff == 0, "%d of %d (type, length, ISA) matmuls not bitwise equal to the scalar reference",
          cross_isa_diff, cross_isa_cases);
    /* an unsupported type or a bad length gives NaN, never a read */
    float yn[2] = {0, 0};
    pl_matmul_rows(pl_kernels_get(), Wbuf, GGML_Q4_K, 100, 0, 2, x, XS, 1, yn, 2, scratch);
    CHECK(isnan(yn[0]) && isnan(yn[1]), "bad row length gives NaN");
    for (int p = 0; p < 3; p++) pl_threadpool_free(pools[p]);
    for (int i = 0; i < 3; i++) free(yisa[i]);
    free(Wbuf);
    free(x);
    free(xc);
    free(y);
    free(yfull);
    free(scratch);
    free(wrow);
}

/* ---- 7. thread pool ----------------------------------------------------- */

typedef struct tp_job {
    atomic_int hits[8]; /* runs of share ith */
    atomic_int bad_nth; /* calls with the wrong nth */
    int expect_nth;
    long long part[8]; /* per-share partial sums (each written by one share) */
    int64_t n;
} tp_job;

/* Counts the call and sums its slice of 0..n-1. */
static void tp_task(void *arg, int ith, int nth) {
    tp_job *j = arg;
    if (nth != j->expect_nth || ith < 0 || ith >= nth) {
        atomic_fetch_add(&j->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&j->hits[ith], 1);
    long long s = 0;
    for (int64_t i = j->n * ith / nth; i < j->n * (ith + 1) / nth; i++) s += i;
    j->part[ith] = s;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void test_threadpool(void) {
    CHECK(pl_threadpool_create(0) == NULL, "size 0 refused");
    pl_threadpool_free(NULL);
    for (int n = 1; n <= 4; n++) {
        pl_threadpool *p = pl_threadpool_create(n);
        CHECK(p != NULL, "create(%d)", n);
        if (!p) continue;
        CHECK(pl_threadpool_size(p) == n, "size %d", n);
        tp_job *j = calloc(1, sizeof *j);
        j->expect_nth = n;
        int runs = 20000, wrong_sum = 0;
        for (int r = 0; r < runs; r++) {
            j->n = 1000 + r % 7;
            if (r % 2000 == 1999) sleep_us(300); /* let workers fall asleep on the condvar */
            pl_threadpool_run(p, tp_task, j);
            long long s = 0;
            for (int i = 0; i < n; i++) s += j->part[i];
            if (s != j->n * (j->n - 1) / 2) wrong_sum++;
        }
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= atomic_load(&j->hits[i]) == runs;
        CHECK(ok, "pool %d: every share ran once per run", n);
        CHECK(atomic_load(&j->bad_nth) == 0, "pool %d: bad ith/nth", n);
        CHECK(wrong_sum == 0, "pool %d: %d runs gave a wrong sum", n, wrong_sum);
        free(j);
        pl_threadpool_free(p);
    }
    /* create and free repeatedly (joins must not hang), one idle free */
    int ok = 1;
    for (int i = 0; i < 50; i++) {
        pl_threadpool *p = pl_threadpool_create(2 + i % 3);
        ok &= p != NULL;
        if (p && i % 2) {
            tp_job j = {.expect_nth = 2 + i % 3, .n = 10};
            pl_threadpool_run(p, tp_task, &j);
        }
        pl_threadpool_free(p);
    }
    CHECK(ok, "create/free cycles");
}

/* ---- attention ------------------------------------------------------------ */

#define AT_CTX 300
#define AT_PAD ((AT_CTX + PL_KV_BLOCK - 1) / PL_KV_BLOCK * PL_KV_BLOCK)

typedef struct at_case {
    int64_t hd;
    int n_q;
} at_case;

/* Double-precision attention of query h over keys (slot list). */
static void attn_ref(const float *q, int64_t hd, const float *K, const float *V, int64_t vs, const int32_t *slots,
                     int32_t n, float scale, double *out) {
    double *s = malloc((size_t)n * sizeof *s), mx = -INFINITY, sum = 0.0;
    for (int32_t j = 0; j < n; j++) {
        double d = 0.0;
        for (int64_t i = 0; i < hd; i++) d += (double)q[i] * K[pl_k_index(slots[j], i, hd)];
        s[j] = d * scale;
        mx = s[j] > mx ? s[j] : mx;
    }
    for (int32_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
    for (int64_t i = 0; i < hd; i++) {
        double o = 0.0;
        for (int32_t j = 0; j < n; j++) o += s[j] / sum * V[(int64_t)slots[j] * vs + i];
        out[i] = o;
    }
    free(s);
}

static void test_attention(void) {
    static const at_case cases[] = {{64, 3}, {64, 7}, {64, 1},  {128, 2}, {64, 14},
                                    {48, 5}, {40, 3}, {64, 16}, {64, 17}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t hd = cases[ci].hd;
        const int n_q = cases[ci].n_q;
        const float scale = (float)(1.0 / sqrt((double)hd));
        float *K = calloc((size_t)AT_PAD * (size_t)hd, sizeof(float));
        float *V = calloc((size_t)AT_CTX * (size_t)hd, sizeof(float));
        float *q = malloc((size_t)n_q * (size_t)hd * sizeof(float));
        float *out = malloc((size_t)n_q * (size_t)hd * sizeof(float));
        float *out2 = malloc((size_t)n_q * (size_t)hd * sizeof(float));
        float *gen = malloc((size_t)n_q * (size_t)hd * sizeof(float));
        float *sc = malloc((size_t)n_q * AT_CTX * sizeof(float));
        double *ref = malloc((size_t)hd * sizeof(double));
        int32_t *slots = malloc(AT_CTX * sizeof(int32_t));
        for (int32_t p = 0; p < AT_PAD; p++)
            for (int64_t d = 0; d < hd; d++) K[pl_k_index(p, d, hd)] = p < 271 ? rndf(-2.0f, 2.0f) : NAN;
        for (int64_t i = 0; i < (int64_t)AT_CTX * hd; i++) V[i] = rndf(-1.0f, 1.0f);
        for (int64_t i = 0; i < n_q * hd; i++) q[i] = rndf(-2.0f, 2.0f);
        /* the keys of a fork: slots [P, P+m) copied to [Q, Q+m) with another
         * block phase; the slots after Q+m (stale lanes of its last block,
         * never keys) hold NaN */
        const int32_t P = 137, Q = 211, m = 60;
        for (int32_t j = 0; j < m; j++) {
            for (int64_t d = 0; d < hd; d++) K[pl_k_index(Q + j, d, hd)] = K[pl_k_index(P + j, d, hd)];
            memcpy(V + (int64_t)(Q + j) * hd, V + (int64_t)(P + j) * hd, (size_t)hd * sizeof(float));
        }
        static const int32_t lens[] = {1, 2, 15, 16, 17, 33, 137, 160, 197};
        for (size_t ii = 0; ii < sizeof k_isas / sizeof k_isas[0]; ii++) {
            const pl_kernels *k = pl_kernels_for(k_isas[ii]);
            if (!k) continue;
            double worst = 0.0, worst_gen = 0.0;
            int split_bad = 0, fork_bad = 0;
            for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                const int32_t n = lens[li];
                for (int32_t j = 0; j < n; j++) slots[j] = j;
                k->attn(q, hd, n_q, K, V, hd, 0, n, n, n, hd, scale, out, hd, sc);
                pl_attn_generic(q, hd, n_q, K, V, hd, 0, n, n, n, hd, scale, gen, hd, sc);
                for (int h = 0; h < n_q; h++) {
                    attn_ref(q + h * hd, hd, K, V, hd, slots, n, scale, ref);
                    for (int64_t d = 0; d < hd; d++) {
                        double vmax = 0.0;
                        for (int32_t j = 0; j < n; j++) vmax = fmax(vmax, fabs(V[(int64_t)j * hd + d]));
                        const double e = fabs(out[h * hd + d] - ref[d]) / vmax;
                        const double eg = fabs(out[h * hd + d] - gen[h * hd + d]) / vmax;
                        worst = e > worst || isnan(e) ? e : worst;
                        worst_gen = eg > worst_gen || isnan(eg) ? eg : worst_gen;
                    }
                }
                /* the same keys split at every point, and as an empty first range */
                for (int32_t cut = 0; cut <= n; cut++) {
                    k->attn(q, hd, n_q, K, V, hd, 0, cut, cut, n, hd, scale, out2, hd, sc);
                    split_bad += memcmp(out, out2, (size_t)n_q * (size_t)hd * sizeof(float)) != 0;
                }
                k->attn(q, hd, n_q, K, V, hd, 0, 0, 0, n, hd, scale, out2, hd, sc);
                split_bad += memcmp(out, out2, (size_t)n_q * (size_t)hd * sizeof(float)) != 0;
                /* a fork: [0, P) then the copies of [P, n) at Q.. */
                if (n > P && n - P <= m) {
                    k->attn(q, hd, n_q, K, V, hd, 0, P, Q, Q + (n - P), hd, scale, out2, hd, sc);
                    fork_bad += memcmp(out, out2, (size_t)n_q * (size_t)hd * sizeof(float)) != 0;
                }
            }
            CHECK(worst <= ATTN_TOL, "attn %s hd %lld n_q %d: max error %.3g vs double (tol %g)", k->isa, (long long)hd,
                  n_q, worst, ATTN_TOL);
            CHECK(worst_gen <= ATTN_TOL, "attn %s hd %lld n_q %d: max diff %.3g vs generic (tol %g)", k->isa,
                  (long long)hd, n_q, worst_gen, ATTN_TOL);
            CHECK(split_bad == 0, "attn %s hd %lld n_q %d: %d range splits changed bits", k->isa, (long long)hd, n_q,
                  split_bad);
            CHECK(fork_bad == 0, "attn %s hd %lld n_q %d: %d forked key sequences changed bits", k->isa, (long long)hd,
                  n_q, fork_bad);
        }
        free(K), free(V), free(q), free(out), free(out2), free(gen), free(sc), free(ref), free(slots);
    }
}

/* ---- 9. fast mode: q8a quantizer and integer matmul ----------------------- */

/* Dequantized activation i of token row a (q8a layout). */
static double q8a_value(const uint8_t *a, int64_t i) {
    const int64_t b = i / 32, g = b / 16;
    const int l = (int)(b % 16), e = (int)(i % 32);
    const uint8_t *G = a + g * PL_Q8A_GROUP_BYTES;
    float d;
    memcpy(&d, G + 512 + 4 * l, 4);
    return (double)(int8_t)G[(e / 4) * 64 + 4 * l + e % 4] * (double)d;
}

static void test_q8(void) {
    const pl_kernels *ref = pl_kernels_for("scalar"), *simd = pl_kernels_for("avx512");
    if (!simd) printf("note: avx512 not available, integer kernels checked against the scalar table only\n");
    static const int64_t lens[] = {32, 256, 576, 896, 1536, 512 + 32};
    static const int64_t ntoks[] = {1, 3, 7, 45, 70};
    const int64_t R = 11, NT = 70;
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li], st = pl_q8a_stride(n);
        float *x = malloc((size_t)(n * NT) * sizeof(float));
        for (int64_t i = 0; i < n * NT; i++) x[i] = rndf(-2, 2) * (rnd() % 50 == 0 ? 30.0f : 1.0f);
        x[5] = 0; /* a zero block below */
        for (int64_t i = 0; i < 32 && i < n; i++) x[n + i] = 0.0f;
        uint8_t *q0 = malloc((size_t)(st * NT)), *q1 = malloc((size_t)(st * NT));
        ref->quant_act(x, n, n, NT, q0, PL_Q8A_GROUPS | PL_Q8A_NATURAL);
        if (simd) {
            simd->quant_act(x, n, n, NT, q1, PL_Q8A_GROUPS | PL_Q8A_NATURAL);
            CHECK(memcmp(q0, q1, (size_t)(st * NT)) == 0, "q8a quantizer avx512 == scalar, n=%lld", (long long)n);
        }
        /* one part at a time: the same bytes in that part, the other part untouched */
        for (int part = 1; part <= 2; part++) {
            const pl_kernels *ks[2] = {ref, simd};
            const int64_t gb = pl_q8a_groups_bytes(n);
            for (int ki = 0; ki < 2; ki++) {
                if (!ks[ki]) continue;
                memset(q1, 0x5A, (size_t)(st * NT));
                ks[ki]->quant_act(x, n, n, NT, q1, part);
                int bad = 0;
                for (int64_t tk = 0; tk < NT; tk++) {
                    const uint8_t *a = q0 + tk * st, *c = q1 + tk * st;
                    for (int64_t i = 0; i < st; i++) {
                        const bool in = part == PL_Q8A_GROUPS ? i < gb : i >= gb;
                        bad += in ? a[i] != c[i] : c[i] != 0x5A;
                    }
                }
                CHECK(bad == 0, "q8a %s part %d alone, n=%lld: %d bytes wrong", ks[ki]->isa, part, (long long)n, bad);
            }
        }
        uint8_t *scratch = aligned_alloc(64, (size_t)(PL_Q8_SCRATCH_BYTES(n) + 63) / 64 * 64);
        float *yr = malloc((size_t)(R * NT) * sizeof(float)), *yg = malloc((size_t)(R * NT) * sizeof(float));
        float *wf = malloc((size_t)n * sizeof(float));
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const uint32_t t = k_types[ti];
            const pl_type_traits *tr = pl_type_traits_get(t);
            if (!pl_q8_supported(t) || n % tr->blck_size) continue;
            const size_t rs = pl_row_size(t, n);
            uint8_t *W = malloc(rs * (size_t)R);
            fill_random(t, W, n * R, false);
            pl_matmul_rows_q8(ref, W, t, n, 0, R, q0, NT, yr, R, scratch);
            /* tolerance against a double dot */
            double worst = 0;
            for (int64_t r = 0; r < R; r++) {
                tr->to_float_ref(W + (size_t)r * rs, wf, n);
                for (int64_t k = 0; k < NT; k += 7) {
                    double e = 0, mag = 0;
                    for (int64_t i = 0; i < n; i++) {
                        const double p = (double)wf[i] * q8a_value(q0 + k * st, i);
                        e += p, mag += fabs(p);
                    }
                    const double rel = fabs(yr[k * R + r] - e) / (mag > 0 ? mag : 1);
                    if (rel > worst) worst = rel;
                }
            }
            CHECK(worst <= Q8_REL_TOL, "q8 %s n=%lld: rel err %.3g vs double (tol %g)", tr->name, (long long)n, worst,
                  Q8_REL_TOL);
            const pl_kernels *ks[2] = {ref, simd};
            for (int ki = 0; ki < 2; ki++) {
                const pl_kernels *k = ks[ki];
                if (!k) continue;
                int bad = 0;
                for (size_t ni = 0; ni < sizeof ntoks / sizeof ntoks[0]; ni++) {
                    const int64_t nt = ntoks[ni], t0 = NT - nt; /* token offset too */
                    for (int64_t i = 0; i < R * NT; i++) yg[i] = -1.0f;
                    pl_matmul_rows_q8(k, W, t, n, 0, R, q0 + t0 * st, nt, yg, R, scratch);
                    for (int64_t tk = 0; tk < nt; tk++)
                        for (int64_t r = 0; r < R; r++) bad += fbits(yg[tk * R + r]) != fbits(yr[(t0 + tk) * R + r]);
                    /* row ranges and single rows */
                    pl_matmul_rows_q8(k, W, t, n, 3, 9, q0 + t0 * st, nt, yg, R, scratch);
                    pl_matmul_rows_q8(k, W, t, n, 9, 10, q0 + t0 * st, nt, yg, R, scratch);
                    for (int64_t tk = 0; tk < nt; tk++)
                        for (int64_t r = 3; r < 10; r++) bad += fbits(yg[tk * R + r]) != fbits(yr[(t0 + tk) * R + r]);
                    pl_matmul_rows_q8(k, W + 5 * rs, t, n, 0, 1, q0 + t0 * st, nt, yg, R, scratch);
                    for (int64_t tk = 0; tk < nt; tk++) bad += fbits(yg[tk * R]) != fbits(yr[(t0 + tk) * R + 5]);
                }
                CHECK(bad == 0, "q8 %s %s n=%lld: %d outputs differ from the scalar reference", k->isa, tr->name,
                      (long long)n, bad);
            }
            free(W);
        }
        free(x), free(q0), free(q1), free(scratch), free(yr), free(yg), free(wf);
    }
    CHECK(!pl_q8_supported(GGML_F16) && !pl_q8_supported(GGML_BF16) && !pl_q8_supported(GGML_F32) &&
              pl_q8_supported(GGML_Q4_K) && pl_q8_supported(GGML_Q8_0),
          "pl_q8_supported");
}

/* r16 (row-interleaved) packing and kernels: scalar and AVX-512 kernels on
 * the packed rows reproduce the reference integer matmul on the original rows
 * bit for bit, for several row lengths (fewer and more than 16 blocks, not
 * multiples of 16 blocks), row ranges and token counts. */
static void test_r16(void) {
    const pl_kernels *ref = pl_kernels_for("scalar"), *simd = pl_kernels_for("avx512");
    static const int64_t lens[] = {32, 160, 256, 512, 576, 896, 1536, 4096 + 96, 4096 + 256};
    static const int64_t ntoks[] = {1, 2, 5, 6, 7, 13, 45};
    static const uint32_t types[] = {GGML_Q8_0, GGML_Q4_0, GGML_Q5_0, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
    const int64_t R = 80, NT = 45;
    CHECK(pl_r16_supported(GGML_Q8_0, 576, 192) && !pl_r16_supported(GGML_Q8_0, 576, 200) &&
              !pl_r16_supported(GGML_Q8_0, 48, 16) && pl_r16_supported(GGML_Q4_K, 512, 16) &&
              !pl_r16_supported(GGML_Q4_K, 576, 16) && pl_r16_supported(GGML_Q6_K, 512, 16) &&
              pl_r16_supported(GGML_Q5_K, 512, 16) && !pl_r16_supported(GGML_Q5_K, 576, 16) &&
              !pl_r16_supported(GGML_Q5_1, 512, 16) && !pl_r16_supported(GGML_F16, 512, 16) &&
              !pl_r16_supported(GGML_Q8_0, 0, 16),
          "pl_r16_supported");
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li], st = pl_q8a_stride(n);
        float *x = malloc((size_t)(n * NT) * sizeof(float));
        for (int64_t i = 0; i < n * NT; i++) x[i] = rndf(-2, 2) * (rnd() % 50 == 0 ? 30.0f : 1.0f);
        for (int64_t i = 0; i < 32; i++) x[2 * n + i] = 0.0f; /* a zero block */
        uint8_t *q = malloc((size_t)(st * NT));
        ref->quant_act(x, n, n, NT, q, PL_Q8A_GROUPS | PL_Q8A_NATURAL);
        uint8_t *scratch = aligned_alloc(64, (size_t)(PL_Q8_SCRATCH_BYTES(n) + 63) / 64 * 64);
        float *yr = malloc((size_t)(R * NT) * sizeof(float)), *yg = malloc((size_t)(R * NT) * sizeof(float));
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const uint32_t t = types[ti];
            if (!pl_r16_supported(t, n, R)) continue; /* Q4_K: rows of whole super-blocks only */
            const size_t rs = pl_row_size(t, n);
            uint8_t *W = malloc(rs * (size_t)R), *P = malloc(rs * (size_t)R);
            fill_random(t, W, n * R, false);
            memset(P, 0xA5, rs * (size_t)R); /* the packer must write every byte it owns */
            pl_r16_pack(t, W, n, R, P);
            pl_matmul_rows_q8(ref, W, t, n, 0, R, q, NT, yr, R, scratch);
            const pl_kernels *ks[2] = {ref, simd};
            for (int ki = 0; ki < 2; ki++) {
                if (!ks[ki]) continue;
                int bad = 0;
                for (size_t ni = 0; ni < sizeof ntoks / sizeof ntoks[0]; ni++) {
                    const int64_t nt = ntoks[ni], t0 = NT - nt;
                    for (int64_t i = 0; i < R * NT; i++) yg[i] = -1.0f;
                    ks[ki]->matmul_r16(P, t, n, 0, R, q + t0 * st, nt, yg, R);
                    for (int64_t tk = 0; tk < nt; tk++)
                        for (int64_t r = 0; r < R; r++) bad += fbits(yg[tk * R + r]) != fbits(yr[(t0 + tk) * R + r]);
                    /* a row range starting mid-matrix, one group */
                    for (int64_t i = 0; i < R * NT; i++) yg[i] = -1.0f;
                    ks[ki]->matmul_r16(P, t, n, 16, 64, q + t0 * st, nt, yg, R);
                    ks[ki]->matmul_r16(P, t, n, 64, 80, q + t0 * st, nt, yg, R);
                    for (int64_t tk = 0; tk < nt; tk++) {
                        for (int64_t r = 16; r < 80; r++) bad += fbits(yg[tk * R + r]) != fbits(yr[(t0 + tk) * R + r]);
                        for (int64_t r = 0; r < 16; r++) bad += yg[tk * R + r] != -1.0f; /* untouched */
                    }
                }
                CHECK(bad == 0, "r16 %s %s n=%lld: %d outputs differ from the reference on unpacked rows", ks[ki]->isa,
                      pl_type_traits_get(t)->name, (long long)n, bad);
            }
            free(W), free(P);
        }
        free(x), free(q), free(scratch), free(yr), free(yg);
    }
}

/* Fast mode's SiLU: the AVX-512 kernel equals the scalar definition bit for
 * bit (normal values, tails, huge magnitudes, zeros, infinities, NaN), and
 * the polynomial exp stays within 3e-7 of exp in double where it matters. */
static void test_silu(void) {
    const pl_kernels *ref = pl_kernels_for("scalar"), *simd = pl_kernels_for("avx512");
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
        const double e = exp((double)x), rel = fabs(pl_exp_ref(x) - e) / e;
        if (rel > worst) worst = rel;
    }
    CHECK(worst < 3e-7, "pl_exp_ref relative error %.3g", worst);
    enum { N = 1000 + 13 };
    float *g0 = malloc(N * sizeof(float)), *g1 = malloc(N * sizeof(float)), *u = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) {
        g0[i] = rndf(-12, 12) * (i % 97 == 0 ? 1e3f : 1.0f);
        u[i] = rndf(-3, 3);
    }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 87.4f, -87.4f, 200.0f, -200.0f};
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) g0[k * 7] = specials[k];
    memcpy(g1, g0, N * sizeof(float));
    ref->silu_mul(g0, u, N);
    int bad = 0;
    if (simd) {
        simd->silu_mul(g1, u, N);
        for (int i = 0; i < N; i++) bad += fbits(g0[i]) != fbits(g1[i]) && !(g0[i] != g0[i] && g1[i] != g1[i]);
        CHECK(bad == 0, "silu avx512 vs scalar: %d values differ", bad);
    }
    /* against the definition in double for ordinary inputs */
    double worst_s = 0;
    for (int i = 100; i < 200; i++) {
        float g = rndf(-8, 8), uu = rndf(-2, 2), y = g;
        ref->silu_mul(&y, &uu, 1);
        const double d = (double)g / (1.0 + exp(-(double)g)) * uu;
        worst_s = fmax(worst_s, fabs(y - d) / (fabs(d) + 1e-30));
    }
    CHECK(worst_s < 1e-6, "silu relative error %.3g", worst_s);
    free(g0), free(g1), free(u);
}

/* Fast mode's RMS norm: AVX-512 equals the scalar definition bit for bit,
 * and both stay within 1e-6 of the norm computed in double. */
static void test_rmsnorm_fast(void) {
    const pl_kernels *ref = pl_kernels_for("scalar"), *simd = pl_kernels_for("avx512");
    static const int64_t lens[] = {1, 7, 16, 17, 31, 576, 896, 4099};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int64_t n = lens[li];
        float *x = malloc((size_t)n * sizeof(float)), *w = malloc((size_t)n * sizeof(float));
        float *o0 = malloc((size_t)n * sizeof(float)), *o1 = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) x[i] = rndf(-3, 3) * (i % 13 == 0 ? 40.0f : 1.0f), w[i] = rndf(0.5f, 1.5f);
        ref->rmsnorm(o0, x, w, n, 1e-5f);
        double ss = 0, worst = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        for (int64_t i = 0; i < n; i++) {
            const double e = x[i] / sqrt(ss / (double)n + 1e-5) * w[i];
            worst = fmax(worst, fabs(o0[i] - e) / (fabs(e) + 1e-6));
        }
        CHECK(worst < 1e-6, "fast rmsnorm n=%lld: rel err %.3g", (long long)n, worst);
        if (simd) {
            simd->rmsnorm(o1, x, w, n, 1e-5f);
            CHECK(memcmp(o0, o1, (size_t)n * sizeof(float)) == 0, "fast rmsnorm avx512 == scalar, n=%lld",
                  (long long)n);
        }
        free(x), free(w), free(o0), free(o1);
    }
}

/* stream_sum: every ISA gives the wrapping sum of the 64-bit words, for
 * lengths around its 128/256-byte unroll, with words that overflow. */
static void test_stream_sum(void) {
    static const size_t lens[] = {0, 64, 128, 192, 256, 320, 448, 4096, 4160, 65536 + 192};
    const size_t cap = 65536 + 256;
    uint8_t *buf = aligned_alloc(64, cap);
    for (size_t i = 0; i < cap; i++) buf[i] = (uint8_t)(rnd() >> 24);
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t n = lens[li];
        uint64_t want = 0;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t w = 0;
            for (int b = 7; b >= 0; b--) w = w << 8 | buf[i + (size_t)b];
            want += w;
        }
        static const char *const isas[] = {"scalar", "avx2", "avx512"};
        for (int k = 0; k < 3; k++) {
            const pl_kernels *kk = pl_kernels_for(isas[k]);
            if (kk) CHECK(kk->stream_sum(buf, n) == want, "stream_sum %s n=%zu", isas[k], n);
        }
    }
    free(buf);
}

int main(void) {
    const pl_kernels *best = pl_kernels_get();
    printf("kernels: %s\n", best->isa);
    CHECK(best == pl_kernels_get(), "pl_kernels_get is stable");
    CHECK(pl_kernels_for("scalar") != NULL && pl_kernels_for("nope") == NULL && pl_kernels_for(NULL) == NULL,
          "pl_kernels_for names");
    test_dequant_matches_reference();
    test_dot();
    test_known_blocks();
    test_conversions();
    test_matmul();
    test_threadpool();
    test_attention();
    test_q8();
    test_r16();
    test_silu();
    test_rmsnorm_fast();
    test_stream_sum();
    return testlib_finish("test_kernels");
}
