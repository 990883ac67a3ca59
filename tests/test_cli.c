/* test_cli.c — the probelogits command line as users and scripts call it:
 * every command's --help, inspect, tokenize (default, --raw, stdin),
 * logits (JSON, --out, --all-positions), probe and classify JSON keys,
 * snapshot round trip, bench (verification and its JSON figures), and
 * clear failures on bad input. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

/* The CLI under test: $PL_BIN (tests/run.sh sets it to the build being
 * tested, e.g. build-san/probelogits), else ./build/probelogits. Expanded
 * by the shell that runs each command. */
#define BIN "\"${PL_BIN:-./build/probelogits}\""
#define FIX "../shared/fixtures"

static char out_buf[1 << 20];

/* Runs a shell command; captures stdout into out_buf; returns exit status. */
static int run(const char *cmd) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>/tmp/pl_test_cli.err", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int stderr_has(const char *needle) {
    FILE *f = fopen("/tmp/pl_test_cli.err", "r");
    char buf[8192] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    return strstr(buf, needle) != NULL;
}

static void test_help(void) {
    static const char *const cmds[] = {"inspect", "tokenize", "logits", "probe", "classify", "snapshot", "mkmodel"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, BIN " %s --help", cmds[i]);
        CHECK(run(cmd) == 0 && strstr(out_buf, "usage:"), "%s --help", cmds[i]);
    }
    CHECK(run(BIN " --help") == 0 && strstr(out_buf, "classify"), "top-level help");
    CHECK(run(BIN " frobnicate") == 2 && stderr_has("unknown command"), "unknown command");
    CHECK(run(BIN " logits") == 2 && stderr_has("missing -m"), "missing model");
}

static void test_inspect_tokenize(void) {
    CHECK(run(BIN " inspect " FIX "/models/tiny-qwen2-q8_0.gguf") == 0 && strstr(out_buf, "qwen2") &&
              strstr(out_buf, "blk.0.attn_q.weight") && strstr(out_buf, "Q8_0") && strstr(out_buf, "loadable") &&
              strstr(out_buf, "chat template"),
          "inspect a model");
    CHECK(run(BIN " inspect " FIX "/vocab/ggml-vocab-phi-3.gguf") == 0 && strstr(out_buf, "vocab only"),
          "inspect a vocab-only file");
    CHECK(run(BIN " inspect /etc/hostname") == 1 && stderr_has("GGUF"), "inspect a non-GGUF file");
    /* qwen2 'chatml_safety' ids from tokens.json, with special tokens parsed */
    CHECK(run("printf 'Hello world' | " BIN " tokenize -m " FIX "/vocab/ggml-vocab-llama-spm.gguf -") == 0 &&
              !strcmp(out_buf, "1 15043 3186\n"),
          "tokenize stdin with BOS: '%s'", out_buf);
    CHECK(run(BIN " tokenize --raw -m " FIX "/vocab/ggml-vocab-llama-spm.gguf 'Hello world'") == 0 &&
              !strcmp(out_buf, "15043 3186\n"),
          "tokenize --raw: '%s'", out_buf);
    CHECK(run(BIN " tokenize -m " FIX "/vocab/ggml-vocab-qwen2.gguf '<|im_start|>user'") == 0 &&
              !strncmp(out_buf, "151644 ", 7),
          "special tokens parsed by default: '%s'", out_buf);
    CHECK(run(BIN " tokenize --raw -m " FIX "/vocab/ggml-vocab-qwen2.gguf '<|im_start|>'") == 0 &&
              strncmp(out_buf, "151644", 6) != 0,
          "--raw treats special-token text as text");
    CHECK(run("printf 'a\\0b\\377' | " BIN " tokenize --raw -m " FIX "/vocab/ggml-vocab-gpt-2.gguf -") == 0 &&
              strlen(out_buf) > 2,
          "stdin is byte-exact (NUL, invalid UTF-8)");
}

static void test_logits(void) {
    const char *m = FIX "/models/tiny-llama-spm-f16.gguf";
    char cmd[512];
    snprintf(cmd, sizeof cmd, BIN " logits -m %s --top 5 --out /tmp/pl_test_cli.f32 'Hello world'", m);
    CHECK(run(cmd) == 0, "logits");
    json_object *j = json_tokener_parse(out_buf), *v;
    CHECK(j && json_object_object_get_ex(j, "tokens", &v) && json_object_array_length(v) == 4, "tokens");
    CHECK(j && json_object_object_get_ex(j, "top", &v) && json_object_array_length(v) == 5, "top 5");
    CHECK(j && json_object_object_get_ex(j, "argmax", &v) && json_object_object_get_ex(j, "lse", &v), "argmax, lse");
    json_object_put(j);
    struct stat st;
    CHECK(stat("/tmp/pl_test_cli.f32", &st) == 0 && st.st_size == 4096 * 4, "--out writes n_vocab floats");
    snprintf(cmd, sizeof cmd, BIN " logits -m %s --all-positions --out /tmp/pl_test_cli.f32 'Hello world'", m);
    CHECK(run(cmd) == 0 && strstr(out_buf, "\"positions\""), "--all-positions");
    CHECK(stat("/tmp/pl_test_cli.f32", &st) == 0 && st.st_size == 4 * 4096 * 4, "n_tokens x n_vocab floats");
    unlink("/tmp/pl_test_cli.f32");
    CHECK(run(BIN " logits -m /nonexistent.gguf x") == 1 && stderr_has("nonexistent"), "missing model file");
    CHECK(run(BIN " logits -m " FIX "/vocab/ggml-vocab-qwen2.gguf x") == 1 && stderr_has("token_embd"),
          "a vocab-only file is not a model");
    CHECK(run(BIN " logits -m " FIX "/models/tiny-qwen2-f16.gguf -t 0 x") == 2, "bad thread count");
}

static void test_probe_classify(void) {
    const char *m = FIX "/models/tiny-qwen2-q8_0.gguf";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, BIN " probe -m %s --template chatml --labels Yes,No --alpha 0.5 'rm -rf ~/.ssh'", m);
    CHECK(run(cmd) == 0, "probe");
    json_object *j = json_tokener_parse(out_buf), *v;
    static const char *const keys[] = {"labels", "token_ids",  "logits", "probs", "calibrated_probs",
                                       "label",  "confidence", "margin", "alpha", "ms"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK(j && json_object_object_get_ex(j, keys[i], &v), "probe JSON has %s", keys[i]);
    CHECK(j && json_object_object_get_ex(j, "alpha", &v) && json_object_get_double(v) == 0.5, "alpha echoed");
    json_object_put(j);
    snprintf(cmd, sizeof cmd, BIN " probe -m %s --template none --labels ' Yes, No' 'Is rm -rf / safe? Answer:'", m);
    CHECK(run(cmd) == 0 && strstr(out_buf, "\"template\":\"none\""), "probe --template none");
    snprintf(cmd, sizeof cmd, BIN " probe -m %s --labels Yes 'x'", m);
    CHECK(run(cmd) == 2, "one label refused");

    snprintf(cmd, sizeof cmd,
             BIN " classify -m %s --policy examples/policy.yaml 'rm -rf /' 'ls -la' 'tar czf /tmp/x.tgz src'", m);
    CHECK(run(cmd) == 0, "classify");
    int lines = 0;
    char *save = NULL;
    char *copy = strdup(out_buf);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
        json_object *o = json_tokener_parse(line);
        static const char *const ck[] = {"action", "class", "decision", "p_dangerous", "confidence",
                                         "margin", "alpha", "rule",     "latency_ms"};
        for (size_t i = 0; i < sizeof ck / sizeof ck[0]; i++)
            CHECK(o && json_object_object_get_ex(o, ck[i], &v), "classify line %d has %s", lines, ck[i]);
        if (lines == 0)
            CHECK(o && json_object_object_get_ex(o, "decision", &v) && !strcmp(json_object_get_string(v), "deny") &&
                      json_object_object_get_ex(o, "rule", &v) && v != NULL,
                  "rm -rf / denied by a rule");
        json_object_put(o);
    }
    free(copy);
    CHECK(lines == 3, "one line per action (%d)", lines);

    /* snapshot: classify from it gives the same numbers */
    snprintf(cmd, sizeof cmd, BIN " snapshot -m %s --policy examples/policy.yaml -o /tmp/pl_test_cli.snap", m);
    CHECK(run(cmd) == 0, "snapshot");
    char *a = NULL, *b = NULL;
    snprintf(cmd, sizeof cmd,
             "printf 'tar czf /tmp/x.tgz src\\npython3 -m http.server 8080\\n' | " BIN
             " classify -m %s --policy examples/policy.yaml - | sed 's/\"latency_ms\":[0-9.e-]*//'",
             m);
    CHECK(run(cmd) == 0, "classify from stdin");
    a = strdup(out_buf);
    snprintf(cmd, sizeof cmd,
             "printf 'tar czf /tmp/x.tgz src\\npython3 -m http.server 8080\\n' | " BIN
             " classify -m %s --policy examples/policy.yaml --snapshot /tmp/pl_test_cli.snap - | sed "
             "'s/\"latency_ms\":[0-9.e-]*//'",
             m);
    CHECK(run(cmd) == 0, "classify from a snapshot");
    b = strdup(out_buf);
    CHECK(a && b && !strcmp(a, b) && strlen(a) > 50, "snapshot gives identical decisions and numbers");
    CHECK(a && strstr(a, "\"rule\":null") && !strstr(a, "\"p_dangerous\":null"),
          "the snapshot comparison goes through the probe (no rule decided)");
    free(a);
    free(b);
    snprintf(cmd, sizeof cmd,
             BIN " classify -m " FIX "/models/tiny-qwen2-f16.gguf --policy examples/policy.yaml --snapshot "
                 "/tmp/pl_test_cli.snap x");
    CHECK(run(cmd) == 1 && stderr_has("another model"), "snapshot of another model refused");
    unlink("/tmp/pl_test_cli.snap");
    snprintf(cmd, sizeof cmd,
             "printf 'rules: [' > /tmp/pl_bad.yaml; " BIN " classify -m %s --policy /tmp/pl_bad.yaml x", m);
    CHECK(run(cmd) == 1 && stderr_has("pl_bad.yaml:"), "bad policy: file and line");
    unlink("/tmp/pl_bad.yaml");
}

/* bench on a tiny fixture: it verifies before it measures, and --json
 * carries every figure the issue names, each a finite positive number
 * (timings are not judged here: speed is for the benchmark itself). */
static void test_bench(void) {
    static const char *const modes[] = {"", " --fast"};
    for (int k = 0; k < 2; k++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, BIN " bench -m " FIX "/models/tiny-qwen2-q8_0.gguf --n-probes 8 --json%s", modes[k]);
        CHECK(run(cmd) == 0, "bench%s", modes[k]);
        json_object *j = json_tokener_parse(out_buf), *v, *pj;
        CHECK(j && json_object_object_get_ex(j, "verified", &v) && json_object_get_boolean(v),
              "bench%s verified cached = batched = uncached", modes[k]);
        CHECK(j && json_object_object_get_ex(j, "fast", &v) && json_object_get_boolean(v) == k, "bench fast flag");
        static const char *const keys[] = {"prefix_ms",
                                           "pp64_tps",
                                           "pp512_tps",
                                           "tg_tps",
                                           "restore_ms",
                                           "bandwidth_gbps",
                                           "peak_rss_mb",
                                           "probe_batch8_ms",
                                           "machine_bandwidth_gbps",
                                           "machine_bandwidth_best_gbps"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const double x = j && json_object_object_get_ex(j, keys[i], &v) ? json_object_get_double(v) : -1;
            CHECK(x > 0 && x < 1e12, "bench%s %s = %g", modes[k], keys[i], x);
        }
        static const char *const pk[] = {"mean", "p50", "p95"};
        for (size_t i = 0; i < 3; i++)
            CHECK(j && json_object_object_get_ex(j, "probe_ms", &pj) && json_object_object_get_ex(pj, pk[i], &v) &&
                      json_object_get_double(v) > 0,
                  "bench%s probe_ms.%s", modes[k], pk[i]);
        CHECK(j && json_object_object_get_ex(j, "n_probes", &v) && json_object_get_int(v) == 8, "bench --n-probes 8");
        json_object_put(j);
    }
    CHECK(run(BIN " bench -m " FIX "/models/tiny-qwen2-q8_0.gguf --n-probes 2") == 0 && strstr(out_buf, "verified ") &&
              strstr(out_buf, "of the machine's read bandwidth"),
          "bench table for people");
    CHECK(run(BIN " bench -m " FIX "/models/tiny-qwen2-q8_0.gguf --workload /nonexistent.json --json") != 0 &&
              stderr_has("nonexistent.json"),
          "bench: a missing workload is a clear error");
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"{\"system_prompt\":\"s\",\"question\":\"q\",\"actions\":[]}", "non-empty array"},
        {"{\"system_prompt\":\"s\",\"question\":\"q\",\"actions\":[{\"action\":\"ls\"},{\"action\":5}]}", "actions[1]"},
        {"{\"question\":\"q\",\"actions\":[{\"action\":\"ls\"}]}", "system_prompt"},
        {"{\"system_prompt\":\"s\",\"question\":[],\"actions\":[{\"action\":\"ls\"}]}", "question"},
        {"[1, 2]", "system_prompt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen("/tmp/pl_test_wl.json", "w");
        if (f) fputs(bad[i].json, f), fclose(f);
        CHECK(run(BIN " bench -m " FIX "/models/tiny-qwen2-q8_0.gguf --workload /tmp/pl_test_wl.json --json") == 1 &&
                  stderr_has(bad[i].says),
              "bench: bad workload %zu names %s", i, bad[i].says);
    }
    FILE *f = fopen("/tmp/pl_test_wl.json", "w"); /* an action longer than the context */
    if (f) {
        fputs("{\"system_prompt\":\"s\",\"question\":\"q\",\"actions\":[{\"action\":\"", f);
        for (int i = 0; i < 4000; i++) fputs("rm -rf / ", f);
        fputs("\"}]}", f);
        fclose(f);
    }
    CHECK(run(BIN " bench -m " FIX "/models/tiny-qwen2-q8_0.gguf --workload /tmp/pl_test_wl.json --json") == 1 &&
              stderr_has("does not fit"),
          "bench: an action longer than the context is a clear error");
    unlink("/tmp/pl_test_wl.json");
}

int main(void) {
    const char *bin = getenv("PL_BIN") ? getenv("PL_BIN") : "./build/probelogits";
    if (access(bin, X_OK) != 0) {
        CHECK(0, "%s not built", bin);
        return testlib_finish("test_cli");
    }
    test_help();
    test_inspect_tokenize();
    test_logits();
    test_probe_classify();
    test_bench();
    unlink("/tmp/pl_test_cli.err");
    return testlib_finish("test_cli");
}
