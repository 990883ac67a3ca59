/* cli_broker.c — the `probelogits broker` subcommand: serves the broker
 * protocol (broker.h) on a Unix socket, deciding every request with the
 * policy + model engine running in a classifier child process (the model is
 * loaded after fork and never shares memory with the broker). CLI edge: prints. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "broker.h"
#include "classifier_proc.h"
#include "cli_common.h"
#include "engine.h"
#include "policy.h"
#include "probelogits.h"

/* What the classifier child needs to build the engine. */
typedef struct broker_cfg {
    const char *model;    /* -m MODEL */
    const char *policy;   /* --policy FILE */
    const char *snapshot; /* --snapshot FILE or NULL */
} broker_cfg;

static pl_broker *g_broker; /* for the signal handler */

static void on_signal(int sig) {
    (void)sig;
    pl_broker_stop(g_broker); /* async-signal-safe */
}

/* Builds the engine-backed decider in the classifier child (lives as long as the child). */
static int broker_factory(void *arg, pl_decide_fn *fn, void **ctx, pl_err *err) {
    const broker_cfg *cfg = arg;
    return cli_engine_decider(cfg->model, cfg->policy, cfg->snapshot, fn, ctx, err);
}

static const char usage_broker[] =
    "usage: probelogits broker -m MODEL --policy FILE --socket PATH [--root DIR] [--audit FILE]\n"
    "                          [--uid UID]... [--snapshot FILE] [--timeout-ms N] [--max-conns N]\n"
    "                          [--socket-mode OCTAL]\n"
    "Serves the broker protocol (\"host functions\": read_file, write_file, delete, list_dir,\n"
    "exec, connect) on the Unix socket PATH. Every request is rendered as an action, decided\n"
    "by the policy rules and the model probe (in a separate classifier process), logged to\n"
    "the audit file (default ./probelogits-audit.jsonl) and only then performed. Paths are\n"
    "resolved beneath DIR (default: the current directory). Only peers whose uid is given\n"
    "with --uid may connect (default: our own uid). SIGINT/SIGTERM stop it cleanly.\n"
    "  --timeout-ms N     decision deadline per request (default 5000), also exec/connect\n"
    "  --max-conns N      concurrent connections (default 64)\n"
    "  --socket-mode M    socket file mode (default 600; e.g. 666 to let --uid peers in)\n";

/* Parses a decimal long in [lo, hi]; 0 or -1. */
static int parse_num(const char *s, long lo, long hi, int base, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, base);
    if (errno || !*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int cli_broker(int argc, char **argv) {
    broker_cfg cfg = {0};
    const char *sock = NULL, *root = ".", *audit_path = "probelogits-audit.jsonl";
    uid_t uids[64];
    size_t n_uids = 0;
    long timeout_ms = 5000, max_conns = 64, mode = 0600;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_broker, stdout);
            return 0;
        }
        if (!v) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s needs a value or is unknown", a);
            return cli_die_usage(usage_broker, msg);
        }
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            cfg.model = v;
        else if (!strcmp(a, "--policy"))
            cfg.policy = v;
        else if (!strcmp(a, "--snapshot"))
            cfg.snapshot = v;
        else if (!strcmp(a, "--socket"))
            sock = v;
        else if (!strcmp(a, "--root"))
            root = v;
        else if (!strcmp(a, "--audit"))
            audit_path = v;
        else if (!strcmp(a, "--uid")) {
            if (parse_num(v, 0, 0x7fffffffL, 10, &x) < 0) return cli_die_usage(usage_broker, "bad --uid");
            if (n_uids == sizeof uids / sizeof uids[0]) return cli_die_usage(usage_broker, "too many --uid");
            uids[n_uids++] = (uid_t)x;
        } else if (!strcmp(a, "--timeout-ms")) {
            if (parse_num(v, 1, 3600000, 10, &timeout_ms) < 0) return cli_die_usage(usage_broker, "bad --timeout-ms");
        } else if (!strcmp(a, "--max-conns")) {
            if (parse_num(v, 1, 100000, 10, &max_conns) < 0) return cli_die_usage(usage_broker, "bad --max-conns");
        } else if (!strcmp(a, "--socket-mode")) {
            if (parse_num(v, 0, 0777, 8, &mode) < 0 || mode == 0)
                return cli_die_usage(usage_broker, "bad --socket-mode");
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown option %s", a);
            return cli_die_usage(usage_broker, msg);
        }
    }
    if (!cfg.model || !cfg.policy || !sock)
        return cli_die_usage(usage_broker, "-m MODEL, --policy FILE and --socket PATH are required");

    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    pl_audit *audit = NULL;
    pl_classifier *cl = NULL;
    int status = 1;
    /* Fail early on a bad policy (the child would only report it later). */
    pl_policy *check = NULL;
    if (pl_policy_load(cfg.policy, &check, &err) < 0) goto out;
    pl_policy_free(check);
    if (pl_audit_open(audit_path, &audit, &err) < 0) goto out;
    /* The classifier is forked before any broker thread exists. */
    pl_classifier_opts co = {.init = broker_factory, .init_arg = &cfg, .timeout_ms = (int)timeout_ms};
    if (pl_classifier_start(NULL, NULL, &co, &cl, &err) < 0) goto out;
    pl_broker_opts bo = {.socket_path = sock,
                         .socket_mode = (unsigned)mode,
                         .root = root,
                         .allowed_uids = uids,
                         .n_allowed_uids = n_uids,
                         .decide = pl_classifier_decide,
                         .decide_ctx = cl,
                         .decide_threadsafe = 1,
                         .audit = audit,
                         .max_conns = (int)max_conns,
                         .request_timeout_ms = (int)(timeout_ms > 10000 ? timeout_ms : 10000)};
    if (pl_broker_create(&bo, &g_broker, &err) < 0) goto out;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "probelogits broker: listening on %s (root %s, audit %s)\n", sock, root, audit_path);
    status = pl_broker_serve(g_broker) < 0 ? 1 : 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    fprintf(stderr, "probelogits broker: stopped\n");
out:
    if (status && errbuf[0]) fprintf(stderr, "probelogits broker: %s\n", errbuf);
    pl_broker_free(g_broker);
    g_broker = NULL;
    pl_classifier_stop(cl);
    pl_audit_close(audit);
    return status;
}
