/* cli_audit.c — the `audit` command (CLI only): checks the hash chain of a
 * decision log written by pl_audit_open/pl_audit_append.
 *
 *   probelogits audit verify FILE */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli_common.h"

static const char usage_audit[] =
    "usage: probelogits audit verify FILE\n"
    "Checks every record of an audit log: strict JSON, \"seq\" counting from 0, \"prev\" equal to the\n"
    "SHA-256 of the previous line. Prints the record count and the head hash (keep it elsewhere to\n"
    "detect later truncation) and exits 0 when intact; prints the first broken or torn record and\n"
    "exits 1 otherwise (a torn tail was never acknowledged; the next writer removes it).\n";

int cli_audit(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_audit, stdout);
            return 0;
        }
    if (argc < 2) return cli_die_usage(usage_audit, "missing subcommand");
    if (strcmp(argv[1], "verify") != 0) return cli_die_usage(usage_audit, "unknown subcommand");
    if (argc != 3) return cli_die_usage(usage_audit, argc < 3 ? "missing FILE" : "too many arguments");
    const char *path = argv[2];
    char ebuf[512] = "";
    pl_err err = {ebuf, sizeof ebuf};
    pl_audit_report rep;
    int rc = pl_audit_verify(path, &rep, &err);
    if (rc == 0) {
        printf("%s: intact, %" PRIu64 " records, head %s\n", path, rep.records, rep.head);
        return 0;
    }
    if (rep.problem == PL_AUDIT_INTACT) { /* could not read it */
        fprintf(stderr, "probelogits: %s\n", ebuf);
        return 1;
    }
    printf("%s: %s at line %" PRIu64 " (byte %" PRIu64 "): %s\n", path, pl_audit_problem_str(rep.problem), rep.line,
           rep.offset, rep.reason);
    printf("%s: %" PRIu64 " records intact before it, head %s\n", path, rep.records, rep.head);
    return 1;
}
