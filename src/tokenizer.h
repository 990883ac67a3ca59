/* tokenizer.h — the vocabulary of a GGUF model and its tokenizers, exactly
 * as llama.cpp tokenizes: byte-level BPE (tokenizer.ggml.model = "gpt2",
 * pre-tokenizers llama-bpe, qwen2, starcoder, smollm, gpt-2,
 * deepseek-coder) and SentencePiece ("llama": scores, byte fallback,
 * "▁" space prefix). Special-token text is recognised when asked.
 *
 * A pl_vocab borrows the token strings from its gguf_file, which must
 * outlive it. All functions are safe on arbitrary input bytes. */
#ifndef PL_TOKENIZER_H
#define PL_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "util.h"

typedef struct pl_vocab pl_vocab;

/* Reads tokenizer.ggml.* metadata (model, pre, tokens, scores, token_type,
 * merges, bos/eos/unk/pad ids, add_bos_token, add_eos_token,
 * add_space_prefix) and builds the lookup tables. Refuses unknown
 * tokenizer models / pre-tokenizers with a message naming them. */
int vocab_load(const gguf_file *f, pl_vocab **out, pl_err *err);
void vocab_free(pl_vocab *vocab);

/* flags: PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL (see probelogits.h).
 * Writes min(cap, needed) ids; *n_out = needed; PL_ERR_RANGE if cap < needed. */
int vocab_tokenize(const pl_vocab *vocab, const char *text, size_t len, int flags, int32_t *ids, size_t cap,
                   size_t *n_out, pl_err *err);

/* Bytes of one token as text (see pl_token_to_piece). Returns the full
 * length (may exceed cap; only cap bytes written) or PL_ERR_ARG. */
int vocab_token_to_piece(const pl_vocab *vocab, int32_t id, char *buf, size_t cap);

/* Id of the vocabulary entry that the plain text bytes text[0..len) stand
 * for (O(1) hash lookup), or -1 if none. Takes text as it appears in a
 * prompt (" Yes"), not the stored form ("ĠYes"):
 *   1. a control / user-defined / unknown token whose stored text is
 *      exactly text (these render verbatim: "<|im_start|>", "<s>");
 *   2. else the entry whose stored text is text in the vocabulary's
 *      encoding: byte-level BPE maps every byte to its GPT-2 code point
 *      (" Yes" -> "ĠYes"); SentencePiece turns ' ' into "▁" (" Yes" ->
 *      "▁Yes"; a literal "▁" is kept);
 *   3. else, SentencePiece only, a single byte's <0xNN> byte token.
 * So text_to_id(piece(id)) == id for every token whose piece is unique. */
int32_t vocab_text_to_id(const pl_vocab *vocab, const char *text, size_t len);

int32_t vocab_n_tokens(const pl_vocab *vocab);
int32_t vocab_bos(const pl_vocab *vocab); /* -1 if none */
int32_t vocab_eos(const pl_vocab *vocab); /* -1 if none */
bool vocab_add_bos(const pl_vocab *vocab);
/* "gpt2" or "llama" and the pre-tokenizer name ("default" for SPM). */
const char *vocab_model_name(const pl_vocab *vocab);
const char *vocab_pre_name(const pl_vocab *vocab);

#endif
