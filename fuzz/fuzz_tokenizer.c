/* fuzz_tokenizer.c — libFuzzer entry point for the tokenizer. The
 * vocabularies are loaded once: $PL_FUZZ_VOCAB (one GGUF path) or else the
 * fixture vocabularies below (paths relative to the project root). The first
 * input byte picks the flags (bits 0-1) and the vocabulary (bits 2-4); the
 * rest is tokenized, every id is turned back into its piece, and the text is
 * looked up with vocab_text_to_id. A first byte of 0xFF instead parses the
 * rest as a GGUF file and loads its vocabulary (malformed metadata). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"
#include "probelogits.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_VOCABS 4

static const char *const k_default_vocabs[MAX_VOCABS] = {
    "../shared/fixtures/vocab/ggml-vocab-llama-bpe.gguf",
    "../shared/fixtures/vocab/ggml-vocab-llama-spm.gguf",
    "../shared/fixtures/vocab/ggml-vocab-qwen2.gguf",
    "../shared/fixtures/vocab/ggml-vocab-deepseek-coder.gguf",
};

static gguf_file *g_files[MAX_VOCABS];
static pl_vocab *g_vocabs[MAX_VOCABS];
static int g_n_vocabs = -1;

static void load_vocabs_once(void) {
    if (g_n_vocabs >= 0) return;
    g_n_vocabs = 0;
    const char *env = getenv("PL_FUZZ_VOCAB");
    for (int i = 0; i < MAX_VOCABS; i++) {
        const char *path = env ? (i == 0 ? env : NULL) : k_default_vocabs[i];
        if (!path) break;
        gguf_file *f = NULL;
        pl_vocab *v = NULL;
        if (gguf_open(path, &f, NULL) != PL_OK) continue;
        if (vocab_load(f, &v, NULL) != PL_OK) {
            gguf_close(f);
            continue;
        }
        g_files[g_n_vocabs] = f;
        g_vocabs[g_n_vocabs++] = v;
    }
}

static void fuzz_vocab_metadata(const uint8_t *data, size_t size) {
    char msg[256];
    pl_err err = {msg, sizeof msg};
    gguf_file *f = NULL;
    pl_vocab *v = NULL;
    if (gguf_open_memory(data, size, &f, &err) != PL_OK) return;
    if (vocab_load(f, &v, &err) == PL_OK) {
        int32_t ids[64];
        size_t n = 0;
        vocab_tokenize(v, "Hello world <s>", 15, PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, ids, 64, &n, &err);
        for (size_t i = 0; i < n && i < 64; i++) vocab_token_to_piece(v, ids[i], msg, sizeof msg);
        vocab_free(v);
    }
    gguf_close(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (data[0] == 0xFF) {
        fuzz_vocab_metadata(data + 1, size - 1);
        return 0;
    }
    load_vocabs_once();
    if (g_n_vocabs == 0) return 0;
    const pl_vocab *v = g_vocabs[(data[0] >> 2) % g_n_vocabs];
    const int flags = data[0] & 3;
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;

    char msg[256];
    pl_err err = {msg, sizeof msg};
    size_t need = 0;
    int rc = vocab_tokenize(v, text, len, flags, NULL, 0, &need, &err);
    if (rc != PL_OK && rc != PL_ERR_RANGE) return 0;
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    if (!ids) return 0;
    size_t got = 0;
    rc = vocab_tokenize(v, text, len, flags, ids, need, &got, &err);
    if (rc != PL_OK || got != need) abort(); /* the second call must succeed with the size the first reported */
    char piece[64];
    for (size_t i = 0; i < got; i++)
        if (vocab_token_to_piece(v, ids[i], piece, sizeof piece) < 0) abort(); /* every produced id is valid */
    free(ids);
    (void)vocab_text_to_id(v, text, len);
    return 0;
}
