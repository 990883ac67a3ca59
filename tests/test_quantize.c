/* test_quantize.c — reference quantizers (error bounds on Gaussian data,
 * edge blocks, input policy, Q8_0 idempotence) and random-model generation
 * (llama.cpp type rules, small llama / qwen2 models in every mixture loaded
 * and evaluated, quantized logits close to the F16 model's, determinism). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "mkmodel.h"
#include "probelogits.h"
#include "quant.h"
#include "quantize.h"
#include "testlib.h"

#define VOCAB_DIR "../shared/fixtures/vocab/"

/* Deterministic N(0, 1) for the tests (xorshift64* + Box-Muller). */
static uint64_t g_state = 0x1234567887654321ull;
static double urand(void) {
    g_state ^= g_state >> 12, g_state ^= g_state << 25, g_state ^= g_state >> 27;
    return (double)((g_state * 0x2545f4914f6cdd1dull) >> 11) * 0x1p-53;
}
static float gauss(void) {
    double u1 = urand(), u2 = urand();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Quantizes n values, dequantizes with the scalar reference; returns the
 * status, the round trip in y. */
static int roundtrip(uint32_t type, const float *x, float *y, int64_t n) {
    const size_t bytes = pl_row_size(type, n);
    void *q = malloc(bytes ? bytes : 1);
    pl_err err = {0};
    int rc = pl_quantize_row(type, x, q, n, &err);
    if (rc == PL_OK) pl_type_traits_get(type)->to_float_ref(q, y, n);
    free(q);
    return rc;
}

static double rel_rms_err(const float *x, const float *y, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]), s += (double)x[i] * x[i];
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static bool all_finite(const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(y[i])) return false;
    return true;
}

typedef struct type_bound {
    uint32_t type;
    double bound; /* relative RMS error on Gaussian data */
} type_bound;

static const type_bound k_bounds[] = {
    {GGML_F16, 1e-3},  {GGML_BF16, 5e-3}, {GGML_Q8_0, 0.01}, {GGML_Q6_K, 0.02}, {GGML_Q5_K, 0.05},
    {GGML_Q5_0, 0.05}, {GGML_Q5_1, 0.05}, {GGML_Q4_K, 0.10}, {GGML_Q4_0, 0.10}, {GGML_Q4_1, 0.10},
};
#define N_BOUNDS (sizeof k_bounds / sizeof k_bounds[0])

static void test_gaussian_error(void) {
    const int64_t n = 1 << 16;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    for (int scale_i = 0; scale_i < 2; scale_i++) {
        const float sd = scale_i ? 0.02f : 1.0f; /* unit data and the models' weight scale */
        for (int64_t i = 0; i < n; i++) x[i] = sd * gauss();
        for (size_t k = 0; k < N_BOUNDS; k++) {
            const uint32_t t = k_bounds[k].type;
            CHECK(roundtrip(t, x, y, n) == PL_OK, "%s quantize", ggml_type_name(t));
            const double e = rel_rms_err(x, y, n);
            if (scale_i == 0)
                printf("  %-5s relative RMS error %.4f (bound %.3f)\n", ggml_type_name(t), e, k_bounds[k].bound);
            CHECK(e < k_bounds[k].bound, "%s sd %g: relative RMS error %.4f >= %.3f", ggml_type_name(t), (double)sd, e,
                  k_bounds[k].bound);
        }
    }
    free(x);
    free(y);
}

static void test_edge_blocks(void) {
    const int64_t n = 512;
    float x[512], y[512];
    for (size_t k = 0; k < N_BOUNDS; k++) {
        const uint32_t t = k_bounds[k].type;
        const char *tn = ggml_type_name(t);
        /* all zeros: exact zeros back */
        memset(x, 0, sizeof x);
        CHECK(roundtrip(t, x, y, n) == PL_OK, "%s zeros", tn);
        bool zero = true;
        for (int i = 0; i < n; i++) zero &= y[i] == 0.0f;
        CHECK(zero, "%s: zeros do not come back as zeros", tn);
        /* constants of both signs and several magnitudes */
        const float consts[] = {0.37f, -0.37f, 1e-3f, -250.0f, 6e4f};
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            for (int i = 0; i < n; i++) x[i] = consts[c];
            CHECK(roundtrip(t, x, y, n) == PL_OK, "%s constant %g", tn, (double)consts[c]);
            double worst = 0;
            for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)y[i] - consts[c]) / fabs(consts[c]));
            /* 3 %: Q6_K's super-scale of 1e-3 data is an fp16 subnormal */
            CHECK(worst < 0.03, "%s constant %g: relative error %.4f", tn, (double)consts[c], worst);
        }
        /* one huge outlier among N(0, 1): finite, outlier kept within 5 % */
        for (int i = 0; i < n; i++) x[i] = gauss();
        x[77] = 3000.0f;
        CHECK(roundtrip(t, x, y, n) == PL_OK, "%s outlier", tn);
        CHECK(all_finite(y, n), "%s outlier: non-finite output", tn);
        CHECK(fabsf(y[77] - 3000.0f) < 150.0f, "%s outlier came back as %g", tn, (double)y[77]);
        /* tiny values (subnormal scales) must not produce NaN/inf */
        for (int i = 0; i < n; i++) x[i] = 1e-30f * gauss();
        x[3] = 1e-44f;
        CHECK(roundtrip(t, x, y, n) == PL_OK && all_finite(y, n), "%s tiny values", tn);
        for (int i = 0; i < n; i++) x[i] = (i & 1) ? 1e-44f : -3e-45f; /* subnormal-only blocks */
        CHECK(roundtrip(t, x, y, n) == PL_OK && all_finite(y, n), "%s subnormal values", tn);
        for (int i = 0; i < n; i++) x[i] = 1e-6f * gauss(); /* below fp16's normal range scales */
        CHECK(roundtrip(t, x, y, n) == PL_OK && all_finite(y, n), "%s small values", tn);
        /* non-finite / too large inputs: block types refuse, 16-bit floats convert */
        const float bad[] = {INFINITY, -INFINITY, NAN, 1e6f};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            for (int i = 0; i < n; i++) x[i] = gauss();
            x[100] = bad[b];
            const int rc = roundtrip(t, x, y, n);
            if (t == GGML_F16 || t == GGML_BF16) {
                CHECK(rc == PL_OK, "%s converts %g", tn, (double)bad[b]);
                CHECK(isnan(bad[b]) ? isnan(y[100])
                                    : (t == GGML_F16 && fabsf(bad[b]) > 65504
                                           ? isinf(y[100])
                                           : y[100] == bad[b] || fabsf(y[100] - bad[b]) < 1e4f),
                      "%s: %g came back as %g", tn, (double)bad[b], (double)y[100]);
            } else {
                CHECK(rc == PL_ERR_RANGE, "%s: %g gives %d, not PL_ERR_RANGE", tn, (double)bad[b], rc);
            }
        }
    }
    /* argument checks */
    char buf[128] = "";
    pl_err err = {buf, sizeof buf};
    uint8_t q[1024];
    memset(x, 0, sizeof x);
    CHECK(pl_quantize_row(GGML_Q4_K, x, q, 128, &err) == PL_ERR_ARG && buf[0], "Q4_K row of 128 refused");
    CHECK(pl_quantize_row(GGML_Q8_0, x, q, 0, &err) == PL_ERR_ARG, "empty row refused");
    CHECK(pl_quantize_row(GGML_Q2_K, x, q, 256, &err) == PL_ERR_UNSUPPORTED, "Q2_K unsupported");
    CHECK(!pl_quantize_supported(GGML_Q8_1) && pl_quantize_supported(GGML_Q6_K), "supported set");
}

/* Requantizing dequantized Q8_0 data reproduces it exactly; the other block
 * types stay close. */
static void test_idempotence(void) {
    const int64_t n = 4096;
    float *x = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    for (int64_t i = 0; i < n; i++) x[i] = 0.02f * gauss();
    for (size_t k = 0; k < N_BOUNDS; k++) {
        const uint32_t t = k_bounds[k].type;
        CHECK(roundtrip(t, x, y1, n) == PL_OK && roundtrip(t, y1, y2, n) == PL_OK, "%s", ggml_type_name(t));
        if (t == GGML_Q8_0 || t == GGML_F16 || t == GGML_BF16) {
            CHECK(memcmp(y1, y2, n * sizeof *y1) == 0, "%s: quantize(dequantize(q)) changed values", ggml_type_name(t));
        } else {
            const double e = rel_rms_err(y1, y2, n);
            CHECK(e < k_bounds[k].bound, "%s: requantization moved values by %.4f", ggml_type_name(t), e);
        }
    }
    free(x);
    free(y1);
    free(y2);
}

/* llama.cpp's per-tensor choices on the three benchmark shapes. */
static void count_types(pl_mk_ftype f, int n_layer, int64_t E, int64_t F, bool tied, int counts[GGML_TYPE_COUNT]) {
    memset(counts, 0, sizeof(int) * GGML_TYPE_COUNT);
    static const char *const names[7] = {"attn_q.weight",   "attn_k.weight", "attn_v.weight",  "attn_output.weight",
                                         "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
    counts[pl_mk_weight_type(f, "token_embd.weight", -1, n_layer, E, tied)]++;
    if (!tied) counts[pl_mk_weight_type(f, "output.weight", -1, n_layer, E, tied)]++;
    for (int i = 0; i < n_layer; i++)
        for (int k = 0; k < 7; k++) counts[pl_mk_weight_type(f, names[k], i, n_layer, k == 6 ? F : E, tied)]++;
}

static void test_type_rules(void) {
    int c[GGML_TYPE_COUNT];
    count_types(PL_MK_Q4_K_M, 32, 4096, 14336, false, c); /* Llama-3-8B: 193 Q4_K + 33 Q6_K */
    CHECK(c[GGML_Q4_K] == 193 && c[GGML_Q6_K] == 33, "8B Q4_K_M: %d Q4_K, %d Q6_K", c[GGML_Q4_K], c[GGML_Q6_K]);
    count_types(PL_MK_Q4_K_M, 30, 576, 1536, true, c); /* SmolLM2: Q5_0 + Q8_0 + Q4_K + Q6_K */
    CHECK(pl_mk_weight_type(PL_MK_Q4_K_M, "token_embd.weight", -1, 30, 576, true) == GGML_Q8_0, "tied embd Q8_0");
    /* use_more_bits on 30 layers: 0-2, 26-29, 5, 8, ..., 23 = 14 layers */
    CHECK(c[GGML_Q5_0] == 30 * 5 + 16 && c[GGML_Q8_0] == 1 + 14 && c[GGML_Q4_K] == 16 && c[GGML_Q6_K] == 14,
          "SmolLM2 Q4_K_M: Q5_0 %d Q8_0 %d Q4_K %d Q6_K %d", c[GGML_Q5_0], c[GGML_Q8_0], c[GGML_Q4_K], c[GGML_Q6_K]);
    CHECK(pl_mk_weight_type(PL_MK_Q4_0, "output.weight", -1, 2, 256, false) == GGML_Q6_K, "Q4_0 output Q6_K");
    CHECK(pl_mk_weight_type(PL_MK_Q4_0, "token_embd.weight", -1, 2, 256, false) == GGML_Q4_0, "Q4_0 untied embd");
    CHECK(pl_mk_weight_type(PL_MK_Q8_0, "output.weight", -1, 2, 576, false) == GGML_Q8_0, "Q8_0 output");
    CHECK(pl_mk_weight_type(PL_MK_Q5_K_M, "attn_q.weight", 1, 24, 896, true) == GGML_Q5_1, "Q5_K fallback Q5_1");
    CHECK(pl_mk_weight_type(PL_MK_Q6_K, "attn_q.weight", 1, 24, 896, true) == GGML_Q8_0, "Q6_K fallback Q8_0");
    CHECK(pl_mk_weight_type(PL_MK_Q4_K_M, "attn_q.weight", 1, 2, 48, true) == GGML_F16, "row of 48: F16");
    CHECK(pl_mk_weight_type(PL_MK_F16, "ffn_down.weight", 0, 2, 512, true) == GGML_F16, "F16 stays");
    pl_mk_ftype f;
    CHECK(pl_mk_ftype_parse("q4_k_m", &f) && f == PL_MK_Q4_K_M && !pl_mk_ftype_parse("Q3_K", &f), "ftype parse");
    pl_mkmodel_params p = {0};
    const char *vf = NULL;
    CHECK(pl_mkmodel_preset("llama3-8b", &p, &vf, NULL) == PL_OK && p.n_ff == 14336 && !p.tied && vf &&
              strcmp(vf, "ggml-vocab-llama-bpe.gguf") == 0,
          "preset llama3-8b");
    CHECK(pl_mkmodel_preset("nope", &p, &vf, NULL) == PL_ERR_ARG, "unknown preset");
}

/* ---- end to end ------------------------------------------------------------ */

static char g_dir[256];

static pl_mkmodel_params small_llama(const char *out, pl_mk_ftype f, uint64_t seed) {
    pl_mkmodel_params p = {0};
    p.out_path = out, p.vocab_path = VOCAB_DIR "ggml-vocab-llama-spm.gguf";
    p.arch = PL_MK_LLAMA, p.n_embd = 256, p.n_layer = 2, p.n_head = 4, p.n_head_kv = 2, p.n_ff = 512;
    p.n_ctx_train = 2048, p.rope_theta = 1e4f, p.rms_eps = 1e-5f, p.tied = false, p.ftype = f, p.seed = seed;
    p.n_threads = 2;
    return p;
}

/* Logits of the last position for text, into out[n_vocab] (malloc'ed); 0 on failure. */
static int32_t eval_logits(const char *path, const char *text, float **out) {
    char err[256] = "";
    pl_model *m = NULL;
    pl_session *s = NULL;
    int32_t nv = 0;
    *out = NULL;
    if (pl_model_open(path, 0, &m, err, sizeof err) != PL_OK) {
        fprintf(stderr, "open %s: %s\n", path, err);
        return 0;
    }
    int32_t ids[64];
    size_t n = 0;
    if (pl_tokenize(m, text, strlen(text), PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 64, &n, err, sizeof err) ||
        n == 0 || pl_session_create(m, 128, 2, &s, err, sizeof err) || pl_session_eval(s, ids, n, PL_EVAL_LAST)) {
        fprintf(stderr, "eval %s: %s %s\n", path, err, s ? pl_session_errmsg(s) : "");
    } else {
        nv = pl_model_n_vocab(m);
        *out = malloc((size_t)nv * sizeof **out);
        memcpy(*out, pl_session_logits(s, 0), (size_t)nv * sizeof **out);
    }
    pl_session_free(s);
    pl_model_close(m);
    return nv;
}

/* Whole-file byte comparison. */
static bool same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = false;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static void type_set(const char *path, int counts[GGML_TYPE_COUNT]) {
    memset(counts, 0, sizeof(int) * GGML_TYPE_COUNT);
    gguf_file *f = NULL;
    if (gguf_open(path, &f, NULL) != PL_OK) return;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t->n_dims == 2 && t->type < GGML_TYPE_COUNT) counts[t->type]++;
    }
    gguf_close(f);
}

static void test_models(void) {
    char path[PL_MK_FTYPE_COUNT][320], err_buf[512];
    pl_err err = {err_buf, sizeof err_buf};
    float *ref = NULL;
    int32_t nv_ref = 0;
    /* max |logit - F16 logit| on the same random master: the quantization
     * error observed by llama.cpp on the fixtures is 2.5e-2 (Q8_0) to 0.32
     * (Q4_0); bounds are about twice that */
    static const double k_logit_bound[PL_MK_FTYPE_COUNT] = {0, 0.03, 0.05, 0.6, 0.5, 0.3, 0.15};
    for (int f = 0; f < PL_MK_FTYPE_COUNT; f++) {
        snprintf(path[f], sizeof path[f], "%s/llama-%s.gguf", g_dir, pl_mk_ftype_name((pl_mk_ftype)f));
        pl_mkmodel_params p = small_llama(path[f], (pl_mk_ftype)f, 7);
        const double t0 = pl_now();
        int rc = pl_mkmodel(&p, &err);
        CHECK(rc == PL_OK, "mkmodel %s: %s", pl_mk_ftype_name((pl_mk_ftype)f), err_buf);
        if (rc) continue;
        const double dt = pl_now() - t0;
        float *lg = NULL;
        const int32_t nv = eval_logits(path[f], "Hello world, this is a test", &lg);
        CHECK(nv == 32000 && lg && all_finite(lg, nv), "%s: logits", pl_mk_ftype_name((pl_mk_ftype)f));
        if (!lg) continue;
        float lo = lg[0], hi = lg[0];
        for (int32_t i = 0; i < nv; i++) lo = fminf(lo, lg[i]), hi = fmaxf(hi, lg[i]);
        CHECK(hi > lo, "%s: flat logits", pl_mk_ftype_name((pl_mk_ftype)f));
        if (f == PL_MK_F16) {
            ref = lg, nv_ref = nv;
            printf("  llama n_embd 256 F16: generated in %.2f s, logits in [%.3f, %.3f]\n", dt, (double)lo, (double)hi);
            continue;
        }
        double md = 0;
        for (int32_t i = 0; ref && i < nv && i < nv_ref; i++) md = fmax(md, fabs((double)lg[i] - ref[i]));
        printf("  llama n_embd 256 %-6s: generated in %.2f s, max |logit - F16| %.4f (bound %.2f)\n",
               pl_mk_ftype_name((pl_mk_ftype)f), dt, md, k_logit_bound[f]);
        CHECK(ref && md < k_logit_bound[f], "%s: max |logit - F16 logit| = %.4f", pl_mk_ftype_name((pl_mk_ftype)f), md);
        free(lg);
    }
    free(ref);

    /* the tensor types llama.cpp would choose for this shape */
    int c[GGML_TYPE_COUNT];
    type_set(path[PL_MK_Q4_K_M], c);
    CHECK(c[GGML_Q4_K] == 13 && c[GGML_Q6_K] == 3, "Q4_K_M n_embd 256: %d Q4_K, %d Q6_K", c[GGML_Q4_K], c[GGML_Q6_K]);
    type_set(path[PL_MK_Q4_0], c);
    CHECK(c[GGML_Q4_0] == 15 && c[GGML_Q6_K] == 1, "Q4_0: %d Q4_0, %d Q6_K", c[GGML_Q4_0], c[GGML_Q6_K]);

    /* determinism: same seed -> same bytes, whatever the thread count; another seed differs */
    char again[320];
    snprintf(again, sizeof again, "%s/again.gguf", g_dir);
    pl_mkmodel_params p = small_llama(again, PL_MK_Q4_K_M, 7);
    p.n_threads = 1;
    CHECK(pl_mkmodel(&p, &err) == PL_OK && same_file(again, path[PL_MK_Q4_K_M]), "same seed, 1 thread: same file");
    p.seed = 8;
    CHECK(pl_mkmodel(&p, &err) == PL_OK && !same_file(again, path[PL_MK_Q4_K_M]), "another seed: another file");
    unlink(again);

    /* row length 192 (not a multiple of 256): llama.cpp's fallbacks, and the model runs */
    snprintf(again, sizeof again, "%s/e192.gguf", g_dir);
    p = small_llama(again, PL_MK_Q4_K_M, 4);
    p.n_embd = 192, p.n_head = 3, p.n_head_kv = 1;
    CHECK(pl_mkmodel(&p, &err) == PL_OK, "e192: %s", err_buf);
    type_set(again, c);
    CHECK(c[GGML_Q5_0] > 0 && c[GGML_Q8_0] > 0 && c[GGML_Q4_K] > 0 && c[GGML_Q6_K] > 0 &&
              c[GGML_Q5_0] + c[GGML_Q8_0] + c[GGML_Q4_K] + c[GGML_Q6_K] == 16,
          "e192 Q4_K_M types: Q5_0 %d Q8_0 %d Q4_K %d Q6_K %d", c[GGML_Q5_0], c[GGML_Q8_0], c[GGML_Q4_K], c[GGML_Q6_K]);
    float *lg = NULL;
    int32_t nv = eval_logits(again, "Hello", &lg);
    CHECK(nv == 32000 && lg && all_finite(lg, nv), "e192 logits");
    free(lg);
    unlink(again);

    /* qwen2 with Q/K/V biases, tied, full qwen2 vocabulary */
    float *q16 = NULL, *q8 = NULL;
    for (int k = 0; k < 2; k++) {
        snprintf(again, sizeof again, "%s/qwen2-%d.gguf", g_dir, k);
        pl_mkmodel_params q = {0};
        q.out_path = again, q.vocab_path = VOCAB_DIR "ggml-vocab-qwen2.gguf", q.arch = PL_MK_QWEN2;
        q.n_embd = 64, q.n_layer = 2, q.n_head = 2, q.n_head_kv = 1, q.n_ff = 128, q.n_ctx_train = 32768;
        q.rope_theta = 1e6f, q.rms_eps = 1e-6f, q.tied = true, q.ftype = k ? PL_MK_Q8_0 : PL_MK_F16, q.seed = 2;
        q.n_threads = 2;
        CHECK(pl_mkmodel(&q, &err) == PL_OK, "qwen2: %s", err_buf);
        gguf_file *g = NULL;
        CHECK(gguf_open(again, &g, NULL) == PL_OK && gguf_find_tensor(g, "blk.1.attn_k.bias") &&
                  !gguf_find_tensor(g, "output.weight") && gguf_find(g, "tokenizer.ggml.merges"),
              "qwen2 tensors / tokenizer");
        gguf_close(g);
        nv = eval_logits(again, "<|im_start|>user\nIs this safe?<|im_end|>\n", k ? &q8 : &q16);
        CHECK(nv == 151936 && (k ? q8 : q16) && all_finite(k ? q8 : q16, nv), "qwen2 logits");
        unlink(again);
    }
    if (q16 && q8) {
        double md = 0;
        for (int32_t i = 0; i < 151936; i++) md = fmax(md, fabs((double)q8[i] - q16[i]));
        printf("  qwen2 n_embd 64 Q8_0: max |logit - F16| %.4f\n", md);
        CHECK(md < 0.05, "qwen2 Q8_0 vs F16: %.4f", md);
    }
    free(q16);
    free(q8);

    /* failures leave no file behind and say why */
    snprintf(again, sizeof again, "%s/bad.gguf", g_dir);
    p = small_llama(again, PL_MK_Q8_0, 1);
    p.n_head = 3;
    CHECK(pl_mkmodel(&p, &err) == PL_ERR_ARG && access(again, F_OK) != 0, "bad shape refused");
    p = small_llama(again, PL_MK_Q8_0, 1);
    p.vocab_path = "/nonexistent.gguf";
    CHECK(pl_mkmodel(&p, &err) == PL_ERR_IO && access(again, F_OK) != 0, "missing vocab: %s", err_buf);
    for (int f = 0; f < PL_MK_FTYPE_COUNT; f++) unlink(path[f]);
}

int main(void) {
    test_gaussian_error();
    test_edge_blocks();
    test_idempotence();
    test_type_rules();
    snprintf(g_dir, sizeof g_dir, "/tmp/pl_test_quantize_XXXXXX");
    if (mkdtemp(g_dir)) {
        test_models();
        rmdir(g_dir);
    } else {
        CHECK(0, "mkdtemp failed");
    }
    return testlib_finish("test_quantize");
}
