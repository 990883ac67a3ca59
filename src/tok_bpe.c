/* tok_bpe.c — byte-level BPE ("gpt2" tokenizer model) as llama.cpp runs it.
 *
 * A raw-text fragment is decoded to code points (invalid UTF-8 -> U+FFFD),
 * split into words by the pre-tokenizer's regexes applied in sequence (each
 * regex re-splits every piece the previous one produced; the text between
 * matches is kept as pieces too), each word is re-encoded as UTF-8 and
 * mapped byte by byte to the GPT-2 printable alphabet, and the word's
 * characters are merged pairwise, lowest merge rank first (leftmost among
 * equal ranks). A final symbol that is not a token falls back to its
 * single bytes where those are tokens.
 *
 * Regexes are applied as llama.cpp's unicode_regex_split does: the GPT-2
 * and Llama-3 patterns by hand-written matchers (ported rule by rule,
 * including their quirks), patterns with \p{..} classes by PCRE2 over the
 * "collapsed" text (one byte per code point: ASCII kept, other whitespace
 * -> 0x0B, other code points -> 0xD1..0xD5 by category or 0xD0), ASCII-only
 * patterns by PCRE2 over the text with non-ASCII whitespace -> 0x0B and
 * other non-ASCII -> 0x80, and the CJK range pattern by a run matcher. */
#include <stdlib.h>
#include <string.h>

#include "probelogits.h"
#include "tok_internal.h"

/* ---- pre-tokenizer definitions ----------------------------------------- */

#define RE_QWEN2                                                                                                       \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}"     \
    "\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT2 "<gpt2>"
#define RE_LLAMA3 "<llama3>"
#define RE_CJK "<cjk>"

/* One family of pre-tokenizers: the names that select it and its regexes. */
typedef struct pre_family {
    const char *names[16];             /* NULL-terminated */
    const char *regex[TOK_MAX_SPLITS]; /* NULL-terminated; RE_* markers select hand-written matchers */
    bool ignore_merges;
    bool add_bos;
} pre_family;

static const pre_family k_pre_families[] = {
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", NULL},
     {RE_LLAMA3, NULL},
     true,
     true},
    {{"dbrx", "smaug-bpe", NULL}, {RE_LLAMA3, NULL}, false, false},
    {{"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan", NULL}, {RE_QWEN2, NULL}, false, false},
    {{"starcoder", "smollm", "refact", "command-r", "codeshell", "exaone", "minerva-7b", NULL},
     {"\\p{N}", RE_GPT2, NULL},
     false,
     false},
    {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "mpt",
      "olmo", "jais", "trillion", "granite-docling", "exaone4", NULL},
     {RE_GPT2, NULL},
     false,
     false},
    {{"deepseek-coder", NULL}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}", NULL}, false, false},
    {{"default", NULL}, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL}, false, false},
};

/* llama.cpp's category placeholders for the collapsed text and regex. */
static const struct {
    const char *pat;
    unsigned char byte;
    const char *ascii; /* the ASCII members of the class, as a class body */
} k_ucat[] = {
    {"\\p{N}", 0xD1, "0-9"},     {"\\p{L}", 0xD2, "A-Za-z"},         {"\\p{P}", 0xD3, "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}"},
    {"\\p{M}", 0xD4, ""},        {"\\p{S}", 0xD5, "\\$\\+<->^`\\|"}, {"\\p{Lu}", 0xD2, "A-Za-z"},
    {"\\p{Ll}", 0xD2, "A-Za-z"}, {"\\p{Lt}", 0xD2, "A-Za-z"},        {"\\p{Lm}", 0xD2, "A-Za-z"},
    {"\\p{Lo}", 0xD2, "A-Za-z"},
};
#define N_UCAT (sizeof k_ucat / sizeof k_ucat[0])

static bool regex_has_ucat(const char *re) {
    for (size_t i = 0; i < N_UCAT; i++)
        if (strstr(re, k_ucat[i].pat)) return true;
    return false;
}

/* Rewrites \p{..} into classes over the collapsed alphabet, as llama.cpp
 * does (inside [..] only the members are inserted). Returns a malloc'ed
 * pattern or NULL on allocation failure. */
static char *collapse_regex(const char *re) {
    size_t len = strlen(re);
    char *out = malloc(len * 8 + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool inside = false;
    for (size_t i = 0; i < len; i++) {
        if (re[i] == '[' && (i == 0 || re[i - 1] != '\\')) {
            out[o++] = '[';
            inside = true;
            continue;
        }
        if (inside && re[i] == ']' && re[i - 1] != '\\') {
            out[o++] = ']';
            inside = false;
            continue;
        }
        if (re[i] == '\\' && i + 3 < len && re[i + 1] == 'p' && re[i + 2] == '{') {
            const char *close = strchr(re + i + 3, '}');
            if (close && (size_t)(close - re) <= i + 10) {
                size_t plen = (size_t)(close - re) - i + 1;
                size_t k;
                for (k = 0; k < N_UCAT; k++)
                    if (strlen(k_ucat[k].pat) == plen && memcmp(k_ucat[k].pat, re + i, plen) == 0) break;
                if (k < N_UCAT) {
                    if (!inside) out[o++] = '[';
                    out[o++] = (char)k_ucat[k].byte;
                    size_t al = strlen(k_ucat[k].ascii);
                    memcpy(out + o, k_ucat[k].ascii, al);
                    o += al;
                    if (!inside) out[o++] = ']';
                    i += plen - 1;
                    continue;
                }
            }
        }
        out[o++] = re[i];
    }
    out[o] = '\0';
    return out;
}

static bool is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

static int compile_split(tok_split *sp, const char *re, pl_err *err) {
    sp->re = NULL;
    if (strcmp(re, RE_GPT2) == 0) {
        sp->kind = TOK_SPLIT_GPT2;
        return PL_OK;
    }
    if (strcmp(re, RE_LLAMA3) == 0) {
        sp->kind = TOK_SPLIT_LLAMA3;
        return PL_OK;
    }
    if (strcmp(re, RE_CJK) == 0) {
        sp->kind = TOK_SPLIT_CJK;
        return PL_OK;
    }
    char *pattern;
    if (regex_has_ucat(re)) {
        sp->kind = TOK_SPLIT_COLLAPSED;
        pattern = collapse_regex(re);
        if (!pattern) return pl_fail(err, PL_ERR_NOMEM, "out of memory compiling pre-tokenizer regex");
    } else if (is_ascii(re)) {
        sp->kind = TOK_SPLIT_ASCII;
        pattern = strdup(re);
        if (!pattern) return pl_fail(err, PL_ERR_NOMEM, "out of memory compiling pre-tokenizer regex");
    } else {
        return pl_fail(err, PL_ERR_INTERNAL, "pre-tokenizer regex '%s' is not supported", re);
    }
    int ecode;
    PCRE2_SIZE eoff;
    sp->re = pcre2_compile((PCRE2_SPTR)pattern, strlen(pattern), 0, &ecode, &eoff, NULL);
    free(pattern);
    if (!sp->re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return pl_fail(err, PL_ERR_INTERNAL, "pre-tokenizer regex '%s' does not compile: %s", re, (char *)msg);
    }
    (void)pcre2_jit_compile(sp->re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    return PL_OK;
}

int tok_bpe_setup(pl_vocab *v, const char *pre, pl_err *err) {
    const pre_family *fam = NULL;
    for (size_t f = 0; f < sizeof k_pre_families / sizeof k_pre_families[0] && !fam; f++)
        for (size_t k = 0; k_pre_families[f].names[k]; k++)
            if (strcmp(k_pre_families[f].names[k], pre) == 0) {
                fam = &k_pre_families[f];
                break;
            }
    if (!fam) return pl_fail(err, PL_ERR_UNSUPPORTED, "unknown pre-tokenizer type: '%s'", pre);
    v->ignore_merges = fam->ignore_merges;
    v->add_bos = fam->add_bos;
    v->n_split = 0;
    for (size_t k = 0; k < TOK_MAX_SPLITS && fam->regex[k]; k++) {
        int rc = compile_split(&v->split[k], fam->regex[k], err);
        if (rc != PL_OK) return rc;
        v->n_split = (int)k + 1;
    }
    return PL_OK;
}

void tok_bpe_release(pl_vocab *v) {
    for (int k = 0; k < v->n_split; k++) {
        pcre2_code_free(v->split[k].re);
        v->split[k].re = NULL;
    }
    v->n_split = 0;
}

/* ---- splitting ----------------------------------------------------------- */

/* Lengths (in code points) of consecutive pieces of the text. */
typedef struct svec {
    size_t *v;
    size_t n, cap;
} svec;

static int svec_push(svec *s, size_t x) {
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        size_t bytes;
        if (!pl_mul_ok(ncap, sizeof *s->v, &bytes)) return PL_ERR_NOMEM;
        size_t *nv = realloc(s->v, bytes);
        if (!nv) return PL_ERR_NOMEM;
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = x;
    return PL_OK;
}

#define OUT_OF_RANGE 0xFFFFFFFFu

/* State of one hand-written matcher over the piece [ini, end). */
typedef struct piece_scan {
    const uint32_t *cpts;
    const uint16_t *flags;
    size_t ini, end, prev_end;
    svec *out;
    int rc;
} piece_scan;

static uint32_t scan_cpt(const piece_scan *s, size_t pos) {
    return pos >= s->ini && pos < s->end ? s->cpts[pos] : OUT_OF_RANGE;
}
static uint16_t scan_flags(const piece_scan *s, size_t pos) {
    return pos >= s->ini && pos < s->end ? s->flags[pos] : 0;
}

/* Ends the current word at `end`; returns its length. */
static size_t scan_emit(piece_scan *s, size_t end) {
    size_t len = end - s->prev_end;
    if (len > 0 && s->rc == PL_OK) s->rc = svec_push(s->out, len);
    s->prev_end = end;
    return len;
}

#define NOT_WLN (TOK_CPT_WHITESPACE | TOK_CPT_LETTER | TOK_CPT_NUMBER)

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void scan_gpt2(piece_scan *s) {
    for (size_t pos = s->ini; pos < s->end;) {
        const uint32_t cpt = scan_cpt(s, pos);
        const uint16_t flags = scan_flags(s, pos);
        if (cpt == '\'' && pos + 1 < s->end) {
            uint32_t next = scan_cpt(s, pos + 1);
            if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                pos += scan_emit(s, pos + 2);
                continue;
            }
            if (pos + 2 < s->end) {
                uint32_t next2 = scan_cpt(s, pos + 2);
                if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l')) {
                    pos += scan_emit(s, pos + 3);
                    continue;
                }
            }
        }
        uint16_t flags2 = cpt == ' ' ? scan_flags(s, pos + 1) : flags;
        if (flags2 & TOK_CPT_LETTER) {
            pos += cpt == ' ';
            while (flags2 & TOK_CPT_LETTER) flags2 = scan_flags(s, ++pos);
            scan_emit(s, pos);
            continue;
        }
        if (flags2 & TOK_CPT_NUMBER) {
            pos += cpt == ' ';
            while (flags2 & TOK_CPT_NUMBER) flags2 = scan_flags(s, ++pos);
            scan_emit(s, pos);
            continue;
        }
        if (!(flags2 & NOT_WLN) && flags2) {
            pos += cpt == ' ';
            while (!(flags2 & NOT_WLN) && flags2) flags2 = scan_flags(s, ++pos);
            scan_emit(s, pos);
            continue;
        }
        size_t n_ws = 0;
        while (scan_flags(s, pos + n_ws) & TOK_CPT_WHITESPACE) n_ws++;
        if (n_ws > 1 && scan_cpt(s, pos + n_ws) != OUT_OF_RANGE) { /* \s+(?!\S) */
            pos += n_ws - 1;
            scan_emit(s, pos);
            continue;
        }
        if (n_ws > 0) { /* \s+ */
            pos += n_ws;
            scan_emit(s, pos);
            continue;
        }
        scan_emit(s, ++pos); /* no rule matched: one code point */
    }
}

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 */
static void scan_llama3(piece_scan *s) {
    for (size_t pos = s->ini; pos < s->end;) {
        const uint32_t cpt = scan_cpt(s, pos);
        const uint16_t flags = scan_flags(s, pos);
        if (cpt == '\'' && pos + 1 < s->end) {
            uint32_t next = ascii_lower(scan_cpt(s, pos + 1));
            if (next == 's' || next == 't' || next == 'm' || next == 'd') {
                pos += scan_emit(s, pos + 2);
                continue;
            }
            if (pos + 2 < s->end) {
                uint32_t next2 = ascii_lower(scan_cpt(s, pos + 2));
                if ((next == 'r' && next2 == 'e') || (next == 'v' && next2 == 'e') || (next == 'l' && next2 == 'l')) {
                    pos += scan_emit(s, pos + 3);
                    continue;
                }
            }
        }
        if (!(cpt == '\r' || cpt == '\n' || (flags & TOK_CPT_NUMBER))) {
            if ((flags & TOK_CPT_LETTER) || (scan_flags(s, pos + 1) & TOK_CPT_LETTER)) {
                pos++;
                while (scan_flags(s, pos) & TOK_CPT_LETTER) pos++;
                scan_emit(s, pos);
                continue;
            }
        }
        if (flags & TOK_CPT_NUMBER) {
            size_t ini = pos;
            while (scan_flags(s, pos) & TOK_CPT_NUMBER) {
                if (++pos - ini >= 3) {
                    scan_emit(s, pos);
                    ini = pos;
                }
            }
            scan_emit(s, pos);
            continue;
        }
        uint16_t flags2 = cpt == ' ' ? scan_flags(s, pos + 1) : flags;
        if (!(flags2 & NOT_WLN) && flags) { /* llama.cpp tests the current code point's flags here */
            pos += cpt == ' ';
            while (!(flags2 & NOT_WLN) && flags2) flags2 = scan_flags(s, ++pos);
            uint32_t c2 = scan_cpt(s, pos);
            while (c2 == '\r' || c2 == '\n') c2 = scan_cpt(s, ++pos);
            scan_emit(s, pos);
            continue;
        }
        size_t n_ws = 0, last_rn = 0;
        while (scan_flags(s, pos + n_ws) & TOK_CPT_WHITESPACE) {
            uint32_t c2 = scan_cpt(s, pos + n_ws);
            if (c2 == '\r' || c2 == '\n') last_rn = pos + n_ws + 1;
            n_ws++;
        }
        if (last_rn > 0) { /* \s*[\r\n]+ */
            pos = last_rn;
            scan_emit(s, pos);
            continue;
        }
        if (n_ws > 1 && scan_cpt(s, pos + n_ws) != OUT_OF_RANGE) {
            pos += n_ws - 1;
            scan_emit(s, pos);
            continue;
        }
        if (n_ws > 0) {
            pos += n_ws;
            scan_emit(s, pos);
            continue;
        }
        scan_emit(s, ++pos);
    }
}

static bool cpt_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) || (c >= 0xAC00 && c <= 0xD7FF);
}

/* Runs of [一-龥ࠀ-一가-퟿]+ become pieces; the text between them too. */
static void scan_cjk(piece_scan *s) {
    size_t pos = s->ini;
    while (pos < s->end) {
        if (cpt_is_cjk(s->cpts[pos])) {
            scan_emit(s, pos);
            while (pos < s->end && cpt_is_cjk(s->cpts[pos])) pos++;
            scan_emit(s, pos);
        } else {
            pos++;
        }
    }
    scan_emit(s, s->end);
}

/* Applies a compiled regex to every piece of `subj` (one byte per code point). */
static int scan_pcre(const pcre2_code *re, const unsigned char *subj, const svec *in, svec *out, pl_err *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return pl_fail(err, PL_ERR_NOMEM, "out of memory for regex match data");
    int rc = PL_OK;
    size_t start = 0;
    for (size_t p = 0; p < in->n && rc == PL_OK; p++) {
        const size_t len = in->v[p];
        size_t pos = 0, last_end = 0;
        while (pos < len && rc == PL_OK) {
            int m = pcre2_match(re, subj + start, len, pos, 0, md, NULL);
            if (m == PCRE2_ERROR_NOMATCH) break;
            if (m < 0) {
                rc = pl_fail(err, PL_ERR_INTERNAL, "pre-tokenizer regex failed (PCRE2 error %d)", m);
                break;
            }
            const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (ov[1] <= ov[0]) { /* empty match: none of the patterns has one; step over it */
                pos = ov[0] + 1;
                continue;
            }
            if (ov[0] > last_end) rc = svec_push(out, ov[0] - last_end);
            if (rc == PL_OK) rc = svec_push(out, ov[1] - ov[0]);
            last_end = pos = ov[1];
        }
        if (rc == PL_OK && last_end < len) rc = svec_push(out, len - last_end);
        start += len;
    }
    pcre2_match_data_free(md);
    if (rc == PL_ERR_NOMEM) return pl_fail(err, rc, "out of memory splitting text");
    return rc;
}

/* ---- merging ------------------------------------------------------------- */

static int push_merge(const pl_vocab *v, tok_heap *heap, const tok_symbol *sym, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return PL_OK;
    int32_t rank = tok_merge_rank(v, sym[l].id, sym[r].id);
    if (rank < 0) return PL_OK;
    tok_bigram b = {.priority = -(double)rank, .left = l, .right = r, .left_n = sym[l].n, .right_n = sym[r].n};
    return tok_heap_push(heap, b);
}

/* Merges one byte-level-encoded word and appends its ids. */
static int bpe_word(const pl_vocab *v, const char *word, size_t wlen, tok_symbol *sym, tok_heap *heap, tok_ivec *out) {
    if (wlen == 0) return PL_OK;
    if (v->ignore_merges) {
        int32_t id = tok_lookup(v, word, wlen);
        if (id >= 0) return tok_ivec_push(out, id);
    }
    int32_t n = 0;
    for (size_t off = 0; off < wlen; n++) {
        size_t cl = tok_utf8_lead_len((unsigned char)word[off]);
        if (cl > wlen - off) cl = wlen - off;
        sym[n] = (tok_symbol){
            .off = (uint32_t)off, .n = (uint32_t)cl, .prev = n - 1, .next = -1, .id = tok_lookup(v, word + off, cl)};
        off += cl;
        if (off < wlen) sym[n].next = n + 1;
    }
    heap->n = 0;
    int rc = PL_OK;
    for (int32_t i = 1; i < n && rc == PL_OK; i++) rc = push_merge(v, heap, sym, i - 1, i);
    tok_bigram b;
    while (rc == PL_OK && tok_heap_pop(heap, &b)) {
        tok_symbol *ls = &sym[b.left], *rs = &sym[b.right];
        if (ls->n == 0 || rs->n == 0 || ls->n != b.left_n || rs->n != b.right_n || ls->next != b.right)
            continue; /* stale */
        ls->n += rs->n;
        rs->n = 0;
        ls->next = rs->next;
        if (rs->next >= 0) sym[rs->next].prev = b.left;
        ls->id = tok_lookup(v, word + ls->off, ls->n);
        rc = push_merge(v, heap, sym, ls->prev, b.left);
        if (rc == PL_OK) rc = push_merge(v, heap, sym, b.left, ls->next);
    }
    for (int32_t i = 0; i != -1 && rc == PL_OK; i = sym[i].next) {
        if (sym[i].n == 0) continue;
        if (sym[i].id >= 0) {
            rc = tok_ivec_push(out, sym[i].id);
            continue;
        }
        for (uint32_t k = 0; k < sym[i].n && rc == PL_OK; k++) { /* single bytes that are tokens */
            int32_t id = tok_lookup(v, word + sym[i].off + k, 1);
            if (id >= 0) rc = tok_ivec_push(out, id);
        }
    }
    return rc;
}

int tok_bpe_fragment(const pl_vocab *v, const char *text, size_t len, tok_ivec *out, pl_err *err) {
    if (len == 0) return PL_OK;
    int rc = PL_OK;
    uint32_t *cpts = NULL;
    uint16_t *flags = NULL;
    unsigned char *subj = NULL;
    char *word = NULL;
    tok_symbol *sym = NULL;
    tok_heap heap = {0};
    svec offs = {0}, next = {0};
    size_t bytes_cpts, bytes_word, bytes_sym;
    if (!pl_mul_ok(len, sizeof *cpts, &bytes_cpts) || !pl_mul_ok(len, 8, &bytes_word) ||
        !pl_mul_ok(len, 8 * sizeof *sym, &bytes_sym) || bytes_word > UINT32_MAX)
        return pl_fail(err, PL_ERR_RANGE, "text fragment of %zu bytes is too long to tokenize", len);
    cpts = malloc(bytes_cpts);
    flags = malloc(len * sizeof *flags);
    subj = malloc(len);
    if (!cpts || !flags || !subj) {
        rc = PL_ERR_NOMEM;
        goto done;
    }
    const size_t n = tok_utf8_decode(text, len, cpts);
    for (size_t i = 0; i < n; i++) flags[i] = tok_cpt_flags(cpts[i]);

    if ((rc = svec_push(&offs, n)) != PL_OK) goto done;
    for (int k = 0; k < v->n_split; k++) {
        const tok_split *sp = &v->split[k];
        next.n = 0;
        if (sp->kind == TOK_SPLIT_COLLAPSED || sp->kind == TOK_SPLIT_ASCII) {
            static const unsigned char cat_byte[9] = {0xD0, 0xD0, 0xD1, 0xD2, 0xD0, 0xD4, 0xD3, 0xD5, 0xD0};
            for (size_t i = 0; i < n; i++) {
                const uint32_t c = cpts[i];
                if (c < 128)
                    subj[i] = (unsigned char)c;
                else if (flags[i] & TOK_CPT_WHITESPACE)
                    subj[i] = 0x0B;
                else if (sp->kind == TOK_SPLIT_ASCII)
                    subj[i] = 0x80;
                else {
                    /* category bit 0x01..0x80 -> index 1..8: UNDEFINED, N, L, Z, M, P, S, C */
                    unsigned cat = flags[i] & TOK_CPT_CATEGORY_MASK, idx = 0;
                    while (cat) {
                        idx++;
                        cat >>= 1;
                    }
                    subj[i] = cat_byte[idx];
                }
            }
            rc = scan_pcre(sp->re, subj, &offs, &next, err);
            if (rc != PL_OK) goto done_msg;
        } else {
            piece_scan s = {.cpts = cpts, .flags = flags, .out = &next, .rc = PL_OK};
            size_t start = 0;
            for (size_t p = 0; p < offs.n && s.rc == PL_OK; p++) {
                s.ini = s.prev_end = start;
                s.end = start + offs.v[p];
                if (sp->kind == TOK_SPLIT_GPT2)
                    scan_gpt2(&s);
                else if (sp->kind == TOK_SPLIT_LLAMA3)
                    scan_llama3(&s);
                else
                    scan_cjk(&s);
                start = s.end;
            }
            if ((rc = s.rc) != PL_OK) goto done;
        }
        svec tmp = offs;
        offs = next;
        next = tmp;
    }

    size_t max_piece = 0;
    for (size_t p = 0; p < offs.n; p++)
        if (offs.v[p] > max_piece) max_piece = offs.v[p];
    word = malloc(max_piece * 8 + 1);
    sym = malloc((max_piece * 8 + 1) * sizeof *sym);
    if (!word || !sym) {
        rc = PL_ERR_NOMEM;
        goto done;
    }
    size_t start = 0;
    for (size_t p = 0; p < offs.n && rc == PL_OK; p++) {
        size_t wlen = 0;
        for (size_t i = start; i < start + offs.v[p]; i++) {
            char u8[4];
            size_t ul = tok_utf8_encode(cpts[i], u8);
            for (size_t k = 0; k < ul; k++) wlen += tok_utf8_encode(tok_byte_to_cpt((uint8_t)u8[k]), word + wlen);
        }
        start += offs.v[p];
        rc = bpe_word(v, word, wlen, sym, &heap, out);
    }
done:
    if (rc == PL_ERR_NOMEM) rc = pl_fail(err, rc, "out of memory tokenizing %zu bytes", len);
done_msg:
    free(cpts);
    free(flags);
    free(subj);
    free(word);
    free(sym);
    free(heap.v);
    free(offs.v);
    free(next.v);
    return rc;
}
