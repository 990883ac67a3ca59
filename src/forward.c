/* forward.c — sessions and the transformer forward pass (llama / qwen2).
 *
 * For a batch of n tokens at positions p0..p0+n-1, per layer:
 *   xb  = rmsnorm(x) * attn_norm
 *   q,k,v = Wq xb (+bq), Wk xb (+bk), Wv xb (+bv);  rope(q), rope(k)
 *   K[p0+t], V[p0+t] = k, v                       (F32 cache, K slot-blocked)
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
 * Fast mode (pl_session_set_fast): each matmul input is quantized once to
 * int8 blocks (q8a, quant.h) and weights with an integer kernel use it; the
 * rest stays as above, and determinism holds the same way.
 * All buffers are allocated at session creation; eval allocates nothing
 * (except growing the logits buffer the first time all positions are
 * requested for a larger batch). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"
#include "quant.h"
#include "session.h"
#include "threadpool.h"

#define PL_N_BATCH 512 /* tokens per internal pass */

struct pl_session {
    pl_model *model;        /* borrowed; must outlive the session */
    const pl_kernels *kern; /* selected at creation */
    pl_threadpool *pool;    /* owned */
    int n_threads;
    int32_t n_ctx;     /* KV capacity in positions */
    int32_t n_ctx_pad; /* n_ctx rounded up to a multiple of PL_KV_BLOCK (K cache slots) */
    int32_t n_past;    /* positions filled */
    int64_t kv_dim;    /* n_head_kv * head_dim */
    int64_t q_dim;     /* n_head * head_dim */
    /* K cache, slot-blocked (see PL_KV_BLOCK in quant.h), floats, 64-byte
     * aligned, owned: [n_layer][n_head_kv][n_ctx_pad/16][head_dim][16];
     * dim d of slot p of KV head h in layer l is at
     * k_cache + (l*n_head_kv + h)*n_ctx_pad*head_dim + pl_k_index(p, d, head_dim),
     * so 16 consecutive slots of one dim are one 64-byte line. A head's
     * blocks are contiguous (n_ctx_pad*head_dim floats). Lanes of slots
     * >= n_past hold stale values that are never read as keys. */
    float *k_cache;
    float *v_cache;      /* [n_layer][n_ctx][kv_dim] floats, row-major by slot, owned */
    float *x;            /* [PL_N_BATCH][n_embd] residual stream */
    float *xb;           /* [PL_N_BATCH][max(n_embd, q_dim)] normed input / attention output */
    float *q;            /* [PL_N_BATCH][q_dim] */
    float *kb, *vb;      /* [PL_N_BATCH][kv_dim] fresh keys / values before they enter the cache */
    float *hb, *hb2;     /* [PL_N_BATCH][n_ff] */
    float *scores;       /* [n_threads][n_head/n_head_kv][n_ctx] attention scores of one GQA group */
    float *scratch;      /* [n_threads][scratch_len] dequantized weight rows */
    int64_t scratch_len; /* floats per thread; also holds PL_Q8_SCRATCH_BYTES of the widest input */
    int fast;            /* fast mode: int8 activations for quantized matmuls (pl_session_set_fast) */
    uint8_t *xq;         /* [PL_N_BATCH][pl_q8a_stride(max(n_ff, n_embd, q_dim))] quantized matmul input, 64-aligned */
    float *rope_cos, *rope_sin; /* [n_ctx][n_rot/2] */
    int32_t *tok_pos;           /* [PL_N_BATCH] RoPE position of each batch token */
    int32_t *tok_seq_begin;     /* [PL_N_BATCH] first cache slot of each token's own sequence */
    int32_t shared_end;         /* every batch token also attends to slots [0, shared_end) */
    int32_t slot0;              /* cache slot of the batch's first token */
    uint64_t serial;            /* count of batches run; stamps written slots */
    uint64_t *slot_serial;      /* [n_ctx] serial of the batch that last wrote each slot */
    uint64_t uid;               /* unique per session, for checkpoint fast paths */
    float *logits;              /* [logits_cap][n_vocab] */
    size_t logits_cap;          /* rows allocated */
    size_t n_logits;            /* rows valid after the last eval */
    char errmsg[256];
};

/* ---- parallel matmul ---------------------------------------------------- */

typedef struct mm_job {
    const pl_weight *w; /* [ne0 -> ne1] */
    const float *x;     /* [n_tok][x_stride] */
    int64_t x_stride;
    float *y; /* [n_tok][y_stride] */
    int64_t y_stride;
} mm_job;

typedef struct mm_task {
    pl_session *s;
    int n_jobs;
    mm_job jobs[3];
    int64_t n_tok;
    const uint8_t *xq; /* q8a of the jobs' shared input (fast mode), or NULL */
} mm_task;

/* Each thread takes a contiguous range of output rows of every job. */
static void mm_worker(void *arg, int ith, int nth) {
    mm_task *t = arg;
    float *scratch = t->s->scratch + (int64_t)ith * t->s->scratch_len;
    for (int j = 0; j < t->n_jobs; j++) {
        const mm_job *job = &t->jobs[j];
        const int64_t rows = job->w->ne1;
        if (t->xq && job->w->r16) { /* whole groups of 16 rows per thread */
            const int64_t g0 = rows / 16 * ith / nth, g1 = rows / 16 * (ith + 1) / nth;
            if (g0 < g1)
                t->s->kern->matmul_r16(job->w->r16, job->w->type, job->w->ne0, 16 * g0, 16 * g1, t->xq, t->n_tok,
                                       job->y, job->y_stride);
            continue;
        }
        const int64_t r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth;
        if (r0 >= r1) continue;
        if (t->xq && pl_q8_supported(job->w->type))
            pl_matmul_rows_q8(t->s->kern, job->w->data, job->w->type, job->w->ne0, r0, r1, t->xq, t->n_tok, job->y,
                              job->y_stride, (uint8_t *)scratch);
        else
            pl_matmul_rows(t->s->kern, job->w->data, job->w->type, job->w->ne0, r0, r1, job->x, job->x_stride, t->n_tok,
                           job->y, job->y_stride, scratch);
    }
}

/* Elementwise work before a matmul, split by tokens across the pool (each
 * element gets the same operations as a serial loop, so the bits do not
 * depend on the thread count). In order, for each token row t:
 * res += res_add; gate = silu(gate) * up; norm_out = rmsnorm(res) * norm_w;
 * then, in fast mode, the matmul input rows are quantized into s->xq. */
typedef struct prep_task {
    pl_session *s;
    int64_t n_tok;
    float *res;            /* [n_tok][res_n] residual rows, or NULL */
    const float *res_add;  /* [n_tok][res_n] added to res, or NULL */
    int64_t res_n;         /* values per residual row */
    float *gate;           /* [n_tok][ff] becomes silu(gate) * up, or NULL */
    const float *up;       /* [n_tok][ff] */
    int64_t ff;            /* values per gate row */
    const float *norm_w;   /* [res_n] F32 norm weights (aligned copy), or NULL */
    float eps;             /* rms epsilon */
    float *norm_out;       /* [n_tok][res_n] */
    const float *q_src;    /* [n_tok][q_stride] rows to quantize (q8a into s->xq), or NULL */
    int64_t q_stride, q_n; /* floats between rows, values quantized per row */
    int q_parts;           /* PL_Q8A_GROUPS / PL_Q8A_NATURAL: what the matmul's kernels read */
} prep_task;

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

static void prep_worker(void *arg, int ith, int nth) {
    const prep_task *p = arg;
    const int64_t t0 = p->n_tok * ith / nth, t1 = p->n_tok * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++) {
        if (p->res_add)
            for (int64_t i = 0; i < p->res_n; i++) p->res[t * p->res_n + i] += p->res_add[t * p->res_n + i];
        if (p->gate && p->s->fast)
            p->s->kern->silu_mul(p->gate + t * p->ff, p->up + t * p->ff, p->ff);
        else if (p->gate)
            for (int64_t i = t * p->ff; i < (t + 1) * p->ff; i++) {
                const float g = p->gate[i];
                p->gate[i] = g / (1.0f + expf(-g)) * p->up[i];
            }
        if (p->norm_w && p->s->fast)
            p->s->kern->rmsnorm(p->norm_out + t * p->res_n, p->res + t * p->res_n, p->norm_w, p->res_n, p->eps);
        else if (p->norm_w)
            rmsnorm(p->norm_out + t * p->res_n, p->res + t * p->res_n, p->norm_w, p->res_n, p->eps);
    }
    if (p->q_src && t1 > t0)
        p->s->kern->quant_act(p->q_src + t0 * p->q_stride, p->q_stride, p->q_n, t1 - t0,
                              p->s->xq + t0 * pl_q8a_stride(p->q_n), p->q_parts);
}

/* Quantizes n_tok rows of n values (x, x_stride apart) into s->xq when fast
 * mode is on and type has an integer kernel; returns s->xq, else NULL. */
static const uint8_t *quantize_input(pl_session *s, uint32_t type, const float *x, int64_t x_stride, int64_t n,
                                     int64_t n_tok) {
    if (!s->fast || !pl_q8_supported(type) || n % 32 != 0) return NULL;
    s->kern->quant_act(x, x_stride, n, n_tok, s->xq, PL_Q8A_GROUPS);
    return s->xq;
}

/* All jobs of one call share the input x (same x, stride and ne0). prep (or
 * NULL) runs first, in parallel; in fast mode it also quantizes x once into
 * s->xq when a job's type has an integer kernel. */
static void matmul(pl_session *s, int64_t n_tok, int n_jobs, const mm_job *jobs, prep_task *prep) {
    mm_task t = {.s = s, .n_jobs = n_jobs, .n_tok = n_tok};
    int parts = 0; /* the q8a parts the jobs' kernels read */
    for (int j = 0; j < n_jobs; j++) {
        t.jobs[j] = jobs[j];
        if (s->fast && pl_q8_supported(jobs[j].w->type) && jobs[0].w->ne0 % 32 == 0)
            parts |= jobs[j].w->r16 ? PL_Q8A_NATURAL : PL_Q8A_GROUPS;
    }
    const bool quant = parts != 0;
    prep_task none = {0};
    if (!prep && quant) prep = &none;
    if (prep) {
        prep->s = s, prep->n_tok = n_tok;
        if (quant)
            prep->q_src = jobs[0].x, prep->q_stride = jobs[0].x_stride, prep->q_n = jobs[0].w->ne0,
            prep->q_parts = parts;
        if (n_tok < 4)
            prep_worker(prep, 0, 1); /* too little to split: a pool run would cost more than the work */
        else
            pl_threadpool_run(s->pool, prep_worker, prep);
    }
    if (quant) t.xq = s->xq;
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
    int32_t layer;
    int64_t n_tok;
} att_task;

/* Work items are (token, key/value head) pairs split contiguously across
 * threads; each runs the attention of the query heads of that GQA group.
 * Token t (cache slot slot0+t) attends to slots [0, shared_end) and then
 * [seq_begin[t], slot0+t]; keys are visited in slot order either way, so a
 * suffix evaluated as a fork of a cached prefix gives the same bits as the
 * same suffix evaluated after the prefix in one sequence. */
static void att_worker(void *arg, int ith, int nth) {
    const att_task *t = arg;
    pl_session *s = t->s;
    const pl_hparams *hp = &s->model->hp;
    const int64_t hd = hp->head_dim, items = t->n_tok * hp->n_head_kv;
    const int32_t group = hp->n_head / hp->n_head_kv;
    const int64_t k_head = (int64_t)s->n_ctx_pad * hd; /* floats per head's K blocks */
    const float *kc = s->k_cache + (int64_t)t->layer * hp->n_head_kv * k_head;
    const float *vc = s->v_cache + (int64_t)t->layer * s->n_ctx * s->kv_dim;
    float *sc = s->scores + (int64_t)ith * group * s->n_ctx;
    const float scale = (float)(1.0 / sqrt((double)hd));
    if (items < 4 * nth && group > 1) { /* few items (decode): one query head each, for balance; a head's
                                         * result does not depend on the heads it is computed with */
        const int64_t hitems = t->n_tok * hp->n_head;
        for (int64_t it = hitems * ith / nth; it < hitems * (ith + 1) / nth; it++) {
            const int64_t tok = it / hp->n_head, h = it % hp->n_head, kvh = h / group;
            const int32_t slot = s->slot0 + (int32_t)tok;
            const int32_t b0 = s->tok_seq_begin[tok] > s->shared_end ? s->tok_seq_begin[tok] : s->shared_end;
            s->kern->attn(s->q + tok * s->q_dim + h * hd, hd, 1, kc + kvh * k_head, vc + kvh * hd, s->kv_dim, 0,
                          s->shared_end, b0, slot + 1, hd, scale, s->xb + tok * s->q_dim + h * hd, hd, sc);
        }
        return;
    }
    for (int64_t it = items * ith / nth; it < items * (ith + 1) / nth; it++) {
        const int64_t tok = it / hp->n_head_kv, kvh = it % hp->n_head_kv;
        const int32_t slot = s->slot0 + (int32_t)tok;
        const int32_t b0 = s->tok_seq_begin[tok] > s->shared_end ? s->tok_seq_begin[tok] : s->shared_end;
        const int64_t h0 = kvh * group;
        s->kern->attn(s->q + tok * s->q_dim + h0 * hd, hd, group, kc + kvh * k_head, vc + kvh * hd, s->kv_dim, 0,
                      s->shared_end, b0, slot + 1, hd, scale, s->xb + tok * s->q_dim + h0 * hd, hd, sc);
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

/* Runs n_tok tokens through the network: token t is stored in cache slot
 * s->slot0 + t, rotated for position s->tok_pos[t], and attends as
 * described at att_worker. Leaves the final hidden states in s->x. */
static void forward_batch(pl_session *s, const int32_t *ids, int64_t n_tok) {
    const pl_model *m = s->model;
    const pl_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, KV = s->kv_dim, Q = s->q_dim;
    const int32_t p0 = s->slot0;
    /* thread 0's scratch doubles as the norm-weight buffer: the prep run that
     * reads it ends before the matmul run that reuses the scratch */
    float *wn = s->scratch;

    for (int64_t t = 0; t < n_tok; t++)
        s->kern->to_float[m->tok_embd.type]((const char *)m->tok_embd.data + (size_t)ids[t] * m->tok_embd.row_bytes,
                                            s->x + t * E, E);

    s->serial++;
    for (int64_t t = 0; t < n_tok; t++) s->slot_serial[p0 + t] = s->serial;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const pl_layer *L = &m->layers[l];
        /* the previous layer's FFN output (in xb) joins the residual here */
        memcpy(wn, L->attn_norm.data, (size_t)E * sizeof(float));
        prep_task pa = {.res = s->x,
                        .res_add = l > 0 ? s->xb : NULL,
                        .res_n = E,
                        .norm_w = wn,
                        .eps = hp->rms_eps,
                        .norm_out = s->xb};
        const mm_job qkv[3] = {
            {&L->wq, s->xb, E, s->q, Q}, {&L->wk, s->xb, E, s->kb, KV}, {&L->wv, s->xb, E, s->vb, KV}};
        matmul(s, n_tok, 3, qkv, &pa);
        add_bias(s->q, &L->bq, n_tok, Q);
        add_bias(s->kb, &L->bk, n_tok, KV);
        add_bias(s->vb, &L->bv, n_tok, KV);
        const int64_t hd = hp->head_dim, k_head = (int64_t)s->n_ctx_pad * hd;
        float *kc = s->k_cache + (int64_t)l * hp->n_head_kv * k_head, *vc = s->v_cache + (int64_t)l * s->n_ctx * KV;
        for (int64_t t = 0; t < n_tok; t++) {
            rope(s, s->q + t * Q, hp->n_head, s->tok_pos[t]);
            rope(s, s->kb + t * KV, hp->n_head_kv, s->tok_pos[t]);
            for (int32_t h = 0; h < hp->n_head_kv; h++) {
                float *kd = kc + h * k_head + pl_k_index(p0 + t, 0, hd);
                const float *ks = s->kb + t * KV + h * hd;
                for (int64_t d = 0; d < hd; d++) kd[d * PL_KV_BLOCK] = ks[d];
            }
            memcpy(vc + (p0 + t) * KV, s->vb + t * KV, (size_t)KV * sizeof(float));
        }
        att_task at = {s, l, n_tok};
        pl_threadpool_run(s->pool, att_worker, &at);
        /* attention output is in xb ([n_tok][Q]); project into hb2's first E cols */
        const mm_job wo = {&L->wo, s->xb, Q, s->hb2, E};
        matmul(s, n_tok, 1, &wo, NULL);

        memcpy(wn, L->ffn_norm.data, (size_t)E * sizeof(float));
        prep_task pf = {
            .res = s->x, .res_add = s->hb2, .res_n = E, .norm_w = wn, .eps = hp->rms_eps, .norm_out = s->xb};
        const mm_job gu[2] = {{&L->w_gate, s->xb, E, s->hb, F}, {&L->w_up, s->xb, E, s->hb2, F}};
        matmul(s, n_tok, 2, gu, &pf);
        prep_task ps = {.gate = s->hb, .up = s->hb2, .ff = F};
        const mm_job down = {&L->w_down, s->hb, F, s->xb, E};
        matmul(s, n_tok, 1, &down, &ps);
    }
    for (int64_t i = 0; i < n_tok * E; i++) s->x[i] += s->xb[i];
}

/* Final norm and output projection for hidden rows [first, first+n) of s->x,
 * written to logits rows starting at out_row. */
static void compute_logits(pl_session *s, int64_t first, int64_t n, size_t out_row) {
    const pl_model *m = s->model;
    const int64_t E = m->hp.n_embd;
    for (int64_t t = 0; t < n; t++)
        rmsnorm_w(s->xb + t * E, s->x + (first + t) * E, &m->output_norm, E, m->hp.rms_eps, s->scratch);
    const mm_job out = {&m->output, s->xb, E, s->logits + out_row * (size_t)m->hp.n_vocab, m->hp.n_vocab};
    matmul(s, n, 1, &out, NULL);
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
        s->slot0 = s->n_past;
        s->shared_end = 0;
        for (size_t t = 0; t < chunk; t++) {
            s->tok_pos[t] = s->n_past + (int32_t)t;
            s->tok_seq_begin[t] = 0;
        }
        forward_batch(s, ids + done, (int64_t)chunk);
        s->n_past += (int32_t)chunk;
        if (all)
            compute_logits(s, 0, (int64_t)chunk, done);
        else if (done + chunk == n)
            compute_logits(s, (int64_t)chunk - 1, 1, 0);
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
    s->n_ctx_pad = (n_ctx + PL_KV_BLOCK - 1) / PL_KV_BLOCK * PL_KV_BLOCK;
    s->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    s->q_dim = (int64_t)hp->n_head * hp->head_dim;
    const size_t B = PL_N_BATCH, E = (size_t)hp->n_embd, F = (size_t)hp->n_ff;
    const size_t W = E > (size_t)s->q_dim ? E : (size_t)s->q_dim;
    /* per-thread matmul scratch (see PL_MATMUL_SCRATCH), 64-byte aligned */
    const int64_t widest = (int64_t)(F > W ? F : W);
    s->scratch_len = PL_MATMUL_SCRATCH(widest);
    if ((PL_Q8_SCRATCH_BYTES(widest) + 3) / 4 > s->scratch_len) s->scratch_len = (PL_Q8_SCRATCH_BYTES(widest) + 3) / 4;
    s->scratch_len = (s->scratch_len + 15) / 16 * 16;
    const size_t xq_bytes = ((size_t)B * (size_t)pl_q8a_stride(widest) + 63) / 64 * 64;
    s->xq = aligned_alloc(64, xq_bytes ? xq_bytes : 64);
    const size_t half = (size_t)hp->n_rot / 2;
    size_t k_bytes;
    if (pl_mul_ok((size_t)hp->n_layer * (size_t)s->n_ctx_pad, (size_t)s->kv_dim * sizeof(float), &k_bytes) && k_bytes) {
        k_bytes = (k_bytes + 63) / 64 * 64;
        s->k_cache = aligned_alloc(64, k_bytes);
        if (s->k_cache) memset(s->k_cache, 0, k_bytes);
    }
    s->v_cache = alloc_floats((size_t)hp->n_layer, (size_t)n_ctx, (size_t)s->kv_dim);
    s->x = alloc_floats(B, E, 1);
    s->xb = alloc_floats(B, W, 1);
    s->q = alloc_floats(B, (size_t)s->q_dim, 1);
    s->kb = alloc_floats(B, (size_t)s->kv_dim, 1);
    s->vb = alloc_floats(B, (size_t)s->kv_dim, 1);
    s->hb = alloc_floats(B, F > W ? F : W, 1);
    s->hb2 = alloc_floats(B, F > W ? F : W, 1);
    s->scores = alloc_floats((size_t)n_threads, (size_t)(hp->n_head / hp->n_head_kv), (size_t)n_ctx);
    s->tok_pos = calloc(B, sizeof(int32_t));
    s->tok_seq_begin = calloc(B, sizeof(int32_t));
    s->slot_serial = calloc((size_t)n_ctx, sizeof(uint64_t));
    static _Atomic uint64_t next_uid = 1;
    s->uid = next_uid++;
    size_t scratch_bytes;
    if (pl_mul_ok((size_t)n_threads, (size_t)s->scratch_len * sizeof(float), &scratch_bytes)) {
        s->scratch = aligned_alloc(64, scratch_bytes);
        if (s->scratch) memset(s->scratch, 0, scratch_bytes);
    }
    s->rope_cos = alloc_floats((size_t)n_ctx, half, 1);
    s->rope_sin = alloc_floats((size_t)n_ctx, half, 1);
    s->logits = alloc_floats(1, (size_t)hp->n_vocab, 1);
    s->logits_cap = 1;
    s->pool = pl_threadpool_create(n_threads);
    if (!s->k_cache || !s->v_cache || !s->x || !s->xb || !s->q || !s->kb || !s->vb || !s->hb || !s->hb2 || !s->scores ||
        !s->tok_pos || !s->tok_seq_begin || !s->slot_serial || !s->scratch || !s->rope_cos || !s->rope_sin ||
        !s->logits || !s->pool || !s->xq) {
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
    free(s->tok_pos);
    free(s->tok_seq_begin);
    free(s->slot_serial);
    free(s->scratch);
    free(s->xq);
    free(s->rope_cos);
    free(s->rope_sin);
    free(s->logits);
    free(s);
}

/* ---- forks, selected logits -------------------------------------------------- */

typedef struct sel_task {
    pl_session *s;
    const pl_weight *w;
    const int32_t *ids; /* output rows to compute */
    size_t n_ids;
    int64_t n_rows;    /* hidden rows in s->xb */
    float *out;        /* [n_rows][n_ids] */
    const uint8_t *xq; /* q8a of the hidden rows (fast mode), or NULL */
} sel_task;

static void sel_worker(void *arg, int ith, int nth) {
    sel_task *t = arg;
    float *scratch = t->s->scratch + (int64_t)ith * t->s->scratch_len;
    for (size_t k = t->n_ids * (size_t)ith / (size_t)nth; k < t->n_ids * (size_t)(ith + 1) / (size_t)nth; k++) {
        const char *row = (const char *)t->w->data + (size_t)t->ids[k] * t->w->row_bytes;
        if (t->xq)
            pl_matmul_rows_q8(t->s->kern, row, t->w->type, t->w->ne0, 0, 1, t->xq, t->n_rows, t->out + k,
                              (int64_t)t->n_ids, (uint8_t *)scratch);
        else
            pl_matmul_rows(t->s->kern, row, t->w->type, t->w->ne0, 0, 1, t->s->xb, t->w->ne0, t->n_rows, t->out + k,
                           (int64_t)t->n_ids, scratch);
    }
}

int session_eval_forks(pl_session *s, const pl_seq *seqs, size_t n_seqs, const int32_t *vocab_ids, size_t n_ids,
                       float *out) {
    if (!s || (!seqs && n_seqs) || !out) return PL_ERR_ARG;
    const pl_model *m = s->model;
    const int32_t n_vocab = m->hp.n_vocab;
    const int64_t E = m->hp.n_embd;
    const size_t row_len = vocab_ids ? n_ids : (size_t)n_vocab;
    size_t total = 0;
    for (size_t i = 0; i < n_seqs; i++) {
        if (!seqs[i].ids || seqs[i].n == 0 || seqs[i].n_out == 0 || seqs[i].n_out > seqs[i].n)
            return sfail(s, PL_ERR_ARG, "fork %zu: empty sequence or bad output count", i);
        for (size_t j = 0; j < seqs[i].n; j++)
            if (seqs[i].ids[j] < 0 || seqs[i].ids[j] >= n_vocab)
                return sfail(s, PL_ERR_ARG, "fork %zu: token id %d is outside [0, %d)", i, seqs[i].ids[j], n_vocab);
        if (!pl_add_ok(total, seqs[i].n, &total)) return sfail(s, PL_ERR_RANGE, "forks too long");
    }
    for (size_t k = 0; vocab_ids && k < n_ids; k++)
        if (vocab_ids[k] < 0 || vocab_ids[k] >= n_vocab)
            return sfail(s, PL_ERR_ARG, "logit id %d is outside [0, %d)", vocab_ids[k], n_vocab);
    if (total > (size_t)(s->n_ctx - s->n_past))
        return sfail(s, PL_ERR_RANGE, "forks of %zu tokens do not fit after %d of %d positions", total, s->n_past,
                     s->n_ctx);
    const int32_t P = s->n_past;
    size_t seq = 0, in_seq = 0, out_row = 0; /* walk position over all sequences */
    int32_t slot = P, seq_begin = P;
    while (seq < n_seqs) {
        /* gather up to PL_N_BATCH tokens, remembering which need logits */
        int32_t ids[PL_N_BATCH];
        int64_t want[PL_N_BATCH];
        int64_t n_tok = 0, n_want = 0;
        s->slot0 = slot;
        s->shared_end = P;
        while (seq < n_seqs && n_tok < PL_N_BATCH) {
            const pl_seq *q = &seqs[seq];
            if (in_seq == 0) seq_begin = slot;
            ids[n_tok] = q->ids[in_seq];
            s->tok_pos[n_tok] = P + (int32_t)in_seq;
            s->tok_seq_begin[n_tok] = seq_begin;
            if (in_seq >= q->n - q->n_out) want[n_want++] = n_tok;
            n_tok++, slot++, in_seq++;
            if (in_seq == q->n) seq++, in_seq = 0;
        }
        forward_batch(s, ids, n_tok);
        /* final norm of the wanted rows into xb, then their logits */
        for (int64_t k = 0; k < n_want; k++)
            rmsnorm_w(s->xb + k * E, s->x + want[k] * E, &m->output_norm, E, m->hp.rms_eps, s->scratch);
        float *dst = out + out_row * row_len;
        if (vocab_ids) {
            sel_task t = {
                s, &m->output, vocab_ids, n_ids, n_want, dst, quantize_input(s, m->output.type, s->xb, E, E, n_want)};
            pl_threadpool_run(s->pool, sel_worker, &t);
        } else {
            const mm_job job = {&m->output, s->xb, E, dst, n_vocab};
            matmul(s, n_want, 1, &job, NULL);
        }
        out_row += (size_t)n_want;
    }
    s->n_logits = 0; /* the public logits buffer is not touched */
    return PL_OK;
}

const pl_model *session_model(const pl_session *s) { return s->model; }
int32_t session_n_ctx(const pl_session *s) { return s->n_ctx; }

size_t session_kv_floats_per_layer(const pl_session *s, int32_t n) { return (size_t)n * (size_t)s->kv_dim; }

/* Row-major K of slots [0, n) of layer l ([n][kv_dim]) from / to the
 * slot-blocked cache. */
static void k_to_rows(const pl_session *s, int32_t l, int32_t n, float *dst) {
    const int64_t hd = s->model->hp.head_dim, k_head = (int64_t)s->n_ctx_pad * hd;
    const float *kc = s->k_cache + (int64_t)l * s->model->hp.n_head_kv * k_head;
    for (int32_t h = 0; h < s->model->hp.n_head_kv; h++)
        for (int32_t p = 0; p < n; p++) {
            const float *ks = kc + h * k_head + pl_k_index(p, 0, hd);
            float *kd = dst + (int64_t)p * s->kv_dim + h * hd;
            for (int64_t d = 0; d < hd; d++) kd[d] = ks[d * PL_KV_BLOCK];
        }
}

static void k_from_rows(pl_session *s, int32_t l, int32_t n, const float *src) {
    const int64_t hd = s->model->hp.head_dim, k_head = (int64_t)s->n_ctx_pad * hd;
    float *kc = s->k_cache + (int64_t)l * s->model->hp.n_head_kv * k_head;
    for (int32_t h = 0; h < s->model->hp.n_head_kv; h++)
        for (int32_t p = 0; p < n; p++) {
            float *kd = kc + h * k_head + pl_k_index(p, 0, hd);
            const float *ks = src + (int64_t)p * s->kv_dim + h * hd;
            for (int64_t d = 0; d < hd; d++) kd[d * PL_KV_BLOCK] = ks[d];
        }
}

int session_kv_export(const pl_session *s, int32_t n, float *dst) {
    if (n < 0 || n > s->n_past) return PL_ERR_ARG;
    const size_t per = session_kv_floats_per_layer(s, n), stride = (size_t)s->n_ctx * (size_t)s->kv_dim;
    for (int32_t l = 0; l < s->model->hp.n_layer; l++) {
        k_to_rows(s, l, n, dst);
        dst += per;
        memcpy(dst, s->v_cache + (size_t)l * stride, per * sizeof(float));
        dst += per;
    }
    return PL_OK;
}

/* Marks slots [0, n) as freshly written and makes n the session's length. */
static void kv_imported(pl_session *s, int32_t n) {
    s->serial++;
    for (int32_t i = 0; i < n; i++) s->slot_serial[i] = s->serial;
    s->n_past = n;
    s->n_logits = 0;
}

int session_kv_import(pl_session *s, int32_t n, const float *src) {
    if (n < 0 || n > s->n_ctx) return PL_ERR_ARG;
    const size_t per = session_kv_floats_per_layer(s, n), stride = (size_t)s->n_ctx * (size_t)s->kv_dim;
    for (int32_t l = 0; l < s->model->hp.n_layer; l++) {
        k_from_rows(s, l, n, src);
        src += per;
        memcpy(s->v_cache + (size_t)l * stride, src, per * sizeof(float));
        src += per;
    }
    kv_imported(s, n);
    return PL_OK;
}

/* ---- checkpoints and forks --------------------------------------------------- */

struct pl_kv_state {
    const pl_model *model; /* the model it belongs to (borrowed) */
    int32_t n_past;        /* positions held */
    int64_t kv_dim;
    uint64_t session_uid; /* session it was taken from */
    uint64_t max_serial;  /* max slot serial over [0, n_past) at checkpoint time */
    /* per layer, in the session's own layouts: K as [n_head_kv][n_blk][head_dim][16]
     * with n_blk = ceil(n_past/16) (the blocks holding slots [0, n_past)),
     * then V as [n_past][kv_dim]; owned */
    float *kv;
};

/* Floats of one head's K blocks that hold slots [0, n). */
static size_t k_head_floats(const pl_session *s, int32_t n) {
    return ((size_t)n + PL_KV_BLOCK - 1) / PL_KV_BLOCK * PL_KV_BLOCK * (size_t)s->model->hp.head_dim;
}

static uint64_t max_serial(const pl_session *s, int32_t n) {
    uint64_t mx = 0;
    for (int32_t i = 0; i < n; i++) mx = s->slot_serial[i] > mx ? s->slot_serial[i] : mx;
    return mx;
}

int pl_session_checkpoint(pl_session *s, pl_kv_state **out) {
    if (!s || !out) return PL_ERR_ARG;
    *out = NULL;
    pl_kv_state *st = calloc(1, sizeof *st);
    const int32_t L = s->model->hp.n_layer, H = s->model->hp.n_head_kv;
    const size_t kn = k_head_floats(s, s->n_past), vn = session_kv_floats_per_layer(s, s->n_past);
    const size_t n = (kn * (size_t)H + vn) * (size_t)L;
    if (st) st->kv = malloc(n ? n * sizeof(float) : 1);
    if (!st || !st->kv) {
        free(st);
        return sfail(s, PL_ERR_NOMEM, "checkpoint: out of memory for %zu floats", n);
    }
    st->model = s->model;
    st->n_past = s->n_past;
    st->kv_dim = s->kv_dim;
    st->session_uid = s->uid;
    st->max_serial = max_serial(s, s->n_past);
    const int64_t k_head = (int64_t)s->n_ctx_pad * s->model->hp.head_dim;
    for (int32_t l = 0; l < L; l++) {
        float *dst = st->kv + (size_t)l * (kn * (size_t)H + vn);
        for (int32_t h = 0; h < H; h++)
            memcpy(dst + (size_t)h * kn, s->k_cache + ((int64_t)l * H + h) * k_head, kn * sizeof(float));
        memcpy(dst + (size_t)H * kn, s->v_cache + (size_t)l * s->n_ctx * (size_t)s->kv_dim, vn * sizeof(float));
    }
    *out = st;
    return PL_OK;
}

int pl_session_restore(pl_session *s, const pl_kv_state *st) {
    if (!s || !st) return PL_ERR_ARG;
    if (st->model != s->model || st->kv_dim != s->kv_dim)
        return sfail(s, PL_ERR_ARG, "restore: the checkpoint belongs to another model");
    if (st->n_past > s->n_ctx)
        return sfail(s, PL_ERR_RANGE, "restore: %d positions do not fit in %d", st->n_past, s->n_ctx);
    s->errmsg[0] = '\0';
    /* Fast path: this session's slots below n_past were not rewritten since
     * the checkpoint (serials only grow), so truncating is enough. */
    if (st->session_uid == s->uid && st->n_past <= s->n_past && max_serial(s, st->n_past) == st->max_serial) {
        s->n_past = st->n_past;
        s->n_logits = 0;
        return PL_OK;
    }
    const int32_t L = s->model->hp.n_layer, H = s->model->hp.n_head_kv;
    const size_t kn = k_head_floats(s, st->n_past), vn = session_kv_floats_per_layer(s, st->n_past);
    const int64_t k_head = (int64_t)s->n_ctx_pad * s->model->hp.head_dim;
    for (int32_t l = 0; l < L; l++) {
        const float *src = st->kv + (size_t)l * (kn * (size_t)H + vn);
        for (int32_t h = 0; h < H; h++)
            memcpy(s->k_cache + ((int64_t)l * H + h) * k_head, src + (size_t)h * kn, kn * sizeof(float));
        memcpy(s->v_cache + (size_t)l * s->n_ctx * (size_t)s->kv_dim, src + (size_t)H * kn, vn * sizeof(float));
    }
    kv_imported(s, st->n_past);
    return PL_OK;
}

int32_t pl_kv_state_n_past(const pl_kv_state *st) { return st ? st->n_past : 0; }

void pl_kv_state_free(pl_kv_state *st) {
    if (!st) return;
    free(st->kv);
    free(st);
}

int pl_session_fork(pl_session *s, pl_session **out, char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!s || !out) return pl_fail(&err, PL_ERR_ARG, "pl_session_fork: NULL argument");
    int rc = pl_session_create(s->model, s->n_ctx, s->n_threads, out, err_buf, err_cap);
    if (rc) return rc;
    const int32_t L = s->model->hp.n_layer, H = s->model->hp.n_head_kv;
    const size_t kn = k_head_floats(s, s->n_past), vn = session_kv_floats_per_layer(s, s->n_past);
    const size_t k_head = (size_t)s->n_ctx_pad * (size_t)s->model->hp.head_dim,
                 v_layer = (size_t)s->n_ctx * (size_t)s->kv_dim;
    for (int32_t l = 0; l < L; l++) {
        for (int32_t h = 0; h < H; h++)
            memcpy((*out)->k_cache + ((size_t)l * H + h) * k_head, s->k_cache + ((size_t)l * H + h) * k_head,
                   kn * sizeof(float));
        memcpy((*out)->v_cache + (size_t)l * v_layer, s->v_cache + (size_t)l * v_layer, vn * sizeof(float));
    }
    (*out)->n_past = s->n_past;
    (*out)->fast = s->fast;
    return PL_OK;
}

int pl_session_set_fast(pl_session *s, int on) {
    if (!s) return PL_ERR_ARG;
    s->fast = on != 0;
    return s->fast ? pl_model_prepare_fast(s->model) : PL_OK;
}

int pl_session_n_threads(const pl_session *s) { return s ? s->n_threads : 0; }
