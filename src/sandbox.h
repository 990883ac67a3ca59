/* sandbox.h — launcher of a governed agent: forks it into a fresh cgroup v2
 * (for freezing and killing), drops it to a dedicated uid/gid (or a user
 * namespace when not root), sets no_new_privs and PDEATHSIG, closes every
 * inherited fd above 2, applies a Landlock write/TCP/signal envelope and
 * finally a seccomp filter whose user-notification listener is handed to the
 * caller. As root the agent also gets a private mount namespace in which the
 * agent-writable temporary roots (/tmp, /var/tmp, /dev/shm, and with
 * noexec_workspace the workspace too) are bind-mounted noexec,nosuid,nodev,
 * so neither execve nor the dynamic loader can run code written there. A
 * watchdog process holds a copy of the listener and kills the agent's cgroup
 * before the last listener reference goes away if the supervisor dies, so
 * the agent never runs a line after its supervisor's death. Every step is
 * mandatory: if one fails the agent never runs. */
#ifndef PL_SANDBOX_H
#define PL_SANDBOX_H

#include <limits.h>
#include <sys/types.h>

#include "util.h"

#define PL_SANDBOX_MAX_ROOTS 16

typedef struct pl_sandbox_opts {
    const char *workspace;          /* writable root; NULL = the current directory */
    const char *const *extra_write; /* NULL-terminated extra writable dirs, or NULL */
    uid_t uid;                      /* agent uid when started as root (0 = default 65534) */
    gid_t gid;                      /* agent gid when started as root (0 = default 65534) */
    int noexec_workspace;           /* 1: also mount the workspace and extra roots noexec (root only) */
    int (*child_fn)(void *arg);     /* test hook: run this in the sandboxed child instead of execvp */
    void *child_arg;                /* argument of child_fn */
} pl_sandbox_opts;

typedef struct pl_sandbox {
    pid_t pid;             /* the agent (a child of the caller; reap it with waitpid) */
    int listener;          /* seccomp user-notification fd, owned */
    uid_t uid;             /* agent uid as seen from the supervisor */
    gid_t gid;             /* agent gid as seen from the supervisor */
    int drop_creds;        /* 1 when supervisor threads must switch fsuid/fsgid to uid/gid */
    int landlock_abi;      /* probed Landlock ABI version (>= 1) */
    char cgroup[PATH_MAX]; /* the agent's cgroup v2 directory (created, removed on free) */
    int cg_freeze_fd;      /* cgroup.freeze opened for write */
    int cg_kill_fd;        /* cgroup.kill opened for write, -1 when the kernel lacks it */
    int n_roots;           /* writable roots (real paths, no trailing slash) */
    char roots[PL_SANDBOX_MAX_ROOTS][PATH_MAX];
    unsigned long root_mflags[PL_SANDBOX_MAX_ROOTS]; /* MS_* flags of each root's mount before the agent ns */
    int root_noexec[PL_SANDBOX_MAX_ROOTS];           /* 1: bound noexec,nosuid,nodev in the agent's mount ns */
    int mount_ns;                                    /* 1 when the agent runs in its own mount namespace (root only) */
    pid_t watchdog;  /* holds a listener copy; kills the cgroup when the supervisor dies, -1 none */
    int watchdog_fd; /* write end of the watchdog's lifeline pipe, -1 none */
} pl_sandbox;

/* Spawns argv[0] (PATH search) or opts->child_fn inside the sandbox. The
 * agent's execve is itself governed, so start a supervisor on sb->listener
 * right after this returns. */
int pl_sandbox_spawn(const pl_sandbox_opts *opts, char *const argv[], pl_sandbox **out, pl_err *err);

/* Freezes (on = 1) or thaws (on = 0) every task of the agent's cgroup. */
int pl_sandbox_freeze(pl_sandbox *sb, int on);

/* SIGKILLs every task of the agent's cgroup (cgroup.kill, else a pid sweep). */
void pl_sandbox_kill(pl_sandbox *sb);

/* True when the real path `path` is inside a writable root or is one of the
 * writable devices (/dev/null, /dev/tty, /dev/pts/N ...). */
int pl_sandbox_path_writable(const pl_sandbox *sb, const char *path);

/* Kills remaining tasks, removes the cgroup, closes fds, frees. NULL ok. */
void pl_sandbox_free(pl_sandbox *sb);

#endif
