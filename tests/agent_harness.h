/* agent_harness.h — scaffolding shared by the enforcement tests
 * (test_supervisor.c, test_enforce.c): the scratch workspace and audit log,
 * the sandbox + supervisor runner, workspace paths, and the check macro for
 * code that runs inside the agent. The including file defines test_decide
 * (its stand-in for the model) and may set g_noexec_ws before a run.
 * Include once per test program, after testlib.h. */
#ifndef PL_AGENT_HARNESS_H
#define PL_AGENT_HARNESS_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "sandbox.h"
#include "supervisor.h"

static char ws[64];                    /* the agent's workspace (mkdtemp) */
static char audit_path[96];            /* audit log, on tmpfs */
static pl_audit *audit;                /* open on audit_path */
static char deny_port[32];             /* ":PORT" that test_decide denies, or "" */
static pl_supervisor_stats last_stats; /* of the last run_agent_with */
static int g_noexec_ws;                /* mount the workspace noexec in the next runs */

static int test_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *v);

/* Runs fn(arg), or the program argv when fn is NULL, in the sandbox under a
 * supervisor deciding with dfn; returns the agent's exit code (128 + signal
 * when killed), -1 if it did not start. */
static int run_sandboxed(int (*fn)(void *), void *arg, char *const argv[], pl_decide_fn dfn, void *dctx) {
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    pl_sandbox_opts o = {.workspace = ws, .child_fn = fn, .child_arg = arg, .noexec_workspace = g_noexec_ws};
    pl_sandbox *sb;
    if (pl_sandbox_spawn(&o, fn ? NULL : argv, &sb, &err) < 0) {
        fprintf(stderr, "spawn: %s\n", errbuf);
        return -1;
    }
    pl_supervisor_opts so = {.decide = dfn, .decide_ctx = dctx, .decide_threadsafe = 1, .audit = audit, .n_workers = 4};
    pl_supervisor *s;
    if (pl_supervisor_start(sb, &so, &s, &err) < 0) {
        fprintf(stderr, "supervisor: %s\n", errbuf);
        pl_sandbox_free(sb);
        return -1;
    }
    int rc = pl_supervisor_wait(s);
    pl_supervisor_get_stats(s, &last_stats);
    pl_supervisor_free(s);
    pl_sandbox_free(sb);
    return rc;
}
static int run_agent_with(int (*fn)(void *), void *arg, pl_decide_fn dfn, void *dctx) {
    return run_sandboxed(fn, arg, NULL, dfn, dctx);
}
static int run_agent(int (*fn)(void *), void *arg) { return run_agent_with(fn, arg, test_decide, NULL); }

/* out (256 bytes) = the workspace path of name. */
static void wpath(char *out, const char *name) { snprintf(out, 256, "%s/%s", ws, name); }
static int exists(const char *name) {
    char p[256];
    wpath(p, name);
    return access(p, F_OK) == 0;
}

/* Forks a supervisor process that runs agent under dfn and then only
 * waits, so that the test can kill it and watch what becomes of the agent.
 * This process becomes a child subreaper (the agent is reparented here).
 * Returns the supervisor's pid, or -1; *agent_pid and cg (PATH_MAX bytes,
 * the agent's cgroup) are filled from what the supervisor reports. */
static pid_t start_doomed_supervisor(int (*agent)(void *), pl_decide_fn dfn, int *agent_pid, char *cg) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    *agent_pid = 0;
    cg[0] = '\0';
    int pp[2];
    if (pipe(pp) != 0) return -1;
    const pid_t sup = fork();
    if (sup == 0) {
        close(pp[0]);
        char errbuf[512];
        pl_err err = {errbuf, sizeof errbuf};
        pl_sandbox_opts o = {.workspace = ws, .child_fn = agent};
        pl_sandbox *sb;
        if (pl_sandbox_spawn(&o, NULL, &sb, &err) < 0) _exit(1);
        pl_supervisor_opts so = {.decide = dfn, .decide_threadsafe = 1, .audit = audit, .n_workers = 2};
        pl_supervisor *s;
        if (pl_supervisor_start(sb, &so, &s, &err) < 0) _exit(1);
        dprintf(pp[1], "%d %s\n", (int)sb->pid, sb->cgroup);
        for (;;) pause();
    }
    close(pp[1]);
    char line[PATH_MAX + 32] = "";
    FILE *pf = fdopen(pp[0], "r");
    if (pf && fgets(line, sizeof line, pf)) sscanf(line, "%d %4095s", agent_pid, cg);
    if (pf)
        fclose(pf);
    else
        close(pp[0]);
    return sup;
}

/* Kills the supervisor sup with SIGKILL and waits up to 3 s for the agent
 * to end; returns the agent's wait status, or -1 when it is still alive. */
static int kill_supervisor(pid_t sup, int agent_pid) {
    kill(sup, SIGKILL);
    waitpid(sup, NULL, 0);
    int st = 0;
    pid_t w = -1;
    for (int i = 0; i < 300 && w != agent_pid; i++) {
        w = waitpid(agent_pid, &st, WNOHANG);
        if (w != agent_pid) usleep(10000);
    }
    return w == agent_pid ? st : -1;
}

/* A check inside the agent: reports on stderr and counts into the agent
 * function's local `fails` (its exit code). */
#define ACHECK(cond)                                                                                                   \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            dprintf(2, "agent FAIL line %d: %s (errno %d %s)\n", __LINE__, #cond, errno, strerror(errno));             \
            fails++;                                                                                                   \
        }                                                                                                              \
    } while (0)

#endif
