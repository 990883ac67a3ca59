/* model.c — opening a model: map the GGUF, read the architecture's
 * hyperparameters, load the vocabulary, and bind every weight tensor with
 * its shape and type checked (llama and qwen2 architectures). */
#include "model.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "quant.h"

const char *pl_status_str(int status) {
    switch (status) {
    case PL_OK: return "ok";
    case PL_ERR_IO: return "I/O error";
    case PL_ERR_FORMAT: return "malformed input";
    case PL_ERR_UNSUPPORTED: return "unsupported";
    case PL_ERR_NOMEM: return "out of memory";
    case PL_ERR_ARG: return "invalid argument";
    case PL_ERR_RANGE: return "out of range";
    case PL_ERR_STATE: return "invalid state";
    case PL_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

/* Reads "<arch>.<suffix>" as a positive int32 into *out; absent keys keep
 * *out when `required` is false. */
static int get_hp_i32(const gguf_file *f, const char *arch, const char *suffix, bool required, int32_t *out,
                      pl_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = gguf_get_u32(f, key, &v, err);
    if (rc == PL_ERR_ARG) return required ? pl_fail(err, PL_ERR_FORMAT, "model metadata lacks %s", key) : PL_OK;
    if (rc) return rc;
    if (v == 0 || v > (1u << 24)) return pl_fail(err, PL_ERR_FORMAT, "model metadata %s = %u is out of range", key, v);
    *out = (int32_t)v;
    return PL_OK;
}

static int get_hp_f32(const gguf_file *f, const char *arch, const char *suffix, float *out, pl_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out, err);
    if (rc == PL_ERR_ARG) return PL_OK;
    if (rc) return rc;
    if (!isfinite(*out) || *out <= 0)
        return pl_fail(err, PL_ERR_FORMAT, "model metadata %s = %g is invalid", key, *out);
    return PL_OK;
}

static int read_hparams(pl_model *m, pl_err *err) {
    const gguf_file *f = m->gguf;
    pl_hparams *hp = &m->hp;
    const char *a = m->arch_name;
    int rc;
    if ((rc = get_hp_i32(f, a, "embedding_length", true, &hp->n_embd, err)) ||
        (rc = get_hp_i32(f, a, "block_count", true, &hp->n_layer, err)) ||
        (rc = get_hp_i32(f, a, "feed_forward_length", true, &hp->n_ff, err)) ||
        (rc = get_hp_i32(f, a, "attention.head_count", true, &hp->n_head, err)))
        return rc;
    hp->n_ctx_train = 2048;
    hp->n_head_kv = hp->n_head;
    if ((rc = get_hp_i32(f, a, "context_length", false, &hp->n_ctx_train, err)) ||
        (rc = get_hp_i32(f, a, "attention.head_count_kv", false, &hp->n_head_kv, err)))
        return rc;
    if (hp->n_embd % hp->n_head != 0)
        return pl_fail(err, PL_ERR_FORMAT, "embedding_length %d is not a multiple of head_count %d", hp->n_embd,
                       hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    int32_t key_len = hp->head_dim, val_len = hp->head_dim;
    if ((rc = get_hp_i32(f, a, "attention.key_length", false, &key_len, err)) ||
        (rc = get_hp_i32(f, a, "attention.value_length", false, &val_len, err)))
        return rc;
    if (key_len != val_len)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "attention key_length %d != value_length %d", key_len, val_len);
    hp->head_dim = key_len;
    if (hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0)
        return pl_fail(err, PL_ERR_FORMAT, "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    if (hp->head_dim % 2 != 0 || hp->head_dim > 1024)
        return pl_fail(err, PL_ERR_FORMAT, "head dimension %d must be even and at most 1024", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((rc = get_hp_i32(f, a, "rope.dimension_count", false, &hp->n_rot, err))) return rc;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return pl_fail(err, PL_ERR_FORMAT, "rope.dimension_count %d is odd or exceeds the head dimension %d", hp->n_rot,
                       hp->head_dim);
    hp->rope_base = 10000.0f;
    hp->rms_eps = 1e-5f;
    hp->rope_scale = 1.0f;
    if ((rc = get_hp_f32(f, a, "rope.freq_base", &hp->rope_base, err)) ||
        (rc = get_hp_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps, err)))
        return rc;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    gguf_str st;
    if (gguf_get_str(f, key, &st, err) == PL_OK) {
        if (st.len == 6 && memcmp(st.ptr, "linear", 6) == 0) {
            float factor = 1.0f;
            if ((rc = get_hp_f32(f, a, "rope.scaling.factor", &factor, err))) return rc;
            hp->rope_scale = 1.0f / factor;
        } else if (!(st.len == 4 && memcmp(st.ptr, "none", 4) == 0)) {
            return pl_fail(err, PL_ERR_UNSUPPORTED, "rope scaling type '%.*s' is not supported (none, linear are)",
                           (int)(st.len > 32 ? 32 : st.len), st.ptr);
        }
    }
    hp->rope_neox = hp->arch == PL_ARCH_QWEN2;
    return PL_OK;
}

/* Binds tensor `name`, checking its shape [ne0, ne1] (ne1 = 1: a vector)
 * and that its type is one we compute with. */
static int bind(pl_model *m, const char *name, int64_t ne0, int64_t ne1, bool required, bool vector_f32, pl_weight *w,
                pl_err *err) {
    memset(w, 0, sizeof *w);
    const gguf_tensor *t = gguf_find_tensor(m->gguf, name);
    if (!t) return required ? pl_fail(err, PL_ERR_FORMAT, "model lacks tensor %s", name) : PL_OK;
    const int64_t t_ne1 = t->ne[1] * t->ne[2] * t->ne[3];
    if (t->ne[0] != ne0 || t_ne1 != ne1 || (ne1 == 1 && t->n_dims != 1))
        return pl_fail(err, PL_ERR_FORMAT, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t_ne1, (long long)ne0, (long long)ne1);
    if (vector_f32 && t->type != GGML_F32)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "tensor %s has type %s; only F32 is supported for it", name,
                       ggml_type_name(t->type));
    if (!pl_type_traits_get(t->type))
        return pl_fail(err, PL_ERR_UNSUPPORTED, "tensor %s has weight type %s (%u), which is not supported", name,
                       ggml_type_name(t->type), t->type);
    w->data = t->data;
    w->type = t->type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->row_bytes = pl_row_size(t->type, ne0);
    return PL_OK;
}

static int bind_weights(pl_model *m, pl_err *err) {
    const pl_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return pl_fail(err, PL_ERR_FORMAT, "model lacks tensor token_embd.weight");
    if (te->ne[1] != vocab_n_tokens(m->vocab))
        return pl_fail(err, PL_ERR_FORMAT, "token_embd.weight has %lld rows but the vocabulary has %d tokens",
                       (long long)te->ne[1], vocab_n_tokens(m->vocab));
    m->hp.n_vocab = vocab_n_tokens(m->vocab);
    const int64_t V = m->hp.n_vocab;
    int rc;
    if ((rc = bind(m, "token_embd.weight", E, V, true, false, &m->tok_embd, err)) ||
        (rc = bind(m, "output_norm.weight", E, 1, true, true, &m->output_norm, err)) ||
        (rc = bind(m, "output.weight", E, V, false, false, &m->output, err)) ||
        (rc = bind(m, "rope_freqs.weight", hp->n_rot / 2, 1, false, true, &m->rope_freqs, err)))
        return rc;
    if (!m->output.data) m->output = m->tok_embd; /* tied embeddings */
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    const bool bias = hp->arch == PL_ARCH_QWEN2;
    for (int32_t i = 0; i < hp->n_layer; i++) {
        pl_layer *l = &m->layers[i];
        char n[13][64];
        static const char *const suffix[13] = {"attn_norm.weight",
                                               "attn_q.weight",
                                               "attn_k.weight",
                                               "attn_v.weight",
                                               "attn_output.weight",
                                               "attn_q.bias",
                                               "attn_k.bias",
                                               "attn_v.bias",
                                               "ffn_norm.weight",
                                               "ffn_gate.weight",
                                               "ffn_up.weight",
                                               "ffn_down.weight",
                                               ""};
        for (int k = 0; k < 12; k++) snprintf(n[k], sizeof n[k], "blk.%d.%s", i, suffix[k]);
        if ((rc = bind(m, n[0], E, 1, true, true, &l->attn_norm, err)) ||
            (rc = bind(m, n[1], E, Q, true, false, &l->wq, err)) ||
            (rc = bind(m, n[2], E, KV, true, false, &l->wk, err)) ||
            (rc = bind(m, n[3], E, KV, true, false, &l->wv, err)) ||
            (rc = bind(m, n[4], Q, E, true, false, &l->wo, err)) ||
            (rc = bind(m, n[5], Q, 1, bias, true, &l->bq, err)) ||
            (rc = bind(m, n[6], KV, 1, bias, true, &l->bk, err)) ||
            (rc = bind(m, n[7], KV, 1, bias, true, &l->bv, err)) ||
            (rc = bind(m, n[8], E, 1, true, true, &l->ffn_norm, err)) ||
            (rc = bind(m, n[9], E, hp->n_ff, true, false, &l->w_gate, err)) ||
            (rc = bind(m, n[10], E, hp->n_ff, true, false, &l->w_up, err)) ||
            (rc = bind(m, n[11], hp->n_ff, E, true, false, &l->w_down, err)))
            return rc;
    }
    return PL_OK;
}

static int model_open(const char *path, int vocab_only, pl_model **out, pl_err *err) {
    *out = NULL;
    pl_model *m = calloc(1, sizeof *m);
    if (!m) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    m->vocab_only = vocab_only != 0;
    int rc = gguf_open(path, &m->gguf, err);
    if (rc) goto fail;
    gguf_str s;
    if ((rc = gguf_get_str(m->gguf, "general.architecture", &s, err))) {
        if (rc == PL_ERR_ARG) rc = pl_fail(err, PL_ERR_FORMAT, "%s lacks general.architecture", path);
        goto fail;
    }
    if (s.len == 0 || s.len >= sizeof m->arch_name || memchr(s.ptr, 0, s.len)) {
        rc = pl_fail(err, PL_ERR_FORMAT, "general.architecture is empty or too long");
        goto fail;
    }
    memcpy(m->arch_name, s.ptr, s.len);
    m->arch_name[s.len] = '\0';
    if ((rc = vocab_load(m->gguf, &m->vocab, err))) goto fail;
    if (gguf_get_str(m->gguf, "tokenizer.chat_template", &s, NULL) == PL_OK && s.len < (1u << 20)) {
        m->chat_template = malloc(s.len + 1);
        if (!m->chat_template) {
            rc = pl_fail(err, PL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->chat_template, s.ptr, s.len);
        m->chat_template[s.len] = '\0';
    }
    if (m->vocab_only) {
        m->hp.n_vocab = vocab_n_tokens(m->vocab);
        *out = m;
        return PL_OK;
    }
    if (strcmp(m->arch_name, "llama") == 0)
        m->hp.arch = PL_ARCH_LLAMA;
    else if (strcmp(m->arch_name, "qwen2") == 0)
        m->hp.arch = PL_ARCH_QWEN2;
    else {
        rc = pl_fail(err, PL_ERR_UNSUPPORTED, "architecture '%s' is not supported (llama, qwen2 are)", m->arch_name);
        goto fail;
    }
    if ((rc = read_hparams(m, err)) || (rc = bind_weights(m, err))) goto fail;
    *out = m;
    return PL_OK;
fail:
    pl_model_close(m);
    return rc;
}

int pl_model_open(const char *path, int vocab_only, pl_model **out, char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!path || !out) return pl_fail(&err, PL_ERR_ARG, "pl_model_open: NULL argument");
    return model_open(path, vocab_only, out, &err);
}

void pl_model_close(pl_model *m) {
    if (!m) return;
    vocab_free(m->vocab);
    gguf_close(m->gguf);
    free(m->layers);
    free(m->chat_template);
    free(m->r16_mem);
    free(m);
}

/* ---- fast mode: r16 repack ---------------------------------------------------- */

static pthread_mutex_t g_fast_lock = PTHREAD_MUTEX_INITIALIZER;

/* Calls fn on every layer matrix and the output matrix (when tied, the copy
 * in m->output: the embedding lookup keeps reading m->tok_embd's rows). */
static void each_matrix(pl_model *m, void (*fn)(pl_model *, pl_weight *, void *), void *arg) {
    if (m->output.data) fn(m, &m->output, arg);
    for (int32_t i = 0; i < m->hp.n_layer; i++) {
        pl_layer *l = &m->layers[i];
        pl_weight *ws[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (size_t k = 0; k < sizeof ws / sizeof ws[0]; k++)
            if (ws[k]->data) fn(m, ws[k], arg);
    }
}

static bool r16_wanted(const pl_weight *w) { return pl_r16_supported(w->type, w->ne0, w->ne1); }

static void r16_count(pl_model *m, pl_weight *w, void *arg) {
    (void)m;
    size_t *total = arg;
    if (r16_wanted(w)) *total += ((size_t)w->ne1 * w->row_bytes + 63) / 64 * 64;
}

/* Packs w in slices of rows, dropping each slice's original pages from the
 * mapping as soon as it is packed, so the peak RSS holds the two copies of
 * one slice only (not of the whole matrix). */
static void r16_fill(pl_model *m, pl_weight *w, void *arg) {
    size_t *at = arg;
    if (!r16_wanted(w)) return;
    const size_t bytes = (size_t)w->ne1 * w->row_bytes, page = (size_t)sysconf(_SC_PAGESIZE);
    const int64_t slice = 256; /* rows per slice, a multiple of 16 */
    uint8_t *dst = m->r16_mem + *at;
    const uintptr_t lo = (uintptr_t)w->data;
    uintptr_t dropped = (lo + page - 1) / page * page; /* first page not yet dropped */
    for (int64_t r = 0; r < w->ne1; r += slice) {
        const int64_t n = w->ne1 - r < slice ? w->ne1 - r : slice;
        pl_r16_pack(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, w->ne0, n,
                    dst + (size_t)r * w->row_bytes);
        if (gguf_is_mapped(m->gguf)) { /* whole pages inside the rows packed so far */
            const uintptr_t end = (lo + (size_t)(r + n) * w->row_bytes) / page * page;
            if (end > dropped) (void)madvise((void *)dropped, end - dropped, MADV_DONTNEED), dropped = end;
        }
    }
    w->r16 = dst;
    *at += (bytes + 63) / 64 * 64;
}

int pl_model_prepare_fast(pl_model *m) {
    if (!m || m->vocab_only) return PL_ERR_ARG;
    pthread_mutex_lock(&g_fast_lock);
    int rc = PL_OK;
    if (!m->fast_prepared) {
        size_t total = 0;
        each_matrix(m, r16_count, &total);
        if (total > 0) {
            m->r16_mem = aligned_alloc(64, total);
            if (!m->r16_mem) rc = PL_ERR_NOMEM;
        }
        if (rc == PL_OK) {
            size_t at = 0;
            each_matrix(m, r16_fill, &at);
            m->fast_prepared = true;
        }
    }
    pthread_mutex_unlock(&g_fast_lock);
    return rc;
}

int32_t pl_model_n_vocab(const pl_model *m) { return m->hp.n_vocab; }
int32_t pl_model_n_ctx_train(const pl_model *m) { return m->hp.n_ctx_train; }
int32_t pl_model_bos(const pl_model *m) { return vocab_bos(m->vocab); }
int32_t pl_model_eos(const pl_model *m) { return vocab_eos(m->vocab); }
const char *pl_model_chat_template(const pl_model *m) { return m->chat_template; }

int pl_tokenize(const pl_model *m, const char *text, size_t len, int flags, int32_t *ids, size_t cap, size_t *n_out,
                char *err_buf, size_t err_cap) {
    pl_err err = {err_buf, err_cap};
    if (!m || (!text && len) || !n_out || (!ids && cap)) return pl_fail(&err, PL_ERR_ARG, "pl_tokenize: NULL argument");
    return vocab_tokenize(m->vocab, text ? text : "", len, flags, ids, cap, n_out, &err);
}

int pl_token_to_piece(const pl_model *m, int32_t id, char *buf, size_t cap) {
    return vocab_token_to_piece(m->vocab, id, buf, cap);
}

int32_t pl_text_to_id(const pl_model *m, const char *text, size_t len) { return vocab_text_to_id(m->vocab, text, len); }
