/* decider.h — the contract between enforcement (supervisor, broker) and the
 * decision engine (policy rules + calibrated probe). Enforcement renders an
 * action as text with a class and asks; it never calls the probe or the
 * kernels directly. A decider is called from one thread at a time. */
#ifndef PL_DECIDER_H
#define PL_DECIDER_H

#include <stddef.h>

#include "policy.h"

typedef struct pl_verdict {
    pl_decision decision; /* ALLOW, WARN (allowed and flagged) or DENY */
    double p_dangerous;   /* calibrated probability, NaN when a rule or an error decided */
    double alpha;         /* calibration strength the probe used; meaningful only when p_dangerous is not NaN */
    double latency_ms;    /* time spent deciding */
    char rule[128];       /* "policy.yaml:12" when a deterministic rule decided, else "" */
    char reason[256];     /* short human-readable reason (rule reason, "probe", "timeout", error text) */
} pl_verdict;

/* Decides one action. cls is a policy class name ("exec", "file_write",
 * "file_delete", "network", ...), text the rendered action. Must fill *out
 * and return 0, or return a negative status (the caller then denies). */
typedef int (*pl_decide_fn)(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *out);

#endif
