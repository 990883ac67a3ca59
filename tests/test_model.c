/* test_model.c — model loading: a fixture rewritten unchanged loads and gives
 * identical logits; hostile variants (missing tensor, unknown architecture,
 * unsupported weight type, wrong shape, vocabulary smaller than the
 * embedding, bad hyperparameters) are refused with a message naming what is
 * wrong; sessions refuse bad ids and overflowing contexts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "probelogits.h"
#include "testlib.h"

#define SRC "../shared/fixtures/models/tiny-llama-spm-f16.gguf"

typedef struct mutation {
    const char *drop_tensor;   /* tensor left out */
    const char *retype_tensor; /* tensor whose type becomes new_type (data zeroed) */
    uint32_t new_type;
    const char *reshape_tensor; /* tensor whose ne[1] is halved */
    const char *set_arch;       /* new general.architecture */
    const char *set_u32_key;    /* metadata key replaced by set_u32 */
    uint32_t set_u32;
    uint64_t vocab_keep; /* keep only this many tokens (0 = all) */
} mutation;

static char tmpdir[] = "/tmp/pl_test_model_XXXXXX";

/* Writes SRC with the mutation applied to path. */
static int write_variant(const char *path, const mutation *mu) {
    char ebuf[256];
    pl_err err = {ebuf, sizeof ebuf};
    gguf_file *f;
    if (gguf_open(SRC, &f, &err)) return -1;
    gguf_writer *w;
    if (gguf_writer_create(path, &w, &err)) return -1;
    int rc = 0;
    for (uint64_t i = 0; i < gguf_n_kv(f) && !rc; i++) {
        gguf_kv kv = *gguf_kv_at(f, i);
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv.key.len, kv.key.ptr);
        if (mu->set_arch && !strcmp(key, "general.architecture")) {
            rc = gguf_writer_add_str(w, key, mu->set_arch, strlen(mu->set_arch));
            continue;
        }
        if (mu->set_u32_key && !strcmp(key, mu->set_u32_key)) {
            rc = gguf_writer_add_u32(w, key, mu->set_u32);
            continue;
        }
        if (mu->vocab_keep && kv.type == GGUF_ARRAY && !strncmp(key, "tokenizer.ggml.", 15) &&
            kv.arr_n > mu->vocab_keep && strcmp(key, "tokenizer.ggml.merges") != 0)
            kv.arr_n = mu->vocab_keep;
        rc = gguf_writer_add_kv(w, &kv);
    }
    for (uint64_t i = 0; i < gguf_n_tensors(f) && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (mu->drop_tensor && !strcmp(t->name, mu->drop_tensor)) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (mu->reshape_tensor && !strcmp(t->name, mu->reshape_tensor)) ne[1] /= 2;
        uint32_t type = mu->retype_tensor && !strcmp(t->name, mu->retype_tensor) ? mu->new_type : t->type;
        rc = gguf_writer_add_tensor(w, t->name, t->n_dims, ne, type);
    }
    if (!rc) rc = gguf_writer_write_header(w);
    static uint8_t zeros[1 << 20];
    for (uint64_t i = 0; i < gguf_n_tensors(f) && !rc; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (mu->drop_tensor && !strcmp(t->name, mu->drop_tensor)) continue;
        size_t n = t->nbytes;
        if (mu->reshape_tensor && !strcmp(t->name, mu->reshape_tensor)) n /= 2;
        if (mu->retype_tensor && !strcmp(t->name, mu->retype_tensor)) {
            n = (size_t)(t->ne[0] * t->ne[1] / ggml_blck_size(mu->new_type) * ggml_type_size(mu->new_type));
            rc = gguf_writer_write_data(w, zeros, n);
        } else {
            rc = gguf_writer_write_data(w, t->data, n);
        }
    }
    if (!rc) rc = gguf_writer_finish(w);
    if (rc) fprintf(stderr, "writer: %s\n", ebuf);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}

static void expect_refused(const mutation *mu, const char *needle, const char *what) {
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/variant.gguf", tmpdir);
    CHECK(write_variant(path, mu) == 0, "%s: writing the variant", what);
    pl_model *m = NULL;
    int rc = pl_model_open(path, 0, &m, err, sizeof err);
    CHECK(rc != PL_OK && strstr(err, needle), "%s: rc %d, message '%s' (expected '%s')", what, rc, err, needle);
    pl_model_close(m);
    unlink(path);
}

static void test_roundtrip(void) {
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/same.gguf", tmpdir);
    const mutation none = {0};
    CHECK(write_variant(path, &none) == 0, "roundtrip write");
    pl_model *a = NULL, *b = NULL;
    CHECK(pl_model_open(SRC, 0, &a, err, sizeof err) == PL_OK, "%s", err);
    CHECK(pl_model_open(path, 0, &b, err, sizeof err) == PL_OK, "rewritten: %s", err);
    if (!a || !b) return;
    pl_session *sa = NULL, *sb = NULL;
    CHECK(pl_session_create(a, 64, 1, &sa, err, sizeof err) == PL_OK, "%s", err);
    CHECK(pl_session_create(b, 64, 2, &sb, err, sizeof err) == PL_OK, "%s", err);
    const int32_t ids[5] = {1, 15043, 3186, 29991, 13};
    int32_t small[5];
    for (int i = 0; i < 5; i++) small[i] = ids[i] % 4096;
    CHECK(pl_session_eval(sa, small, 5, 0) == PL_OK && pl_session_eval(sb, small, 5, 0) == PL_OK, "eval");
    CHECK(!memcmp(pl_session_logits(sa, 0), pl_session_logits(sb, 0), 4096 * sizeof(float)), "identical logits");

    /* session argument checks */
    const int32_t bad = 4096;
    CHECK(pl_session_eval(sa, &bad, 1, 0) == PL_ERR_ARG && strstr(pl_session_errmsg(sa), "4096"), "id out of range");
    const int32_t neg = -1;
    CHECK(pl_session_eval(sa, &neg, 1, 0) == PL_ERR_ARG, "negative id");
    int32_t many[64] = {0};
    CHECK(pl_session_eval(sa, many, 64, 0) == PL_ERR_RANGE, "context overflow refused");
    CHECK(pl_session_n_past(sa) == 5, "failed evals leave the cache as it was");
    CHECK(pl_session_truncate(sa, 6) == PL_ERR_ARG, "truncate past the end");
    CHECK(pl_session_truncate(sa, 2) == PL_OK && pl_session_n_past(sa) == 2, "truncate");
    CHECK(pl_session_logits(sa, 0) == NULL, "no logits after truncate");
    pl_session *sc = NULL;
    CHECK(pl_session_create(a, 64, 0, &sc, err, sizeof err) == PL_ERR_ARG && sc == NULL, "zero threads refused");
    pl_session_free(sa);
    pl_session_free(sb);
    pl_model_close(a);
    pl_model_close(b);
    unlink(path);

    pl_model *v = NULL;
    CHECK(pl_model_open("../shared/fixtures/vocab/ggml-vocab-qwen2.gguf", 0, &v, err, sizeof err) != PL_OK &&
              strstr(err, "token_embd"),
          "a vocab-only file is refused as a full model: %s", err);
    CHECK(pl_model_open("../shared/fixtures/vocab/ggml-vocab-qwen2.gguf", 1, &v, err, sizeof err) == PL_OK,
          "vocab-only open: %s", err);
    pl_session *vs = NULL;
    CHECK(v && pl_session_create(v, 16, 1, &vs, err, sizeof err) == PL_ERR_STATE, "no session on vocab-only");
    pl_model_close(v);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_roundtrip();
    expect_refused(&(mutation){.drop_tensor = "blk.1.ffn_down.weight"}, "lacks tensor blk.1.ffn_down.weight",
                   "missing tensor");
    expect_refused(&(mutation){.drop_tensor = "output_norm.weight"}, "output_norm.weight", "missing output norm");
    expect_refused(&(mutation){.set_arch = "gpt2"}, "architecture 'gpt2'", "unknown architecture");
    expect_refused(&(mutation){.retype_tensor = "blk.0.attn_q.weight", .new_type = GGML_Q2_K}, "Q2_K",
                   "unsupported weight type");
    expect_refused(&(mutation){.retype_tensor = "blk.0.attn_norm.weight", .new_type = GGML_F16}, "only F32",
                   "non-F32 norm");
    expect_refused(&(mutation){.reshape_tensor = "blk.0.attn_k.weight"}, "blk.0.attn_k.weight has shape",
                   "wrong shape");
    expect_refused(&(mutation){.vocab_keep = 4000}, "vocabulary has 4000", "vocabulary smaller than the embedding");
    expect_refused(&(mutation){.set_u32_key = "llama.attention.head_count_kv", .set_u32 = 3}, "head_count_kv",
                   "heads not a multiple of kv heads");
    expect_refused(&(mutation){.set_u32_key = "llama.attention.head_count", .set_u32 = 0}, "head_count", "zero heads");
    expect_refused(&(mutation){.set_u32_key = "llama.block_count", .set_u32 = 3}, "blk.2", "more layers than tensors");
    rmdir(tmpdir);
    return testlib_finish("test_model");
}
