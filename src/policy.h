/* policy.h — the governance policy: a human-edited YAML file (libyaml) that
 * says how actions are probed and how probabilities become decisions.
 *
 * Example (every key optional except where noted):
 *
 *   version: 1
 *   template: auto            # auto | chatml | llama3 | llama2 | mistral | phi3 | plain | none
 *   system: |                 # the policy text, evaluated once as the cached prefix
 *     You are a safety monitor for an AI agent ...
 *   question: "Is this action dangerous? Answer Yes or No."
 *   answer_prefix: ""         # text after the opened assistant turn
 *   labels: [Yes, No]         # the first label is the positive ("dangerous") one
 *   alpha: 0.8                # calibration strength
 *   deny: 0.90                # deny when p_dangerous > deny
 *   warn: 0.70                # warn when warn < p_dangerous <= deny
 *   content_free: ["N/A", "", "[MASK]", "null", "none", "...", "?"]
 *   default_class: exec
 *   classes:
 *     exec:        {alpha: 1.0, question: "Is running this command dangerous? Answer Yes or No."}
 *     file_delete: {deny: 0.8, warn: 0.5}
 *     network:     {}
 *   rules:                    # deterministic, checked before the probe
 *     - {decision: deny,  class: exec, match: 'rm\s+-rf\s+/', reason: "recursive delete of /"}
 *     - {decision: allow, match: '^ls( |$)'}
 *
 * Rule semantics: `match` is a PCRE2 regex (UTF-8) searched in the action
 * text; `class` restricts a rule to one class (absent = any). Every matching
 * deny rule wins over every allow rule; otherwise the first matching allow
 * rule decides; otherwise the probe decides. A regex match error (match
 * or heap limit, out of memory) counts as a match for deny rules and as no
 * match for allow rules: errors fail closed.
 *
 * Every malformed input is an error with file, line and reason:
 * unknown keys, wrong types, out-of-range numbers (alpha in [0, 4],
 * 0 <= warn <= deny <= 1), bad regexes, duplicate classes, fewer than two
 * labels, unknown template names, invalid UTF-8. */
#ifndef PL_POLICY_H
#define PL_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define PL_POLICY_MAX_LABELS 16

typedef enum { PL_DECISION_ALLOW = 0, PL_DECISION_WARN = 1, PL_DECISION_DENY = 2 } pl_decision;

/* Probe wording and thresholds of one action class (inherited from the
 * policy's top level where the class does not set them). */
typedef struct pl_policy_class {
    char *name;        /* owned, e.g. "exec" */
    char *question;    /* owned, never NULL after load (inherited) */
    double alpha;      /* calibration strength */
    double deny, warn; /* thresholds on calibrated P(positive) */
} pl_policy_class;

typedef struct pl_policy_rule {
    pl_decision decision; /* ALLOW or DENY (WARN not allowed for rules) */
    char *cls;            /* owned class name or NULL = any class */
    char *pattern;        /* owned regex source */
    char *reason;         /* owned, may be NULL */
    void *re;             /* compiled pcre2_code*, owned */
    int line;             /* line in the file, for messages and audit */
} pl_policy_rule;

typedef struct pl_policy {
    char *path;                         /* owned, as given to load ("<memory>" for buffers) */
    char *template_name;                /* owned, "auto" by default */
    char *system;                       /* owned, may be "" */
    char *answer_prefix;                /* owned, may be "" */
    char *labels[PL_POLICY_MAX_LABELS]; /* owned, n_labels >= 2 */
    int n_labels;
    char **content_free;      /* owned array of owned strings */
    int n_content_free;       /* default 7 */
    char *default_class;      /* owned; a name present in classes */
    pl_policy_class *classes; /* owned, n_classes >= 1 (a "default" class when none given) */
    int n_classes;
    pl_policy_rule *rules; /* owned */
    int n_rules;
} pl_policy;

/* Parses a policy file / buffer. On error returns a negative status with
 * "FILE:LINE: reason" in err. */
int pl_policy_load(const char *path, pl_policy **out, pl_err *err);
int pl_policy_parse(const char *text, size_t len, const char *name, pl_policy **out, pl_err *err);
void pl_policy_free(pl_policy *p);

/* Built-in default policy (a sensible safety monitor prompt, Yes/No labels,
 * alpha 0.8, deny 0.90, warn 0.70, seven content-free inputs, classes exec,
 * file_write, file_delete, file_read, network, credential_read). */
int pl_policy_default(pl_policy **out, pl_err *err);

/* The class named cls, or the default class when cls is NULL; NULL when absent. */
const pl_policy_class *pl_policy_class_find(const pl_policy *p, const char *cls);

/* Deterministic rules for (cls, action): returns the deciding rule (deny rules
 * first, then the first allow rule) or NULL when no rule matches. */
const pl_policy_rule *pl_policy_match(const pl_policy *p, const char *cls, const char *action, size_t len);

/* Graded decision for a calibrated probability. NaN => DENY (fail closed). */
pl_decision pl_policy_grade(const pl_policy_class *c, double p_positive);
const char *pl_decision_name(pl_decision d);

/* 64-bit hash of the semantic content (for snapshot identity). */
unsigned long long pl_policy_hash(const pl_policy *p);

#endif
