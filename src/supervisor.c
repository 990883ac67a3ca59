/* supervisor.c — seccomp user-notification supervisor (see supervisor.h).
 *
 * Worker threads take turns at poll()+NOTIF_RECV (one receiver at a time, so
 * RECV never blocks after POLLIN), then handle their notification
 * concurrently. Each worker runs with the agent's fsuid/fsgid, no
 * supplementary groups and a private fs struct (umask 0; the agent's umask is
 * applied explicitly), so every emulated action gets the agent's DAC checks.
 * Memory is read with process_vm_readv (real uid root), once, into private
 * buffers; the answer is never CONTINUE for a pointer-dependent decision
 * except execve, which is continued only while all other agent tasks are
 * frozen, after re-verifying the argument bytes, and with no emulated
 * filesystem action running concurrently (fs_lock). */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "probelogits.h"

#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef SECCOMP_IOCTL_NOTIF_ID_VALID
#define SECCOMP_IOCTL_NOTIF_ID_VALID SECCOMP_IOW(2, __u64)
#endif

#define TEXT_CAP (256 * 1024)
#define MAX_ARGV 4096
#define ARGV_BYTES (128 * 1024)
#define MAX_WORKERS 64

struct pl_supervisor {
    pl_sandbox *sb;            /* the agent */
    pl_supervisor_opts o;      /* copy of the options */
    pthread_mutex_t decide_mu; /* serialises a non-thread-safe decider */
    pthread_mutex_t recv_mu;   /* one receiver at a time */
    pthread_rwlock_t fs_lock;  /* emulated fs actions (read) vs an exec gate (write) */
    pthread_mutex_t exec_mu;   /* one exec gate at a time */
    volatile int stop;         /* workers exit when set */
    int n_workers;             /* started workers */
    pthread_t workers[MAX_WORKERS];
    pl_supervisor_stats st; /* updated with atomics */
    int waited;             /* pl_supervisor_wait ran */
};

typedef struct call {
    pl_supervisor *s;
    struct seccomp_notif *req;
    pid_t tid;      /* the notifying thread */
    pid_t tgid;     /* its process */
    unsigned umask; /* the agent's umask */
    char *text;     /* worker-owned render buffer (TEXT_CAP) */
    int answered;   /* a response was sent */
} call;

typedef struct rpath {
    int dirfd;               /* O_PATH fd of the real parent directory, -1 when agent_fd is set */
    char name[NAME_MAX + 1]; /* final component */
    char full[PATH_MAX];     /* real parent + "/" + name: rendered and envelope-checked */
    int agent_fd;            /* >= 0: the path named the agent's own fd N (/proc/PID/fd/N) */
} rpath;

#define STAT_INC(s, f) __atomic_add_fetch(&(s)->st.f, 1, __ATOMIC_RELAXED)

/* ---- responses ----------------------------------------------------------- */

static void respond(call *c, int error, long long val) {
    struct seccomp_notif_resp r = {.id = c->req->id, .error = error ? -error : 0, .val = error ? 0 : val};
    if (!c->answered) ioctl(c->s->sb->listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
    c->answered = 1;
}

static void respond_continue(call *c) {
    struct seccomp_notif_resp r = {.id = c->req->id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
    if (!c->answered) ioctl(c->s->sb->listener, SECCOMP_IOCTL_NOTIF_SEND, &r);
    c->answered = 1;
}

/* Installs fd in the agent and answers the syscall with its number, atomically. */
static void respond_fd(call *c, int fd, int cloexec) {
    struct seccomp_notif_addfd a = {.id = c->req->id,
                                    .flags = SECCOMP_ADDFD_FLAG_SEND,
                                    .srcfd = (uint32_t)fd,
                                    .newfd = 0,
                                    .newfd_flags = cloexec ? O_CLOEXEC : 0};
    if (ioctl(c->s->sb->listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a) < 0) {
        int e = errno;
        c->answered = 0;
        respond(c, e == EMFILE ? EMFILE : EBADF, 0);
    }
    c->answered = 1;
}

static int id_valid(call *c) {
    uint64_t id = c->req->id;
    return ioctl(c->s->sb->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* ---- agent memory and /proc ---------------------------------------------- */

static int rd_mem(pid_t tid, uint64_t addr, void *buf, size_t n) {
    if (n == 0) return 0;
    struct iovec l = {buf, n}, r = {(void *)(uintptr_t)addr, n};
    ssize_t got = process_vm_readv(tid, &l, 1, &r, 1, 0);
    return got == (ssize_t)n ? 0 : -EFAULT;
}

/* Copies a NUL-terminated string of at most cap-1 bytes, page by page.
 * Returns its length, -EFAULT (unreadable) or -ENAMETOOLONG (unterminated). */
static long rd_str(pid_t tid, uint64_t addr, char *out, size_t cap) {
    if (addr == 0) return -EFAULT;
    size_t got = 0;
    while (got < cap) {
        size_t page_left = 4096 - ((addr + got) & 4095);
        size_t want = page_left < cap - got ? page_left : cap - got;
        if (rd_mem(tid, addr + got, out + got, want) < 0) return -EFAULT;
        void *z = memchr(out + got, 0, want);
        if (z) return (long)((char *)z - out);
        got += want;
    }
    return -ENAMETOOLONG;
}

/* Set in workers that run with the agent's fsuid: /proc/PID/fd of a
 * non-dumpable agent is root-owned 0500, so /proc look-ups switch the fsuid
 * back to root around the call (per-thread, no effect on other workers). */
static __thread int tl_fsuid = -1;

static int proc_readlink(const char *path, char *out, size_t cap) {
    if (tl_fsuid >= 0) syscall(SYS_setfsuid, 0);
    ssize_t n = readlink(path, out, cap - 1);
    int e = errno;
    if (tl_fsuid >= 0) syscall(SYS_setfsuid, tl_fsuid);
    errno = e;
    if (n < 0) return -errno;
    if ((size_t)n >= cap - 1) return -ENAMETOOLONG;
    out[n] = 0;
    return 0;
}

static int agent_info(call *c) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)c->tid);
    FILE *f = fopen(p, "re");
    if (!f) return -ESRCH;
    c->tgid = 0;
    c->umask = 022;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Tgid:", 5) == 0)
            c->tgid = (pid_t)atoi(line + 5);
        else if (strncmp(line, "Umask:", 6) == 0)
            c->umask = (unsigned)strtoul(line + 6, NULL, 8) & 0777;
    }
    fclose(f);
    return c->tgid > 0 ? 0 : -ESRCH;
}

/* Duplicates the agent's fd into the supervisor. */
static int get_agent_fd(call *c, int fd) {
    int pfd = (int)syscall(SYS_pidfd_open, c->tgid, 0);
    if (pfd < 0) return -errno;
    if (!id_valid(c)) { /* the tgid may have been reused */
        close(pfd);
        return -ESRCH;
    }
    int r = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    int e = errno;
    close(pfd);
    return r < 0 ? -(e == EBADF ? EBADF : e) : r;
}

/* ---- paths ---------------------------------------------------------------- */

static int cat_path(char *out, size_t cap, const char *a, const char *b) {
    int n = strcmp(a, "/") == 0 ? snprintf(out, cap, "/%s", b) : snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int is_digits(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

/* Rewrites the agent's magic names to its own /proc entries and replaces
 * /proc/PID/{cwd,fd/N} used as a directory prefix by their targets. */
static int rewrite(call *c, char *p, size_t cap) {
    char tmp[PATH_MAX];
    for (int round = 0; round < 8; round++) {
        const char *rest = NULL;
        char head[96];
        head[0] = 0;
        if (strncmp(p, "/proc/self", 10) == 0 && (p[10] == '/' || !p[10])) {
            snprintf(head, sizeof head, "/proc/%d", (int)c->tgid);
            rest = p + 10;
        } else if (strncmp(p, "/proc/thread-self", 17) == 0 && (p[17] == '/' || !p[17])) {
            snprintf(head, sizeof head, "/proc/%d/task/%d", (int)c->tgid, (int)c->tid);
            rest = p + 17;
        } else if (strncmp(p, "/dev/fd", 7) == 0 && (p[7] == '/' || !p[7])) {
            snprintf(head, sizeof head, "/proc/%d/fd", (int)c->tgid);
            rest = p + 7;
        } else if (!strcmp(p, "/dev/stdin") || !strcmp(p, "/dev/stdout") || !strcmp(p, "/dev/stderr")) {
            snprintf(head, sizeof head, "/proc/%d/fd/%d", (int)c->tgid, p[8] == 'i' ? 0 : p[8] == 'o' ? 1 : 2);
            rest = "";
        }
        if (rest) {
            int n = snprintf(tmp, sizeof tmp, "%s%s", head, rest);
            if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= cap) return -ENAMETOOLONG;
            memcpy(p, tmp, (size_t)n + 1);
            continue;
        }
        /* /proc/N/cwd/... or /proc/N/fd/M/... (a magic link as a directory). */
        if (strncmp(p, "/proc/", 6) == 0) {
            const char *q = p + 6;
            size_t dn = strspn(q, "0123456789");
            const char *after = q + dn;
            const char *tail = NULL;
            if (dn && strncmp(after, "/cwd/", 5) == 0)
                tail = after + 4;
            else if (dn && strncmp(after, "/fd/", 4) == 0) {
                size_t fn = strspn(after + 4, "0123456789");
                if (fn && after[4 + fn] == '/') tail = after + 4 + fn;
            }
            if (tail) {
                char link[128], target[PATH_MAX];
                snprintf(link, sizeof link, "%.*s", (int)(tail - p), p);
                int r = proc_readlink(link, target, sizeof target);
                if (r < 0) return r;
                if (target[0] != '/') return -ENOTDIR;
                int n = snprintf(tmp, sizeof tmp, "%s%s", target, tail);
                if (n < 0 || (size_t)n >= sizeof tmp || (size_t)n >= cap) return -ENAMETOOLONG;
                memcpy(p, tmp, (size_t)n + 1);
                continue;
            }
        }
        return 0;
    }
    return -ELOOP;
}

/* Resolves (dirfd, path) as the agent would, holding the real parent
 * directory. follow: follow a symlink in the final component. */
static int resolve(call *c, int adirfd, const char *path, int follow, rpath *r) {
    char p[PATH_MAX], base[PATH_MAX], link[64];
    r->dirfd = -1;
    r->agent_fd = -1;
    if (!path[0]) return -ENOENT;
    if (path[0] == '/') {
        if (strlen(path) >= sizeof p) return -ENAMETOOLONG;
        strcpy(p, path);
    } else {
        if (adirfd == AT_FDCWD)
            snprintf(link, sizeof link, "/proc/%d/cwd", (int)c->tid);
        else
            snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)c->tgid, adirfd);
        int e = proc_readlink(link, base, sizeof base);
        if (e < 0) return e == -ENOENT && adirfd != AT_FDCWD ? -EBADF : e;
        if (base[0] != '/') return -ENOTDIR;
        if ((e = cat_path(p, sizeof p, base, path)) < 0) return e;
    }
    for (int hops = 0; hops < 40; hops++) {
        int e = rewrite(c, p, sizeof p);
        if (e < 0) return e;
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') p[--n] = 0;
        char *slash = strrchr(p, '/');
        const char *nm = slash + 1;
        if (!*nm || !strcmp(nm, ".") || !strcmp(nm, "..")) return -EINVAL; /* "/", "x/.", "x/.." */
        if (strlen(nm) > NAME_MAX) return -ENAMETOOLONG;
        snprintf(r->name, sizeof r->name, "%s", nm);
        char parent[PATH_MAX];
        if (slash == p)
            strcpy(parent, "/");
        else
            snprintf(parent, sizeof parent, "%.*s", (int)(slash - p), p);
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_MAGICLINKS};
        int dfd = (int)syscall(SYS_openat2, AT_FDCWD, parent, &how, sizeof how);
        if (dfd < 0) return -errno;
        char real[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dfd);
        if ((e = proc_readlink(link, real, sizeof real)) < 0 || real[0] != '/') {
            close(dfd);
            return e < 0 ? e : -ENOENT;
        }
        if ((e = cat_path(r->full, sizeof r->full, real, r->name)) < 0) {
            close(dfd);
            return e;
        }
        /* /proc/<agent>/fd/N or /proc/<agent>/task/<tid>/fd/N: the agent's own fd. */
        int pid_in = 0, tid_in = 0, fdn = -1;
        char tailc;
        if ((sscanf(real, "/proc/%d/fd%c", &pid_in, &tailc) == 1 ||
             sscanf(real, "/proc/%d/task/%d/fd%c", &pid_in, &tid_in, &tailc) == 2) &&
            is_digits(r->name, strlen(r->name))) {
            close(dfd);
            if (pid_in != c->tgid && pid_in != c->tid) return -EACCES; /* another process's fds */
            fdn = atoi(r->name);
            r->agent_fd = fdn;
            return 0;
        }
        struct stat st;
        if (follow && fstatat(dfd, r->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tn = readlinkat(dfd, r->name, target, sizeof target - 1);
            if (tn < 0 || (size_t)tn >= sizeof target - 1) {
                close(dfd);
                return tn < 0 ? -errno : -ENAMETOOLONG;
            }
            target[tn] = 0;
            close(dfd);
            if (target[0] == '/') {
                snprintf(p, sizeof p, "%s", target);
            } else if ((e = cat_path(p, sizeof p, real, target)) < 0) {
                return e;
            }
            continue;
        }
        r->dirfd = dfd;
        return 0;
    }
    return -ELOOP;
}

static void rpath_close(rpath *r) {
    if (r->dirfd >= 0) close(r->dirfd);
    r->dirfd = -1;
}

/* ---- deciding -------------------------------------------------------------- */

/* Audits and returns 1 to allow, 0 to deny. envelope: a fixed reason that
 * denies without asking the decider (outside the writable roots). */
static int decide(call *c, const char *cls, const char *text, const char *envelope) {
    pl_supervisor *s = c->s;
    pl_verdict v;
    memset(&v, 0, sizeof v);
    double t0 = pl_now();
    if (envelope) {
        v.decision = PL_DECISION_DENY;
        v.p_dangerous = NAN;
        snprintf(v.rule, sizeof v.rule, "sandbox");
        snprintf(v.reason, sizeof v.reason, "%s", envelope);
    } else {
        STAT_INC(s, decided);
        if (!s->o.decide_threadsafe) pthread_mutex_lock(&s->decide_mu);
        int rc = s->o.decide(s->o.decide_ctx, cls, text, strlen(text), &v);
        if (!s->o.decide_threadsafe) pthread_mutex_unlock(&s->decide_mu);
        if (rc < 0 || v.decision < PL_DECISION_ALLOW || v.decision > PL_DECISION_DENY) {
            memset(&v, 0, sizeof v);
            v.decision = PL_DECISION_DENY;
            v.p_dangerous = NAN;
            snprintf(v.reason, sizeof v.reason, "decider error (%d)", rc);
        }
    }
    if (!(v.latency_ms > 0)) v.latency_ms = (pl_now() - t0) * 1e3;
    int allow = v.decision != PL_DECISION_DENY;
    const pl_audit_rec rec = {.pid = c->tgid,
                              .tid = c->tid,
                              .has_uid = 1,
                              .uid = s->sb->uid,
                              .cls = cls,
                              .text = text,
                              .len = strlen(text),
                              .has_alpha = !isnan(v.p_dangerous),
                              .alpha = v.alpha,
                              .v = &v};
    if (pl_audit_append(s->o.audit, &rec, NULL) < 0) allow = 0; /* fail closed */
    if (allow)
        STAT_INC(s, allowed);
    else
        STAT_INC(s, denied);
    return allow;
}

static void render_flags(char *out, size_t cap, int flags) {
    int acc = flags & O_ACCMODE;
    snprintf(out, cap, "%s%s%s%s%s%s",
             acc == O_WRONLY ? "O_WRONLY"
             : acc == O_RDWR ? "O_RDWR"
                             : "O_RDONLY",
             flags & O_CREAT ? "|O_CREAT" : "", flags & O_EXCL ? "|O_EXCL" : "", flags & O_TRUNC ? "|O_TRUNC" : "",
             flags & O_APPEND ? "|O_APPEND" : "", (flags & __O_TMPFILE) == __O_TMPFILE ? "|O_TMPFILE" : "");
}

/* Common front: copy one path argument, then check the id. Returns 0 or an errno. */
static int copy_path(call *c, uint64_t addr, char *buf) {
    long n = rd_str(c->tid, addr, buf, PATH_MAX);
    if (n < 0) return (int)-n;
    return 0;
}

/* Envelope check for an object reached through an agent fd. */
static const char *fd_envelope(call *c, int ourfd, char *real, size_t cap) {
    char link[64];
    struct stat st;
    snprintf(link, sizeof link, "/proc/self/fd/%d", ourfd);
    if (fstat(ourfd, &st) < 0 || proc_readlink(link, real, cap) < 0) return "unresolvable descriptor";
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return NULL;
    if (real[0] != '/' || !pl_sandbox_path_writable(c->s->sb, real)) return "outside the writable roots";
    return NULL;
}

/* ---- handlers ---------------------------------------------------------------- */

static void h_open(call *c, int adirfd, uint64_t path_addr, int flags, unsigned mode) {
    char path[PATH_MAX], fl[96], real[PATH_MAX];
    int e = copy_path(c, path_addr, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    int tmpfile = (flags & __O_TMPFILE) == __O_TMPFILE;
    int writes = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) || tmpfile;
    int follow = !(flags & O_NOFOLLOW) && !((flags & O_CREAT) && (flags & O_EXCL));
    rpath r;
    if ((e = resolve(c, adirfd, path, follow, &r)) < 0) return respond(c, -e, 0);
    render_flags(fl, sizeof fl, flags);
    int ourfd = -1;
    const char *env = NULL;
    if (r.agent_fd >= 0) {
        ourfd = get_agent_fd(c, r.agent_fd);
        if (ourfd < 0) return respond(c, -ourfd == EBADF ? ENOENT : -ourfd, 0);
        real[0] = 0;
        if (writes) env = fd_envelope(c, ourfd, real, sizeof real);
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", ourfd);
        if (!real[0] && proc_readlink(link, real, sizeof real) < 0) snprintf(real, sizeof real, "%s", r.full);
        snprintf(c->text, TEXT_CAP, "write %s (%s, via fd %d)", real, fl, r.agent_fd);
    } else {
        if (writes && !pl_sandbox_path_writable(c->s->sb, r.full)) env = "outside the writable roots";
        snprintf(c->text, TEXT_CAP, "write %s%s (%s)", r.full, tmpfile ? "/<tmpfile>" : "", fl);
    }
    if (!writes) {
        STAT_INC(c->s, passthrough);
    } else if (!decide(c, "file_write", c->text, env)) {
        if (ourfd >= 0) close(ourfd);
        rpath_close(&r);
        return respond(c, EACCES, 0);
    }
    pthread_rwlock_rdlock(&c->s->fs_lock);
    int fd;
    if (ourfd >= 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", ourfd);
        fd = open(link, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
    } else {
        fd = openat(r.dirfd, r.name, flags | O_NOFOLLOW | O_CLOEXEC, mode & ~c->umask & 07777);
    }
    e = errno;
    pthread_rwlock_unlock(&c->s->fs_lock);
    if (ourfd >= 0) close(ourfd);
    rpath_close(&r);
    if (fd < 0) return respond(c, e, 0);
    respond_fd(c, fd, flags & O_CLOEXEC);
    close(fd);
}

static void h_unlink(call *c, int adirfd, uint64_t path_addr, int flags) {
    char path[PATH_MAX];
    int e = copy_path(c, path_addr, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    if (flags & ~AT_REMOVEDIR) return respond(c, EINVAL, 0);
    rpath r;
    if ((e = resolve(c, adirfd, path, 0, &r)) < 0) return respond(c, -e, 0);
    if (r.agent_fd >= 0) return respond(c, EACCES, 0);
    snprintf(c->text, TEXT_CAP, "delete %s%s", r.full, flags & AT_REMOVEDIR ? " (directory)" : "");
    const char *env = pl_sandbox_path_writable(c->s->sb, r.full) ? NULL : "outside the writable roots";
    if (!decide(c, "file_delete", c->text, env)) {
        rpath_close(&r);
        return respond(c, EACCES, 0);
    }
    pthread_rwlock_rdlock(&c->s->fs_lock);
    int rc = unlinkat(r.dirfd, r.name, flags & AT_REMOVEDIR);
    e = errno;
    pthread_rwlock_unlock(&c->s->fs_lock);
    rpath_close(&r);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_rename(call *c, int od, uint64_t oa, int nd, uint64_t na, unsigned flags) {
    char op[PATH_MAX], np[PATH_MAX];
    int e = copy_path(c, oa, op);
    if (!e) e = copy_path(c, na, np);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    rpath a, b;
    if ((e = resolve(c, od, op, 0, &a)) < 0) return respond(c, -e, 0);
    if ((e = resolve(c, nd, np, 0, &b)) < 0) {
        rpath_close(&a);
        return respond(c, -e, 0);
    }
    if (a.agent_fd >= 0 || b.agent_fd >= 0) {
        rpath_close(&a);
        rpath_close(&b);
        return respond(c, EACCES, 0);
    }
    snprintf(c->text, TEXT_CAP, "rename %s -> %s%s%s%s", a.full, b.full,
             flags & RENAME_NOREPLACE ? " (RENAME_NOREPLACE)" : "", flags & RENAME_EXCHANGE ? " (RENAME_EXCHANGE)" : "",
             flags & RENAME_WHITEOUT ? " (RENAME_WHITEOUT)" : "");
    const char *env = pl_sandbox_path_writable(c->s->sb, a.full) && pl_sandbox_path_writable(c->s->sb, b.full)
                          ? NULL
                          : "outside the writable roots";
    int ok = decide(c, "rename", c->text, env);
    int rc = -1;
    e = EACCES;
    if (ok) {
        pthread_rwlock_rdlock(&c->s->fs_lock);
        rc = renameat2(a.dirfd, a.name, b.dirfd, b.name, flags);
        e = errno;
        pthread_rwlock_unlock(&c->s->fs_lock);
    }
    rpath_close(&a);
    rpath_close(&b);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_mkdir(call *c, int adirfd, uint64_t path_addr, unsigned mode) {
    char path[PATH_MAX];
    int e = copy_path(c, path_addr, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    rpath r;
    if ((e = resolve(c, adirfd, path, 0, &r)) < 0) return respond(c, e == -EINVAL ? EEXIST : -e, 0);
    if (r.agent_fd >= 0) return respond(c, EEXIST, 0);
    snprintf(c->text, TEXT_CAP, "mkdir %s (mode %04o)", r.full, mode & 07777);
    const char *env = pl_sandbox_path_writable(c->s->sb, r.full) ? NULL : "outside the writable roots";
    if (!decide(c, "file_write", c->text, env)) {
        rpath_close(&r);
        return respond(c, EACCES, 0);
    }
    pthread_rwlock_rdlock(&c->s->fs_lock);
    int rc = mkdirat(r.dirfd, r.name, mode & ~c->umask & 07777);
    e = errno;
    pthread_rwlock_unlock(&c->s->fs_lock);
    rpath_close(&r);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_chmod(call *c, int adirfd, uint64_t path_addr, unsigned mode, int flags) {
    char path[PATH_MAX], link[64], real[PATH_MAX];
    int e = copy_path(c, path_addr, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    if (flags & ~AT_SYMLINK_NOFOLLOW) return respond(c, EINVAL, 0);
    rpath r;
    if ((e = resolve(c, adirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &r)) < 0) return respond(c, -e, 0);
    int fd;
    if (r.agent_fd >= 0) {
        fd = get_agent_fd(c, r.agent_fd);
        if (fd < 0) return respond(c, ENOENT, 0);
    } else {
        fd = openat(r.dirfd, r.name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        e = errno;
        rpath_close(&r);
        if (fd < 0) return respond(c, e, 0);
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
        close(fd);
        return respond(c, EOPNOTSUPP, 0);
    }
    const char *env = fd_envelope(c, fd, real, sizeof real);
    snprintf(c->text, TEXT_CAP, "chmod %04o %s", mode & 07777, real);
    if (!decide(c, "chmod", c->text, env)) {
        close(fd);
        return respond(c, EACCES, 0);
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    pthread_rwlock_rdlock(&c->s->fs_lock);
    int rc = chmod(link, mode & 07777);
    e = errno;
    pthread_rwlock_unlock(&c->s->fs_lock);
    close(fd);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_fchmod(call *c, int afd, unsigned mode) {
    char real[PATH_MAX];
    int fd = get_agent_fd(c, afd);
    if (fd < 0) return respond(c, -fd, 0);
    const char *env = fd_envelope(c, fd, real, sizeof real);
    snprintf(c->text, TEXT_CAP, "chmod %04o %s", mode & 07777, real);
    int ok = decide(c, "chmod", c->text, env);
    int rc = -1, e = EACCES;
    if (ok) {
        rc = fchmod(fd, mode & 07777);
        e = errno;
    }
    close(fd);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_link(call *c, int od, uint64_t oa, int nd, uint64_t na, int flags) {
    char op[PATH_MAX], np[PATH_MAX], real[PATH_MAX], link[64];
    int e = copy_path(c, oa, op);
    if (!e) e = copy_path(c, na, np);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    if (flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH)) return respond(c, EINVAL, 0);
    rpath b;
    if ((e = resolve(c, nd, np, 0, &b)) < 0) return respond(c, -e, 0);
    if (b.agent_fd >= 0) return respond(c, EEXIST, 0);
    int src = -1;
    if ((flags & AT_EMPTY_PATH) && !op[0]) {
        src = get_agent_fd(c, od);
    } else {
        rpath a;
        if ((e = resolve(c, od, op, (flags & AT_SYMLINK_FOLLOW) != 0, &a)) < 0) {
            rpath_close(&b);
            return respond(c, -e, 0);
        }
        src = a.agent_fd >= 0 ? get_agent_fd(c, a.agent_fd) : openat(a.dirfd, a.name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (src < 0 && a.agent_fd < 0) src = -errno;
        rpath_close(&a);
    }
    if (src < 0) {
        rpath_close(&b);
        return respond(c, -src, 0);
    }
    snprintf(link, sizeof link, "/proc/self/fd/%d", src);
    if (proc_readlink(link, real, sizeof real) < 0) snprintf(real, sizeof real, "?");
    snprintf(c->text, TEXT_CAP, "link %s -> %s", b.full, real);
    const char *env = pl_sandbox_path_writable(c->s->sb, b.full) ? NULL : "outside the writable roots";
    int ok = decide(c, "file_write", c->text, env);
    int rc = -1;
    e = EACCES;
    if (ok) {
        pthread_rwlock_rdlock(&c->s->fs_lock);
        rc = linkat(AT_FDCWD, link, b.dirfd, b.name, AT_SYMLINK_FOLLOW);
        e = errno;
        pthread_rwlock_unlock(&c->s->fs_lock);
    }
    close(src);
    rpath_close(&b);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_symlink(call *c, uint64_t ta, int nd, uint64_t na) {
    char target[PATH_MAX], np[PATH_MAX];
    int e = copy_path(c, ta, target);
    if (!e) e = copy_path(c, na, np);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    rpath b;
    if ((e = resolve(c, nd, np, 0, &b)) < 0) return respond(c, -e, 0);
    if (b.agent_fd >= 0) return respond(c, EEXIST, 0);
    snprintf(c->text, TEXT_CAP, "symlink %s -> %s", b.full, target);
    const char *env = pl_sandbox_path_writable(c->s->sb, b.full) ? NULL : "outside the writable roots";
    int rc = -1;
    e = EACCES;
    if (decide(c, "file_write", c->text, env)) {
        pthread_rwlock_rdlock(&c->s->fs_lock);
        rc = symlinkat(target, b.dirfd, b.name);
        e = errno;
        pthread_rwlock_unlock(&c->s->fs_lock);
    }
    rpath_close(&b);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_mknod(call *c, int adirfd, uint64_t pa, unsigned mode, unsigned long dev) {
    char path[PATH_MAX];
    int e = copy_path(c, pa, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    unsigned type = mode & S_IFMT;
    if (type != 0 && type != S_IFREG && type != S_IFIFO && type != S_IFSOCK) return respond(c, EPERM, 0);
    rpath r;
    if ((e = resolve(c, adirfd, path, 0, &r)) < 0) return respond(c, -e, 0);
    if (r.agent_fd >= 0) return respond(c, EEXIST, 0);
    snprintf(c->text, TEXT_CAP, "mknod %s (%s, mode %04o)", r.full,
             type == S_IFIFO    ? "fifo"
             : type == S_IFSOCK ? "socket"
                                : "file",
             mode & 07777);
    const char *env = pl_sandbox_path_writable(c->s->sb, r.full) ? NULL : "outside the writable roots";
    int rc = -1;
    e = EACCES;
    if (decide(c, "file_write", c->text, env)) {
        pthread_rwlock_rdlock(&c->s->fs_lock);
        rc = mknodat(r.dirfd, r.name, type | (mode & ~c->umask & 07777), (dev_t)dev);
        e = errno;
        pthread_rwlock_unlock(&c->s->fs_lock);
    }
    rpath_close(&r);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_truncate(call *c, uint64_t pa, long long len) {
    char path[PATH_MAX];
    int e = copy_path(c, pa, path);
    if (e) return respond(c, e, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    if (len < 0) return respond(c, EINVAL, 0);
    rpath r;
    if ((e = resolve(c, AT_FDCWD, path, 1, &r)) < 0) return respond(c, -e, 0);
    if (r.agent_fd >= 0) return respond(c, EACCES, 0);
    snprintf(c->text, TEXT_CAP, "truncate %s to %lld bytes", r.full, len);
    const char *env = pl_sandbox_path_writable(c->s->sb, r.full) ? NULL : "outside the writable roots";
    int rc = -1;
    e = EACCES;
    if (decide(c, "file_write", c->text, env)) {
        pthread_rwlock_rdlock(&c->s->fs_lock);
        int fd = openat(r.dirfd, r.name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
        e = errno;
        if (fd >= 0) {
            rc = ftruncate(fd, len);
            e = errno;
            close(fd);
        }
        pthread_rwlock_unlock(&c->s->fs_lock);
    }
    rpath_close(&r);
    respond(c, rc < 0 ? e : 0, 0);
}

static void h_connect(call *c, int afd, uint64_t addr, uint64_t alen) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (alen > sizeof ss || alen < sizeof(sa_family_t)) return respond(c, EINVAL, 0);
    if (rd_mem(c->tid, addr, &ss, (size_t)alen) < 0) return respond(c, EFAULT, 0);
    if (!id_valid(c)) return respond(c, ESRCH, 0);
    socklen_t len = (socklen_t)alen;
    char host[INET6_ADDRSTRLEN + 8];
    int need = 1;
    if (ss.ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(c->text, TEXT_CAP, "connect %s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(c->text, TEXT_CAP, "connect [%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        size_t pl = len - offsetof(struct sockaddr_un, sun_path);
        if (pl > 0 && un->sun_path[0] == 0) {
            snprintf(c->text, TEXT_CAP, "connect unix:@%.*s", (int)(pl - 1), un->sun_path + 1);
        } else {
            char p[sizeof un->sun_path + 1];
            memcpy(p, un->sun_path, pl < sizeof un->sun_path ? pl : sizeof un->sun_path);
            p[pl < sizeof un->sun_path ? pl : sizeof un->sun_path] = 0;
            if (p[0] != '/') { /* relative to the agent's cwd: make it absolute for our connect */
                char cwd[PATH_MAX], link[64], absp[PATH_MAX];
                snprintf(link, sizeof link, "/proc/%d/cwd", (int)c->tid);
                if (proc_readlink(link, cwd, sizeof cwd) < 0 || cat_path(absp, sizeof absp, cwd, p) < 0 ||
                    strlen(absp) >= sizeof un->sun_path)
                    return respond(c, ENAMETOOLONG, 0);
                memset(un->sun_path, 0, sizeof un->sun_path);
                memcpy(un->sun_path, absp, strlen(absp));
                len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(absp) + 1);
                memcpy(p, absp, strlen(absp) + 1);
            }
            snprintf(c->text, TEXT_CAP, "connect unix:%s", p);
        }
    } else if (ss.ss_family == AF_UNSPEC) {
        need = 0; /* dissolves a datagram association: no effect outward */
    } else {
        snprintf(c->text, TEXT_CAP, "connect family %d", ss.ss_family);
    }
    if (need && !decide(c, "network", c->text, NULL)) return respond(c, ECONNREFUSED, 0);
    if (!need) STAT_INC(c->s, passthrough);
    int fd = get_agent_fd(c, afd);
    if (fd < 0) return respond(c, -fd, 0);
    int rc = connect(fd, (struct sockaddr *)&ss, len);
    int e = errno;
    close(fd);
    respond(c, rc < 0 ? e : 0, 0);
}

/* ---- datagram egress: sendto / sendmsg / sendmmsg ------------------------------ */

#define SEND_CAP (1024 * 1024)
#define SEND_MAX_IOV 1024

/* Renders a destination; makes a relative unix path absolute in *ss. 0 or an errno. */
static int dest_text(call *c, struct sockaddr_storage *ss, socklen_t *len, char *out, size_t cap) {
    char host[INET6_ADDRSTRLEN + 8];
    if (ss->ss_family == AF_INET && *len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6 && *len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (ss->ss_family == AF_UNIX && *len > offsetof(struct sockaddr_un, sun_path)) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t pl = *len - offsetof(struct sockaddr_un, sun_path);
        if (pl > sizeof un->sun_path) pl = sizeof un->sun_path;
        if (un->sun_path[0] == 0) {
            snprintf(out, cap, "unix:@%.*s", (int)(pl - 1), un->sun_path + 1);
        } else {
            char p[sizeof un->sun_path + 1];
            memcpy(p, un->sun_path, pl);
            p[pl] = 0;
            if (p[0] != '/') {
                char cwd[PATH_MAX], link[64], absp[PATH_MAX];
                snprintf(link, sizeof link, "/proc/%d/cwd", (int)c->tid);
                if (proc_readlink(link, cwd, sizeof cwd) < 0 || cat_path(absp, sizeof absp, cwd, p) < 0 ||
                    strlen(absp) >= sizeof un->sun_path)
                    return ENAMETOOLONG;
                memset(un->sun_path, 0, sizeof un->sun_path);
                memcpy(un->sun_path, absp, strlen(absp));
                *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(absp) + 1);
                snprintf(p, sizeof p, "%s", absp);
            }
            snprintf(out, cap, "unix:%s", p);
        }
    } else {
        snprintf(out, cap, "family %d", ss->ss_family);
    }
    return 0;
}

/* One message, copied once from the agent: destination, payload, control. */
typedef struct smsg {
    struct sockaddr_storage ss; /* destination (valid when has_name) */
    socklen_t slen;
    int has_name;
    char *data; /* payload copy (malloc) */
    size_t dlen;
    char *ctl; /* control copy with fds translated (malloc) */
    size_t clen;
    int fds[64]; /* supervisor copies of SCM_RIGHTS fds */
    int nfds;
} smsg;

static void smsg_free(smsg *m) {
    free(m->data);
    free(m->ctl);
    for (int i = 0; i < m->nfds; i++) close(m->fds[i]);
    memset(m, 0, sizeof *m);
}

static int copy_name(call *c, uint64_t addr, uint64_t alen, smsg *m) {
    if (!addr) return 0;
    if (alen > sizeof m->ss || alen < sizeof(sa_family_t)) return EINVAL;
    if (rd_mem(c->tid, addr, &m->ss, (size_t)alen) < 0) return EFAULT;
    m->slen = (socklen_t)alen;
    m->has_name = 1;
    return 0;
}

/* Copies a struct msghdr's name, payload (stream sockets may be cut short at
 * SEND_CAP) and control data; SCM_RIGHTS fds are taken from the agent. */
static int copy_msghdr(call *c, uint64_t addr, int stream, smsg *m) {
    struct msghdr h;
    if (rd_mem(c->tid, addr, &h, sizeof h) < 0) return EFAULT;
    int e = copy_name(c, (uint64_t)(uintptr_t)h.msg_name, h.msg_namelen, m);
    if (e) return e;
    if (h.msg_iovlen > SEND_MAX_IOV) return EMSGSIZE;
    struct iovec *iov = NULL;
    if (h.msg_iovlen) {
        iov = malloc(h.msg_iovlen * sizeof *iov);
        if (!iov) return ENOMEM;
        if (rd_mem(c->tid, (uint64_t)(uintptr_t)h.msg_iov, iov, h.msg_iovlen * sizeof *iov) < 0) {
            free(iov);
            return EFAULT;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < h.msg_iovlen; i++) {
        if (iov[i].iov_len > SEND_CAP || total + iov[i].iov_len > SEND_CAP) {
            if (!stream) {
                free(iov);
                return EMSGSIZE;
            }
        }
        total += iov[i].iov_len < SEND_CAP ? iov[i].iov_len : SEND_CAP;
    }
    if (total > SEND_CAP) total = SEND_CAP;
    m->data = malloc(total ? total : 1);
    if (!m->data) {
        free(iov);
        return ENOMEM;
    }
    for (size_t i = 0; i < h.msg_iovlen && m->dlen < total; i++) {
        size_t n = iov[i].iov_len < total - m->dlen ? iov[i].iov_len : total - m->dlen;
        if (rd_mem(c->tid, (uint64_t)(uintptr_t)iov[i].iov_base, m->data + m->dlen, n) < 0) {
            free(iov);
            return EFAULT;
        }
        m->dlen += n;
    }
    free(iov);
    if (h.msg_controllen) {
        if (h.msg_controllen > 64 * 1024) return ENOBUFS;
        m->ctl = malloc(h.msg_controllen);
        if (!m->ctl) return ENOMEM;
        if (rd_mem(c->tid, (uint64_t)(uintptr_t)h.msg_control, m->ctl, h.msg_controllen) < 0) return EFAULT;
        m->clen = h.msg_controllen;
        struct msghdr mine = {.msg_control = m->ctl, .msg_controllen = m->clen};
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mine); cm; cm = CMSG_NXTHDR(&mine, cm)) {
            if (cm->cmsg_level != SOL_SOCKET) continue;
            if (cm->cmsg_type == SCM_RIGHTS) {
                size_t nf = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *fp = (int *)CMSG_DATA(cm);
                for (size_t k = 0; k < nf; k++) {
                    int afd;
                    memcpy(&afd, fp + k, sizeof afd);
                    if (m->nfds >= 64) return ETOOMANYREFS;
                    int ours = get_agent_fd(c, afd);
                    if (ours < 0) return -ours;
                    m->fds[m->nfds++] = ours;
                    memcpy(fp + k, &ours, sizeof ours);
                }
            } else if (cm->cmsg_type == SCM_CREDENTIALS) {
                struct ucred uc;
                memcpy(&uc, CMSG_DATA(cm), sizeof uc);
                /* we are root: only let the agent claim its own identity */
                if (uc.pid != c->tgid || uc.uid != c->s->sb->uid || uc.gid != c->s->sb->gid) return EPERM;
            }
        }
    }
    return 0;
}

/* Decides (when a destination is named) and sends m on the agent's socket as
 * the agent would (blocking unless the socket or flags say otherwise).
 * Returns bytes sent or -errno. */
static long send_one(call *c, int sock, smsg *m, int flags) {
    if (m->has_name) {
        char dst[PATH_MAX + 32];
        int e = dest_text(c, &m->ss, &m->slen, dst, sizeof dst);
        if (e) return -e;
        int type = 0;
        socklen_t tl = sizeof type;
        getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl);
        snprintf(c->text, TEXT_CAP, "send %s %s (%zu bytes)",
                 type == SOCK_DGRAM    ? "datagram to"
                 : type == SOCK_STREAM ? "stream to"
                                       : "packet to",
                 dst, m->dlen);
        if (!decide(c, "network", c->text, NULL)) return -EACCES;
    } else {
        STAT_INC(c->s, passthrough);
    }
    struct iovec iov = {m->data, m->dlen};
    struct msghdr h = {.msg_name = m->has_name ? &m->ss : NULL,
                       .msg_namelen = m->has_name ? m->slen : 0,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = m->ctl,
                       .msg_controllen = m->clen};
    int fl = fcntl(sock, F_GETFL);
    int nonblock = (fl >= 0 && (fl & O_NONBLOCK)) || (flags & MSG_DONTWAIT);
    for (;;) {
        ssize_t r = sendmsg(sock, &h, flags | MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0) return (long)r;
        int e = errno;
        if (e == EPIPE && !(flags & MSG_NOSIGNAL)) syscall(SYS_tgkill, c->tgid, c->tid, SIGPIPE);
        if ((e != EAGAIN && e != EWOULDBLOCK) || nonblock) return -e;
        struct pollfd pf = {.fd = sock, .events = POLLOUT};
        poll(&pf, 1, 100);
        if (!id_valid(c)) return -EINTR; /* the agent gave up (killed) */
    }
}

static int sock_is_stream(int sock) {
    int type = 0;
    socklen_t tl = sizeof type;
    return getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
}

static void h_sendto(call *c, int afd, uint64_t buf, uint64_t len, int flags, uint64_t addr, uint64_t alen) {
    smsg m;
    memset(&m, 0, sizeof m);
    int e = copy_name(c, addr, alen, &m);
    if (e) return respond(c, e, 0);
    int sock = get_agent_fd(c, afd);
    if (sock < 0) return respond(c, -sock, 0);
    int stream = sock_is_stream(sock);
    if (len > SEND_CAP && !stream) e = EMSGSIZE;
    size_t n = len > SEND_CAP ? SEND_CAP : (size_t)len;
    if (!e && !(m.data = malloc(n ? n : 1))) e = ENOMEM;
    if (!e && rd_mem(c->tid, buf, m.data, n) < 0) e = EFAULT;
    m.dlen = n;
    if (!e && !id_valid(c)) e = ESRCH;
    long r = e ? -e : send_one(c, sock, &m, flags);
    close(sock);
    smsg_free(&m);
    respond(c, r < 0 ? (int)-r : 0, r < 0 ? 0 : r);
}

static void h_sendmsg(call *c, int afd, uint64_t msg, int flags) {
    int sock = get_agent_fd(c, afd);
    if (sock < 0) return respond(c, -sock, 0);
    smsg m;
    memset(&m, 0, sizeof m);
    int e = copy_msghdr(c, msg, sock_is_stream(sock), &m);
    if (!e && !id_valid(c)) e = ESRCH;
    long r = e ? -e : send_one(c, sock, &m, flags);
    close(sock);
    smsg_free(&m);
    respond(c, r < 0 ? (int)-r : 0, r < 0 ? 0 : r);
}

static void h_sendmmsg(call *c, int afd, uint64_t vec, unsigned vlen, int flags) {
    if (vlen > SEND_MAX_IOV) vlen = SEND_MAX_IOV;
    int sock = get_agent_fd(c, afd);
    if (sock < 0) return respond(c, -sock, 0);
    int stream = sock_is_stream(sock);
    unsigned done = 0;
    int err = 0;
    for (unsigned i = 0; i < vlen; i++) {
        uint64_t at = vec + (uint64_t)i * sizeof(struct mmsghdr);
        smsg m;
        memset(&m, 0, sizeof m);
        int e = copy_msghdr(c, at, stream, &m);
        if (!e && !id_valid(c)) e = ESRCH;
        long r = e ? -e : send_one(c, sock, &m, flags);
        smsg_free(&m);
        if (r < 0) {
            err = (int)-r;
            break;
        }
        unsigned sent = (unsigned)r;
        struct iovec l = {&sent, sizeof sent},
                     rv = {(void *)(uintptr_t)(at + offsetof(struct mmsghdr, msg_len)), sizeof sent};
        if (process_vm_writev(c->tid, &l, 1, &rv, 1, 0) != (ssize_t)sizeof sent) {
            err = EFAULT;
            break;
        }
        done++;
    }
    close(sock);
    if (done > 0)
        respond(c, 0, done);
    else
        respond(c, err ? err : 0, 0);
}

/* ---- exec ------------------------------------------------------------------ */

typedef struct argcopy {
    char *buf;      /* NUL-separated strings */
    size_t len;     /* bytes used */
    uint64_t *ptrs; /* the argv pointer values */
    int argc;       /* entries */
} argcopy;

static int copy_argv(call *c, uint64_t argv, argcopy *a) {
    a->buf = malloc(ARGV_BYTES);
    a->ptrs = malloc(MAX_ARGV * sizeof *a->ptrs);
    a->len = 0;
    a->argc = 0;
    if (!a->buf || !a->ptrs) return ENOMEM;
    if (argv == 0) return 0;
    for (;;) {
        uint64_t p;
        if (a->argc >= MAX_ARGV) return E2BIG;
        if (rd_mem(c->tid, argv + (uint64_t)a->argc * 8, &p, 8) < 0) return EFAULT;
        if (p == 0) return 0;
        long n = rd_str(c->tid, p, a->buf + a->len, ARGV_BYTES - a->len);
        if (n < 0) return n == -ENAMETOOLONG ? E2BIG : EFAULT;
        a->len += (size_t)n + 1;
        a->ptrs[a->argc++] = p;
    }
}

static void free_argv(argcopy *a) {
    free(a->buf);
    free(a->ptrs);
}

static int same_argv(const argcopy *x, const argcopy *y) {
    return x->argc == y->argc && x->len == y->len && !memcmp(x->buf, y->buf, x->len) &&
           !memcmp(x->ptrs, y->ptrs, (size_t)x->argc * sizeof *x->ptrs);
}

static int read_small(const char *path, char *out, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, out, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0) return -e;
    out[n] = 0;
    return (int)n;
}

/* 1 when task tid is frozen, stopped, dead or parked in a seccomp wait. */
static int task_quiet(pid_t tid) {
    char p[64], buf[256];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)tid);
    int n = read_small(p, buf, sizeof buf);
    if (n < 0) return 1; /* gone */
    char *rp = strrchr(buf, ')');
    char state = rp && rp[1] == ' ' ? rp[2] : '?';
    if (state == 'Z' || state == 'X' || state == 'T' || state == 't') return 1;
    snprintf(p, sizeof p, "/proc/%d/wchan", (int)tid);
    if (read_small(p, buf, sizeof buf) < 0) return 1;
    /* kernel_clone in D: a vfork parent waiting for its child (shares no writable state until then) */
    if (!strcmp(buf, "kernel_clone") && state == 'D') return 1;
    return !strcmp(buf, "get_signal") || !strncmp(buf, "do_freezer_trap", 15) ||
           !strncmp(buf, "seccomp_do_user_notification", 28);
}

/* Waits until every agent task other than `except` is quiet. */
static int wait_others_quiet(call *c, pid_t except, double timeout_s) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/cgroup.threads", c->s->sb->cgroup);
    double t_end = pl_now() + timeout_s;
    for (;;) {
        FILE *f = fopen(p, "re");
        if (!f) return -errno;
        int t, quiet = 1;
        while (quiet && fscanf(f, "%d", &t) == 1)
            if (t != except && !task_quiet(t)) {
                quiet = 0;
            }
        fclose(f);
        if (quiet) return 0;
        if (pl_now() > t_end) return -ETIMEDOUT;
        usleep(200);
    }
}

/* Identity and "#!" interpreter of the file an exec would run (resolved like
 * the kernel); interp is "" when it is not a script. 0 or a negative errno. */
static int exec_identity(call *c, int adirfd, const char *path, int flags, dev_t *dev, ino_t *ino, char *interp,
                         size_t cap) {
    rpath r;
    int e = resolve(c, adirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &r);
    if (e < 0) return e;
    if (r.agent_fd >= 0) return -EACCES;
    interp[0] = 0;
    int fd = openat(r.dirfd, r.name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == EACCES) fd = openat(r.dirfd, r.name, O_PATH | O_NOFOLLOW | O_CLOEXEC); /* execute-only */
    e = errno;
    rpath_close(&r);
    if (fd < 0) return -e;
    struct stat st;
    char head[256];
    ssize_t n = 0;
    if (fstat(fd, &st) < 0)
        n = -1;
    else if (S_ISREG(st.st_mode) && !(fcntl(fd, F_GETFL) & O_PATH))
        n = pread(fd, head, sizeof head - 1, 0);
    close(fd);
    if (n < 0) return -EACCES;
    *dev = st.st_dev;
    *ino = st.st_ino;
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        head[n] = 0;
        head[strcspn(head, "\n")] = 0;
        snprintf(interp, cap, "%s", head + 2 + strspn(head + 2, " \t"));
    }
    return 0;
}

static void h_exec(call *c, int adirfd, uint64_t pa, uint64_t argv, int flags) {
    pl_supervisor *s = c->s;
    char path[PATH_MAX], cwd[PATH_MAX], link[64], real[PATH_MAX];
    argcopy a = {0};
    int e = copy_path(c, pa, path);
    if (!e) e = copy_argv(c, argv, &a);
    if (e) {
        free_argv(&a);
        return respond(c, e, 0);
    }
    if (!id_valid(c)) {
        free_argv(&a);
        return respond(c, ESRCH, 0);
    }
    const char *env = NULL;
    if ((flags & AT_EMPTY_PATH) && !path[0]) {
        snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)c->tgid, adirfd);
        if (proc_readlink(link, real, sizeof real) < 0) {
            free_argv(&a);
            return respond(c, EBADF, 0);
        }
        if (real[0] != '/' || strncmp(real, "/memfd:", 7) == 0 || strstr(real, " (deleted)"))
            env = "exec of an anonymous or deleted file";
    } else {
        rpath r;
        if ((e = resolve(c, adirfd, path, !(flags & AT_SYMLINK_NOFOLLOW), &r)) < 0) {
            free_argv(&a);
            STAT_INC(s, passthrough);
            return respond(c, -e, 0); /* e.g. ENOENT during a PATH search: no effect, no decision */
        }
        struct stat st;
        if (r.agent_fd >= 0) {
            snprintf(link, sizeof link, "/proc/%d/fd/%d", (int)c->tgid, r.agent_fd);
            if (proc_readlink(link, real, sizeof real) < 0) snprintf(real, sizeof real, "%s", r.full);
            env = "exec through /proc/PID/fd";
        } else {
            snprintf(real, sizeof real, "%s", r.full);
            int sr = fstatat(r.dirfd, r.name, &st, AT_SYMLINK_NOFOLLOW);
            e = errno;
            rpath_close(&r);
            if (sr < 0) {
                free_argv(&a);
                STAT_INC(s, passthrough);
                return respond(c, e, 0);
            }
            if (!S_ISREG(st.st_mode)) {
                free_argv(&a);
                STAT_INC(s, passthrough);
                return respond(c, S_ISDIR(st.st_mode) ? EACCES : ELOOP, 0);
            }
        }
    }
    dev_t dev0 = 0;
    ino_t ino0 = 0;
    char interp[256] = "";
    int by_path = !((flags & AT_EMPTY_PATH) && !path[0]) && !env;
    if (by_path && (e = exec_identity(c, adirfd, path, flags, &dev0, &ino0, interp, sizeof interp)) < 0) {
        free_argv(&a);
        return respond(c, -e, 0);
    }
    snprintf(link, sizeof link, "/proc/%d/cwd", (int)c->tid);
    if (proc_readlink(link, cwd, sizeof cwd) < 0) snprintf(cwd, sizeof cwd, "?");
    size_t n = (size_t)snprintf(c->text, TEXT_CAP, "exec %s", real);
    if (interp[0]) n += (size_t)snprintf(c->text + n, TEXT_CAP - n, " (script for %s)", interp);
    const char *q = a.buf;
    for (int i = 0; i < a.argc; i++) {
        size_t l = strlen(q);
        if (i > 0 && n + l + 8 < TEXT_CAP - PATH_MAX - 16) {
            int quote = l == 0 || strpbrk(q, " \t\n'\"\\$`;&|<>*?()") != NULL;
            n += (size_t)snprintf(c->text + n, TEXT_CAP - n, quote ? " '%s'" : " %s", q);
        }
        q += l + 1;
    }
    snprintf(c->text + n, TEXT_CAP - n, " (cwd %s)", cwd);
    if (!decide(c, "exec", c->text, env)) {
        free_argv(&a);
        return respond(c, EACCES, 0);
    }
    /* Make the decision hold: freeze every other agent task, re-read the
     * arguments, continue, and thaw only once the exec is past the copy. */
    pthread_mutex_lock(&s->exec_mu);
    pthread_rwlock_wrlock(&s->fs_lock);
    int deny = 0;
    if (pl_sandbox_freeze(s->sb, 1) < 0 || wait_others_quiet(c, c->tid, 2.0) < 0) {
        deny = EAGAIN;
    } else {
        char path2[PATH_MAX];
        argcopy b = {0};
        if (copy_path(c, pa, path2) || copy_argv(c, argv, &b) || strcmp(path, path2) || !same_argv(&a, &b))
            deny = EPERM;
        free_argv(&b);
        if (!deny && by_path) { /* the file and its interpreter line are still the decided ones */
            dev_t dev1 = 0;
            ino_t ino1 = 0;
            char interp1[256] = "";
            if (exec_identity(c, adirfd, path, flags, &dev1, &ino1, interp1, sizeof interp1) < 0 || dev1 != dev0 ||
                ino1 != ino0 || strcmp(interp, interp1))
                deny = EPERM;
        }
        if (!deny && !id_valid(c)) deny = ESRCH;
    }
    if (deny) {
        respond(c, deny, 0);
    } else {
        respond_continue(c);
        /* Done once the thread left execve: it is gone (exec from a
         * non-leader), dead, or trapped in the freezer on its way out. */
        double t_end = pl_now() + 10.0;
        while (!task_quiet(c->tid)) {
            if (pl_now() > t_end) {
                pl_sandbox_kill(s->sb); /* cannot prove the exec is past the copy: fail closed */
                break;
            }
            usleep(100);
        }
    }
    pl_sandbox_freeze(s->sb, 0);
    pthread_rwlock_unlock(&s->fs_lock);
    pthread_mutex_unlock(&s->exec_mu);
    free_argv(&a);
}

/* ---- dispatch ----------------------------------------------------------------- */

static void handle(call *c) {
    struct seccomp_notif *q = c->req;
    const __u64 *A = q->data.args;
    if (q->data.arch != AUDIT_ARCH_X86_64) return respond(c, EPERM, 0);
    if (agent_info(c) < 0) return respond(c, ESRCH, 0);
    switch (q->data.nr) {
    case SYS_open: return h_open(c, AT_FDCWD, A[0], (int)A[1], (unsigned)A[2]);
    case SYS_openat: return h_open(c, (int)A[0], A[1], (int)A[2], (unsigned)A[3]);
    case SYS_creat: return h_open(c, AT_FDCWD, A[0], O_CREAT | O_WRONLY | O_TRUNC, (unsigned)A[1]);
    case SYS_openat2: {
        struct open_how how;
        if (A[3] < sizeof how) return respond(c, EINVAL, 0);
        if (rd_mem(c->tid, A[2], &how, sizeof how) < 0) return respond(c, EFAULT, 0);
        if (how.resolve) return respond(c, ENOSYS, 0); /* callers fall back to openat */
        if (how.flags >> 32) return respond(c, EINVAL, 0);
        return h_open(c, (int)A[0], A[1], (int)how.flags, (unsigned)how.mode);
    }
    case SYS_unlink: return h_unlink(c, AT_FDCWD, A[0], 0);
    case SYS_rmdir: return h_unlink(c, AT_FDCWD, A[0], AT_REMOVEDIR);
    case SYS_unlinkat: return h_unlink(c, (int)A[0], A[1], (int)A[2]);
    case SYS_rename: return h_rename(c, AT_FDCWD, A[0], AT_FDCWD, A[1], 0);
    case SYS_renameat: return h_rename(c, (int)A[0], A[1], (int)A[2], A[3], 0);
    case SYS_renameat2: return h_rename(c, (int)A[0], A[1], (int)A[2], A[3], (unsigned)A[4]);
    case SYS_mkdir: return h_mkdir(c, AT_FDCWD, A[0], (unsigned)A[1]);
    case SYS_mkdirat: return h_mkdir(c, (int)A[0], A[1], (unsigned)A[2]);
    case SYS_chmod: return h_chmod(c, AT_FDCWD, A[0], (unsigned)A[1], 0);
    case SYS_fchmodat: return h_chmod(c, (int)A[0], A[1], (unsigned)A[2], 0);
    case __NR_fchmodat2: return h_chmod(c, (int)A[0], A[1], (unsigned)A[2], (int)A[3]);
    case SYS_fchmod: return h_fchmod(c, (int)A[0], (unsigned)A[1]);
    case SYS_link: return h_link(c, AT_FDCWD, A[0], AT_FDCWD, A[1], 0);
    case SYS_linkat: return h_link(c, (int)A[0], A[1], (int)A[2], A[3], (int)A[4]);
    case SYS_symlink: return h_symlink(c, A[0], AT_FDCWD, A[1]);
    case SYS_symlinkat: return h_symlink(c, A[0], (int)A[1], A[2]);
    case SYS_mknod: return h_mknod(c, AT_FDCWD, A[0], (unsigned)A[1], (unsigned long)A[2]);
    case SYS_mknodat: return h_mknod(c, (int)A[0], A[1], (unsigned)A[2], (unsigned long)A[3]);
    case SYS_truncate: return h_truncate(c, A[0], (long long)A[1]);
    case SYS_connect: return h_connect(c, (int)A[0], A[1], A[2]);
    case SYS_sendto: return h_sendto(c, (int)A[0], A[1], A[2], (int)A[3], A[4], A[5]);
    case SYS_sendmsg: return h_sendmsg(c, (int)A[0], A[1], (int)A[2]);
    case SYS_sendmmsg: return h_sendmmsg(c, (int)A[0], A[1], (unsigned)A[2], (int)A[3]);
    case SYS_execve: return h_exec(c, AT_FDCWD, A[0], A[1], 0);
    case SYS_execveat: return h_exec(c, (int)A[0], A[1], A[2], (int)A[4]);
    default: return respond(c, ENOSYS, 0); /* unknown: deny */
    }
}

static void *worker_main(void *arg) {
    pl_supervisor *s = arg;
    pl_sandbox *sb = s->sb;
    int ok = 1;
    if (sb->drop_creds) {
        /* Per-thread credentials via raw syscalls (glibc would broadcast). */
        if (syscall(SYS_setgroups, 0, NULL) < 0) ok = 0;
        syscall(SYS_setfsgid, sb->gid);
        syscall(SYS_setfsuid, sb->uid);
        if ((gid_t)syscall(SYS_setfsgid, -1) != sb->gid || (uid_t)syscall(SYS_setfsuid, -1) != sb->uid) ok = 0;
        tl_fsuid = (int)sb->uid;
    }
    if (unshare(CLONE_FS) < 0) ok = 0;
    umask(0);
    struct seccomp_notif_sizes sz;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0) ok = 0;
    size_t nsz =
        ok && sz.seccomp_notif > sizeof(struct seccomp_notif) ? sz.seccomp_notif : sizeof(struct seccomp_notif);
    struct seccomp_notif *req = calloc(1, nsz);
    char *text = malloc(TEXT_CAP);
    if (!ok || !req || !text) {
        pl_sandbox_kill(sb); /* cannot govern: fail closed */
        free(req);
        free(text);
        return NULL;
    }
    while (!s->stop) {
        pthread_mutex_lock(&s->recv_mu);
        struct pollfd pf = {.fd = sb->listener, .events = POLLIN};
        int pr = poll(&pf, 1, 100);
        int got = 0, hup = 0;
        if (pr > 0 && (pf.revents & POLLIN)) {
            memset(req, 0, nsz);
            if (ioctl(sb->listener, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) got = 1;
        } else if (pr > 0 && (pf.revents & (POLLHUP | POLLERR | POLLNVAL))) {
            hup = 1;
        }
        pthread_mutex_unlock(&s->recv_mu);
        if (hup) break;
        if (!got) continue;
        STAT_INC(s, notifications);
        call c = {.s = s, .req = req, .tid = (pid_t)req->pid, .text = text};
        handle(&c);
        if (!c.answered) respond(&c, EPERM, 0);
    }
    free(req);
    free(text);
    return NULL;
}

int pl_supervisor_start(pl_sandbox *sb, const pl_supervisor_opts *o, pl_supervisor **out, pl_err *err) {
    *out = NULL;
    if (!sb || sb->listener < 0 || !o || !o->decide || !o->audit)
        return pl_fail(err, PL_ERR_ARG, "supervisor: sandbox, decider and audit log are required");
    pl_supervisor *s = calloc(1, sizeof *s);
    if (!s) return pl_fail(err, PL_ERR_NOMEM, "supervisor: out of memory");
    s->sb = sb;
    s->o = *o;
    pthread_mutex_init(&s->decide_mu, NULL);
    pthread_mutex_init(&s->recv_mu, NULL);
    pthread_mutex_init(&s->exec_mu, NULL);
    pthread_rwlock_init(&s->fs_lock, NULL);
    int n = o->n_workers > 0 ? o->n_workers : 8;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&s->workers[i], NULL, worker_main, s) != 0) break;
        s->n_workers++;
    }
    if (s->n_workers == 0) {
        pl_sandbox_kill(sb);
        free(s);
        return pl_fail(err, PL_ERR_IO, "supervisor: cannot start worker threads; agent killed");
    }
    *out = s;
    return 0;
}

static void stop_workers(pl_supervisor *s) {
    if (s->stop) return;
    s->stop = 1;
    for (int i = 0; i < s->n_workers; i++) pthread_join(s->workers[i], NULL);
}

int pl_supervisor_wait(pl_supervisor *s) {
    int st = 0;
    while (waitpid(s->sb->pid, &st, 0) < 0 && errno == EINTR) {
    }
    s->waited = 1;
    pl_sandbox_kill(s->sb);
    stop_workers(s);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 255;
}

void pl_supervisor_get_stats(pl_supervisor *s, pl_supervisor_stats *out) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *out = s->st;
}

void pl_supervisor_free(pl_supervisor *s) {
    if (!s) return;
    if (!s->waited) pl_sandbox_kill(s->sb);
    stop_workers(s);
    pthread_mutex_destroy(&s->decide_mu);
    pthread_mutex_destroy(&s->recv_mu);
    pthread_mutex_destroy(&s->exec_mu);
    pthread_rwlock_destroy(&s->fs_lock);
    free(s);
}
