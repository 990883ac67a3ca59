/* cli_mkmodel.c — `probelogits mkmodel`: writes a random-weight GGUF model
 * of a preset or explicit shape (see mkmodel.h). Only this file of the
 * feature prints or parses the command line. */
#include "cli_mkmodel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkmodel.h"
#include "probelogits.h"
#include "util.h"

static const char usage_mkmodel[] =
    "usage: probelogits mkmodel (--preset NAME | --arch llama|qwen2 --n-embd N --n-layer N --n-head N\n"
    "                            --n-head-kv N --n-ff N [--ctx N] [--rope-theta F] [--eps F] [--tied|--untied])\n"
    "                           --vocab FILE.gguf --type TYPE [--seed S] [-t N] [--name NAME] -o OUT.gguf\n"
    "Writes a random-weight model (weights N(0, 0.02), norms 1 + N(0, 0.05), biases N(0, 0.02)) with\n"
    "the tokenizer of FILE.gguf, streaming one tensor at a time (bounded memory).\n"
    "  --preset NAME   smollm2-135m (vocab ggml-vocab-starcoder.gguf), qwen2.5-0.5b (ggml-vocab-qwen2.gguf),\n"
    "                  llama3-8b (ggml-vocab-llama-bpe.gguf); explicit options after it override the preset\n"
    "  --arch A        llama or qwen2 (qwen2 adds Q/K/V biases)\n"
    "  --ctx N         context_length metadata (default 4096)\n"
    "  --rope-theta F  default 10000; --eps F: rms epsilon, default 1e-5; --tied (default) / --untied\n"
    "  --type TYPE     F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K (llama.cpp's per-tensor mixtures)\n"
    "  --seed S        PRNG seed (default 1); the file is a function of the options and the seed\n"
    "  -t N            threads (default 2)\n";

static int usage_err(const char *msg) {
    if (msg) fprintf(stderr, "probelogits mkmodel: %s\n", msg);
    fputs("Run 'probelogits mkmodel --help' for the options.\n", stderr);
    return 2;
}

/* Parses a decimal integer in [lo, hi]. */
static bool parse_i64(const char *s, long long lo, long long hi, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_pos_f32(const char *s, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !(v > 0) || v > 1e30f) return false;
    *out = v;
    return true;
}

/* Progress on stderr: one line per 1% step (or per tensor when stderr is
 * not a terminal, to keep logs short, only every 10%). */
typedef struct progress_state {
    int last_pct; /* last printed percentage */
    double t0;    /* start time */
} progress_state;

static void on_progress(void *ud, uint64_t bytes_done, uint64_t bytes_total, uint32_t tensors_done,
                        uint32_t n_tensors) {
    progress_state *s = ud;
    const int pct = bytes_total ? (int)(100.0 * (double)bytes_done / (double)bytes_total) : 100;
    if (pct < s->last_pct + 5 && bytes_done != bytes_total) return;
    s->last_pct = pct;
    fprintf(stderr, "mkmodel: %3d%%  %u/%u tensors  %.1f/%.1f MB  %.1f s\n", pct, tensors_done, n_tensors,
            (double)bytes_done / 1e6, (double)bytes_total / 1e6, pl_now() - s->t0);
}

int cli_mkmodel(int argc, char **argv) {
    pl_mkmodel_params p = {0};
    p.arch = PL_MK_LLAMA, p.n_ctx_train = 4096, p.rope_theta = 10000.0f, p.rms_eps = 1e-5f, p.tied = true;
    p.seed = 1, p.n_threads = 2;
    const char *preset = NULL, *type = NULL, *preset_vocab = NULL;
    bool have_arch = false, have_type = false;
    char err_buf[512] = "";
    pl_err err = {err_buf, sizeof err_buf};

    /* a preset first, so explicit options given anywhere override it */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) preset = argv[i + 1];
    if (preset && pl_mkmodel_preset(preset, &p, &preset_vocab, &err)) return usage_err(err_buf);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_mkmodel, stdout);
            return 0;
        } else if (strcmp(a, "--tied") == 0) {
            p.tied = true;
            continue;
        } else if (strcmp(a, "--untied") == 0) {
            p.tied = false;
            continue;
        }
        if (!v) {
            fprintf(stderr, "probelogits mkmodel: %s needs a value\n", a);
            return usage_err(NULL);
        }
        i++;
        if (strcmp(a, "--preset") == 0) {
            /* applied above */
        } else if (strcmp(a, "--arch") == 0) {
            if (strcmp(v, "llama") == 0)
                p.arch = PL_MK_LLAMA;
            else if (strcmp(v, "qwen2") == 0)
                p.arch = PL_MK_QWEN2;
            else
                return usage_err("--arch must be llama or qwen2");
            have_arch = true;
        } else if (strcmp(a, "--n-embd") == 0 || strcmp(a, "--n-layer") == 0 || strcmp(a, "--n-head") == 0 ||
                   strcmp(a, "--n-head-kv") == 0 || strcmp(a, "--n-ff") == 0 || strcmp(a, "--ctx") == 0) {
            if (!parse_i64(v, 1, 1 << 24, &n)) {
                fprintf(stderr, "probelogits mkmodel: %s: '%s' is not an integer in [1, %d]\n", a, v, 1 << 24);
                return usage_err(NULL);
            }
            int32_t *dst = strcmp(a, "--n-embd") == 0      ? &p.n_embd
                           : strcmp(a, "--n-layer") == 0   ? &p.n_layer
                           : strcmp(a, "--n-head") == 0    ? &p.n_head
                           : strcmp(a, "--n-head-kv") == 0 ? &p.n_head_kv
                           : strcmp(a, "--n-ff") == 0      ? &p.n_ff
                                                           : &p.n_ctx_train;
            *dst = (int32_t)n;
        } else if (strcmp(a, "--rope-theta") == 0) {
            if (!parse_pos_f32(v, &p.rope_theta)) return usage_err("--rope-theta must be a positive number");
        } else if (strcmp(a, "--eps") == 0) {
            if (!parse_pos_f32(v, &p.rms_eps)) return usage_err("--eps must be a positive number");
        } else if (strcmp(a, "--vocab") == 0) {
            p.vocab_path = v;
        } else if (strcmp(a, "--type") == 0) {
            type = v;
            if (!pl_mk_ftype_parse(v, &p.ftype))
                return usage_err("--type must be F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M or Q6_K");
            have_type = true;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_u64(v, &p.seed)) return usage_err("--seed must be an unsigned integer");
        } else if (strcmp(a, "-t") == 0) {
            if (!parse_i64(v, 1, 256, &n)) return usage_err("-t must be in [1, 256]");
            p.n_threads = (int)n;
        } else if (strcmp(a, "--name") == 0) {
            p.name = v;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            p.out_path = v;
        } else {
            fprintf(stderr, "probelogits mkmodel: unknown option '%s'\n", a);
            return usage_err(NULL);
        }
    }
    if (!preset && (!have_arch || !p.n_embd || !p.n_layer || !p.n_head || !p.n_ff))
        return usage_err("give --preset NAME or --arch with --n-embd, --n-layer, --n-head and --n-ff");
    if (!preset && !p.n_head_kv) p.n_head_kv = p.n_head;
    if (!have_type) return usage_err("--type is required");
    if (!p.out_path) return usage_err("-o OUT.gguf is required");
    if (!p.vocab_path) {
        if (preset_vocab)
            fprintf(stderr, "probelogits mkmodel: --vocab is required (preset %s expects %s)\n", preset, preset_vocab);
        return usage_err(preset_vocab ? NULL : "--vocab FILE.gguf is required");
    }

    progress_state ps = {-100, pl_now()};
    p.progress = on_progress, p.progress_ud = &ps;
    fprintf(stderr, "mkmodel: %s %s, %d layers, n_embd %d, heads %d/%d, n_ff %d, %s, seed %llu -> %s\n",
            p.arch == PL_MK_QWEN2 ? "qwen2" : "llama", type, p.n_layer, p.n_embd, p.n_head, p.n_head_kv, p.n_ff,
            p.tied ? "tied" : "untied", (unsigned long long)p.seed, p.out_path);
    int rc = pl_mkmodel(&p, &err);
    if (rc) {
        fprintf(stderr, "probelogits mkmodel: %s (%s)\n", err_buf[0] ? err_buf : "failed", pl_status_str(rc));
        return 1;
    }
    fprintf(stderr, "mkmodel: wrote %s in %.1f s\n", p.out_path, pl_now() - ps.t0);
    return 0;
}
