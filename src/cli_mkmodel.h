/* cli_mkmodel.h — the `probelogits mkmodel` subcommand (CLI only). */
#ifndef PL_CLI_MKMODEL_H
#define PL_CLI_MKMODEL_H

/* Runs `probelogits mkmodel ARGS...`; argv[0] is "mkmodel". Prints progress
 * and errors on stderr; returns the process exit status (0 ok, 1 failure,
 * 2 usage error). */
int cli_mkmodel(int argc, char **argv);

#endif
