/* forward.c — sessions and the transformer forward pass (llama / qwen2).
 *
 * For a batch of n tokens at positions p0..p0+n-1, per layer:
 *   xb  = rmsnorm(x) * attn_norm
 *   q,k,v = Wq xb (+bq), Wk xb (+bk), Wv xb (+bv);  rope(q), rope(k)
 *   K[p0+t], V[p0+t] = k, v                       (F32 cache)
 *   att = softmax(q·K[0..p0+t] / sqrt(head_dim)) V   (causal, per head, GQA)
 *   x  += Wo att
 *   xb  = rmsnorm(x) * ffn_norm
 *   x  += Wdown (silu(Wgate xb) * Wup xb)
 * then logits = Wout (rmsnorm(x) * output_norm) for the rows asked for.
 *
 * Activations and the KV cache stay in float32, norms and softmax sums use
 * double, so results sit close to an exact float64 forward. Every output
 * value is computed by exactly one thread in an order that does not depend
 * on the thread count or the batch split: results are bitwise reproducible.
 * All buffers are allocated at session creation; eval allocates nothing
 * (except growing the logits buffer the first time all positions are
 * requested for a larger batch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"
#include "quant.h"
#include "threadpool.h"

#define PL_N_BATCH 512 /* tokens per internal pass */

struct pl_session {
    pl_model *model;         /* borrowed; must outlive the session */
    const pl_kernels *kern;  /* selected at creation */
    pl_threadpool *pool;     /* owned */
    int n_threads;
    int32_t n_ctx;           /* KV capacity in positions */
    int32_t n_past;          /* positions filled */
    int64_t kv_dim;          /* n_head_kv * head_dim */
    int64_t q_dim;           /* n_head * head_dim */
    float *k_cache;          /* [n_layer][n_ctx][kv_dim], owned */
    float *v_cache;          /* [n_layer][n_ctx][kv_dim], owned */
    float *x;                /* [PL_N_BATCH][n_embd] residual stream */
    float *xb;               /* [PL_N_BATCH][max(n_embd, q_dim)] normed input / attention output */
    float *q;                /* [PL_N_BATCH][q_dim] */
    float *kb, *vb;          /* [PL_N_BATCH][kv_dim] fresh keys / values before they enter the cache */
    float *hb, *hb2;         /* [PL_N_BATCH][n_ff] */
    float *scores;           /* [n_threads][n_ctx] attention scores */
    float *scratch;          /* [n_threads][scratch_len] dequantized weight rows */
    int64_t scratch_len;
    float *rope_cos, *rope_sin; /* [n_ctx][n_rot/2] */
    float *logits;           /* [logits_cap][n_vocab] */
    size_t logits_cap;       /* rows allocated */
    size_t n_logits;         /* rows valid after the last eval */
    char errmsg[256];
};

/* ---- parallel matmul ---------------------------------------------------- */

typedef struct mm_job {
    const pl_weight *w; /* [ne0 -> ne1] */
    const float *x;     /* [n_tok][x_stride] */
    int64_t x_stride;
    float *y;           /* [n_tok][y_stride] */
    int64_t y_stride;
} mm_job;

typedef struct mm_task {
    pl_session *s;
    int n_jobs;
    mm_job jobs[3];
    int64_t n_tok;
} mm_task;

/* Each thread takes a contiguous range of output rows of every job. */
static void mm_worker(void *arg, int ith, int nth) {
    mm_task *t = arg;
    float *scratch = t->s->scratch + (int64_t)ith * t->s->scratch_len;
    for (int j = 0; j < t->n_jobs; j++) {
        const mm_job *job = &t->jobs[j];
        const int64_t rows = job->w->ne1;
        const int64_t r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
        if (r0 < r1)
            pl_matmul_rows(t->s->kern, job->w->data, job->w->type, job->w->ne0, r0, r1, job->x, job->x_stride,
                           t->n_tok, job->y, job->y_stride, scratch);
    }
}

static void matmul(pl_session *s, int64_t n_tok, int n_jobs, const mm_job *jobs) {
    mm_task t = {.s = s, .n_jobs = n_jobs, .n_tok = n_tok};
    for (int j = 0; j < n_jobs; j++) t.jobs[j] = jobs[j];
    pl_threadpool_run(s->pool, mm_worker, &t);
}

/* ---- elementwise pieces -------------------------------------------------- */

/* out = x / sqrt(mean(x^2) + eps) * w, the mean taken in double. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* Rotates the n_rot leading dims of each head of vec ([n_heads][head_dim]). */
static void rope(const pl_session *s, float *vec, int32_t n_heads, int32_t pos) {
    const pl_hparams *hp = &s->model->hp;
    const int32_t half = hp->n_rot / 2;
    const float *c = s->rope_cos + (int64_t)pos * half, *sn = s->rope_sin + (int64_t)pos * half;
    for (int32_t h = 0; h < n_heads; h++) {
        float *v = vec + (int64_t)h * hp->head_dim;
        for (int32_t i = 0; i < half; i++) {
            const int32_t a = hp->rope_neox ? i : 2 * i, b = hp->rope_neox ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * c[i];
        }
    }
}

/* ---- attention ------------------------------------------------------------ */

typedef struct att_task {
    pl_session *s;
    int32_t layer, p0;
    int64_t n_tok;
} att_task;

/* Work items are (token, head) pairs split contiguously across threads. */
static void att_worker(void *arg, int ith, int nth) {
    const att_task *t = arg;
    pl_session *s = t->s;
    const pl_hparams *hp = &s->model->hp;
    const int64_t hd = hp->head_dim, items = t->n_tok * hp->n_head;
    const int32_t group = hp->n_head / hp->n_head_kv;
    const float *kc = s->k_cache + (int64_t)t->layer * s->n_ctx * s->kv_dim;
    const float *vc = s->v_cache + (int64_t)t->layer * s->n_ctx * s->kv_dim;
    float *sc = s->scores + (int64_t)ith * s->n_ctx;
    const float scale = (float)(1.0 / sqrt((double)hd));
    for (int64_t it = items * ith / nth; it < items * (ith + 1) / nth; it++) {
        const int64_t tok = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
        const int32_t n_keys = t->p0 + (int32_t)tok + 1;
        const float *q = s->q + tok * s->q_dim + h * hd;
        float mx = -INFINITY;
        for (int32_t j = 0; j < n_keys; j++) {
            sc[j] = s->kern->dot(q, kc + (int64_t)j * s->kv_dim + kvh * hd, hd) * scale;
            if (sc[j] > mx) mx = sc[j];
        }
        double sum = 0.0;
        for (int32_t j = 0; j < n_keys; j++) {
            sc[j] = expf(sc[j] - mx);
            sum += sc[j];
        }
        const float inv = (float)(1.0 / sum);
        float *out = s->xb + tok * s->q_dim + h * hd;
        for (int64_t d = 0; d < hd; d++) out[d] = 0.0f;
        for (int32_t j = 0; j < n_keys; j++) {
            const float p = sc[j] * inv;
            const float *v = vc + (int64_t)j * s->kv_dim + kvh * hd;
            for (int64_t d = 0; d < hd; d++) out[d] += p * v[d];
        }
    }
}

/* ---- one batch ------------------------------------------------------------- */

static void add_bias(float *y, const pl_weight *b, int64_t n_tok, int64_t dim) {
    if (!b->data) return;
    for (int64_t t = 0; t < n_tok; t++)
        for (int64_t i = 0; i < dim; i++) y[t * dim + i] += pl_load_f32((const char *)b->data + 4 * i);
}

/* Vectors (norm weights, biases) are F32 in the mapping but may be
 * unaligned; copy-free access goes through memcpy-loads. */
static void rmsnorm_w(float *out, const float *x, const pl_weight *w, int64_t n, float eps, float *tmp) {
    memcpy(tmp, w->data, (size_t)n * sizeof(float));
    rmsnorm(out, x, tmp, n, eps);
}

/* Runs n_tok tokens at positions n_past.. through the network; leaves the
 * final hidden states in s->x. */
static void forward_batch(pl_session *s, const int32_t *ids, int64_t n_tok) {
    const pl_model *m = s->model;
    const pl_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, KV = s->kv_dim, Q = s->q_dim;
    const int32_t p0 = s->n_past;
    float *wtmp = s->scratch; /* thread 0's scratch doubles as norm-weight buffer between parallel runs */

    for (int64_t t = 0; t < n_tok; t++)
        s->kern->to_float[m->tok_embd.type]((const char *)m->tok_embd.data + (size_t)ids[t] * m->tok_embd.row_bytes,
                                            s->x + t * E, E);

    for (int32_t l = 0; l < hp->n_layer; l++) {
        const pl_layer *L = &m->layers[l];
        for (int64_t t = 0; t < n_tok; t++) rmsnorm_w(s->xb + t * E, s->x + t * E, &L->attn_norm, E, hp->rms_eps, wtmp);
        const mm_job qkv[3] = {{&L->wq, s->xb, E, s->q, Q}, {&L->wk, s->xb, E, s->kb, KV}, {&L->wv, s->xb, E, s->vb, KV}};
        matmul(s, n_tok, 3, qkv);
        add_bias(s->q, &L->bq, n_tok, Q);
        add_bias(s->kb, &L->bk, n_tok, KV);
        add_bias(s->vb, &L->bv, n_tok, KV);
        float *kc = s->k_cache + (int64_t)l * s->n_ctx * KV, *vc = s->v_cache + (int64_t)l * s->n_ctx * KV;
        for (int64_t t = 0; t < n_tok; t++) {
            rope(s, s->q + t * Q, hp->n_head, p0 + (int32_t)t);
            rope(s, s->kb + t * KV, hp->n_head_kv, p0 + (int32_t)t);
            memcpy(kc + (p0 + t) * KV, s->kb + t * KV, (size_t)KV * sizeof(float));
            memcpy(vc + (p0 + t) * KV, s->vb + t * KV, (size_t)KV * sizeof(float));
        }
        att_task at = {s, l, p0, n_tok};
        pl_threadpool_run(s->pool, att_worker, &at);
        /* attention output is in xb ([n_tok][Q]); project into hb2's first E cols */
        const mm_job wo = {&L->wo, s->xb, Q, s->hb2, E};
        matmul(s, n_tok, 1, &wo);
        for (int64_t i = 0; i < n_tok * E; i++) s->x[i] += s->hb2[i];

        for (int64_t t = 0; t < n_tok; t++) rmsnorm_w(s->xb + t * E, s->x + t * E, &L->ffn_norm, E, hp->rms_eps, wtmp);
        const mm_job gu[2] = {{&L->w_gate, s->xb, E, s->hb, F}, {&L->w_up, s->xb, E, s->hb2, F}};
        matmul(s, n_tok, 2, gu);
        for (int64_t i = 0; i < n_tok * F; i++) {
            const float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        const mm_job down = {&L->w_down, s->hb, F, s->xb, E};
        matmul(s, n_tok, 1, &down);
        for (int64_t i = 0; i < n_tok * E; i++) s->x[i] += s->xb[i];
    }
}

/* Final norm and output projection for hidden rows [first, first+n) of s->x,
 * written to logits rows starting at out_row. */
static void compute_logits(pl_session *s, int64_t first, int64_t n, size_t out_row) {
    const pl_model *m = s->model;
    const int64_t E = m->hp.n_embd;
    for (int64_t t = 0; t < n; t++)
        rmsnorm_w(s->xb + t * E, s->x + (first + t) * E, &m->output_norm, E, m->hp.rms_eps, s->scratch);
    const mm_job out = {&m->output, s->xb, E, s->logits + out_row * (size_t)m->hp.n_vocab, m->hp.n_vocab};
    matmul(s, n, 1, &out);
}

static int sfail(pl_session *s, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int sfail(pl_session *s, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return code;
}

int pl_session_eval(pl_session *s, const int32_t *ids, size_t n, int flags) {
    if (!s) return PL_ERR_ARG;
    s->errmsg[0] = '\0';
    if (!ids || n == 0) return sfail(s, PL_ERR_ARG, "eval: no tokens");
    if (n > (size_t)(s->n_ctx - s->n_past))
        return sfail(s, PL_ERR_RANGE, "eval: %zu tokens do not fit: %d of %d context positions used", n, s->n_past,
                     s->n_ctx);
    const int32_t n_vocab = s->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return sfail(s, PL_ERR_ARG, "eval: token id %d at index %zu is outside [0, %d)", ids[i], i, n_vocab);
    const bool all = (flags & PL_EVAL_ALL_POSITIONS) != 0;
    const size_t rows = all ? n : 1;
    if (rows > s->logits_cap) {
        float *nl = realloc(s->logits, rows * (size_t)n_vocab * sizeof(float));
        if (!nl) return sfail(s, PL_ERR_NOMEM, "eval: out of memory for %zu logits rows", rows);
        s->logits = nl;
        s->logits_cap = rows;
    }
    for (size_t done = 0; done < n;) {
        const size_t chunk = n - done < PL_N_BATCH ? n - done : PL_N_BATCH;
        forward_batch(s, ids + done, (int64_t)chunk);
        s->n_past += (int32_t)chunk;
        if (all) compute_logits(s, 0, (int64_t)chunk, done);
        else if (done + chunk == n) compute_logits(s, (int64_t)chunk - 1, 1, 0);
        done += chunk;
    }
    s->n_logits = rows;
    return PL_OK;
}

const float *pl_session_logits(const pl_session *s, size_t i) {
    if (!s || i >= s->n_logits) return NULL;
    return s->logits + i * (size_t)s->model->hp.n_vocab;
}

int32_t pl_session_n_past(const pl_session *s) { return s ? s->n_past : 0; }

int pl_session_truncate(pl_session *s, int32_t n_past) {
    if (!s) return PL_ERR_ARG;
    if (n_past < 0 || n_past > s->n_past)
        return sfail(s, PL_ERR_ARG, "truncate: %d is outside [0, %d]", n_past, s->n_past);
    s->n_past = n_past;
    s->n_logits = 0;
    return PL_OK;
}

const char *pl_session_errmsg(const pl_session *s) { return s ? s->errmsg : "no session"; }

/* calloc of a product, NULL on overflow. */
static float *alloc_floats(size_t a, size_t b, size_t c) {
    size_t n;
    if (!pl_mul_ok(a, b, &n) || !pl_mul_ok(n, c, &n) || !pl_mul_ok(n, sizeof(float), &n)) return NULL;
    return calloc(1, n ? n : 1);
}

int pl_session_create(pl_model *m, int32_t n_ctx, int n_threads, pl_session **out, char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!m || !out) return pl_fail(&err, PL_ERR_ARG, "pl_session_create: NULL argument");
    *out = NULL;
    if (m->vocab_only) return pl_fail(&err, PL_ERR_STATE, "the model was opened vocab-only");
    if (n_ctx <= 0) n_ctx = m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (n_ctx > (1 << 20)) return pl_fail(&err, PL_ERR_ARG, "n_ctx %d is too large", n_ctx);
    if (n_threads < 1 || n_threads > 256) return pl_fail(&err, PL_ERR_ARG, "n_threads %d is outside 1..256", n_threads);
    const pl_hparams *hp = &m->hp;
    pl_session *s = calloc(1, sizeof *s);
    if (!s) return pl_fail(&err, PL_ERR_NOMEM, "out of memory");
    s->model = m;
    s->kern = pl_kernels_get();
    s->n_threads = n_threads;
    s->n_ctx = n_ctx;
    s->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    s->q_dim = (int64_t)hp->n_head * hp->head_dim;
    const size_t B = PL_N_BATCH, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t W = E > (size_t)s->q_dim ? E : (size_t)s->q_dim;
    s->scratch_len = (int64_t)(F > W ? F : W);
    const size_t half = (size_t)hp->n_rot / 2;
    s->k_cache = alloc_floats((size_t)hp->n_layer, (size_t)n_ctx, (size_t)s->kv_dim);
    s->v_cache = alloc_floats((size_t)hp->n_layer, (size_t)n_ctx, (size_t)s->kv_dim);
    s->x = alloc_floats(B, E, 1);
    s->xb = alloc_floats(B, W, 1);
    s->q = alloc_floats(B, (size_t)s->q_dim, 1);
    s->kb = alloc_floats(B, (size_t)s->kv_dim, 1);
    s->vb = alloc_floats(B, (size_t)s->kv_dim, 1);
    s->hb = alloc_floats(B, F > W ? F : W, 1);
    s->hb2 = alloc_floats(B, F > W ? F : W, 1);
    s->scores = alloc_floats((size_t)n_threads, (size_t)n_ctx, 1);
    s->scratch = alloc_floats((size_t)n_threads, (size_t)s->scratch_len, 1);
    s->rope_cos = alloc_floats((size_t)n_ctx, half, 1);
    s->rope_sin = alloc_floats((size_t)n_ctx, half, 1);
    s->logits = alloc_floats(1, (size_t)hp->n_vocab, 1);
    s->logits_cap = 1;
    s->pool = pl_threadpool_create(n_threads);
    if (!s->k_cache || !s->v_cache || !s->x || !s->xb || !s->q || !s->kb || !s->vb || !s->hb || !s->hb2 ||
        !s->scores || !s->scratch || !s->rope_cos || !s->rope_sin || !s->logits || !s->pool) {
        pl_session_free(s);
        return pl_fail(&err, PL_ERR_NOMEM, "out of memory for a session of %d positions", n_ctx);
    }
    /* theta(pos, i) = pos * scale * base^(-2i/n_rot) / freq_factor[i], in double. */
    for (size_t i = 0; i < half; i++) {
        double inv_freq = pow((double)hp->rope_base, -2.0 * (double)i / (double)hp->n_rot);
        if (m->rope_freqs.data) inv_freq /= pl_load_f32((const char *)m->rope_freqs.data + 4 * i);
        for (int32_t pos = 0; pos < n_ctx; pos++) {
            const double theta = (double)pos * hp->rope_scale * inv_freq;
            s->rope_cos[(size_t)pos * half + i] = (float)cos(theta);
            s->rope_sin[(size_t)pos * half + i] = (float)sin(theta);
        }
    }
    *out = s;
    return PL_OK;
}

void pl_session_free(pl_session *s) {
    if (!s) return;
    pl_threadpool_free(s->pool);
    free(s->k_cache);
    free(s->v_cache);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->kb);
    free(s->vb);
    free(s->hb);
    free(s->hb2);
    free(s->scores);
    free(s->scratch);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->logits);
    free(s);
}
