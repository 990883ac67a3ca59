/* test_tokenizer.c — the tokenizer against llama.cpp's own test vectors.
 *
 * For each of the 7 fixture vocabularies (../shared/fixtures/vocab):
 *   - every .gguf.inp string tokenizes (flags 0) to its .gguf.out ids;
 *   - every prompt of ../shared/fixtures/prompts.json tokenizes to `ids`
 *     (ADD_SPECIAL|PARSE_SPECIAL) and `ids_raw` (flags 0) of *.tokens.json;
 *   - pieces of the raw ids concatenate back to the input (BPE: the input
 *     with invalid UTF-8 replaced; SPM: " " + input with "▁" read as " ");
 * plus text_to_id on known ids, hostile input (invalid UTF-8, NULs, long
 * runs) and malformed vocabulary metadata written with gguf_write. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "probelogits.h"
#include "testlib.h"
#include "tokenizer.h"

#define VOCAB_DIR "../shared/fixtures/vocab/"

static const char *const k_vocabs[] = {"llama-spm", "phi-3", "llama-bpe",     "qwen2",
                                       "starcoder", "gpt-2", "deepseek-coder"};
#define N_VOCABS 7

typedef struct loaded {
    gguf_file *f;
    pl_vocab *v;
} loaded;

static int load_vocab(const char *path, loaded *out, char *msg, size_t cap) {
    pl_err err = {msg, cap};
    msg[0] = 0;
    out->f = NULL;
    out->v = NULL;
    int rc = gguf_open(path, &out->f, &err);
    if (rc == PL_OK) rc = vocab_load(out->f, &out->v, &err);
    if (rc != PL_OK) {
        gguf_close(out->f);
        out->f = NULL;
    }
    return rc;
}

static void unload(loaded *l) {
    vocab_free(l->v);
    gguf_close(l->f);
}

/* Tokenizes into a malloc'ed array; returns the count or -1 (message in msg). */
static long tokenize(const pl_vocab *v, const char *s, size_t n, int flags, int32_t **ids, char *msg, size_t cap) {
    pl_err err = {msg, cap};
    size_t need = 0;
    *ids = NULL;
    int rc = vocab_tokenize(v, s, n, flags, NULL, 0, &need, &err);
    if (rc != PL_OK && rc != PL_ERR_RANGE) return -1;
    *ids = malloc((need ? need : 1) * sizeof **ids);
    size_t got = 0;
    rc = vocab_tokenize(v, s, n, flags, *ids, need, &got, &err);
    if (rc != PL_OK || got != need) return -1;
    return (long)need;
}

/* Concatenated pieces of ids (malloc'ed, *len bytes). */
static char *detokenize(const pl_vocab *v, const int32_t *ids, size_t n, size_t *len) {
    size_t cap = 64, used = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        int k = vocab_token_to_piece(v, ids[i], NULL, 0);
        if (k < 0) {
            free(out);
            return NULL;
        }
        while (used + (size_t)k + 1 > cap) out = realloc(out, cap *= 2);
        int k2 = vocab_token_to_piece(v, ids[i], out + used, (size_t)k);
        if (k2 != k) {
            free(out);
            return NULL;
        }
        used += (size_t)k;
    }
    *len = used;
    return out;
}

static void format_ids(char *buf, size_t cap, const int32_t *ids, long n) {
    size_t o = 0;
    buf[0] = 0;
    for (long i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %d", ids[i]);
    if (n > 0 && o + 16 >= cap) snprintf(buf + o, cap - o, " ...");
}

static bool ids_equal(const int32_t *a, long na, const int32_t *b, long nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

/* Expected detokenization of the raw tokenization of s. */
static char *expected_text(const pl_vocab *v, const char *s, size_t n, size_t *len) {
    char *out = malloc(n * 3 + 2);
    size_t o = 0;
    const bool spm = strcmp(vocab_model_name(v), "llama") == 0;
    if (spm && n > 0) out[o++] = ' ';
    size_t i = 0;
    while (i < n) {
        if (spm && i + 2 < n && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            out[o++] = ' ';
            i += 3;
            continue;
        }
        size_t k = pl_utf8_len(s + i, n - i);
        if (spm || pl_utf8_valid(s + i, k)) {
            memcpy(out + o, s + i, k);
            o += k;
        } else { /* BPE: invalid bytes become U+FFFD */
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            k = 1;
        }
        i += k;
    }
    *len = o;
    return out;
}

/* ---- .inp / .out vectors ------------------------------------------------------ */

static void test_vectors(const char *name, const loaded *l) {
    char path[512], msg[512];
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf.inp", name);
    char *inp = NULL, *outp = NULL;
    size_t inp_len = 0, out_len = 0;
    pl_err err = {msg, sizeof msg};
    CHECK(pl_read_file(path, &inp, &inp_len, &err) == PL_OK, "%s", msg);
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf.out", name);
    CHECK(pl_read_file(path, &outp, &out_len, &err) == PL_OK, "%s", msg);
    if (!inp || !outp) {
        free(inp);
        free(outp);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    int n_cases = 0, n_pass = 0, n_detok = 0, n_detok_ok = 0;
    char *ip = inp, *op = outp;
    const char *iend = inp + inp_len;
    for (;;) {
        char *s = memmem(ip, (size_t)(iend - ip), sep, sep_len);
        if (!s) break;
        const size_t slen = (size_t)(s - ip);
        char *eol = strchr(op, '\n');
        if (!eol) eol = op + strlen(op);
        int32_t want[4096];
        long nwant = 0;
        for (char *q = op; q < eol && nwant < 4096;) {
            char *endp;
            long x = strtol(q, &endp, 10);
            if (endp == q) break;
            want[nwant++] = (int32_t)x;
            q = endp;
        }
        int32_t *got = NULL;
        long ngot = tokenize(l->v, ip, slen, 0, &got, msg, sizeof msg);
        n_cases++;
        if (ids_equal(got, ngot, want, nwant)) {
            n_pass++;
        } else {
            char a[512], b[512];
            format_ids(a, sizeof a, got, ngot);
            format_ids(b, sizeof b, want, nwant);
            CHECK(false, "%s case %d '%.*s': got [%s] want [%s] %s", name, n_cases, (int)(slen > 60 ? 60 : slen), ip, a,
                  b, ngot < 0 ? msg : "");
        }
        if (ngot >= 0) {
            size_t dlen = 0, elen = 0;
            char *d = detokenize(l->v, got, (size_t)ngot, &dlen);
            char *e = expected_text(l->v, ip, slen, &elen);
            n_detok++;
            if (d && dlen == elen && memcmp(d, e, elen) == 0)
                n_detok_ok++;
            else
                CHECK(false, "%s case %d: detokenized text differs: '%.*s'", name, n_cases,
                      (int)(dlen > 80 ? 80 : dlen), d ? d : "");
            free(d);
            free(e);
        }
        free(got);
        ip = s + sep_len;
        op = *eol ? eol + 1 : eol;
    }
    CHECK(n_cases == 46, "%s: %d test strings, expected 46", name, n_cases);
    CHECK(n_pass == n_cases, "%s: %d/%d strings match", name, n_pass, n_cases);
    printf("  %-15s .inp/.out %d/%d  detokenize %d/%d\n", name, n_pass, n_cases, n_detok_ok, n_detok);
    free(inp);
    free(outp);
}

/* ---- *.tokens.json ------------------------------------------------------------- */

static long json_ids(json_object *arr, int32_t **out) {
    size_t n = json_object_array_length(arr);
    *out = malloc((n ? n : 1) * sizeof **out);
    for (size_t i = 0; i < n; i++) (*out)[i] = (int32_t)json_object_get_int(json_object_array_get_idx(arr, i));
    return (long)n;
}

static void test_json(const char *name, const loaded *l, json_object *prompts) {
    char path[512], msg[512];
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.tokens.json", name);
    json_object *root = json_object_from_file(path);
    CHECK(root != NULL, "cannot read %s", path);
    if (!root) return;
    json_object *arr = NULL, *jb = NULL, *jab = NULL;
    json_object_object_get_ex(root, "prompts", &arr);
    if (json_object_object_get_ex(root, "bos", &jb)) CHECK(vocab_bos(l->v) == json_object_get_int(jb), "%s: bos", name);
    if (json_object_object_get_ex(root, "add_bos", &jab))
        CHECK(vocab_add_bos(l->v) == json_object_get_boolean(jab), "%s: add_bos", name);
    int n = 0, ok_ids = 0, ok_raw = 0, detok_ok = 0;
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        json_object *p = json_object_array_get_idx(arr, i), *jn, *jids, *jraw;
        json_object_object_get_ex(p, "name", &jn);
        json_object_object_get_ex(p, "ids", &jids);
        json_object_object_get_ex(p, "ids_raw", &jraw);
        const char *pname = json_object_get_string(jn);
        const char *text = NULL;
        size_t tlen = 0;
        for (size_t k = 0; k < json_object_array_length(prompts); k++) {
            json_object *q = json_object_array_get_idx(prompts, k), *qn, *qt;
            json_object_object_get_ex(q, "name", &qn);
            if (strcmp(json_object_get_string(qn), pname) == 0 && json_object_object_get_ex(q, "text", &qt)) {
                text = json_object_get_string(qt);
                tlen = (size_t)json_object_get_string_len(qt);
            }
        }
        CHECK(text != NULL, "%s: prompt '%s' not in prompts.json", name, pname);
        if (!text) continue;
        n++;
        for (int pass = 0; pass < 2; pass++) {
            int32_t *want = NULL, *got = NULL;
            long nwant = json_ids(pass == 0 ? jids : jraw, &want);
            long ngot = tokenize(l->v, text, tlen, pass == 0 ? (PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL) : 0, &got,
                                 msg, sizeof msg);
            if (ids_equal(got, ngot, want, nwant)) {
                pass == 0 ? ok_ids++ : ok_raw++;
            } else {
                char a[768], b[768];
                format_ids(a, sizeof a, got, ngot);
                format_ids(b, sizeof b, want, nwant);
                CHECK(false, "%s prompt '%s' (%s): got [%s] want [%s]", name, pname, pass == 0 ? "ids" : "ids_raw", a,
                      b);
            }
            if (pass == 1 && ngot >= 0) {
                size_t dlen = 0, elen = 0;
                char *d = detokenize(l->v, got, (size_t)ngot, &dlen);
                char *e = expected_text(l->v, text, tlen, &elen);
                if (d && dlen == elen && memcmp(d, e, elen) == 0)
                    detok_ok++;
                else
                    CHECK(false, "%s prompt '%s': detokenized text differs", name, pname);
                free(d);
                free(e);
            }
            free(want);
            free(got);
        }
    }
    CHECK(n == 22, "%s: %d prompts, expected 22", name, n);
    printf("  %-15s json ids %d/%d  ids_raw %d/%d  detokenize %d/%d\n", name, ok_ids, n, ok_raw, n, detok_ok, n);
    json_object_put(root);
}

/* ---- text_to_id ---------------------------------------------------------------- */

static int32_t single_id(const pl_vocab *v, const char *s) {
    char msg[256];
    int32_t *ids = NULL;
    long n = tokenize(v, s, strlen(s), 0, &ids, msg, sizeof msg);
    int32_t r = n == 1 ? ids[0] : -2;
    free(ids);
    return r;
}

static void test_text_to_id(loaded *ls) {
    const pl_vocab *spm = ls[0].v, *bpe = ls[2].v, *qwen = ls[3].v, *gpt2 = ls[5].v, *dsc = ls[6].v;
    CHECK(vocab_text_to_id(spm, " Hello", 6) == 15043, "spm ' Hello'");
    CHECK(vocab_text_to_id(spm, " world", 6) == 3186, "spm ' world'");
    CHECK(vocab_text_to_id(spm, "<s>", 3) == 1, "spm <s>");
    CHECK(vocab_text_to_id(spm, "\n", 1) == 13, "spm newline byte token <0x0A>");
    CHECK(vocab_text_to_id(spm, "\xe2\x96\x81Hello", 8) == 15043,
          "spm: a literal '\xe2\x96\x81' in the text is kept as is");
    CHECK(vocab_text_to_id(bpe, " Yes", 4) == single_id(bpe, " Yes") && single_id(bpe, " Yes") >= 0,
          "llama-bpe ' Yes'");
    CHECK(vocab_text_to_id(bpe, " No", 3) == single_id(bpe, " No") && single_id(bpe, " No") >= 0, "llama-bpe ' No'");
    CHECK(vocab_text_to_id(bpe, "\xc4\xa0Yes", 5) != single_id(bpe, " Yes"),
          "llama-bpe: stored form 'ĠYes' is not plain text");
    CHECK(vocab_text_to_id(bpe, "<|eot_id|>", 10) == 128009, "llama-bpe <|eot_id|>");
    CHECK(vocab_text_to_id(bpe, "<|begin_of_text|>", 17) == 128000, "llama-bpe <|begin_of_text|>");
    CHECK(vocab_text_to_id(qwen, "<|im_start|>", 12) == 151644, "qwen2 <|im_start|>");
    CHECK(vocab_text_to_id(gpt2, "Hello", 5) == 15496, "gpt-2 Hello");
    CHECK(vocab_text_to_id(gpt2, " world", 6) == 995, "gpt-2 ' world'");
    CHECK(vocab_text_to_id(gpt2, "\n", 1) == 198, "gpt-2 newline");
    CHECK(vocab_text_to_id(gpt2, "no such token xyzzy", 19) == -1, "gpt-2 unknown text");
    CHECK(vocab_text_to_id(gpt2, "", 0) == -1, "empty text");
    CHECK(vocab_text_to_id(dsc, "\xc3\xb5", 2) == 32000, "deepseek user-defined 'õ'");
    for (int k = 0; k < N_VOCABS; k++) { /* every special token maps back from its piece */
        const pl_vocab *v = ls[k].v;
        int bad = 0;
        for (int32_t id = 0; id < vocab_n_tokens(v); id += 97) {
            char buf[256];
            int n = vocab_token_to_piece(v, id, buf, sizeof buf);
            if (n <= 0 || n > (int)sizeof buf) continue;
            int32_t back = vocab_text_to_id(v, buf, (size_t)n);
            if (back < 0) bad++;
        }
        CHECK(bad == 0, "%s: %d sampled pieces do not map back to an id", k_vocabs[k], bad);
    }
    CHECK(vocab_token_to_piece(gpt2, -1, NULL, 0) == PL_ERR_ARG, "piece of -1");
    CHECK(vocab_token_to_piece(gpt2, vocab_n_tokens(gpt2), NULL, 0) == PL_ERR_ARG, "piece of n_tokens");
    char small[2];
    CHECK(vocab_token_to_piece(gpt2, 15496, small, 2) == 5 && memcmp(small, "He", 2) == 0, "piece truncated to cap");
}

/* ---- hostile input --------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_hostile(loaded *ls) {
    char msg[512];
    size_t big = 200000;
    char *buf = malloc(big);
    for (int k = 0; k < N_VOCABS; k++) {
        const pl_vocab *v = ls[k].v;
        bool ok = true;
        for (int round = 0; round < 40; round++) {
            size_t n = (size_t)(rng() % 300);
            for (size_t i = 0; i < n; i++) {
                uint64_t r = rng();
                static const char *const frag[] = {"<|im_start|>",     "<s>", "</s>", "\xe2\x96\x81", " ", "\n",
                                                   "\xf0\x9f\x98\x80", "'s"};
                buf[i] = (r & 7) == 0 ? frag[(r >> 8) % 8][0] : (char)(r >> 16);
            }
            for (int flags = 0; flags < 4; flags++) {
                int32_t *ids = NULL;
                long m = tokenize(v, buf, n, flags, &ids, msg, sizeof msg);
                if (m < 0) ok = false;
                size_t dl;
                char *d = m >= 0 ? detokenize(v, ids, (size_t)m, &dl) : NULL;
                if (m >= 0 && !d) ok = false;
                free(d);
                free(ids);
            }
        }
        CHECK(ok, "%s: random bytes: %s", k_vocabs[k], msg);
        static const struct {
            char c;
            size_t n;
        } runs[] = {{'a', 200000}, {' ', 100000}, {'\n', 50000}, {'\xff', 50000},
                    {'\0', 20000}, {'7', 30000},  {'!', 30000}};
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            memset(buf, runs[r].c, runs[r].n);
            int32_t *ids = NULL;
            long m = tokenize(v, buf, runs[r].n, 0, &ids, msg, sizeof msg);
            CHECK(m > 0, "%s: run of %zu x 0x%02x: %s", k_vocabs[k], runs[r].n, (unsigned char)runs[r].c, msg);
            free(ids);
        }
        /* invalid UTF-8 is read as U+FFFD (BPE) */
        if (strcmp(vocab_model_name(v), "gpt2") == 0) {
            int32_t *a = NULL, *b = NULL;
            long na = tokenize(v, "x\xff\xc3y", 4, 0, &a, msg, sizeof msg);
            long nb = tokenize(v, "x\xef\xbf\xbd\xef\xbf\xbdy", 8, 0, &b, msg, sizeof msg);
            CHECK(ids_equal(a, na, b, nb), "%s: invalid UTF-8 is not tokenized as U+FFFD", k_vocabs[k]);
            free(a);
            free(b);
        }
        /* buffer too small: PL_ERR_RANGE with the needed count */
        int32_t two[2];
        size_t need = 0;
        pl_err err = {msg, sizeof msg};
        CHECK(vocab_tokenize(v, "Hello world, how are you?", 25, 0, two, 2, &need, &err) == PL_ERR_RANGE && need > 2,
              "%s: small buffer", k_vocabs[k]);
        CHECK(vocab_tokenize(v, NULL, 0, 0, NULL, 0, &need, &err) == PL_OK && need == 0, "%s: empty text", k_vocabs[k]);
        CHECK(vocab_tokenize(v, NULL, 3, 0, NULL, 0, &need, &err) == PL_ERR_ARG, "%s: NULL text", k_vocabs[k]);
    }
    free(buf);
}

/* ---- malformed metadata ----------------------------------------------------------- */

/* A tiny vocabulary: 256 byte-level tokens + merges, written with overrides. */
typedef struct mini {
    gguf_str toks[300];
    int32_t types[300];
    float scores[300];
    gguf_str merges[4];
    char store[300][4];
    int n;
} mini;

static void mini_init(mini *m) {
    m->n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t c = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? (uint32_t)b : 0;
        if (!c) {
            int idx = 0;
            for (int x = 0; x < b; x++)
                if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) idx++;
            c = 256u + (uint32_t)idx;
        }
        char *s = m->store[m->n];
        int len =
            c < 0x80 ? (s[0] = (char)c, 1) : (s[0] = (char)(0xC0 | (c >> 6)), s[1] = (char)(0x80 | (c & 0x3F)), 2);
        m->toks[m->n] = (gguf_str){s, (uint64_t)len};
        m->types[m->n] = 1;
        m->scores[m->n] = 0;
        m->n++;
    }
    m->toks[m->n] = (gguf_str){"he", 2}, m->types[m->n] = 1, m->n++;
    m->toks[m->n] = (gguf_str){"<|endoftext|>", 13}, m->types[m->n] = 3, m->n++;
    m->merges[0] = (gguf_str){"h e", 3};
}

static gguf_kv kv_str(const char *key, const char *val) {
    gguf_kv kv = {0};
    kv.key = (gguf_str){key, strlen(key)};
    kv.type = GGUF_STRING;
    kv.v.str = (gguf_str){val, strlen(val)};
    return kv;
}

static gguf_kv kv_arr(const char *key, uint32_t arr_type, uint64_t n, const void *data) {
    gguf_kv kv = {0};
    kv.key = (gguf_str){key, strlen(key)};
    kv.type = GGUF_ARRAY;
    kv.arr_type = arr_type;
    kv.arr_n = n;
    if (arr_type == GGUF_STRING)
        kv.arr_strs = (gguf_str *)data;
    else
        kv.arr_data = data;
    return kv;
}

/* Writes the kvs to a temporary file and loads it; returns vocab_load's status. */
static int load_kvs(const gguf_kv *kvs, int n, uint32_t bos, bool with_bos, char *msg, size_t cap) {
    const char *path = "/tmp/pl_test_tokenizer_bad.gguf";
    pl_err err = {msg, cap};
    gguf_writer *w = NULL;
    int rc = gguf_writer_create(path, &w, &err);
    for (int i = 0; i < n && rc == PL_OK; i++) rc = gguf_writer_add_kv(w, &kvs[i]);
    if (rc == PL_OK && with_bos) rc = gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", bos);
    if (rc == PL_OK) rc = gguf_writer_write_header(w);
    if (rc == PL_OK) rc = gguf_writer_finish(w);
    gguf_writer_free(w);
    if (rc != PL_OK) return 1000 + rc;
    loaded l;
    rc = load_vocab(path, &l, msg, cap);
    if (rc == PL_OK) unload(&l);
    remove(path);
    return rc;
}

static void test_malformed(void) {
    char msg[512];
    mini m;
    mini_init(&m);
    gguf_kv kvs[8];
    const int n_tok = m.n;
    int32_t bad_types[300];
    memcpy(bad_types, m.types, sizeof bad_types);
    bad_types[5] = 9;
    int32_t i32s[300] = {0};
    gguf_str bad_merge[1] = {{"h zz", 4}}, nospace[1] = {{"he", 2}};
    gguf_str bad_utf8[300];
    memcpy(bad_utf8, m.toks, sizeof bad_utf8);
    bad_utf8[256] = (gguf_str){"h\xff", 2};
    gguf_str dup[300];
    memcpy(dup, m.toks, sizeof dup);
    dup[256] = dup[0];
    gguf_str bad_byte[300];
    int32_t byte_types[300];
    memcpy(bad_byte, m.toks, sizeof bad_byte);
    memcpy(byte_types, m.types, sizeof byte_types);
    byte_types[10] = 6;

    struct {
        const char *what;
        const char *model, *pre;
        const gguf_str *toks;
        uint32_t toks_type;
        uint64_t n_toks;
        const int32_t *types;
        uint64_t n_types;
        uint64_t n_scores;
        const gguf_str *merges;
        uint64_t n_merges;
        uint32_t bos;
        const char *expect; /* substring of the message */
    } cases[] = {
        {"valid", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, m.merges, 1, 257,
         NULL},
        {"pre default", "gpt2", "default", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, m.merges,
         1, 257, NULL},
        {"pre smollm", "gpt2", "smollm", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, m.merges, 1,
         257, NULL},
        {"pre llama3", "gpt2", "llama3", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, m.merges, 1,
         257, NULL},
        {"missing tokens", "gpt2", "gpt-2", NULL, GGUF_STRING, 0, NULL, 0, 0, m.merges, 1, 0, "tokenizer.ggml.tokens"},
        {"tokens of wrong type", "gpt2", "gpt-2", (const gguf_str *)i32s, GGUF_I32, 200, NULL, 0, 0, m.merges, 1, 0,
         "tokenizer.ggml.tokens"},
        {"unknown model", "wordpiece9", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         m.merges, 1, 257, "wordpiece9"},
        {"unknown pre", "gpt2", "bogus-pre", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         m.merges, 1, 257, "bogus-pre"},
        {"scores count", "llama", NULL, m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 5, NULL, 0, 1,
         "scores"},
        {"types count", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, 7, 0, m.merges, 1, 257,
         "token_type"},
        {"type out of range", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, bad_types, (uint64_t)n_tok, 0,
         m.merges, 1, 257, "token_type 9"},
        {"merge unknown token", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         bad_merge, 1, 257, "not in the vocabulary"},
        {"merge without space", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         nospace, 1, 257, "merge 0"},
        {"missing merges", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, NULL, 0,
         257, "merges"},
        {"bos out of range", "gpt2", "gpt-2", m.toks, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         m.merges, 1, 99999, "bos_token_id"},
        {"invalid utf-8 token", "gpt2", "gpt-2", bad_utf8, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0,
         NULL, 0, 257, "UTF-8"},
        {"duplicate token", "gpt2", "gpt-2", dup, GGUF_STRING, (uint64_t)n_tok, m.types, (uint64_t)n_tok, 0, m.merges,
         1, 257, "duplicate"},
        {"bad byte token", "llama", NULL, bad_byte, GGUF_STRING, (uint64_t)n_tok, byte_types, (uint64_t)n_tok, 0, NULL,
         0, 1, "byte token"},
    };
    float scores[300] = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = 0;
        kvs[n++] = kv_str("tokenizer.ggml.model", cases[c].model);
        if (cases[c].pre) kvs[n++] = kv_str("tokenizer.ggml.pre", cases[c].pre);
        if (cases[c].toks)
            kvs[n++] = kv_arr("tokenizer.ggml.tokens", cases[c].toks_type, cases[c].n_toks, cases[c].toks);
        if (cases[c].types) kvs[n++] = kv_arr("tokenizer.ggml.token_type", GGUF_I32, cases[c].n_types, cases[c].types);
        if (cases[c].n_scores) kvs[n++] = kv_arr("tokenizer.ggml.scores", GGUF_F32, cases[c].n_scores, scores);
        if (cases[c].merges)
            kvs[n++] = kv_arr("tokenizer.ggml.merges", GGUF_STRING, cases[c].n_merges, cases[c].merges);
        msg[0] = 0;
        int rc = load_kvs(kvs, n, cases[c].bos, true, msg, sizeof msg);
        if (!cases[c].expect) {
            CHECK(rc == PL_OK, "%s: %s", cases[c].what, msg);
        } else {
            CHECK(rc < 0 && rc > -100 && strstr(msg, cases[c].expect), "%s: rc %d, message '%s' should name '%s'",
                  cases[c].what, rc, msg, cases[c].expect);
        }
    }
}

int main(void) {
    loaded ls[N_VOCABS];
    char msg[512];
    json_object *prompts = json_object_from_file("../shared/fixtures/prompts.json");
    CHECK(prompts != NULL, "cannot read ../shared/fixtures/prompts.json");
    int n_loaded = 0;
    for (int k = 0; k < N_VOCABS; k++) {
        char path[512];
        snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf", k_vocabs[k]);
        int rc = load_vocab(path, &ls[k], msg, sizeof msg);
        CHECK(rc == PL_OK, "load %s: %s", path, msg);
        if (rc != PL_OK) continue;
        n_loaded++;
        test_vectors(k_vocabs[k], &ls[k]);
        if (prompts) test_json(k_vocabs[k], &ls[k], prompts);
    }
    if (n_loaded == N_VOCABS) {
        CHECK(strcmp(vocab_model_name(ls[0].v), "llama") == 0 && strcmp(vocab_pre_name(ls[0].v), "default") == 0,
              "spm names");
        CHECK(strcmp(vocab_model_name(ls[2].v), "gpt2") == 0 && strcmp(vocab_pre_name(ls[2].v), "llama-bpe") == 0,
              "bpe names");
        CHECK(vocab_eos(ls[2].v) == 128001 && vocab_n_tokens(ls[2].v) == 128256, "llama-bpe eos / n_tokens");
        test_text_to_id(ls);
        test_hostile(ls);
    }
    test_malformed();
    for (int k = 0; k < N_VOCABS; k++)
        if (ls[k].v) unload(&ls[k]);
    json_object_put(prompts);
    return testlib_finish("test_tokenizer");
}
