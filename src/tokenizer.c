/* tokenizer.c — the vocabulary of a GGUF model and the tokenizer driver,
 * matching llama.cpp (commit 3f545bec) token for token.
 *
 * Reads from the GGUF metadata (all under "tokenizer.ggml."):
 *   model (string: "llama" = SentencePiece, "gpt2" = byte-level BPE),
 *   pre (string, BPE pre-tokenizer), tokens (string array), scores (f32 or
 *   i32 array, optional), token_type (i32 array, optional: 0 undefined,
 *   1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte),
 *   merges (string array "left right", BPE), bos/eos/unknown_token_id,
 *   eot/eom/fim_*_token_id (only to know whether llama.cpp's by-text
 *   detection of control tokens applies), add_bos_token, add_eos_token,
 *   add_space_prefix; and general.name / general.architecture for the
 *   per-model strip attributes llama.cpp sets (Phi-3 and a few others).
 *
 * Tokenizing: the text is first partitioned around special-token text
 * (control, user-defined and unknown tokens, longest text first; control and
 * unknown ones only with PL_TOK_PARSE_SPECIAL; lstrip/rstrip attributes eat
 * adjacent ASCII whitespace), then each remaining text fragment goes to the
 * BPE (tok_bpe.c) or SPM (tok_spm.c) tokenizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probelogits.h"
#include "tok_internal.h"

#define TOK_MAX_TOKEN_BYTES (1u << 20) /* longer token strings are refused as malformed */

/* ---- small containers ------------------------------------------------------ */

int tok_ivec_push(tok_ivec *vec, int32_t x) {
    if (vec->n == vec->cap) {
        size_t ncap = vec->cap ? vec->cap * 2 : 64, bytes;
        if (!pl_mul_ok(ncap, sizeof *vec->v, &bytes)) return PL_ERR_NOMEM;
        int32_t *nv = realloc(vec->v, bytes);
        if (!nv) return PL_ERR_NOMEM;
        vec->v = nv;
        vec->cap = ncap;
    }
    vec->v[vec->n++] = x;
    return PL_OK;
}

/* True when a should pop before b. */
static bool bigram_before(const tok_bigram *a, const tok_bigram *b) {
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

int tok_heap_push(tok_heap *h, tok_bigram b) {
    if (h->n == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 64, bytes;
        if (!pl_mul_ok(ncap, sizeof *h->v, &bytes)) return PL_ERR_NOMEM;
        tok_bigram *nv = realloc(h->v, bytes);
        if (!nv) return PL_ERR_NOMEM;
        h->v = nv;
        h->cap = ncap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bigram_before(&b, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = b;
    return PL_OK;
}

bool tok_heap_pop(tok_heap *h, tok_bigram *out) {
    if (h->n == 0) return false;
    *out = h->v[0];
    tok_bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return true;
}

/* ---- hash tables ---------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

int32_t tok_lookup(const pl_vocab *v, const char *s, size_t n) {
    size_t i = (size_t)hash_bytes(s, n) & v->hash_mask;
    for (;;) {
        int32_t id = v->hash[i];
        if (id < 0) return -1;
        if (v->text_len[id] == n && memcmp(v->text[id], s, n) == 0) return id;
        i = (i + 1) & v->hash_mask;
    }
}

int32_t tok_merge_rank(const pl_vocab *v, int32_t left, int32_t right) {
    if (v->merge_mask == 0 || left < 0 || right < 0) return -1;
    const uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    size_t i = (size_t)hash_u64(key) & v->merge_mask;
    for (;;) {
        if (v->merge_key[i] == UINT64_MAX) return -1;
        if (v->merge_key[i] == key) return v->merge_rank[i];
        i = (i + 1) & v->merge_mask;
    }
}

/* Smallest power of two >= 2n (at least 16), as a mask; 0 on overflow. */
static size_t table_mask_for(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    return cap - 1;
}

/* ---- loading ---------------------------------------------------------------- */

static bool str_eq(gguf_str s, const char *lit) { return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0; }

static bool kv_is_string_array(const gguf_kv *kv) { return kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING; }

static bool vtype_is_integer(uint32_t t) {
    return t == GGUF_U8 || t == GGUF_I8 || t == GGUF_U16 || t == GGUF_I16 || t == GGUF_U32 || t == GGUF_I32 ||
           t == GGUF_U64 || t == GGUF_I64;
}

static bool vtype_is_signed(uint32_t t) { return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64; }

/* Reads an optional token-id key into *id; *present tells whether it exists. */
static int read_token_id(const gguf_file *f, const char *key, int32_t n_tokens, int32_t *id, bool *present,
                         pl_err *err) {
    const gguf_kv *kv = gguf_find(f, key);
    if (present) *present = kv != NULL;
    if (!kv) return PL_OK;
    if (!vtype_is_integer(kv->type))
        return pl_fail(err, PL_ERR_FORMAT, "%s has type %s, expected an integer", key, gguf_vtype_name(kv->type));
    if (vtype_is_signed(kv->type) ? (kv->v.i64 < 0 || kv->v.i64 >= n_tokens) : kv->v.u64 >= (uint64_t)n_tokens)
        return pl_fail(err, PL_ERR_FORMAT, "%s = %lld is out of range (vocabulary of %d tokens)", key,
                       vtype_is_signed(kv->type) ? (long long)kv->v.i64 : (long long)kv->v.u64, (int)n_tokens);
    *id = vtype_is_signed(kv->type) ? (int32_t)kv->v.i64 : (int32_t)kv->v.u64;
    return PL_OK;
}

/* Reads an optional boolean key; absent leaves *out unchanged. */
static int read_bool(const gguf_file *f, const char *key, bool *out, pl_err *err) {
    bool b;
    int rc = gguf_get_bool(f, key, &b, err);
    if (rc == PL_ERR_ARG) return PL_OK;
    if (rc != PL_OK) return rc;
    *out = b;
    return PL_OK;
}

static int32_t lookup_cstr(const pl_vocab *v, const char *s) { return tok_lookup(v, s, strlen(s)); }

static void set_attr_by_text(pl_vocab *v, const char *s, uint16_t set, uint16_t clear) {
    int32_t id = lookup_cstr(v, s);
    if (id >= 0) v->attr[id] = (uint16_t)((v->attr[id] & ~clear) | set);
}

/* Token texts llama.cpp marks as control (end-of-generation and FIM tokens). */
static const char *const k_eog_texts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          "<\xef\xbd\x9c"
                                          "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                          "[e~[",
                                          NULL};

static const struct {
    const char *key;       /* metadata key that, when set, disables detection by text */
    const char *alt_key;   /* deprecated key with the same effect, or NULL */
    const char *texts[10]; /* NULL-terminated */
} k_fim_detect[] = {
    {"tokenizer.ggml.fim_pre_token_id",
     "tokenizer.ggml.prefix_token_id",
     {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81"
      "begin\xef\xbd\x9c>",
      "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL}},
    {"tokenizer.ggml.fim_suf_token_id",
     "tokenizer.ggml.suffix_token_id",
     {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81hole\xef\xbd\x9c>",
      "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL}},
    {"tokenizer.ggml.fim_mid_token_id",
     "tokenizer.ggml.middle_token_id",
     {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
      "<\xef\xbd\x9c"
      "fim\xe2\x96\x81"
      "end\xef\xbd\x9c>",
      "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL}},
    {"tokenizer.ggml.fim_pad_token_id", NULL, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL}},
    {"tokenizer.ggml.fim_rep_token_id",
     NULL,
     {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL}},
    {"tokenizer.ggml.fim_sep_token_id", NULL, {"<|file_sep|>", NULL}},
};

/* llama.cpp's by-text attribute fix-ups (llama_vocab::impl::load). FIM
 * detection marks every matching text where llama.cpp marks the first one
 * its hash map yields; vocabularies hold at most one per kind in practice. */
static void detect_special_by_text(pl_vocab *v, const gguf_file *f) {
    for (size_t k = 0; k < sizeof k_fim_detect / sizeof k_fim_detect[0]; k++) {
        if (gguf_find(f, k_fim_detect[k].key) || (k_fim_detect[k].alt_key && gguf_find(f, k_fim_detect[k].alt_key)))
            continue;
        for (size_t t = 0; k_fim_detect[k].texts[t]; t++)
            set_attr_by_text(v, k_fim_detect[k].texts[t], TOK_ATTR_CONTROL, 0);
    }
    for (size_t t = 0; k_eog_texts[t]; t++) set_attr_by_text(v, k_eog_texts[t], TOK_ATTR_CONTROL, 0);
    static const char *const always_render[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t t = 0; t < 4; t++) {
        int32_t id = lookup_cstr(v, always_render[t]);
        if (id >= 0) v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    const bool has_end = lookup_cstr(v, "<|end|>") >= 0;
    const bool has_return = lookup_cstr(v, "<|return|>") >= 0;
    const bool has_call = lookup_cstr(v, "<|call|>") >= 0 || lookup_cstr(v, "<|calls|>") >= 0;
    const bool has_flush = lookup_cstr(v, "<|flush|>") >= 0;
    if (has_end && has_call && (has_return || has_flush)) {
        int32_t id = lookup_cstr(v, "<|end|>");
        v->attr[id] = TOK_ATTR_USER_DEFINED;
    }
    if (lookup_cstr(v, "<|tool_response>") >= 0) {
        int32_t id = lookup_cstr(v, "</s>");
        if (id >= 0) v->attr[id] = TOK_ATTR_NORMAL;
    }
}

static bool contains_ci(gguf_str hay, const char *needle) {
    size_t nl = strlen(needle);
    for (size_t i = 0; nl <= hay.len && i + nl <= hay.len; i++) {
        size_t k = 0;
        while (k < nl) {
            char c = hay.ptr[i + k];
            if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != needle[k]) break;
            k++;
        }
        if (k == nl) return true;
    }
    return false;
}

/* Per-model strip attributes llama.cpp sets by model / pre-tokenizer name. */
static void apply_strip_attrs(pl_vocab *v, const gguf_file *f) {
    gguf_str name = {"", 0}, arch = {"", 0}, pre = {v->pre_name, strlen(v->pre_name)};
    pl_err quiet = {NULL, 0};
    if (gguf_get_str(f, "general.name", &name, &quiet) != PL_OK) name = (gguf_str){"", 0};
    if (gguf_get_str(f, "general.architecture", &arch, &quiet) != PL_OK) arch = (gguf_str){"", 0};
    if (contains_ci(pre, "jina-v2-de") || contains_ci(pre, "jina-v2-es") || contains_ci(pre, "jina-v2-code") ||
        contains_ci(arch, "nomic-bert-moe") || contains_ci(arch, "jina-bert-v3")) {
        set_attr_by_text(v, "<mask>", TOK_ATTR_LSTRIP, 0);
    } else if (contains_ci(name, "phi-3") || contains_ci(name, "phi3")) {
        for (size_t i = 0; i < v->n_special; i++) v->attr[v->special[i]] |= TOK_ATTR_RSTRIP;
        set_attr_by_text(v, "</s>", TOK_ATTR_RSTRIP, 0);
        set_attr_by_text(v, "<unk>", 0, TOK_ATTR_RSTRIP);
        set_attr_by_text(v, "<s>", 0, TOK_ATTR_RSTRIP);
        set_attr_by_text(v, "<|endoftext|>", 0, TOK_ATTR_RSTRIP);
    } else if (contains_ci(name, "modern-bert")) {
        set_attr_by_text(v, "[MASK]", TOK_ATTR_LSTRIP, 0);
    }
}

typedef struct special_sort {
    uint32_t len;
    int32_t id;
} special_sort;

static int cmp_special(const void *a, const void *b) {
    const special_sort *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int build_special_cache(pl_vocab *v) {
    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) n++;
    special_sort *tmp = malloc((n ? n : 1) * sizeof *tmp);
    v->special = malloc((n ? n : 1) * sizeof *v->special);
    if (!tmp || !v->special) {
        free(tmp);
        return PL_ERR_NOMEM;
    }
    n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->attr[i] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))
            tmp[n++] = (special_sort){v->text_len[i], i};
    qsort(tmp, n, sizeof *tmp, cmp_special);
    for (size_t i = 0; i < n; i++) v->special[i] = tmp[i].id;
    v->n_special = n;
    free(tmp);
    return PL_OK;
}

typedef struct cbuf {
    char *v;
    size_t n, cap;
} cbuf;

static int cbuf_add(cbuf *b, const void *p, size_t n) {
    if (n > SIZE_MAX - b->n) return PL_ERR_NOMEM;
    if (b->n + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->n + n) {
            if (ncap > SIZE_MAX / 2) return PL_ERR_NOMEM;
            ncap *= 2;
        }
        char *nv = realloc(b->v, ncap);
        if (!nv) return PL_ERR_NOMEM;
        b->v = nv;
        b->cap = ncap;
    }
    if (n) memcpy(b->v + b->n, p, n);
    b->n += n;
    return PL_OK;
}

/* Appends the text form of token id, as llama.cpp's token_to_piece(special = true). */
static int append_piece(const pl_vocab *v, int32_t id, cbuf *b, uint32_t *scratch) {
    const char *t = v->text[id];
    const size_t n = v->text_len[id];
    const uint16_t a = v->attr[id];
    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) return cbuf_add(b, t, n);
    if (a & TOK_ATTR_NORMAL) {
        if (v->model == TOK_MODEL_SPM) {
            int rc = PL_OK;
            for (size_t i = 0; i < n && rc == PL_OK; i++) {
                if (i + 2 < n && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
                    rc = cbuf_add(b, " ", 1);
                    i += 2;
                } else {
                    rc = cbuf_add(b, t + i, 1);
                }
            }
            return rc;
        }
        size_t nc = tok_utf8_decode(t, n, scratch);
        int rc = PL_OK;
        for (size_t i = 0; i < nc && rc == PL_OK; i++) {
            int byte = tok_cpt_to_byte(scratch[i]);
            if (byte >= 0) {
                char c = (char)byte;
                rc = cbuf_add(b, &c, 1);
                continue;
            }
            char u8[4], hex[16];
            size_t ul = tok_utf8_encode(scratch[i], u8);
            rc = cbuf_add(b, "[UNK_BYTE_0x", 12);
            for (size_t k = 0; k < ul && rc == PL_OK; k++) {
                snprintf(hex, sizeof hex, "%02x", (unsigned char)u8[k]);
                rc = cbuf_add(b, hex, 2);
            }
            if (rc == PL_OK) rc = cbuf_add(b, t, n);
            if (rc == PL_OK) rc = cbuf_add(b, "]", 1);
        }
        return rc;
    }
    if (a & TOK_ATTR_BYTE) {
        unsigned byte = 0;
        sscanf(t + 3, "%2x", &byte); /* validated "<0xHH>" at load */
        char c = (char)byte;
        return cbuf_add(b, &c, 1);
    }
    return PL_OK; /* unused / undefined tokens render as nothing */
}

static int build_pieces(pl_vocab *v) {
    cbuf b = {0};
    size_t max_len = 1;
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->text_len[i] > max_len) max_len = v->text_len[i];
    uint32_t *scratch = malloc(max_len * sizeof *scratch);
    v->piece_off = malloc(((size_t)v->n_tokens + 1) * sizeof *v->piece_off);
    if (!scratch || !v->piece_off) {
        free(scratch);
        return PL_ERR_NOMEM;
    }
    int rc = PL_OK;
    for (int32_t i = 0; i < v->n_tokens && rc == PL_OK; i++) {
        v->piece_off[i] = b.n;
        rc = append_piece(v, i, &b, scratch);
    }
    v->piece_off[v->n_tokens] = b.n;
    free(scratch);
    v->piece = b.v;
    if (rc == PL_OK && !v->piece) v->piece = malloc(1);
    return rc != PL_OK ? rc : v->piece ? PL_OK : PL_ERR_NOMEM;
}

static bool parse_byte_token(const char *t, size_t n, unsigned *byte) {
    static const char hexd[] = "0123456789abcdefABCDEF";
    if (n != 6 || memcmp(t, "<0x", 3) != 0 || t[5] != '>') return false;
    if (!memchr(hexd, t[3], 22) || !memchr(hexd, t[4], 22)) return false;
    char h[3] = {t[3], t[4], 0};
    *byte = (unsigned)strtoul(h, NULL, 16);
    return true;
}

/* Loads tokens, scores and types and builds the text -> id table. */
static int load_tokens(pl_vocab *v, const gguf_file *f, pl_err *err) {
    const gguf_kv *tk = gguf_find(f, "tokenizer.ggml.tokens");
    if (!tk) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.tokens is missing: not a vocabulary");
    if (!kv_is_string_array(tk)) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (tk->arr_n == 0 || tk->arr_n > INT32_MAX - 1)
        return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)tk->arr_n);
    const int32_t n = (int32_t)tk->arr_n;
    v->n_tokens = n;

    const gguf_kv *sc = gguf_find(f, "tokenizer.ggml.scores");
    if (sc) {
        if (sc->type != GGUF_ARRAY || (sc->arr_type != GGUF_F32 && sc->arr_type != GGUF_I32))
            return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.scores is not an array of f32 or i32");
        if (sc->arr_n != tk->arr_n)
            return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.scores has %llu entries for %d tokens",
                           (unsigned long long)sc->arr_n, (int)n);
    }
    const gguf_kv *ty = gguf_find(f, "tokenizer.ggml.token_type");
    if (ty) {
        if (ty->type != GGUF_ARRAY || ty->arr_type != GGUF_I32)
            return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.token_type is not an array of i32");
        if (ty->arr_n != tk->arr_n)
            return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %d tokens",
                           (unsigned long long)ty->arr_n, (int)n);
    }

    v->text = malloc((size_t)n * sizeof *v->text);
    v->text_len = malloc((size_t)n * sizeof *v->text_len);
    v->score = calloc((size_t)n, sizeof *v->score);
    v->attr = malloc((size_t)n * sizeof *v->attr);
    v->hash_mask = table_mask_for((size_t)n);
    if (v->hash_mask) v->hash = malloc((v->hash_mask + 1) * sizeof *v->hash);
    if (!v->text || !v->text_len || !v->score || !v->attr || !v->hash)
        return pl_fail(err, PL_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", (int)n);
    memset(v->hash, 0xff, (v->hash_mask + 1) * sizeof *v->hash);

    size_t n_empty = 0;
    for (int32_t i = 0; i < n; i++)
        if (tk->arr_strs[i].len == 0) n_empty++;
    if (n_empty) {
        v->arena = malloc(n_empty * 24);
        if (!v->arena) return pl_fail(err, PL_ERR_NOMEM, "out of memory for the vocabulary");
    }
    char *arena = v->arena;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s = tk->arr_strs[i];
        if (s.len > TOK_MAX_TOKEN_BYTES)
            return pl_fail(err, PL_ERR_FORMAT, "token %d is %llu bytes long (limit %u)", (int)i,
                           (unsigned long long)s.len, TOK_MAX_TOKEN_BYTES);
        if (s.len == 0) { /* llama.cpp renames empty tokens */
            int w = snprintf(arena, 24, "[EMPTY_%d]", (int)i);
            s.ptr = arena;
            s.len = (uint64_t)w;
            arena += w + 1;
        }
        v->text[i] = s.ptr;
        v->text_len[i] = (uint32_t)s.len;
        if (sc) {
            const double score = gguf_arr_f64(sc, (uint64_t)i);
            if (!(score >= -3.4e38 && score <= 3.4e38)) /* NaN, inf or beyond float range */
                return pl_fail(err, PL_ERR_FORMAT, "token %d has score %g, not a finite float", (int)i, score);
            v->score[i] = (float)score;
        }
        uint16_t attr = TOK_ATTR_NORMAL;
        if (ty) {
            int64_t t = gguf_arr_i64(ty, (uint64_t)i);
            static const uint16_t map[7] = {TOK_ATTR_UNDEFINED,    TOK_ATTR_NORMAL, TOK_ATTR_UNKNOWN, TOK_ATTR_CONTROL,
                                            TOK_ATTR_USER_DEFINED, TOK_ATTR_UNUSED, TOK_ATTR_BYTE};
            if (t < 0 || t > 6)
                return pl_fail(err, PL_ERR_FORMAT, "token %d has token_type %lld (valid: 0..6)", (int)i, (long long)t);
            attr = map[t];
        }
        v->attr[i] = attr;
        unsigned byte;
        if ((attr & TOK_ATTR_BYTE) && !parse_byte_token(s.ptr, (size_t)s.len, &byte))
            return pl_fail(err, PL_ERR_FORMAT, "byte token %d is '%.*s', expected <0xHH>", (int)i,
                           (int)(s.len > 32 ? 32 : s.len), s.ptr);
        if (v->model == TOK_MODEL_BPE && (attr & TOK_ATTR_NORMAL) && !pl_utf8_valid(s.ptr, (size_t)s.len))
            return pl_fail(err, PL_ERR_FORMAT, "token %d is not valid UTF-8", (int)i);
        size_t h = (size_t)hash_bytes(s.ptr, (size_t)s.len) & v->hash_mask;
        while (v->hash[h] >= 0) {
            int32_t o = v->hash[h];
            if (v->text_len[o] == s.len && memcmp(v->text[o], s.ptr, (size_t)s.len) == 0)
                return pl_fail(err, PL_ERR_FORMAT, "duplicate token in vocabulary: '%.*s' has ids %d and %d",
                               (int)(s.len > 64 ? 64 : s.len), s.ptr, (int)o, (int)i);
            h = (h + 1) & v->hash_mask;
        }
        v->hash[h] = i;
    }
    return PL_OK;
}

/* Loads tokenizer.ggml.merges into the (left id, right id) -> rank table. */
static int load_merges(pl_vocab *v, const gguf_file *f, pl_err *err) {
    const gguf_kv *mk = gguf_find(f, "tokenizer.ggml.merges");
    if (!mk) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.merges is missing (required by the gpt2 tokenizer)");
    if (!kv_is_string_array(mk)) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.merges is not an array of strings");
    if (mk->arr_n > INT32_MAX) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.merges has too many entries");
    v->merge_mask = table_mask_for((size_t)mk->arr_n);
    if (!v->merge_mask) return pl_fail(err, PL_ERR_NOMEM, "merge table too large");
    v->merge_key = malloc((v->merge_mask + 1) * sizeof *v->merge_key);
    v->merge_rank = malloc((v->merge_mask + 1) * sizeof *v->merge_rank);
    if (!v->merge_key || !v->merge_rank)
        return pl_fail(err, PL_ERR_NOMEM, "out of memory for %llu merges", (unsigned long long)mk->arr_n);
    memset(v->merge_key, 0xff, (v->merge_mask + 1) * sizeof *v->merge_key);
    for (uint64_t r = 0; r < mk->arr_n; r++) {
        gguf_str s = mk->arr_strs[r];
        const char *sp = s.len >= 2 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL; /* first space after byte 0 */
        const int shown = (int)(s.len > 64 ? 64 : s.len);
        if (!sp)
            return pl_fail(err, PL_ERR_FORMAT, "merge %llu '%.*s' is not \"left right\"", (unsigned long long)r, shown,
                           s.ptr);
        const size_t ll = (size_t)(sp - s.ptr);
        const int32_t l = tok_lookup(v, s.ptr, ll);
        const int32_t rt = tok_lookup(v, sp + 1, (size_t)s.len - ll - 1);
        if (l < 0 || rt < 0)
            return pl_fail(err, PL_ERR_FORMAT, "merge %llu '%.*s' names a token that is not in the vocabulary",
                           (unsigned long long)r, shown, s.ptr);
        const uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)rt;
        size_t i = (size_t)hash_u64(key) & v->merge_mask;
        while (v->merge_key[i] != UINT64_MAX && v->merge_key[i] != key) i = (i + 1) & v->merge_mask;
        if (v->merge_key[i] == UINT64_MAX) { /* the first occurrence keeps its rank */
            v->merge_key[i] = key;
            v->merge_rank[i] = (int32_t)r;
        }
    }
    return PL_OK;
}

static int load_all(pl_vocab *v, const gguf_file *f, pl_err *err) {
    gguf_str model, pre = {"", 0};
    int rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
    if (rc == PL_ERR_ARG) return pl_fail(err, PL_ERR_FORMAT, "tokenizer.ggml.model is missing: not a vocabulary");
    if (rc != PL_OK) return rc;
    rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
    if (rc == PL_ERR_ARG)
        pre = (gguf_str){"", 0};
    else if (rc != PL_OK)
        return rc;

    if (str_eq(model, "llama")) {
        v->model = TOK_MODEL_SPM;
        memcpy(v->model_name, "llama", 6);
        v->pre_name = strdup("default");
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true, v->add_eos = false, v->add_space_prefix = true;
    } else if (str_eq(model, "gpt2")) {
        v->model = TOK_MODEL_BPE;
        memcpy(v->model_name, "gpt2", 5);
        v->pre_name = pre.len ? strndup(pre.ptr, (size_t)pre.len) : strdup("default");
        v->bos = 11, v->eos = 11, v->unk = -1;
        v->add_bos = false, v->add_eos = false, v->add_space_prefix = false;
    } else {
        return pl_fail(err, PL_ERR_UNSUPPORTED, "unknown tokenizer model: '%.*s'",
                       (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    if (!v->pre_name) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    if (v->model == TOK_MODEL_BPE && strlen(v->pre_name) != pre.len && pre.len)
        return pl_fail(err, PL_ERR_UNSUPPORTED, "unknown pre-tokenizer type: '%s' (contains a NUL byte)", v->pre_name);
    if (v->model == TOK_MODEL_BPE && (rc = tok_bpe_setup(v, v->pre_name, err)) != PL_OK) return rc;

    if ((rc = read_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err)) != PL_OK) return rc;
    if ((rc = load_tokens(v, f, err)) != PL_OK) return rc;
    if (v->model == TOK_MODEL_BPE && (rc = load_merges(v, f, err)) != PL_OK) return rc;

    /* defaults beyond the vocabulary are disabled; explicit ids must be in range */
    if (v->bos >= v->n_tokens) v->bos = -1;
    if (v->eos >= v->n_tokens) v->eos = -1;
    if (v->unk >= v->n_tokens) v->unk = -1;
    if ((rc = read_token_id(f, "tokenizer.ggml.bos_token_id", v->n_tokens, &v->bos, NULL, err)) != PL_OK) return rc;
    if ((rc = read_token_id(f, "tokenizer.ggml.eos_token_id", v->n_tokens, &v->eos, NULL, err)) != PL_OK) return rc;
    if ((rc = read_token_id(f, "tokenizer.ggml.unknown_token_id", v->n_tokens, &v->unk, NULL, err)) != PL_OK) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos, err)) != PL_OK) return rc;
    if ((rc = read_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos, err)) != PL_OK) return rc;
    if (v->add_bos && v->bos < 0)
        return pl_fail(err, PL_ERR_FORMAT,
                       "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
    if (v->add_eos && v->eos < 0)
        return pl_fail(err, PL_ERR_FORMAT,
                       "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");

    detect_special_by_text(v, f);
    if (build_special_cache(v) != PL_OK || build_pieces(v) != PL_OK)
        return pl_fail(err, PL_ERR_NOMEM, "out of memory building the token tables");
    apply_strip_attrs(v, f);

    for (int b = 0; b < 256; b++) {
        char name[7];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = v->model == TOK_MODEL_SPM ? lookup_cstr(v, name) : -1;
        if (id < 0 && v->model == TOK_MODEL_SPM) {
            char c = (char)b;
            id = tok_lookup(v, &c, 1);
        }
        v->byte_token[b] = id;
    }
    return PL_OK;
}

int vocab_load(const gguf_file *f, pl_vocab **out, pl_err *err) {
    if (!out) return pl_fail(err, PL_ERR_ARG, "vocab_load: out is NULL");
    *out = NULL;
    if (!f) return pl_fail(err, PL_ERR_ARG, "vocab_load: no GGUF file");
    pl_vocab *v = calloc(1, sizeof *v);
    if (!v) return pl_fail(err, PL_ERR_NOMEM, "out of memory");
    int rc = load_all(v, f, err);
    if (rc != PL_OK) {
        vocab_free(v);
        return rc;
    }
    *out = v;
    return PL_OK;
}

void vocab_free(pl_vocab *v) {
    if (!v) return;
    tok_bpe_release(v);
    free(v->pre_name);
    free(v->text);
    free(v->text_len);
    free(v->score);
    free(v->attr);
    free(v->arena);
    free(v->hash);
    free(v->merge_key);
    free(v->merge_rank);
    free(v->piece);
    free(v->piece_off);
    free(v->special);
    free(v);
}

/* ---- tokenizing --------------------------------------------------------------- */

/* A piece of the input: raw text [off, off+len) or one special token. */
typedef struct fragment {
    size_t off, len;
    int32_t token; /* -1 for raw text */
} fragment;

typedef struct fvec {
    fragment *v;
    size_t n, cap;
} fvec;

static int fvec_push(fvec *fv, fragment fr) {
    if (fv->n == fv->cap) {
        size_t ncap = fv->cap ? fv->cap * 2 : 16, bytes;
        if (!pl_mul_ok(ncap, sizeof *fv->v, &bytes)) return PL_ERR_NOMEM;
        fragment *nv = realloc(fv->v, bytes);
        if (!nv) return PL_ERR_NOMEM;
        fv->v = nv;
        fv->cap = ncap;
    }
    fv->v[fv->n++] = fr;
    return PL_OK;
}

static bool is_c_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Splits the raw fragments of *frags around every occurrence of special
 * token id, as llama.cpp's tokenizer_st_partition does for one token. */
static int partition_one(const pl_vocab *v, const char *text, int32_t id, fvec *frags, fvec *tmp) {
    const char *t = v->text[id];
    const size_t tl = v->text_len[id];
    bool any = false;
    for (size_t i = 0; i < frags->n && !any; i++)
        any = frags->v[i].token < 0 && memmem(text + frags->v[i].off, frags->v[i].len, t, tl) != NULL;
    if (!any) return PL_OK;
    tmp->n = 0;
    int rc = PL_OK;
    for (size_t i = 0; i < frags->n && rc == PL_OK; i++) {
        fragment fr = frags->v[i];
        if (fr.token >= 0) {
            rc = fvec_push(tmp, fr);
            continue;
        }
        size_t base = fr.off, blen = fr.len;
        for (;;) {
            const char *m = memmem(text + base, blen, t, tl);
            if (!m) {
                if (blen > 0) rc = fvec_push(tmp, (fragment){base, blen, -1});
                break;
            }
            const size_t mpos = (size_t)(m - text);
            if (mpos > base) {
                size_t ll = mpos - base;
                if (v->attr[id] & TOK_ATTR_LSTRIP)
                    while (ll > 0 && is_c_space(text[base + ll - 1])) ll--;
                if (ll > 0 && (rc = fvec_push(tmp, (fragment){base, ll, -1})) != PL_OK) break;
            }
            if ((rc = fvec_push(tmp, (fragment){0, 0, id})) != PL_OK) break;
            if (mpos + tl >= base + blen) break; /* nothing right of the match */
            size_t ro = mpos + tl, rl = base + blen - ro;
            if (v->attr[id] & TOK_ATTR_RSTRIP)
                while (rl > 0 && is_c_space(text[ro])) ro++, rl--;
            base = ro;
            blen = rl;
        }
    }
    if (rc == PL_OK) {
        fvec swap = *frags;
        *frags = *tmp;
        *tmp = swap;
    }
    return rc;
}

static int tokenize_into(const pl_vocab *v, const char *text, size_t len, int flags, tok_ivec *out, pl_err *err) {
    const bool add_special = (flags & PL_TOK_ADD_SPECIAL) != 0;
    const bool parse_special = (flags & PL_TOK_PARSE_SPECIAL) != 0;
    fvec frags = {0}, tmp = {0};
    char *buf = NULL;
    int rc = PL_OK;
    if (len > 0) rc = fvec_push(&frags, (fragment){0, len, -1});
    for (size_t s = 0; s < v->n_special && rc == PL_OK; s++) {
        const int32_t id = v->special[s];
        if (!parse_special && (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        rc = partition_one(v, text, id, &frags, &tmp);
    }
    if (rc != PL_OK) {
        rc = pl_fail(err, rc, "out of memory tokenizing %zu bytes", len);
        goto done;
    }
    if (add_special && v->add_bos && (rc = tok_ivec_push(out, v->bos)) != PL_OK) goto nomem;
    if (v->model == TOK_MODEL_SPM) {
        /* llama.cpp: prefix a space to the first fragment and after a special
         * token; a continuation of earlier text gets none before its first. */
        bool prev_special = (flags & PL_TOK_CONTINUATION) == 0;
        for (size_t i = 0; i < frags.n && rc == PL_OK; i++) {
            const fragment fr = frags.v[i];
            if (fr.token >= 0) {
                rc = tok_ivec_push(out, fr.token);
                prev_special = true;
                continue;
            }
            size_t cap;
            if (!pl_mul_ok(fr.len, 3, &cap) || !pl_add_ok(cap, 3, &cap)) {
                rc = pl_fail(err, PL_ERR_RANGE, "text of %zu bytes is too long", len);
                goto done;
            }
            char *nb = realloc(buf, cap);
            if (!nb) goto nomem;
            buf = nb;
            size_t n = 0;
            const bool prefix = v->add_space_prefix && prev_special;
            for (size_t k = 0; k < fr.len + prefix; k++) {
                const char c = prefix ? (k == 0 ? ' ' : text[fr.off + k - 1]) : text[fr.off + k];
                if (c == ' ') {
                    memcpy(buf + n, "\xe2\x96\x81", 3);
                    n += 3;
                } else {
                    buf[n++] = c;
                }
            }
            if ((rc = tok_spm_fragment(v, buf, n, out, err)) != PL_OK) goto done;
            prev_special = false;
        }
    } else {
        for (size_t i = 0; i < frags.n && rc == PL_OK; i++) {
            const fragment fr = frags.v[i];
            if (fr.token >= 0)
                rc = tok_ivec_push(out, fr.token);
            else if ((rc = tok_bpe_fragment(v, text + fr.off, fr.len, out, err)) != PL_OK)
                goto done;
        }
    }
    if (rc != PL_OK) goto nomem;
    if (add_special && v->add_eos && (rc = tok_ivec_push(out, v->eos)) != PL_OK) goto nomem;
    goto done;
nomem:
    rc = pl_fail(err, PL_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
done:
    free(frags.v);
    free(tmp.v);
    free(buf);
    return rc;
}

int vocab_tokenize(const pl_vocab *vocab, const char *text, size_t len, int flags, int32_t *ids, size_t cap,
                   size_t *n_out, pl_err *err) {
    if (n_out) *n_out = 0;
    if (!vocab || !n_out || (!text && len) || (!ids && cap))
        return pl_fail(err, PL_ERR_ARG, "vocab_tokenize: invalid arguments");
    if (flags & ~(PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL | PL_TOK_CONTINUATION))
        return pl_fail(err, PL_ERR_ARG, "vocab_tokenize: unknown flags 0x%x", (unsigned)flags);
    tok_ivec out = {0};
    int rc = tokenize_into(vocab, text ? text : "", len, flags, &out, err);
    if (rc == PL_OK) {
        *n_out = out.n;
        if (out.n && cap) memcpy(ids, out.v, (out.n < cap ? out.n : cap) * sizeof *ids);
        if (cap < out.n) rc = pl_fail(err, PL_ERR_RANGE, "text needs %zu tokens, buffer holds %zu", out.n, cap);
    }
    free(out.v);
    return rc;
}

int vocab_token_to_piece(const pl_vocab *vocab, int32_t id, char *buf, size_t cap) {
    if (!vocab || id < 0 || id >= vocab->n_tokens || (!buf && cap)) return PL_ERR_ARG;
    const uint64_t off = vocab->piece_off[id], len = vocab->piece_off[id + 1] - off;
    if (len > INT32_MAX) return PL_ERR_RANGE;
    if (cap) memcpy(buf, vocab->piece + off, (size_t)(len < cap ? len : cap));
    return (int)len;
}

int32_t vocab_text_to_id(const pl_vocab *vocab, const char *text, size_t len) {
    if (!vocab || (!text && len)) return -1;
    if (!text) text = "";
    int32_t id = tok_lookup(vocab, text, len);
    if (id >= 0 && (vocab->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN))) return id;
    if (len > TOK_MAX_TOKEN_BYTES) return -1;
    char *enc = calloc(len * 3 + 1, 1);
    if (!enc) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (vocab->model == TOK_MODEL_BPE) {
            n += tok_utf8_encode(tok_byte_to_cpt((uint8_t)text[i]), enc + n);
        } else if (text[i] == ' ') {
            memcpy(enc + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            enc[n++] = text[i];
        }
    }
    id = tok_lookup(vocab, enc, n);
    free(enc);
    if (id < 0 && vocab->model == TOK_MODEL_SPM && len == 1) id = vocab->byte_token[(unsigned char)text[0]];
    return id;
}

int32_t vocab_n_tokens(const pl_vocab *vocab) { return vocab ? vocab->n_tokens : 0; }
int32_t vocab_bos(const pl_vocab *vocab) { return vocab ? vocab->bos : -1; }
int32_t vocab_eos(const pl_vocab *vocab) { return vocab ? vocab->eos : -1; }
bool vocab_add_bos(const pl_vocab *vocab) { return vocab && vocab->add_bos; }
const char *vocab_model_name(const pl_vocab *vocab) { return vocab ? vocab->model_name : ""; }
const char *vocab_pre_name(const pl_vocab *vocab) { return vocab ? vocab->pre_name : ""; }
