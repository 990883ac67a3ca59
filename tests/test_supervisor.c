/* test_supervisor.c — the enforcement layer end to end: the test process is
 * the supervisor; each scenario forks an agent into the sandbox (uid 65534,
 * Landlock, seccomp listener) that runs a function of this file and reports
 * through its exit code and files in a scratch workspace. Must run as root
 * on a kernel with seccomp user notification, Landlock and cgroup v2. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "classifier_proc.h"
#include "sandbox.h"
#include "supervisor.h"
#include "testlib.h"
#include "agent_harness.h"

/* Substring decider standing in for the model. */
static int test_decide(void *ctx, const char *cls, const char *text, size_t len, pl_verdict *v) {
    (void)ctx;
    (void)cls;
    (void)len;
    memset(v, 0, sizeof *v);
    v->p_dangerous = 0.0;
    if (strstr(text, "SLOW")) sleep(10);
    if (strstr(text, "CRASH")) abort();
    if (strstr(text, "forbidden") || strstr(text, "/etc/shadow") || (deny_port[0] && strstr(text, deny_port))) {
        v->decision = PL_DECISION_DENY;
        v->p_dangerous = 1.0;
        snprintf(v->rule, sizeof v->rule, "test:substring");
        snprintf(v->reason, sizeof v->reason, "forbidden substring");
    } else {
        v->decision = PL_DECISION_ALLOW;
    }
    return 0;
}

/* ---- agents ---------------------------------------------------------------- */

static int agent_fs(void *arg) {
    (void)arg;
    int fails = 0;
    char p[256], q[256];
    ACHECK(getuid() == 65534 && geteuid() == 65534);
    ACHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1);
    errno = 0;
    ACHECK(kill(getppid(), 0) < 0 && errno == EPERM); /* cannot signal the supervisor */
    wpath(p, "ok.txt");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ACHECK(fd >= 0 && write(fd, "hello", 5) == 5);
    close(fd);
    wpath(p, "forbidden.txt");
    errno = 0;
    ACHECK(open(p, O_WRONLY | O_CREAT, 0644) < 0 && errno == EACCES);
    /* relative to cwd and to a dirfd */
    ACHECK(chdir(ws) == 0);
    fd = open("rel.txt", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ACHECK(fd >= 0);
    ACHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC);
    close(fd);
    int dfd = open(ws, O_RDONLY | O_DIRECTORY);
    fd = openat(dfd, "at.txt", O_WRONLY | O_CREAT, 0666);
    ACHECK(fd >= 0);
    close(fd);
    errno = 0;
    ACHECK(openat(dfd, "forbidden_at.txt", O_WRONLY | O_CREAT, 0666) < 0 && errno == EACCES);
    /* envelope: outside the writable roots */
    errno = 0;
    ACHECK(open("/etc/probelogits_test_file", O_WRONLY | O_CREAT, 0644) < 0 && errno == EACCES);
    errno = 0;
    ACHECK(open("/etc/shadow", O_RDWR) < 0 && errno == EACCES);
    /* mkdir */
    ACHECK(mkdir("dir_ok", 0755) == 0);
    errno = 0;
    ACHECK(mkdir("dir_forbidden", 0755) < 0 && errno == EACCES);
    /* chmod */
    ACHECK(chmod("ok.txt", 0600) == 0);
    errno = 0;
    ACHECK(chmod("forbidden_c", 0777) < 0 && errno == EACCES);
    fd = open("ok.txt", O_WRONLY);
    ACHECK(fd >= 0 && fchmod(fd, 0640) == 0);
    close(fd);
    /* rename */
    ACHECK(rename("ok.txt", "ok2.txt") == 0);
    errno = 0;
    ACHECK(rename("ok2.txt", "forbidden_r") < 0 && errno == EACCES);
    /* unlink */
    ACHECK(unlink("rel.txt") == 0);
    errno = 0;
    ACHECK(unlink("forbidden_u") < 0 && errno == EACCES);
    ACHECK(rmdir("dir_ok") == 0);
    /* symlink + link + truncate */
    ACHECK(symlink("ok2.txt", "lnk") == 0);
    fd = open("lnk", O_WRONLY | O_APPEND); /* follows to ok2.txt */
    ACHECK(fd >= 0 && write(fd, "!", 1) == 1);
    close(fd);
    ACHECK(link("ok2.txt", "hard.txt") == 0);
    ACHECK(truncate("hard.txt", 3) == 0);
    /* /proc/self, /dev/fd and /dev/stdout rewrites */
    fd = open("pself.txt", O_WRONLY | O_CREAT, 0644);
    ACHECK(fd >= 0);
    snprintf(q, sizeof q, "/proc/self/fd/%d", fd);
    int fd2 = open(q, O_WRONLY);
    ACHECK(fd2 >= 0 && write(fd2, "P", 1) == 1);
    close(fd2);
    snprintf(q, sizeof q, "/dev/fd/%d", fd);
    fd2 = open(q, O_WRONLY | O_APPEND);
    ACHECK(fd2 >= 0 && write(fd2, "D", 1) == 1);
    close(fd2);
    close(fd);
    fd = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ACHECK(fd >= 0 && dup2(fd, 1) == 1);
    close(fd);
    fd2 = open("/dev/stdout", O_WRONLY | O_APPEND);
    ACHECK(fd2 >= 0 && write(fd2, "S", 1) == 1);
    close(fd2);
    fd2 = open("/dev/null", O_WRONLY);
    ACHECK(fd2 >= 0);
    close(fd2);
    /* unreadable path pointer */
    errno = 0;
    ACHECK(syscall(SYS_openat, AT_FDCWD, (void *)8, O_WRONLY | O_CREAT, 0644) < 0 && errno == EFAULT);
    return fails;
}

static int agent_refused(void *arg) {
    (void)arg;
    int fails = 0;
#define REFUSED(call)                                                                                                  \
    do {                                                                                                               \
        errno = 0;                                                                                                     \
        long r_ = (call);                                                                                              \
        if (!(r_ < 0 && errno == EPERM)) {                                                                             \
            dprintf(2, "agent FAIL: %s reached the kernel (r=%ld errno=%d)\n", #call, r_, errno);                      \
            fails++;                                                                                                   \
        }                                                                                                              \
    } while (0)
    REFUSED(syscall(SYS_io_uring_setup, 0, NULL));
    REFUSED(syscall(SYS_ptrace, -1L, 0, 0, 0));
    REFUSED(syscall(SYS_bpf, -1, NULL, 0));
    REFUSED(syscall(SYS_open_by_handle_at, -1, NULL, 0));
    REFUSED(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0));
    REFUSED(syscall(SYS_process_vm_readv, 0, NULL, 0, NULL, 0, 1));
    REFUSED(syscall(SYS_process_vm_writev, 0, NULL, 0, NULL, 0, 1));
    REFUSED(syscall(SYS_pidfd_getfd, -1, -1, 0));
    REFUSED(syscall(SYS_userfaultfd, ~0));
    REFUSED(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    REFUSED(syscall(SYS_keyctl, -1, 0, 0, 0, 0));
    REFUSED(syscall(SYS_personality, 0xffffffffUL));
    REFUSED(syscall(SYS_fsopen, NULL, 0));
    REFUSED(syscall(SYS_mount, NULL, NULL, NULL, 0, NULL));
    REFUSED(syscall(SYS_unshare, CLONE_NEWUSER));
    REFUSED(syscall(SYS_setns, -1, 0));
    REFUSED(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, NULL));
    REFUSED(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    REFUSED(syscall(SYS_init_module, NULL, 0, NULL));
    errno = 0;
    ACHECK(syscall(SYS_clone3, NULL, 0) < 0 && errno == ENOSYS);
    errno = 0;
    ACHECK(socket(AF_PACKET, SOCK_RAW, 0) < 0 && errno == EAFNOSUPPORT);
    return fails;
}

static int agent_int80(void *arg) {
    (void)arg;
    long r = 20; /* i386 getpid */
    __asm__ volatile("int $0x80" : "+a"(r) : : "memory");
    return 0; /* reaching this line is a failure */
}

static int agent_x32(void *arg) {
    (void)arg;
    syscall(0x40000000L | 39); /* x32 getpid */
    return 0;
}

static int agent_exec(void *arg) {
    (void)arg;
    int fails = 0;
    pid_t p = fork();
    if (p == 0) {
        char *av[] = {"true", NULL};
        execv("/bin/true", av);
        _exit(errno == EACCES ? 42 : 43);
    }
    int st;
    waitpid(p, &st, 0);
    ACHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    p = fork();
    if (p == 0) {
        char *av[] = {"echo", "forbidden", NULL};
        execv("/bin/echo", av);
        _exit(errno == EACCES ? 42 : 43);
    }
    waitpid(p, &st, 0);
    ACHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    char *av[] = {"nope", NULL};
    errno = 0;
    ACHECK(execv("/nonexistent/nope", av) < 0 && errno == ENOENT);
    /* a shell running a pipeline: every exec is governed and allowed */
    p = fork();
    if (p == 0) {
        char *sv[] = {"sh", "-c", "echo hi | cat > /dev/null && ls / > /dev/null", NULL};
        execv("/bin/sh", sv);
        _exit(99);
    }
    waitpid(p, &st, 0);
    ACHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return fails;
}

static int port_ok, port_bad;
static int agent_connect(void *arg) {
    (void)arg;
    int fails = 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = htons((uint16_t)port_ok);
    ACHECK(connect(s, (struct sockaddr *)&a, sizeof a) == 0);
    ACHECK(write(s, "x", 1) == 1);
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_port = htons((uint16_t)port_bad);
    errno = 0;
    ACHECK(connect(s, (struct sockaddr *)&a, sizeof a) < 0 && errno == ECONNREFUSED);
    close(s);
    return fails;
}

/* Argument-swap race: a sibling flips the path between an allowed and a
 * forbidden file (same length) while the main thread opens it for write. */
static char race_buf[256];
static char race_a[256], race_b[256];
static atomic_int race_stop;
static void *flipper(void *x) {
    (void)x;
    size_t n = strlen(race_a) + 1;
    while (!atomic_load_explicit(&race_stop, memory_order_relaxed)) {
        memcpy(race_buf, race_a, n);
        memcpy(race_buf, race_b, n);
    }
    return NULL;
}
static int race_n = 20000;
static int agent_race(void *arg) {
    int mode = (int)(intptr_t)arg; /* 0 open, 1 rename */
    wpath(race_a, mode ? "allowed_dst1" : "allowed.txt");
    wpath(race_b, mode ? "forbidden_dt" : "forbidden.t");
    if (strlen(race_a) != strlen(race_b)) return 100;
    memcpy(race_buf, race_a, strlen(race_a) + 1);
    char src[256];
    wpath(src, "rsrc");
    pthread_t t;
    pthread_create(&t, NULL, flipper, NULL);
    int ok = 0;
    for (int i = 0; i < race_n; i++) {
        if (mode == 0) {
            int fd = open(race_buf, O_WRONLY | O_CREAT, 0644);
            if (fd >= 0) {
                ok++;
                close(fd);
            }
        } else {
            int fd = open(src, O_WRONLY | O_CREAT, 0644);
            if (fd >= 0) close(fd);
            if (rename(src, race_buf) == 0) ok++;
        }
    }
    atomic_store(&race_stop, 1);
    pthread_join(t, NULL);
    dprintf(2, "race(%s): %d/%d allowed operations succeeded\n", mode ? "rename" : "open", ok, race_n);
    return 0;
}

/* Concurrency for the audit log: 4 threads x 300 write-opens. */
static void *opener(void *x) {
    char p[256];
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof p, "%s/conc_%ld_%d", ws, (long)(intptr_t)x, i % 7);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) close(fd);
    }
    return NULL;
}
static int agent_concurrent(void *arg) {
    (void)arg;
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, opener, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}

static int agent_bench(void *arg) {
    (void)arg;
    char p[256];
    wpath(p, "bench.txt");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 10000; i++) {
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) return 1;
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / 10000;
    dprintf(2, "BENCH_SUPERVISED_US %.2f\n", us);
    return 0;
}

static int agent_classifier(void *arg) {
    (void)arg;
    int fails = 0;
    char p[256];
    const char *names[] = {"SLOW.txt", "after1.txt", "CRASH.txt", "after2.txt"};
    const int expect_ok[] = {0, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        wpath(p, names[i]);
        errno = 0;
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (expect_ok[i])
            ACHECK(fd >= 0);
        else
            ACHECK(fd < 0 && errno == EACCES);
        if (fd >= 0) close(fd);
    }
    return fails;
}

static int agent_wait_forever(void *arg) {
    (void)arg;
    char p[256];
    wpath(p, "alive");
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
    for (;;) {
        wpath(p, "loop.txt");
        fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd < 0 && errno == ENOSYS) return 38; /* the kernel answered for a dead supervisor */
        if (fd >= 0) close(fd);
        usleep(1000);
    }
}

/* ---- helpers --------------------------------------------------------------- */

static int listen_port(int *port) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    listen(s, 8);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return s;
}

static void make_file(const char *name, mode_t mode) {
    char p[256];
    wpath(p, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd >= 0) {
        if (fchown(fd, 65534, 65534) != 0) {
        }
        close(fd);
    }
}

static long audit_lines(int *bad) {
    FILE *f = fopen(audit_path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    *bad = 0;
    while (getline(&line, &cap, f) > 0) {
        json_object *o = json_tokener_parse(line);
        json_object *d;
        if (!o || !json_object_object_get_ex(o, "decision", &d) || !json_object_object_get_ex(o, "action", &d))
            (*bad)++;
        if (o) json_object_put(o);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

int main(void) {
    if (geteuid() != 0) {
        fprintf(stderr, "test_supervisor: must run as root (the agent is dropped to uid 65534)\n");
        CHECK(0, "not root");
        return testlib_finish("test_supervisor");
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(ws, sizeof ws, "/tmp/pl_sup_XXXXXX");
    CHECK(mkdtemp(ws) != NULL, "mkdtemp");
    chmod(ws, 0777);
    snprintf(audit_path, sizeof audit_path, "/dev/shm/pl_sup_audit_%d.jsonl", (int)getpid());
    char errbuf[512] = "";
    pl_err err = {errbuf, sizeof errbuf};
    CHECK(pl_audit_open(audit_path, &audit, &err) == 0, "audit: %s", errbuf);
    make_file("forbidden_c", 0644);
    make_file("forbidden_u", 0644);

    /* 1. per-syscall allow/deny, rewrites, identity */
    int rc = run_agent(agent_fs, NULL);
    CHECK(rc == 0, "agent_fs: %d failed checks", rc);
    CHECK(!exists("forbidden.txt") && !exists("forbidden_at.txt") && !exists("dir_forbidden") && !exists("forbidden_r"),
          "a forbidden effect happened");
    CHECK(exists("forbidden_u") && exists("ok2.txt") && !exists("ok.txt") && exists("at.txt") && !exists("rel.txt"),
          "fs effects");
    CHECK(access("/etc/probelogits_test_file", F_OK) != 0, "envelope violated");
    struct stat st;
    char p[256];
    wpath(p, "forbidden_c");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0644, "forbidden chmod happened");
    wpath(p, "ok2.txt");
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640 && st.st_uid == 65534, "chmod/fchmod/owner: %o uid %d",
          st.st_mode & 0777, (int)st.st_uid);
    wpath(p, "hard.txt");
    CHECK(stat(p, &st) == 0 && st.st_size == 3 && st.st_nlink == 2, "link/truncate");
    wpath(p, "pself.txt");
    wpath(p, "out.txt");
    CHECK(stat(p, &st) == 0 && st.st_size == 1, "/dev/stdout reopen");
    wpath(p, "pself.txt");
    CHECK(stat(p, &st) == 0 && st.st_size == 2, "/proc/self/fd and /dev/fd reopen wrote %lld bytes",
          (long long)st.st_size);

    /* 2. refused syscalls, arch */
    rc = run_agent(agent_refused, NULL);
    CHECK(rc == 0, "agent_refused: %d syscalls reached the kernel", rc);
    rc = run_agent(agent_int80, NULL);
    CHECK(rc == 128 + SIGSYS, "int 0x80: agent exit %d, expected SIGSYS kill", rc);
    rc = run_agent(agent_x32, NULL);
    CHECK(rc == 128 + SIGSYS, "x32: agent exit %d, expected SIGSYS kill", rc);

    /* 3. exec */
    rc = run_agent(agent_exec, NULL);
    CHECK(rc == 0, "agent_exec: %d failed checks", rc);

    /* 4. connect */
    int l1 = listen_port(&port_ok), l2 = listen_port(&port_bad);
    snprintf(deny_port, sizeof deny_port, ":%d", port_bad);
    rc = run_agent(agent_connect, NULL);
    CHECK(rc == 0, "agent_connect: %d failed checks", rc);
    int c1 = accept(l1, NULL, NULL), c2 = accept(l2, NULL, NULL);
    CHECK(c1 >= 0, "allowed connect did not arrive");
    CHECK(c2 < 0, "denied connect arrived");
    if (c1 >= 0) close(c1);
    if (c2 >= 0) close(c2);
    close(l1);
    close(l2);
    deny_port[0] = 0;

    /* 5. races */
    double t0 = pl_now();
    rc = run_agent(agent_race, (void *)0);
    CHECK(rc == 0, "race agent %d", rc);
    CHECK(!exists("forbidden.t"), "RACE: the forbidden file was created");
    fprintf(stderr, "open race: %d tries in %.1f s, forbidden effects: %d, denied decisions: %lu\n", race_n,
            pl_now() - t0, exists("forbidden.t"), last_stats.denied);
    race_n = 5000;
    t0 = pl_now();
    rc = run_agent(agent_race, (void *)1);
    CHECK(rc == 0, "rename race agent %d", rc);
    CHECK(!exists("forbidden_dt"), "RACE: the forbidden rename happened");
    fprintf(stderr, "rename race: %d tries in %.1f s, forbidden effects: %d, denied decisions: %lu\n", race_n,
            pl_now() - t0, exists("forbidden_dt"), last_stats.denied);

    /* 6. audit completeness under concurrency */
    int bad;
    long before = audit_lines(&bad);
    unsigned long cnt0 = pl_audit_count(audit);
    rc = run_agent(agent_concurrent, NULL);
    long after = audit_lines(&bad);
    CHECK(rc == 0, "concurrent agent %d", rc);
    CHECK(after - before == (long)last_stats.decided && last_stats.decided >= 1200, "audit lines %ld vs decisions %lu",
          after - before, last_stats.decided);
    CHECK((unsigned long)after == pl_audit_count(audit) && pl_audit_count(audit) - cnt0 == last_stats.decided,
          "audit count");
    CHECK(bad == 0, "%d audit lines are not valid JSON", bad);

    /* 7. classifier process: timeout, crash, recovery */
    pl_classifier *cl;
    pl_classifier_opts co = {.timeout_ms = 500, .backoff_ms = 20};
    CHECK(pl_classifier_start(test_decide, NULL, &co, &cl, &err) == 0, "classifier: %s", errbuf);
    t0 = pl_now();
    rc = run_agent_with(agent_classifier, NULL, pl_classifier_decide, cl);
    CHECK(rc == 0, "agent_classifier: %d failed checks", rc);
    CHECK(pl_classifier_starts(cl) >= 3, "classifier starts %d", pl_classifier_starts(cl));
    CHECK(exists("after1.txt") && exists("after2.txt") && !exists("SLOW.txt") && !exists("CRASH.txt"),
          "classifier effects");
    fprintf(stderr, "classifier timeout+crash+recovery: %.2f s, %d starts\n", pl_now() - t0, pl_classifier_starts(cl));
    pl_classifier_stop(cl);

    /* 8. supervisor death: the agent is killed (PDEATHSIG) */
    char cg[PATH_MAX];
    int agent_pid;
    const pid_t mid = start_doomed_supervisor(agent_wait_forever, test_decide, &agent_pid, cg);
    for (int i = 0; i < 200 && !exists("alive"); i++) usleep(10000);
    CHECK(mid > 0 && agent_pid > 0 && exists("alive"), "death-test agent did not start");
    const int st2 = mid > 0 && agent_pid > 0 ? kill_supervisor(mid, agent_pid) : -1;
    CHECK(st2 != -1 && ((WIFSIGNALED(st2) && WTERMSIG(st2) == SIGKILL) || (WIFEXITED(st2) && WEXITSTATUS(st2) == 38)),
          "agent survived its supervisor (status=0x%x)", st2);
    if (cg[0]) rmdir(cg);

    /* 9. overhead: 10 000 write-opens with and without the supervisor */
    wpath(p, "bench_root.txt");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 10000; i++) {
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    fprintf(stderr, "BENCH_BASELINE_US %.2f\n",
            ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / 10000);
    rc = run_agent(agent_bench, NULL);
    CHECK(rc == 0, "bench agent %d", rc);

    pl_audit_close(audit);
    if (!getenv("PL_KEEP_AUDIT")) unlink(audit_path);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ws);
    if (system(cmd) != 0) {
    }
    return testlib_finish("test_supervisor");
}
