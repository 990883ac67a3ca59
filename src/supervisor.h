/* supervisor.h — seccomp user-notification supervisor for a sandboxed agent
 * (see sandbox.h). A pool of worker threads answers notifications out of
 * order: each copies the pointer arguments once, checks NOTIF_ID_VALID,
 * resolves paths in the agent's view, renders the action as text, asks the
 * decider, audits, and on allow performs the action itself (ADDFD for opens,
 * own parent-dir fds for unlink/rename/mkdir/chmod/..., pidfd_getfd for
 * connect). execve is decided on copied path+argv and continued only while
 * every other agent task is frozen (cgroup v2) and the bytes re-verified.
 * Anything unreadable, unknown or failing is denied. */
#ifndef PL_SUPERVISOR_H
#define PL_SUPERVISOR_H

#include "audit.h"
#include "decider.h"
#include "sandbox.h"
#include "util.h"

typedef struct pl_supervisor pl_supervisor;

typedef struct pl_supervisor_opts {
    pl_decide_fn decide;   /* the decider (e.g. pl_classifier_decide) */
    void *decide_ctx;      /* its context */
    int decide_threadsafe; /* 0: calls are serialised with a mutex (decider.h contract) */
    pl_audit *audit;       /* decision log, required (an audit failure denies) */
    int n_workers;         /* worker threads; 0 = 8 */
} pl_supervisor_opts;

typedef struct pl_supervisor_stats {
    unsigned long notifications; /* received */
    unsigned long decided;       /* decisions asked of the decider */
    unsigned long allowed;       /* allowed (incl. warn) */
    unsigned long denied;        /* denied (policy, error, timeout, audit failure) */
    unsigned long passthrough;   /* handled without a decision (read-only/ENOENT fast paths) */
} pl_supervisor_stats;

/* Starts the workers on sb->listener. sb must outlive the supervisor. */
int pl_supervisor_start(pl_sandbox *sb, const pl_supervisor_opts *opts, pl_supervisor **out, pl_err *err);

/* Waits for the agent's main process; returns its exit code (128+signal when
 * killed). Then kills what is left of the agent and stops the workers. */
int pl_supervisor_wait(pl_supervisor *s);

void pl_supervisor_get_stats(pl_supervisor *s, pl_supervisor_stats *out);

/* Stops the workers (if still running) and frees. NULL ok. */
void pl_supervisor_free(pl_supervisor *s);

#endif
