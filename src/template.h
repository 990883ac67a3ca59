/* template.h — chat templates for probe prompts. A probe prompt is
 *   [system turn with the policy text] [user turn: the action and the
 *   question] [assistant turn opened] [answer prefix]
 * rendered as two strings: the prefix (everything before the user's
 * content; identical for every action, evaluated once and cached) and the
 * suffix (the user's content onwards). The templates are the models' own
 * (from tokenizer.chat_template), reduced to this one shape. */
#ifndef PL_TEMPLATE_H
#define PL_TEMPLATE_H

#include <stddef.h>

#include "util.h"

typedef enum {
    PL_TMPL_NONE,    /* the text is the whole prompt, verbatim */
    PL_TMPL_PLAIN,   /* "{system}\n{user}\n{answer}" with no chat markup */
    PL_TMPL_CHATML,  /* <|im_start|>role\n...<|im_end|>\n (Qwen, SmolLM2) */
    PL_TMPL_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    PL_TMPL_LLAMA2,  /* [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] */
    PL_TMPL_MISTRAL, /* [INST] system\n\nuser [/INST] (no system role) */
    PL_TMPL_PHI3,    /* <|system|>\n...<|end|>\n<|user|>\n...<|end|>\n<|assistant|>\n */
} pl_template_kind;

/* Kind named name ("none", "plain", "chatml", "llama3", "llama2",
 * "mistral", "phi3"); PL_ERR_ARG for "auto" or unknown names. */
int template_from_name(const char *name, pl_template_kind *out);
const char *template_name(pl_template_kind kind);

/* Kind of a model's tokenizer.chat_template text (NULL: plain). */
pl_template_kind template_detect(const char *chat_template);

/* Growable byte string. */
typedef struct pl_str {
    char *ptr;  /* owned, NUL-terminated when non-NULL */
    size_t len; /* bytes, excluding the NUL */
    size_t cap; /* bytes allocated */
} pl_str;
int str_append(pl_str *s, const char *p, size_t n);
int str_appendz(pl_str *s, const char *p);
void str_free(pl_str *s);

/* Renders the probe prompt for kind as prefix + suffix (appended to the
 * given strings). user is the whole user message; system and answer_prefix
 * may be "" (a chat template with no system text opens no system turn).
 * For PL_TMPL_NONE the prefix is empty and the suffix is user verbatim. */
int template_render(pl_template_kind kind, const char *system, const char *user, const char *answer_prefix,
                    pl_str *prefix, pl_str *suffix);

#endif
