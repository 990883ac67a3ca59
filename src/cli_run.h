/* cli_run.h — `probelogits run`: parses the options, then runs the command as
 * a governed agent (sandbox + supervisor + classifier process + audit log).
 * The decider is built inside the classifier child by a factory, so the
 * model is loaded after fork and never shares memory with the supervisor. */
#ifndef PL_CLI_RUN_H
#define PL_CLI_RUN_H

#include "decider.h"
#include "util.h"

typedef struct pl_run_config {
    const char *model;    /* -m MODEL */
    const char *policy;   /* --policy FILE */
    const char *snapshot; /* --snapshot FILE, may be NULL */
} pl_run_config;

/* Builds the decider in the classifier child; returns 0 or a negative status. */
typedef int (*pl_run_factory)(void *arg, const pl_run_config *cfg, pl_decide_fn *fn, void **ctx, pl_err *err);

/* argv[0] is "run". factory NULL = a substring test decider (denies text
 * containing "forbidden" or "/etc/shadow"). Returns the agent's exit status,
 * or 125 when the agent could not be started governed, 2 on usage errors. */
int cli_run(int argc, char **argv, pl_run_factory factory, void *factory_arg);

#endif
