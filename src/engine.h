/* engine.h — the decision engine: a policy, a model session and a probe
 * turned into allow / warn / deny verdicts. Order of evaluation for an
 * action of class C with text T:
 *   1. deterministic policy rules (deny rules win over allow rules);
 *   2. the decision cache (same class and text => same verdict);
 *   3. the calibrated probe with C's question, alpha and thresholds.
 * Any error, a degenerate probe or an unknown class => DENY (fail closed).
 * pl_engine_decide matches pl_decide_fn (decider.h), so the supervisor and
 * the broker call it without knowing about models. Not thread-safe: one
 * caller at a time (the classifier process serialises requests). */
#ifndef PL_ENGINE_H
#define PL_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "decider.h"
#include "policy.h"
#include "probelogits.h"

typedef struct pl_engine pl_engine;

/* Builds the probe from the policy on a new session of model (n_threads,
 * n_ctx; 0 = a default). With snapshot != NULL the prefix and calibration
 * are loaded from that file instead of evaluated (it must match the model
 * and the policy). The policy and the model must outlive the engine. */
int pl_engine_create(pl_model *model, const pl_policy *policy, int n_threads, int32_t n_ctx, const char *snapshot,
                     pl_engine **out, pl_err *err);
void pl_engine_free(pl_engine *e);

/* The decision for one action (see the order above). Returns 0 with *out
 * filled, or a negative status with out->decision = DENY and a reason. */
int pl_engine_decide(void *engine, const char *cls, const char *text, size_t len, pl_verdict *out);

/* Full probe result of the last probe-decided call (NULL if none). */
const pl_probe_result *pl_engine_last_probe(const pl_engine *e);

int pl_engine_save_snapshot(const pl_engine *e, const char *path, pl_err *err);
const pl_probe *pl_engine_probe(const pl_engine *e);

#endif
