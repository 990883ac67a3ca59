/* tok_internal.h — private declarations shared by the tokenizer sources:
 * tokenizer.c (vocabulary loading, special-token partition, the public
 * vocab_* API), tok_bpe.c (byte-level BPE: pre-tokenizer splits and merges),
 * tok_spm.c (SentencePiece bigram merging) and tok_unicode.c (llama.cpp's
 * Unicode category table and its lenient UTF-8 decoding).
 *
 * Nothing here is part of the library's interface. */
#ifndef PL_TOK_INTERNAL_H
#define PL_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- Unicode (tok_unicode.c) ------------------------------------------ */

/* Code point flags, as llama.cpp's unicode_cpt_flags: exactly one category
 * bit per code point below 0x110000, plus TOK_CPT_WHITESPACE for the 25
 * code points Python's `regex` \s matches. 0 means "outside the text". */
enum {
    TOK_CPT_UNDEFINED = 0x01,
    TOK_CPT_NUMBER = 0x02,
    TOK_CPT_LETTER = 0x04,
    TOK_CPT_SEPARATOR = 0x08,
    TOK_CPT_MARK = 0x10,
    TOK_CPT_PUNCT = 0x20,
    TOK_CPT_SYMBOL = 0x40,
    TOK_CPT_CONTROL = 0x80,
    TOK_CPT_CATEGORY_MASK = 0xFF,
    TOK_CPT_WHITESPACE = 0x100,
};

/* Flags of one code point (category | whitespace bit); UNDEFINED above U+10FFFF. */
uint16_t tok_cpt_flags(uint32_t cpt);

/* Byte length llama.cpp assumes for a sequence starting with byte c (from
 * its high nibble alone: 1, 2, 3 or 4; continuation bytes count as 1). */
size_t tok_utf8_lead_len(unsigned char c);

/* Decodes len bytes the way llama.cpp's unicode_cpts_from_utf8 does: a lead
 * byte with the right number of continuation bytes is decoded without
 * overlong/surrogate checks; anything else yields U+FFFD and skips one byte.
 * Sequences above U+10FFFF (on which llama.cpp throws) also yield U+FFFD.
 * out must hold len entries; returns the number of code points. */
size_t tok_utf8_decode(const char *s, size_t len, uint32_t *out);

/* Writes the UTF-8 form of cpt (<= 0x10FFFF, surrogates encoded as-is) into
 * out and returns its length (1..4). */
size_t tok_utf8_encode(uint32_t cpt, char out[4]);

/* GPT-2 byte-level mapping: byte -> printable code point (U+0021..U+0143),
 * and back (-1 for a code point outside the 256 mapped ones). */
uint32_t tok_byte_to_cpt(uint8_t b);
int tok_cpt_to_byte(uint32_t cpt);

/* ---- small growable arrays (tokenizer.c) ------------------------------ */

typedef struct tok_ivec {
    int32_t *v; /* token ids, malloc'ed */
    size_t n;   /* ids held */
    size_t cap; /* ids allocated */
} tok_ivec;

/* Appends x; PL_ERR_NOMEM on allocation failure. */
int tok_ivec_push(tok_ivec *vec, int32_t x);

/* Priority queue of candidate merges between adjacent symbols; pops the
 * highest priority first and, among equal priorities, the smallest left
 * index (the order of llama.cpp's llm_bigram_spm / llm_bigram_bpe queues). */
typedef struct tok_bigram {
    double priority;  /* SPM: token score; BPE: -merge rank */
    int32_t left;     /* symbol index of the left half */
    int32_t right;    /* symbol index of the right half */
    uint32_t size;    /* SPM: bytes of the merged text; BPE: unused */
    uint32_t left_n;  /* BPE: byte length of the left half when queued */
    uint32_t right_n; /* BPE: byte length of the right half when queued */
} tok_bigram;

typedef struct tok_heap {
    tok_bigram *v; /* binary heap, malloc'ed */
    size_t n;      /* entries held */
    size_t cap;    /* entries allocated */
} tok_heap;

int tok_heap_push(tok_heap *h, tok_bigram b);
/* Removes the top entry into *out; false when empty. */
bool tok_heap_pop(tok_heap *h, tok_bigram *out);

/* One symbol of a word being merged: a byte range of the word. */
typedef struct tok_symbol {
    uint32_t off; /* first byte in the word */
    uint32_t n;   /* bytes; 0 once merged into its left neighbour */
    int32_t prev; /* previous live symbol, -1 at the start */
    int32_t next; /* next live symbol, -1 at the end */
    int32_t id;   /* BPE: token id of the symbol's text, -1 if none */
} tok_symbol;

/* ---- the vocabulary ------------------------------------------------------ */

/* Token attributes (llama_token_attr bits). */
enum {
    TOK_ATTR_UNDEFINED = 0,
    TOK_ATTR_UNKNOWN = 1 << 0,
    TOK_ATTR_UNUSED = 1 << 1,
    TOK_ATTR_NORMAL = 1 << 2,
    TOK_ATTR_CONTROL = 1 << 3,
    TOK_ATTR_USER_DEFINED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 7,
    TOK_ATTR_RSTRIP = 1 << 8,
};

enum tok_model { TOK_MODEL_SPM = 0, TOK_MODEL_BPE = 1 };

/* How one pre-tokenizer regex is applied (see tok_bpe.c). */
enum tok_split_kind {
    TOK_SPLIT_GPT2,      /* llama.cpp's hand-written GPT-2 pattern */
    TOK_SPLIT_LLAMA3,    /* llama.cpp's hand-written Llama-3 pattern */
    TOK_SPLIT_COLLAPSED, /* PCRE2 over the category-collapsed text (\p{..} patterns) */
    TOK_SPLIT_ASCII,     /* PCRE2 over the text with non-ASCII folded (ASCII-only patterns) */
    TOK_SPLIT_CJK,       /* runs of [一-龥ࠀ-一가-퟿] */
};

#define TOK_MAX_SPLITS 6

typedef struct tok_split {
    enum tok_split_kind kind;
    pcre2_code *re; /* COLLAPSED / ASCII: compiled once at load, owned */
} tok_split;

struct pl_vocab {
    enum tok_model model;
    char model_name[8]; /* "gpt2" or "llama" */
    char *pre_name;     /* pre-tokenizer name as read ("default" if none), owned */
    int32_t n_tokens;   /* > 0 */

    const char **text;  /* [n_tokens] stored token text, borrowed from the gguf_file or arena */
    uint32_t *text_len; /* [n_tokens] bytes */
    float *score;       /* [n_tokens] SPM scores (0 when absent) */
    uint16_t *attr;     /* [n_tokens] TOK_ATTR_* bits */
    char *arena;        /* owned storage for renamed empty tokens ("[EMPTY_i]") */

    int32_t *hash; /* [hash_mask+1] open-addressing text -> id, -1 = empty */
    size_t hash_mask;

    uint64_t *merge_key; /* [merge_mask+1] (left id << 32 | right id), UINT64_MAX = empty */
    int32_t *merge_rank; /* [merge_mask+1] lowest rank of that pair */
    size_t merge_mask;   /* 0 when no merge table (SPM) */

    char *piece;         /* concatenated token_to_piece strings, owned */
    uint64_t *piece_off; /* [n_tokens+1] offsets into piece */

    int32_t *special; /* ids matched as text before tokenizing, longest text first */
    size_t n_special;

    int32_t bos, eos, unk;   /* -1 when none */
    bool add_bos, add_eos;   /* what PL_TOK_ADD_SPECIAL adds */
    bool add_space_prefix;   /* SPM: prefix "▁" to the first fragment and after specials */
    bool ignore_merges;      /* BPE llama3: a word that is a token is taken whole */
    int32_t byte_token[256]; /* SPM byte fallback <0xNN> ids, -1 if absent */

    tok_split split[TOK_MAX_SPLITS]; /* BPE pre-tokenizer regexes in order */
    int n_split;
};

/* Id of the token whose stored text is s[0..n), or -1. */
int32_t tok_lookup(const pl_vocab *v, const char *s, size_t n);

/* Rank of the merge (left, right), or -1. */
int32_t tok_merge_rank(const pl_vocab *v, int32_t left, int32_t right);

/* Sets v->split/n_split, ignore_merges and the default add_bos for the
 * pre-tokenizer `pre` (BPE); refuses unknown names. */
int tok_bpe_setup(pl_vocab *v, const char *pre, pl_err *err);
void tok_bpe_release(pl_vocab *v);

/* Tokenizes one raw-text fragment and appends the ids. */
int tok_bpe_fragment(const pl_vocab *v, const char *text, size_t len, tok_ivec *out, pl_err *err);
/* text is already space-escaped ("▁") and prefixed as llama.cpp does. */
int tok_spm_fragment(const pl_vocab *v, const char *text, size_t len, tok_ivec *out, pl_err *err);

#endif
