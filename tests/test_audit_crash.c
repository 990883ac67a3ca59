/* test_audit_crash.c — the audit log under supervisor crashes, end to end.
 * Each round forks a supervisor process P that opens one shared audit log
 * (continuing its chain, repairing a torn tail), spawns a sandboxed agent
 * (a function of this file, uid 65534) under a supervisor with a substring
 * test decider, and waits. The agent write-opens allow_<round>_<i> and
 * deny_<round>_<i> in turn and, after each syscall returns, reports what it
 * observed ("<name> ok" / "<name> EACCES") on its stdout: a pipe created by
 * this process. This process SIGKILLs P at a random moment (0-50 ms after
 * its supervisor is running, or in one round of four 0-50 ms after its fork;
 * seeded, PL_SEED to replay), the watchdog kills the agent, and every
 * process of the round is reaped (this process is a child subreaper). After
 * each epoch of 50 rounds: the log verifies intact (after a final open
 * repairs a torn tail), every observation is in the log with the matching
 * decision, the agent observed nothing but ok/EACCES (ENOSYS would mean it
 * ran on after its supervisor died), no deny_ file exists and every file on
 * disk has an allow record (write-ahead); then a fresh log. Must run as
 * root. 100 rounds; PL_STRESS=1 for 2000. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "probelogits.h"
#include "sandbox.h"
#include "supervisor.h"
#include "testlib.h"

static char ws[64];              /* agent workspace (0777) */
static char ws_real[PATH_MAX];   /* its real path, as rendered in actions */
static char adir[64];            /* root-only directory of the audit log */
static char audit_path[128];     /* the audit log, shared by every round */
static char cg_parent[PATH_MAX]; /* cgroup v2 directory the sandbox creates agent cgroups in */

#define NAME_CAP 40
#define MAX_ITERS 1000000 /* agent iterations (never reached: the agent is killed first) */

/* ---- the governed side (runs in P and in the sandbox) ----------------------- */

/* Denies every action on a deny_ file, allows the rest. */
static int test_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *v) {
    (void)ctx;
    (void)cls;
    (void)len;
    memset(v, 0, sizeof *v);
    if (strstr(text, "/deny_")) {
        v->decision = PL_DECISION_DENY;
        v->p_dangerous = 1.0;
        snprintf(v->rule, sizeof v->rule, "test:substring");
        snprintf(v->reason, sizeof v->reason, "deny_ file");
    } else {
        v->decision = PL_DECISION_ALLOW;
    }
    return 0;
}

/* The agent: numbered governed write-opens, each observation reported on
 * fd 1 with one write (atomic on a pipe) after the syscall has returned. */
static int agent(void *arg) {
    int round = (int)(intptr_t)arg;
    char name[NAME_CAP], p[PATH_MAX], line[NAME_CAP + 32];
    for (int i = 0; i < MAX_ITERS; i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(name, sizeof name, "%s_%d_%d", k ? "deny" : "allow", round, i);
            snprintf(p, sizeof p, "%s/%s", ws, name);
            errno = 0;
            int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
            int e = errno;
            if (fd >= 0) close(fd);
            int n = fd >= 0       ? snprintf(line, sizeof line, "%s ok\n", name)
                    : e == EACCES ? snprintf(line, sizeof line, "%s EACCES\n", name)
                                  : snprintf(line, sizeof line, "%s E%d\n", name, e);
            if (write(1, line, (size_t)n) != n) return 3;
        }
    }
    return 0;
}

/* P: the supervisor process of one round. Never returns; normally SIGKILLed. */
static __attribute__((noreturn)) void supervisor_proc(int round, int obs_w, int ready_w) {
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    /* The agent keeps fds 0-2: its stdout is the observation pipe. */
    if (dup2(obs_w, 1) != 1) _exit(10);
    close(obs_w);
    pl_audit *a;
    if (pl_audit_open(audit_path, &a, &err) < 0) {
        dprintf(2, "round %d: P: audit open: %s\n", round, errbuf);
        _exit(11);
    }
    pl_sandbox_opts o = {.workspace = ws, .child_fn = agent, .child_arg = (void *)(intptr_t)round};
    pl_sandbox *sb;
    if (pl_sandbox_spawn(&o, NULL, &sb, &err) < 0) {
        dprintf(2, "round %d: P: spawn: %s\n", round, errbuf);
        _exit(12);
    }
    pl_supervisor_opts so = {.decide = test_decide, .decide_threadsafe = 1, .audit = a, .n_workers = 4};
    pl_supervisor *s;
    if (pl_supervisor_start(sb, &so, &s, &err) < 0) {
        dprintf(2, "round %d: P: supervisor: %s\n", round, errbuf);
        _exit(13);
    }
    (void)!write(ready_w, "R", 1);
    int rc = pl_supervisor_wait(s);
    dprintf(2, "round %d: P: the agent ended on its own (%d)\n", round, rc);
    _exit(14);
}

/* ---- the observing side (the test process) ---------------------------------- */

typedef struct obs {
    char name[NAME_CAP];
    int ok;    /* 1: "ok", 0: "EACCES" */
    int other; /* an errno other than EACCES was observed (its value), else 0 */
} obs;

typedef struct obs_vec {
    obs *v;
    size_t n, cap;
} obs_vec;

static void obs_add(obs_vec *o, const char *line) {
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4096;
        o->v = realloc(o->v, o->cap * sizeof *o->v);
        if (!o->v) abort();
    }
    obs *x = &o->v[o->n++];
    memset(x, 0, sizeof *x);
    const char *sp = strchr(line, ' ');
    size_t nl = sp ? (size_t)(sp - line) : strlen(line);
    if (nl >= NAME_CAP) nl = NAME_CAP - 1;
    memcpy(x->name, line, nl);
    const char *res = sp ? sp + 1 : "";
    if (!strcmp(res, "ok"))
        x->ok = 1;
    else if (!strcmp(res, "EACCES"))
        x->ok = 0;
    else
        x->other = res[0] == 'E' && atoi(res + 1) > 0 ? atoi(res + 1) : -1;
}

/* Splits buffered bytes into lines; keeps a partial last line in buf. */
static void obs_feed(obs_vec *o, char *buf, size_t *len) {
    size_t start = 0;
    for (size_t i = 0; i < *len; i++)
        if (buf[i] == '\n') {
            buf[i] = 0;
            obs_add(o, buf + start);
            start = i + 1;
        }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

/* Removes the agent cgroups P created (probelogits-<P>-*); -1 if one stays. */
static int remove_cgroups(pid_t p) {
    char prefix[64], path[PATH_MAX + 300];
    snprintf(prefix, sizeof prefix, "probelogits-%d-", (int)p);
    DIR *d = opendir(cg_parent);
    if (!d) return 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) {
            snprintf(path, sizeof path, "%s/%s", cg_parent, e->d_name);
            int ok = 0;
            for (int i = 0; i < 400 && !(ok = rmdir(path) == 0 || errno == ENOENT); i++) {
                if (i == 0) { /* still populated: kill it ourselves (reported as a failure) */
                    char k[PATH_MAX + 320];
                    snprintf(k, sizeof k, "%s/cgroup.kill", path);
                    int fd = open(k, O_WRONLY | O_CLOEXEC);
                    if (fd >= 0) {
                        (void)!write(fd, "1", 1);
                        close(fd);
                    }
                }
                usleep(5000);
            }
            if (!ok) rc = -1;
        }
    closedir(d);
    return rc;
}

static int find_cg_parent(void) {
    char mnt[PATH_MAX] = "", self[PATH_MAX] = "", line[PATH_MAX + 64];
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - ");
        if (sep && !strncmp(sep + 3, "cgroup2 ", 8) && sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) break;
        mnt[0] = 0;
    }
    fclose(f);
    if (!mnt[0] || !(f = fopen("/proc/self/cgroup", "re"))) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "0::", 3)) {
            line[strcspn(line, "\n")] = 0;
            size_t l = strlen(line + 3);
            if (l >= sizeof self) return -1;
            memcpy(self, line + 3, l + 1);
            if (!strcmp(self, "/")) self[0] = 0;
        }
    fclose(f);
    return snprintf(cg_parent, sizeof cg_parent, "%s%s", mnt, self) < (int)sizeof cg_parent ? 0 : -1;
}

/* Totals over the rounds. */
typedef struct stats {
    int rounds, ready, not_killed, stragglers, cg_left, hung, torn, empty_rounds, bad_between;
    size_t obs_round_max;
    double setup_s; /* summed fork-to-ready time of the ready supervisors */
} stats;

/* One round: fork P, collect observations, kill P at a random moment, reap
 * everything, remove the agent cgroup, check the log between crashes. */
static void run_round(int round, obs_vec *ov, stats *st) {
    int op[2], rp[2];
    if (pipe2(op, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0) {
        CHECK(0, "pipe: %s", strerror(errno));
        return;
    }
    /* The kill moment: 0-50 ms after P reports its supervisor running, or
     * (one round in four) 0-50 ms after P's fork, which also lands in the
     * audit open/repair and the sandbox setup. */
    int from_fork = rand() % 4 == 0;
    unsigned delay_us = (unsigned)(rand() % 50001);
    fflush(stdout);
    fflush(stderr);
    double t0 = pl_now(), kill_t = 0;
    pid_t p = fork();
    if (p == 0) {
        close(op[0]);
        close(rp[0]);
        supervisor_proc(round, op[1], rp[1]);
    }
    close(op[1]);
    close(rp[1]);
    if (p < 0) {
        CHECK(0, "fork: %s", strerror(errno));
        close(op[0]);
        close(rp[0]);
        return;
    }
    size_t n0 = ov->n;
    char buf[8192];
    size_t len = 0;
    int killed = 0, eof = 0, rp_open = 1, ready = 0;
    double deadline = from_fork ? t0 + delay_us * 1e-6 : t0 + 10.0; /* 10 s: P must get ready */
    for (;;) {
        double now = pl_now();
        if (!killed && now >= deadline) {
            if (!from_fork && !ready) CHECK(0, "round %d: the supervisor was not ready after 10 s", round);
            kill(p, SIGKILL);
            kill_t = now;
            killed = 1;
            deadline = now + 10.0; /* P and the agent must be gone by then */
        }
        if (eof) break;
        if (killed && now >= deadline) {
            st->hung++;
            CHECK(0, "round %d: the observation pipe stayed open 10 s after P's death (agent alive?)", round);
            break;
        }
        struct pollfd pf[2] = {{.fd = op[0], .events = POLLIN}, {.fd = rp_open ? rp[0] : -1, .events = POLLIN}};
        int ms = (int)((deadline - now) * 1e3) + 1;
        if (poll(pf, 2, ms) < 0 && errno != EINTR) break;
        if (pf[1].revents) {
            char c;
            if (read(rp[0], &c, 1) == 1) {
                st->ready++;
                ready = 1;
                st->setup_s += pl_now() - t0;
                if (!from_fork && !killed) deadline = pl_now() + delay_us * 1e-6;
            } else
                rp_open = 0;
        }
        if (pf[0].revents) {
            ssize_t r = read(op[0], buf + len, sizeof buf - len);
            if (r > 0) {
                len += (size_t)r;
                obs_feed(ov, buf, &len);
                if (len == sizeof buf) len = 0; /* cannot happen: lines are short */
            } else if (r == 0 || errno != EINTR) {
                eof = 1;
            }
        }
    }
    CHECK(len == 0, "round %d: partial observation line at EOF", round);
    close(op[0]);
    close(rp[0]);
    int ws_;
    while (waitpid(p, &ws_, 0) < 0 && errno == EINTR) {
    }
    if (!(WIFSIGNALED(ws_) && WTERMSIG(ws_) == SIGKILL)) {
        st->not_killed++;
        CHECK(0, "round %d: P was not killed by us (status 0x%x)", round, ws_);
    }
    /* Reap the orphans (agent, watchdog) reparented to us. */
    int orph[4] = {0}, n_orph = 0;
    double until = pl_now() + 10.0;
    for (;;) {
        int s2;
        pid_t w = waitpid(-1, &s2, WNOHANG);
        if (w > 0) {
            if (n_orph < 4) orph[n_orph++] = s2;
            continue;
        }
        if (w < 0 && errno == ECHILD) break;
        if (pl_now() > until) {
            st->stragglers++;
            CHECK(0, "round %d: processes of the round still alive 10 s after P's death", round);
            break;
        }
        usleep(1000);
    }
    if (remove_cgroups(p) < 0) {
        st->cg_left++;
        CHECK(0, "round %d: the agent cgroup could not be removed", round);
    }
    size_t n = ov->n - n0, n_other = 0;
    for (size_t i = n0; i < ov->n; i++) n_other += ov->v[i].other != 0;
    if (n_other)
        fprintf(stderr,
                "round %d: %zu of %zu observations neither ok nor EACCES; P killed %.1f ms after its fork (supervisor "
                "%s), %d orphans reaped (statuses 0x%x 0x%x)\n",
                round, n_other, n, killed ? (kill_t - t0) * 1e3 : -1.0, ready ? "running" : "not yet running", n_orph,
                orph[0], orph[1]);
    if (n == 0) st->empty_rounds++;
    if (n > st->obs_round_max) st->obs_round_max = n;
    /* Between crashes: intact, or only a torn tail (the next open repairs it). */
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    pl_audit_report rep;
    if (access(audit_path, F_OK) == 0 && pl_audit_verify(audit_path, &rep, &err) != 0) {
        if (rep.problem == PL_AUDIT_TORN)
            st->torn++;
        else {
            st->bad_between++;
            CHECK(0, "round %d: after the crash: %s", round, errbuf);
        }
    }
    st->rounds++;
}

/* Decided file names from the log. */
typedef struct rec {
    char name[NAME_CAP];
    int allow; /* 1 allow/warn, 0 deny */
    int round;
} rec;

static int rec_cmp(const void *a, const void *b) { return strcmp(((const rec *)a)->name, ((const rec *)b)->name); }

/* Reads every record whose action is a write-open in the workspace. */
static rec *read_log(size_t *n_out, size_t *lines_out, size_t *bad_out) {
    FILE *f = fopen(audit_path, "re");
    *n_out = *lines_out = *bad_out = 0;
    if (!f) return NULL;
    size_t n = 0, cap = 4096;
    rec *v = malloc(cap * sizeof *v);
    char *line = NULL, prefix[PATH_MAX + 16];
    size_t lcap = 0;
    int pl = snprintf(prefix, sizeof prefix, "write %s/", ws_real);
    while (getline(&line, &lcap, f) > 0) {
        (*lines_out)++;
        json_object *o = json_tokener_parse(line), *act, *dec;
        if (!o || !json_object_object_get_ex(o, "action", &act) || !json_object_object_get_ex(o, "decision", &dec)) {
            (*bad_out)++;
            if (o) json_object_put(o);
            continue;
        }
        const char *a = json_object_get_string(act), *d = json_object_get_string(dec);
        if (!strncmp(a, prefix, (size_t)pl)) {
            const char *nm = a + pl;
            size_t nl = strcspn(nm, " ");
            if (nl < NAME_CAP) {
                if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
                if (!v) abort();
                memcpy(v[n].name, nm, nl);
                v[n].name[nl] = 0;
                v[n].allow = strcmp(d, "deny") != 0;
                const char *u = strchr(v[n].name, '_');
                v[n].round = u ? atoi(u + 1) : -1;
                n++;
            }
        }
        json_object_put(o);
    }
    free(line);
    fclose(f);
    qsort(v, n, sizeof *v, rec_cmp);
    *n_out = n;
    return v;
}

/* Empties the workspace. */
static void clear_ws(void) {
    DIR *d = opendir(ws);
    if (d) {
        struct dirent *e;
        char p[PATH_MAX + 300];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", ws, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
}

static void cleanup(void) {
    clear_ws();
    rmdir(ws);
    if (!getenv("PL_KEEP_AUDIT")) {
        unlink(audit_path);
        rmdir(adir);
    } else {
        fprintf(stderr, "audit log kept: %s\n", audit_path);
    }
}

/* Totals over the epochs. */
typedef struct totals {
    size_t obs, denied, unobserved, files;
    uint64_t records;
    int max_unobs;
} totals;

/* The full check of rounds [r0, r1) against their log and workspace, then a
 * fresh log and an empty workspace for the next epoch. */
static void check_epoch(obs_vec *ov, int r0, int r1, unsigned seed, totals *t) {
    /* Final repair (a torn tail left by the last kill), then the full check. */
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    pl_audit *a = NULL;
    CHECK(pl_audit_open(audit_path, &a, &err) == 0, "final open: %s", errbuf);
    pl_audit_close(a);
    pl_audit_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK(pl_audit_verify(audit_path, &rep, &err) == 0 && rep.problem == PL_AUDIT_INTACT, "audit verify: %s", errbuf);

    size_t n_rec, n_lines, n_bad;
    rec *recs = read_log(&n_rec, &n_lines, &n_bad);
    CHECK(n_lines == rep.records && n_bad == 0, "%zu lines, %zu unparsable, verify counted %" PRIu64, n_lines, n_bad,
          rep.records);

    /* Every observation is in the log with the decision the agent saw. */
    size_t missing = 0, wrong = 0, other = 0, unexpected = 0, denied_obs = 0, allowed_absent = 0;
    for (size_t i = 0; i < ov->n; i++) {
        const obs *o = &ov->v[i];
        if (o->other) {
            if (other++ < 5) fprintf(stderr, "agent observed errno %d on %s\n", o->other, o->name);
            continue;
        }
        denied_obs += !o->ok;
        int want_ok = !strncmp(o->name, "allow_", 6);
        if (o->ok != want_ok && unexpected++ < 5)
            fprintf(stderr, "agent observed %s on %s\n", o->ok ? "ok" : "EACCES", o->name);
        rec key;
        snprintf(key.name, sizeof key.name, "%s", o->name);
        const rec *r = recs ? bsearch(&key, recs, n_rec, sizeof *recs, rec_cmp) : NULL;
        if (!r) {
            if (missing++ < 5)
                fprintf(stderr, "observed but not in the log: %s %s\n", o->name, o->ok ? "ok" : "EACCES");
        } else if (r->allow != o->ok) {
            if (wrong++ < 5)
                fprintf(stderr, "observed %s but logged %s: %s\n", o->ok ? "ok" : "EACCES", r->allow ? "allow" : "deny",
                        o->name);
        }
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", ws, o->name);
        if (o->ok && access(p, F_OK) != 0) allowed_absent++;
    }
    CHECK(ov->n > 0, "rounds %d..%d: the agent observed nothing", r0, r1 - 1);
    CHECK(missing == 0, "%zu observed decisions are missing from the log (rounds %d..%d, PL_SEED=%u)", missing, r0,
          r1 - 1, seed);
    CHECK(wrong == 0, "%zu observed decisions differ from the logged decision (rounds %d..%d, PL_SEED=%u)", wrong, r0,
          r1 - 1, seed);
    CHECK(other == 0, "%zu observations were neither ok nor EACCES (agent ran without its supervisor?)", other);
    CHECK(unexpected == 0, "%zu observations contradict the decider", unexpected);
    CHECK(allowed_absent == 0, "%zu observed-allowed files are absent", allowed_absent);

    /* Disk: no deny_ file, every file has an allow record (written ahead). */
    size_t deny_on_disk = 0, unlogged = 0, files = 0;
    DIR *d = opendir(ws);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            files++;
            if (!strncmp(e->d_name, "deny_", 5)) {
                deny_on_disk++;
                continue;
            }
            rec key;
            size_t nl = strlen(e->d_name);
            const rec *r = NULL;
            if (nl < sizeof key.name) {
                memcpy(key.name, e->d_name, nl + 1);
                r = recs ? bsearch(&key, recs, n_rec, sizeof *recs, rec_cmp) : NULL;
            }
            if (!r || !r->allow) unlogged++;
        }
        closedir(d);
    }
    CHECK(deny_on_disk == 0, "%zu denied files exist on disk", deny_on_disk);
    CHECK(unlogged == 0, "%zu files on disk have no allow record (effect before the log)", unlogged);

    /* Informational: decisions logged but never observed, per round (the
     * agent is single-threaded: one in flight when P dies). */
    size_t unobserved = 0, dup = 0;
    int max_unobs_round = 0;
    int rounds = r1 - r0;
    if (rounds > 0 && recs) {
        int *per = calloc((size_t)rounds, sizeof *per);
        for (size_t i = 0; i < n_rec; i++) {
            if (i && !strcmp(recs[i].name, recs[i - 1].name)) dup++;
            per[recs[i].round >= r0 && recs[i].round < r1 ? recs[i].round - r0 : 0]++;
        }
        for (size_t i = 0; i < ov->n; i++) {
            const char *u = strchr(ov->v[i].name, '_');
            int r = u ? atoi(u + 1) : -1;
            if (r >= r0 && r < r1) per[r - r0]--;
        }
        for (int r = 0; r < rounds; r++) {
            if (per[r] > 0) unobserved += (size_t)per[r];
            if (per[r] > max_unobs_round) max_unobs_round = per[r];
        }
        free(per);
    }
    CHECK(dup == 0, "%zu actions were logged twice", dup);

    t->obs += ov->n;
    t->denied += denied_obs;
    t->unobserved += unobserved;
    t->files += files;
    t->records += rep.records;
    if (max_unobs_round > t->max_unobs) t->max_unobs = max_unobs_round;
    free(recs);
    ov->n = 0;
    clear_ws();
    if (!getenv("PL_KEEP_AUDIT")) unlink(audit_path);
}

int main(void) {
    if (geteuid() != 0) {
        fprintf(stderr, "test_audit_crash: must run as root (the agent is dropped to uid 65534)\n");
        CHECK(0, "not root");
        return testlib_finish("test_audit_crash");
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    CHECK(find_cg_parent() == 0, "no cgroup v2 mount");
    snprintf(ws, sizeof ws, "/tmp/pl_acrash_XXXXXX");
    struct stat sst;
    snprintf(adir, sizeof adir, "%s/pl_acrash_log_XXXXXX", stat("/dev/shm", &sst) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(ws) || !mkdtemp(adir) || !realpath(ws, ws_real)) {
        CHECK(0, "mkdtemp: %s", strerror(errno));
        return testlib_finish("test_audit_crash");
    }
    chmod(ws, 0777);   /* the agent (uid 65534) creates files here */
    chmod(adir, 0700); /* the log is out of the agent's reach */
    snprintf(audit_path, sizeof audit_path, "%s/audit.jsonl", adir);

    int stress = getenv("PL_STRESS") && atoi(getenv("PL_STRESS")) > 0;
    int rounds = stress ? 2000 : 100, per_epoch = 50; /* a fresh log per epoch: P re-verifies the whole chain */
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (getenv("PL_SEED")) seed = (unsigned)strtoul(getenv("PL_SEED"), NULL, 10);
    srand(seed);

    obs_vec ov = {0};
    stats st = {0};
    double t0 = pl_now();
    totals tot = {0};
    for (int r0 = 0; r0 < rounds; r0 += per_epoch) {
        int r1 = r0 + per_epoch < rounds ? r0 + per_epoch : rounds;
        for (int r = r0; r < r1; r++) run_round(r, &ov, &st);
        check_epoch(&ov, r0, r1, seed, &tot);
    }
    double t_all = pl_now() - t0;

    printf("audit crash test: %d rounds (%d supervisors ready before the kill, mean setup %.1f ms, %d rounds without "
           "observations), "
           "%zu observations (%zu denied), %" PRIu64 " audit records, %zu decided but unobserved (max %d in a round), "
           "%d torn tails repaired, %zu files created, %.1f s (PL_SEED=%u)\n",
           st.rounds, st.ready, st.ready ? st.setup_s / st.ready * 1e3 : 0.0, st.empty_rounds, tot.obs, tot.denied,
           tot.records, tot.unobserved, tot.max_unobs, st.torn, tot.files, t_all, seed);

    free(ov.v);
    cleanup();
    CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a child process was left behind");
    return testlib_finish("test_audit_crash");
}
