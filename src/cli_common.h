/* cli_common.h — helpers shared by the CLI's command files (CLI only). */
#ifndef PL_CLI_COMMON_H
#define PL_CLI_COMMON_H

#include <stddef.h>

#include "decider.h"
#include "util.h"

/* Prints msg (if any) and the usage text to stderr; returns exit status 2. */
int cli_die_usage(const char *usage, const char *msg);
/* The text of an argument, or all of stdin (byte-exact) for "-" or NULL. */
int cli_read_text(const char *arg, char **text, size_t *len);

int cli_probe(int argc, char **argv);
int cli_classify(int argc, char **argv);
int cli_snapshot(int argc, char **argv);
int cli_bench(int argc, char **argv);
/* Loads policy + model and builds the decision engine (for a classifier
 * child process: the objects live as long as the process). */
int cli_engine_decider(const char *model, const char *policy, const char *snapshot, pl_decide_fn *fn, void **ctx,
                       pl_err *err);
/* `probelogits run` with the model-backed decision engine. */
int cli_run_governed(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_broker(int argc, char **argv); /* `broker`: serves the broker protocol (broker.h) */
int cli_audit(int argc, char **argv);  /* `audit verify FILE`: checks an audit log's hash chain */

#endif
