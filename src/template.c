/* template.c — probe prompt rendering for the chat template families (see
 * template.h). The turn markers are the families' documented formats; the
 * BOS token is never written here (the tokenizer adds it per the model). */
#include "template.h"

#include <stdlib.h>
#include <string.h>

#include "probelogits.h"

static const char *const kind_names[] = {"none", "plain", "chatml", "llama3", "llama2", "mistral", "phi3"};

int template_from_name(const char *name, pl_template_kind *out) {
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0]; i++)
        if (name && strcmp(name, kind_names[i]) == 0) {
            *out = (pl_template_kind)i;
            return PL_OK;
        }
    return PL_ERR_ARG;
}

const char *template_name(pl_template_kind kind) {
    return (size_t)kind < sizeof kind_names / sizeof kind_names[0] ? kind_names[kind] : "?";
}

pl_template_kind template_detect(const char *t) {
    if (!t) return PL_TMPL_PLAIN;
    if (strstr(t, "<|im_start|>")) return PL_TMPL_CHATML;
    if (strstr(t, "<|start_header_id|>")) return PL_TMPL_LLAMA3;
    if (strstr(t, "<|assistant|>") && strstr(t, "<|end|>")) return PL_TMPL_PHI3;
    if (strstr(t, "<<SYS>>")) return PL_TMPL_LLAMA2;
    if (strstr(t, "[INST]")) return PL_TMPL_MISTRAL;
    return PL_TMPL_PLAIN;
}

int str_append(pl_str *s, const char *p, size_t n) {
    size_t need;
    if (!pl_add_ok(s->len, n, &need) || !pl_add_ok(need, 1, &need)) return PL_ERR_RANGE;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < need) {
            if (!pl_mul_ok(cap, 2, &cap)) return PL_ERR_RANGE;
        }
        char *np = realloc(s->ptr, cap);
        if (!np) return PL_ERR_NOMEM;
        s->ptr = np;
        s->cap = cap;
    }
    if (n) memcpy(s->ptr + s->len, p, n);
    s->len += n;
    s->ptr[s->len] = '\0';
    return PL_OK;
}

int str_appendz(pl_str *s, const char *p) { return str_append(s, p, strlen(p)); }

void str_free(pl_str *s) {
    free(s->ptr);
    *s = (pl_str){0};
}

/* Appends the NULL-terminated list of pieces. */
static int cat(pl_str *s, const char *const *pieces) {
    int rc = PL_OK;
    for (; *pieces && rc == PL_OK; pieces++) rc = str_appendz(s, *pieces);
    return rc;
}

int template_render(pl_template_kind kind, const char *sys, const char *user, const char *ans, pl_str *prefix,
                    pl_str *suffix) {
    const int has_sys = sys && sys[0];
    sys = sys ? sys : "";
    ans = ans ? ans : "";
    int rc;
    switch (kind) {
    case PL_TMPL_NONE: return str_appendz(suffix, user);
    case PL_TMPL_PLAIN:
        rc = has_sys ? cat(prefix, (const char *const[]){sys, "\n", NULL}) : PL_OK;
        return rc ? rc : cat(suffix, (const char *const[]){user, "\n", ans, NULL});
    case PL_TMPL_CHATML:
        rc = has_sys ? cat(prefix, (const char *const[]){"<|im_start|>system\n", sys, "<|im_end|>\n", NULL}) : PL_OK;
        if (!rc) rc = str_appendz(prefix, "<|im_start|>user\n");
        return rc ? rc : cat(suffix, (const char *const[]){user, "<|im_end|>\n<|im_start|>assistant\n", ans, NULL});
    case PL_TMPL_LLAMA3:
        rc = has_sys ? cat(prefix, (const char *const[]){"<|start_header_id|>system<|end_header_id|>\n\n", sys,
                                                         "<|eot_id|>", NULL})
                     : PL_OK;
        if (!rc) rc = str_appendz(prefix, "<|start_header_id|>user<|end_header_id|>\n\n");
        return rc ? rc
                  : cat(suffix, (const char *const[]){
                                    user, "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", ans, NULL});
    case PL_TMPL_LLAMA2:
        rc = has_sys ? cat(prefix, (const char *const[]){"[INST] <<SYS>>\n", sys, "\n<</SYS>>\n\n", NULL})
                     : str_appendz(prefix, "[INST] ");
        return rc ? rc : cat(suffix, (const char *const[]){user, " [/INST]", ans, NULL});
    case PL_TMPL_MISTRAL:
        rc =
            has_sys ? cat(prefix, (const char *const[]){"[INST] ", sys, "\n\n", NULL}) : str_appendz(prefix, "[INST] ");
        return rc ? rc : cat(suffix, (const char *const[]){user, " [/INST]", ans, NULL});
    case PL_TMPL_PHI3:
        rc = has_sys ? cat(prefix, (const char *const[]){"<|system|>\n", sys, "<|end|>\n", NULL}) : PL_OK;
        if (!rc) rc = str_appendz(prefix, "<|user|>\n");
        return rc ? rc : cat(suffix, (const char *const[]){user, "<|end|>\n<|assistant|>\n", ans, NULL});
    }
    return PL_ERR_ARG;
}
