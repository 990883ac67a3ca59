/* cli_run.c — the `probelogits run` subcommand (see cli_run.h). CLI edge:
 * this is the only enforcement file that prints. */
#include "cli_run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "classifier_proc.h"
#include "sandbox.h"
#include "supervisor.h"

typedef struct factory_call {
    pl_run_factory factory; /* user factory or NULL */
    void *arg;              /* its argument */
    pl_run_config cfg;      /* parsed options */
} factory_call;

static int substring_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *v) {
    (void)ctx;
    (void)cls;
    (void)len;
    memset(v, 0, sizeof *v);
    v->p_dangerous = NAN;
    int deny = strstr(text, "forbidden") || strstr(text, "/etc/shadow");
    v->decision = deny ? PL_DECISION_DENY : PL_DECISION_ALLOW;
    snprintf(v->rule, sizeof v->rule, "builtin:substring");
    snprintf(v->reason, sizeof v->reason, deny ? "test deny-list" : "not on the test deny-list");
    return 0;
}

static int child_init(void *arg, pl_decide_fn *fn, void **ctx, pl_err *err) {
    factory_call *f = arg;
    if (!f->factory) {
        *fn = substring_decide;
        *ctx = NULL;
        return 0;
    }
    return f->factory(f->arg, &f->cfg, fn, ctx, err);
}

static void usage(FILE *o) {
    fprintf(o, "usage: probelogits run -m MODEL --policy FILE [--snapshot FILE] [--audit FILE]\n"
               "                       [--workspace DIR] [--timeout-ms N] -- CMD [ARGS...]\n"
               "Runs CMD as a governed agent: every write, delete, rename, chmod, exec and\n"
               "connect is decided by the classifier and logged to the audit file\n"
               "(default ./probelogits-audit.jsonl). Needs root, Landlock and cgroup v2.\n");
}

int cli_run(int argc, char **argv, pl_run_factory factory, void *factory_arg) {
    factory_call fc = {.factory = factory, .arg = factory_arg};
    const char *audit_path = "probelogits-audit.jsonl", *workspace = NULL;
    int timeout_ms = 5000, i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!v) {
            fprintf(stderr, "probelogits run: %s needs a value (or missing `-- CMD`)\n", a);
            return 2;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            fc.cfg.model = v, i++;
        else if (!strcmp(a, "--policy"))
            fc.cfg.policy = v, i++;
        else if (!strcmp(a, "--snapshot"))
            fc.cfg.snapshot = v, i++;
        else if (!strcmp(a, "--audit"))
            audit_path = v, i++;
        else if (!strcmp(a, "--workspace"))
            workspace = v, i++;
        else if (!strcmp(a, "--timeout-ms")) {
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || t < 1 || t > 3600000) {
                fprintf(stderr, "probelogits run: bad --timeout-ms %s\n", v);
                return 2;
            }
            timeout_ms = (int)t;
            i++;
        } else {
            fprintf(stderr, "probelogits run: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "probelogits run: no command given (use -- CMD [ARGS...])\n");
        return 2;
    }
    if (factory && (!fc.cfg.model || !fc.cfg.policy)) {
        fprintf(stderr, "probelogits run: -m MODEL and --policy FILE are required\n");
        return 2;
    }
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    pl_audit *audit = NULL;
    pl_classifier *cl = NULL;
    pl_sandbox *sb = NULL;
    pl_supervisor *sup = NULL;
    int rc = 125;
    if (pl_audit_open(audit_path, &audit, &err) < 0) goto out;
    pl_classifier_opts co = {.init = child_init, .init_arg = &fc, .timeout_ms = timeout_ms};
    if (pl_classifier_start(NULL, NULL, &co, &cl, &err) < 0) goto out;
    pl_sandbox_opts so = {.workspace = workspace};
    if (pl_sandbox_spawn(&so, argv + i, &sb, &err) < 0) goto out;
    pl_supervisor_opts vo = {.decide = pl_classifier_decide, .decide_ctx = cl, .decide_threadsafe = 1, .audit = audit};
    if (pl_supervisor_start(sb, &vo, &sup, &err) < 0) goto out;
    signal(SIGINT, SIG_IGN); /* the agent shares our terminal and gets it */
    signal(SIGQUIT, SIG_IGN);
    rc = pl_supervisor_wait(sup);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
out:
    if (rc == 125 && errbuf[0]) fprintf(stderr, "probelogits run: %s\n", errbuf);
    pl_supervisor_free(sup);
    pl_sandbox_free(sb);
    pl_classifier_stop(cl);
    pl_audit_close(audit);
    return rc;
}
