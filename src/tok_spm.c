/* tok_spm.c — SentencePiece ("llama" tokenizer model) as llama.cpp runs it.
 *
 * The fragment arrives with spaces already escaped to "▁" (and the leading
 * "▁" of add_space_prefix). It is cut into characters by their UTF-8 lead
 * byte (no validation, clamped to the text end); every adjacent pair whose
 * concatenation is a vocabulary entry is queued with that entry's score,
 * and the best pair (highest score, then leftmost) is merged repeatedly.
 * Each final symbol is emitted as its token, or — when it is not one — as
 * its bytes' <0xNN> byte tokens (the unknown token where a byte token is
 * missing). */
#include <stdlib.h>

#include "probelogits.h"
#include "tok_internal.h"

static int spm_try_bigram(const pl_vocab *v, const char *text, const tok_symbol *sym, int32_t l, int32_t r,
                          tok_heap *heap) {
    if (l < 0 || r < 0) return PL_OK;
    const uint32_t size = sym[l].n + sym[r].n;
    const int32_t id = tok_lookup(v, text + sym[l].off, size);
    if (id < 0) return PL_OK;
    tok_bigram b = {.priority = (double)v->score[id], .left = l, .right = r, .size = size};
    return tok_heap_push(heap, b);
}

int tok_spm_fragment(const pl_vocab *v, const char *text, size_t len, tok_ivec *out, pl_err *err) {
    if (len == 0) return PL_OK;
    if (len > UINT32_MAX / 2)
        return pl_fail(err, PL_ERR_RANGE, "text fragment of %zu bytes is too long to tokenize", len);
    tok_symbol *sym = malloc(len * sizeof *sym);
    if (!sym) return pl_fail(err, PL_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
    int32_t n = 0;
    for (size_t off = 0; off < len; n++) {
        size_t cl = tok_utf8_lead_len((unsigned char)text[off]);
        if (cl > len - off) cl = len - off;
        sym[n] = (tok_symbol){.off = (uint32_t)off, .n = (uint32_t)cl, .prev = n - 1, .next = -1, .id = -1};
        off += cl;
        if (off < len) sym[n].next = n + 1;
    }
    tok_heap heap = {0};
    int rc = PL_OK;
    for (int32_t i = 1; i < n && rc == PL_OK; i++) rc = spm_try_bigram(v, text, sym, i - 1, i, &heap);
    tok_bigram b;
    while (rc == PL_OK && tok_heap_pop(&heap, &b)) {
        tok_symbol *ls = &sym[b.left], *rs = &sym[b.right];
        if (ls->n == 0 || rs->n == 0 || ls->n + rs->n != b.size) continue; /* one side already merged */
        ls->n += rs->n;
        rs->n = 0;
        ls->next = rs->next;
        if (rs->next >= 0) sym[rs->next].prev = b.left;
        rc = spm_try_bigram(v, text, sym, ls->prev, b.left, &heap);
        if (rc == PL_OK) rc = spm_try_bigram(v, text, sym, b.left, ls->next, &heap);
    }
    for (int32_t i = 0; i != -1 && rc == PL_OK; i = sym[i].next) {
        const int32_t id = tok_lookup(v, text + sym[i].off, sym[i].n);
        if (id >= 0) {
            rc = tok_ivec_push(out, id);
            continue;
        }
        for (uint32_t k = 0; k < sym[i].n && rc == PL_OK; k++) {
            int32_t bt = v->byte_token[(unsigned char)text[sym[i].off + k]];
            if (bt < 0) bt = v->unk;
            if (bt >= 0) rc = tok_ivec_push(out, bt);
        }
    }
    free(sym);
    free(heap.v);
    if (rc != PL_OK) return pl_fail(err, rc, "out of memory tokenizing %zu bytes", len);
    return PL_OK;
}
