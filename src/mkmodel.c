/* mkmodel.c — random-weight GGUF model generation (see mkmodel.h): the
 * tensor plan and llama.cpp's per-tensor type rules, a counter-based
 * Gaussian PRNG (one independent stream per tensor row, so the output does
 * not depend on threads or chunking), and the streaming write through
 * gguf_write. */
#include "mkmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"
#include "gguf_write.h"
#include "probelogits.h"
#include "quant.h"
#include "quantize.h"
#include "threadpool.h"

/* Output bytes generated per chunk before they are written. */
#define CHUNK_BYTES ((size_t)8 << 20)
/* Upper bounds on the shape (far above any real model; keep sizes sane). */
#define MAX_DIM (1 << 20)
#define MAX_LAYERS 4096

/* ---- presets and names ---------------------------------------------------- */

typedef struct mk_preset {
    const char *name;       /* preset name */
    const char *vocab_file; /* expected vocabulary GGUF (basename) */
    const char *model_name; /* general.name */
    pl_mk_arch arch;
    int32_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train;
    float rope_theta, rms_eps;
    bool tied;
} mk_preset;

static const mk_preset k_presets[] = {
    {"smollm2-135m", "ggml-vocab-starcoder.gguf", "SmolLM2-135M shape (random)", PL_MK_LLAMA, 576, 30, 9, 3, 1536, 8192,
     1e5f, 1e-5f, true},
    {"qwen2.5-0.5b", "ggml-vocab-qwen2.gguf", "Qwen2.5-0.5B shape (random)", PL_MK_QWEN2, 896, 24, 14, 2, 4864, 32768,
     1e6f, 1e-6f, true},
    {"llama3-8b", "ggml-vocab-llama-bpe.gguf", "Llama-3-8B shape (random)", PL_MK_LLAMA, 4096, 32, 32, 8, 14336, 8192,
     5e5f, 1e-5f, false},
};

int pl_mkmodel_preset(const char *name, pl_mkmodel_params *p, const char **vocab_file, pl_err *err) {
    for (size_t i = 0; name && i < sizeof k_presets / sizeof k_presets[0]; i++) {
        const mk_preset *s = &k_presets[i];
        if (strcasecmp(name, s->name) != 0) continue;
        p->arch = s->arch;
        p->n_embd = s->n_embd, p->n_layer = s->n_layer, p->n_head = s->n_head, p->n_head_kv = s->n_head_kv;
        p->n_ff = s->n_ff, p->n_ctx_train = s->n_ctx_train;
        p->rope_theta = s->rope_theta, p->rms_eps = s->rms_eps, p->tied = s->tied;
        if (!p->name) p->name = s->model_name;
        if (vocab_file) *vocab_file = s->vocab_file;
        return PL_OK;
    }
    return pl_fail(err, PL_ERR_ARG, "unknown preset '%s' (smollm2-135m, qwen2.5-0.5b, llama3-8b)", name ? name : "");
}

static const char *const k_ftype_names[PL_MK_FTYPE_COUNT] = {"F16", "BF16", "Q8_0", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K"};
/* general.file_type values (llama.cpp's llama_ftype). */
static const uint32_t k_ftype_file_type[PL_MK_FTYPE_COUNT] = {1, 32, 7, 2, 15, 17, 18};
/* Base weight type of each mixture. */
static const uint32_t k_ftype_base[PL_MK_FTYPE_COUNT] = {GGML_F16,  GGML_BF16, GGML_Q8_0, GGML_Q4_0,
                                                         GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};

bool pl_mk_ftype_parse(const char *s, pl_mk_ftype *out) {
    for (int i = 0; s && i < PL_MK_FTYPE_COUNT; i++)
        if (strcasecmp(s, k_ftype_names[i]) == 0) {
            *out = (pl_mk_ftype)i;
            return true;
        }
    return false;
}

const char *pl_mk_ftype_name(pl_mk_ftype f) { return (unsigned)f < PL_MK_FTYPE_COUNT ? k_ftype_names[f] : "?"; }

/* ---- llama.cpp's type rules ---------------------------------------------- */

/* llama.cpp's "use more bits" layers: the first and last eighth, and every
 * third layer in between. */
static bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool is_block_quant(uint32_t t) { return t != GGML_F32 && t != GGML_F16 && t != GGML_BF16; }

uint32_t pl_mk_weight_type(pl_mk_ftype ftype, const char *tensor, int i_layer, int n_layer, int64_t ne0, bool tied) {
    if ((unsigned)ftype >= PL_MK_FTYPE_COUNT) return GGML_F16;
    uint32_t t = k_ftype_base[ftype];
    if (!is_block_quant(t)) return t;
    const bool output = strcmp(tensor, "output.weight") == 0;
    const bool embd = strcmp(tensor, "token_embd.weight") == 0;
    const bool more_mix = ftype == PL_MK_Q4_K_M || ftype == PL_MK_Q5_K_M;
    if (output || (tied && embd)) {
        /* the output matrix (or the tied embedding standing in for it) */
        if (ne0 % ggml_blck_size(t) != 0)
            t = GGML_Q8_0;
        else if (t != GGML_Q8_0)
            t = GGML_Q6_K;
    } else if (embd) {
        /* untied token embedding: the base type */
    } else if (strcmp(tensor, "attn_v.weight") == 0 || strcmp(tensor, "ffn_down.weight") == 0) {
        if (more_mix && use_more_bits(i_layer, n_layer)) t = GGML_Q6_K;
    }
    /* rows that are not a multiple of the block: llama.cpp's fallbacks */
    if (ne0 % ggml_blck_size(t) != 0) {
        switch (t) {
        case GGML_Q4_K: t = GGML_Q5_0; break;
        case GGML_Q5_K: t = GGML_Q5_1; break;
        case GGML_Q6_K: t = GGML_Q8_0; break;
        default: break;
        }
        if (ne0 % ggml_blck_size(t) != 0) t = GGML_F16;
    }
    return t;
}

/* ---- PRNG ------------------------------------------------------------------ */

/* splitmix64 step: advances *s and returns a well-mixed 64-bit value. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* xoshiro256** state. */
typedef struct rng {
    uint64_t s[4];
} rng;

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}

/* The independent stream of row `row` of tensor `tensor` under `seed`. */
static void rng_init(rng *r, uint64_t seed, uint64_t tensor, uint64_t row) {
    uint64_t h = seed;
    h = splitmix64(&h) ^ (tensor * 0xd1b54a32d192ed03ull);
    h = splitmix64(&h) ^ (row * 0x8cb92ba72f3d8dd7ull);
    h = splitmix64(&h);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&h);
}

/* n values mean + sd * N(0, 1) (Box-Muller on 24-bit uniforms, one 64-bit
 * draw per pair). */
static void rng_gauss(rng *r, float *out, int64_t n, float mean, float sd) {
    for (int64_t i = 0; i < n; i += 2) {
        const uint64_t x = rng_next(r);
        const float u1 = (float)((x >> 40) + 1) * 0x1p-24f; /* (0, 1] */
        const float u2 = (float)(x & 0xffffff) * 0x1p-24f;  /* [0, 1) */
        const float rad = sqrtf(-2.0f * logf(u1)), th = 6.28318530717958647692f * u2;
        out[i] = mean + sd * rad * cosf(th);
        if (i + 1 < n) out[i + 1] = mean + sd * rad * sinf(th);
    }
}

/* ---- the tensor plan -------------------------------------------------------- */

enum { INIT_WEIGHT, INIT_NORM, INIT_BIAS };

typedef struct mk_tensor {
    char name[48];   /* GGUF tensor name */
    uint32_t n_dims; /* 1 (norms, biases) or 2 */
    int64_t ne[2];   /* ne[0] = row length, ne[1] = rows (1 for 1-D) */
    uint32_t type;   /* ggml type */
    int init;        /* INIT_* */
} mk_tensor;

typedef struct mk_plan {
    mk_tensor *t; /* owned */
    uint32_t n, cap;
} mk_plan;

static int plan_add(mk_plan *pl, const pl_mkmodel_params *p, int layer, const char *suffix, int64_t ne0, int64_t ne1,
                    int init, pl_err *err) {
    if (pl->n == pl->cap) {
        const uint32_t ncap = pl->cap * 2 + 16;
        mk_tensor *nt = realloc(pl->t, ncap * sizeof *nt);
        if (!nt) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
        pl->t = nt, pl->cap = ncap;
    }
    mk_tensor *t = &pl->t[pl->n++];
    memset(t, 0, sizeof *t);
    if (layer >= 0)
        snprintf(t->name, sizeof t->name, "blk.%d.%s", layer, suffix);
    else
        snprintf(t->name, sizeof t->name, "%s", suffix);
    t->n_dims = ne1 > 0 ? 2 : 1;
    t->ne[0] = ne0, t->ne[1] = ne1 > 0 ? ne1 : 1;
    t->init = init;
    t->type = t->n_dims == 1 ? GGML_F32 : pl_mk_weight_type(p->ftype, suffix, layer, p->n_layer, ne0, p->tied);
    return PL_OK;
}

static int build_plan(const pl_mkmodel_params *p, int64_t n_vocab, mk_plan *pl, pl_err *err) {
    const int64_t E = p->n_embd, F = p->n_ff, kv = (int64_t)p->n_head_kv * (p->n_embd / p->n_head);
    const bool bias = p->arch == PL_MK_QWEN2;
    int rc;
    if ((rc = plan_add(pl, p, -1, "token_embd.weight", E, n_vocab, INIT_WEIGHT, err))) return rc;
    for (int i = 0; i < p->n_layer; i++) {
        if ((rc = plan_add(pl, p, i, "attn_norm.weight", E, 0, INIT_NORM, err)) ||
            (rc = plan_add(pl, p, i, "attn_q.weight", E, E, INIT_WEIGHT, err)) ||
            (bias && (rc = plan_add(pl, p, i, "attn_q.bias", E, 0, INIT_BIAS, err))) ||
            (rc = plan_add(pl, p, i, "attn_k.weight", E, kv, INIT_WEIGHT, err)) ||
            (bias && (rc = plan_add(pl, p, i, "attn_k.bias", kv, 0, INIT_BIAS, err))) ||
            (rc = plan_add(pl, p, i, "attn_v.weight", E, kv, INIT_WEIGHT, err)) ||
            (bias && (rc = plan_add(pl, p, i, "attn_v.bias", kv, 0, INIT_BIAS, err))) ||
            (rc = plan_add(pl, p, i, "attn_output.weight", E, E, INIT_WEIGHT, err)) ||
            (rc = plan_add(pl, p, i, "ffn_norm.weight", E, 0, INIT_NORM, err)) ||
            (rc = plan_add(pl, p, i, "ffn_gate.weight", E, F, INIT_WEIGHT, err)) ||
            (rc = plan_add(pl, p, i, "ffn_up.weight", E, F, INIT_WEIGHT, err)) ||
            (rc = plan_add(pl, p, i, "ffn_down.weight", F, E, INIT_WEIGHT, err)))
            return rc;
    }
    if ((rc = plan_add(pl, p, -1, "output_norm.weight", E, 0, INIT_NORM, err))) return rc;
    if (!p->tied && (rc = plan_add(pl, p, -1, "output.weight", E, n_vocab, INIT_WEIGHT, err))) return rc;
    return PL_OK;
}

/* ---- generation ------------------------------------------------------------ */

/* One chunk of rows of one tensor, shared by the pool's threads. */
typedef struct mk_job {
    const mk_tensor *t;  /* tensor being generated */
    uint64_t seed;       /* model seed */
    uint32_t tensor_idx; /* index in the plan (selects the PRNG streams) */
    int64_t r0, r1;      /* rows [r0, r1) of this chunk */
    size_t row_bytes;    /* bytes of one output row */
    uint8_t *out;        /* (r1 - r0) * row_bytes bytes */
    float *scratch;      /* n_threads rows of max_ne0 floats */
    int64_t max_ne0;     /* scratch row stride */
    int rc[64];          /* per-thread status (threads beyond 64 share slot 63) */
    pl_err errs[64];     /* per-thread messages */
} mk_job;

static void gen_rows(void *arg, int ith, int nth) {
    mk_job *j = arg;
    const int slot = ith < 64 ? ith : 63;
    float *row = j->scratch + (size_t)ith * (size_t)j->max_ne0;
    const int64_t ne0 = j->t->ne[0];
    const float mean = j->t->init == INIT_NORM ? 1.0f : 0.0f, sd = j->t->init == INIT_NORM ? 0.05f : 0.02f;
    for (int64_t r = j->r0 + ith; r < j->r1; r += nth) {
        rng g;
        rng_init(&g, j->seed, j->tensor_idx, (uint64_t)r);
        rng_gauss(&g, row, ne0, mean, sd);
        const int rc =
            pl_quantize_row(j->t->type, row, j->out + (size_t)(r - j->r0) * j->row_bytes, ne0, &j->errs[slot]);
        if (rc && !j->rc[slot]) j->rc[slot] = rc;
    }
}

static int validate(const pl_mkmodel_params *p, pl_err *err) {
    if (!p->out_path || !p->vocab_path)
        return pl_fail(err, PL_ERR_ARG, "mkmodel: output and vocabulary paths are required");
    if (p->arch != PL_MK_LLAMA && p->arch != PL_MK_QWEN2)
        return pl_fail(err, PL_ERR_ARG, "mkmodel: unknown architecture");
    if ((unsigned)p->ftype >= PL_MK_FTYPE_COUNT) return pl_fail(err, PL_ERR_ARG, "mkmodel: unknown weight type");
    if (p->n_embd <= 0 || p->n_embd > MAX_DIM || p->n_ff <= 0 || p->n_ff > MAX_DIM || p->n_layer <= 0 ||
        p->n_layer > MAX_LAYERS || p->n_head <= 0 || p->n_head_kv <= 0 || p->n_ctx_train <= 0)
        return pl_fail(err, PL_ERR_ARG, "mkmodel: dimensions must be positive (n_embd, n_ff <= %d, n_layer <= %d)",
                       MAX_DIM, MAX_LAYERS);
    if (p->n_embd % p->n_head || p->n_head % p->n_head_kv)
        return pl_fail(err, PL_ERR_ARG,
                       "mkmodel: n_embd %d must be a multiple of n_head %d, and n_head of n_head_kv %d", p->n_embd,
                       p->n_head, p->n_head_kv);
    const int32_t hd = p->n_embd / p->n_head;
    if (hd % 2 || hd > 1024) return pl_fail(err, PL_ERR_ARG, "mkmodel: head dimension %d must be even and <= 1024", hd);
    if (!(p->rope_theta > 0) || !isfinite(p->rope_theta) || !(p->rms_eps > 0) || !isfinite(p->rms_eps))
        return pl_fail(err, PL_ERR_ARG, "mkmodel: rope theta and rms eps must be positive and finite");
    return PL_OK;
}

/* Writes metadata: general.*, <arch>.* hyperparameters, then every
 * tokenizer.* key of the vocabulary. */
static int write_metadata(gguf_writer *w, const pl_mkmodel_params *p, const gguf_file *vocab, uint32_t n_vocab) {
    const char *arch = p->arch == PL_MK_QWEN2 ? "qwen2" : "llama";
    char name[64], key[96];
    snprintf(name, sizeof name, "random-%s", arch);
    const char *gname = p->name ? p->name : name;
    int rc;
    if ((rc = gguf_writer_add_str(w, "general.architecture", arch, strlen(arch))) ||
        (rc = gguf_writer_add_str(w, "general.name", gname, strlen(gname))) ||
        (rc = gguf_writer_add_u32(w, "general.file_type", k_ftype_file_type[p->ftype])) ||
        (rc = gguf_writer_add_u32(w, "general.quantization_version", 2)))
        return rc;
    const struct {
        const char *suffix;
        uint32_t v;
    } u32s[] = {{"vocab_size", n_vocab},
                {"context_length", (uint32_t)p->n_ctx_train},
                {"embedding_length", (uint32_t)p->n_embd},
                {"block_count", (uint32_t)p->n_layer},
                {"feed_forward_length", (uint32_t)p->n_ff},
                {"attention.head_count", (uint32_t)p->n_head},
                {"attention.head_count_kv", (uint32_t)p->n_head_kv}};
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, u32s[i].suffix);
        if ((rc = gguf_writer_add_u32(w, key, u32s[i].v))) return rc;
    }
    if (p->arch == PL_MK_LLAMA) {
        snprintf(key, sizeof key, "%s.rope.dimension_count", arch);
        if ((rc = gguf_writer_add_u32(w, key, (uint32_t)(p->n_embd / p->n_head)))) return rc;
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    if ((rc = gguf_writer_add_f32(w, key, p->rope_theta))) return rc;
    snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
    if ((rc = gguf_writer_add_f32(w, key, p->rms_eps))) return rc;
    for (uint64_t i = 0; i < gguf_n_kv(vocab); i++) {
        const gguf_kv *kv = gguf_kv_at(vocab, i);
        if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0 && (rc = gguf_writer_add_kv(w, kv)))
            return rc;
    }
    return PL_OK;
}

int pl_mkmodel(const pl_mkmodel_params *p, pl_err *err) {
    if (!p) return pl_fail(err, PL_ERR_ARG, "mkmodel: NULL parameters");
    int rc = validate(p, err);
    if (rc) return rc;

    gguf_file *vocab = NULL;
    gguf_writer *w = NULL;
    pl_threadpool *pool = NULL;
    mk_plan plan = {0};
    mk_job *job = NULL;
    uint8_t *out = NULL;
    float *scratch = NULL;

    if ((rc = gguf_open(p->vocab_path, &vocab, err))) goto done;
    const gguf_kv *toks = gguf_find(vocab, "tokenizer.ggml.tokens");
    if (!toks || toks->type != GGUF_ARRAY || toks->arr_type != GGUF_STRING || toks->arr_n == 0 ||
        toks->arr_n > (1u << 24)) {
        rc = pl_fail(err, PL_ERR_FORMAT, "mkmodel: %s has no usable tokenizer.ggml.tokens array", p->vocab_path);
        goto done;
    }
    const uint32_t n_vocab = (uint32_t)toks->arr_n;
    if ((rc = build_plan(p, n_vocab, &plan, err))) goto done;

    /* sizes: total data bytes, the largest chunk buffer, the widest row */
    uint64_t total = 0;
    size_t max_chunk = 0;
    int64_t max_ne0 = 0;
    for (uint32_t i = 0; i < plan.n; i++) {
        const mk_tensor *t = &plan.t[i];
        const size_t rb = pl_row_size(t->type, t->ne[0]);
        uint64_t tb;
        if (rb == 0 || !pl_mul_u64_ok(rb, (uint64_t)t->ne[1], &tb) || !pl_add_u64_ok(total, tb, &total)) {
            rc = pl_fail(err, PL_ERR_RANGE, "mkmodel: tensor %s is too large", t->name);
            goto done;
        }
        size_t rows = CHUNK_BYTES / rb;
        if (rows < 1) rows = 1;
        if (rows > (size_t)t->ne[1]) rows = (size_t)t->ne[1];
        if (rows * rb > max_chunk) max_chunk = rows * rb;
        if (t->ne[0] > max_ne0) max_ne0 = t->ne[0];
    }

    const int nth = p->n_threads > 0 ? (p->n_threads < 256 ? p->n_threads : 256) : 1;
    size_t scratch_n;
    if (!pl_mul_ok((size_t)nth, (size_t)max_ne0, &scratch_n) || !pl_mul_ok(scratch_n, sizeof(float), &scratch_n)) {
        rc = pl_fail(err, PL_ERR_RANGE, "mkmodel: scratch too large");
        goto done;
    }
    out = malloc(max_chunk);
    scratch = malloc(scratch_n);
    job = calloc(1, sizeof *job);
    pool = pl_threadpool_create(nth);
    if (!out || !scratch || !job || !pool) {
        rc = pl_fail(err, PL_ERR_NOMEM, "mkmodel: out of memory");
        goto done;
    }

    if ((rc = gguf_writer_create(p->out_path, &w, err))) goto done;
    if ((rc = write_metadata(w, p, vocab, n_vocab))) goto done;
    for (uint32_t i = 0; i < plan.n; i++)
        if ((rc = gguf_writer_add_tensor(w, plan.t[i].name, plan.t[i].n_dims, plan.t[i].ne, plan.t[i].type))) goto done;
    if ((rc = gguf_writer_write_header(w))) goto done;

    uint64_t done_bytes = 0;
    for (uint32_t i = 0; i < plan.n; i++) {
        const mk_tensor *t = &plan.t[i];
        const size_t rb = pl_row_size(t->type, t->ne[0]);
        int64_t rows = (int64_t)(CHUNK_BYTES / rb);
        if (rows < 1) rows = 1;
        for (int64_t r0 = 0; r0 < t->ne[1]; r0 += rows) {
            memset(job, 0, sizeof *job);
            job->t = t, job->seed = p->seed, job->tensor_idx = i;
            job->r0 = r0, job->r1 = r0 + rows < t->ne[1] ? r0 + rows : t->ne[1];
            job->row_bytes = rb, job->out = out, job->scratch = scratch, job->max_ne0 = max_ne0;
            pl_threadpool_run(pool, gen_rows, job);
            for (int k = 0; k < 64; k++)
                if (job->rc[k]) {
                    rc = pl_fail(err, job->rc[k], "mkmodel: tensor %s: quantization failed", t->name);
                    goto done;
                }
            const size_t n = (size_t)(job->r1 - job->r0) * rb;
            if ((rc = gguf_writer_write_data(w, out, n))) goto done;
            done_bytes += n;
            if (p->progress) p->progress(p->progress_ud, done_bytes, total, i + (job->r1 == t->ne[1]), plan.n);
        }
    }
    rc = gguf_writer_finish(w);

done:
    gguf_writer_free(w); /* removes the file unless finished */
    if (pool) pl_threadpool_free(pool);
    free(job);
    free(scratch);
    free(out);
    free(plan.t);
    gguf_close(vocab);
    return rc;
}
