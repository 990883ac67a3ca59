/* cli.c — the `probelogits` command line: a thin edge over the library.
 * Only this file prints to the terminal or exits.
 *
 *   probelogits inspect FILE.gguf
 *   probelogits tokenize -m FILE.gguf [--raw] [TEXT | -]
 *   probelogits logits -m FILE.gguf [-t N] [--all-positions] [--fast] [--top K] [--out FILE.f32] [TEXT | -] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "model.h"
#include "probelogits.h"
#include "quant.h"
#include "util.h"
#include "cli_common.h"
#include "cli_mkmodel.h"

static const char usage_main[] =
    "usage: probelogits COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  inspect FILE.gguf       architecture, hyperparameters, tokenizer, tensors\n"
    "  tokenize -m FILE.gguf   print token ids of a text\n"
    "  logits -m FILE.gguf     run one forward pass and print the logits summary (JSON)\n"
    "  probe -m FILE.gguf      one probe: label probabilities of an action (JSON)\n"
    "  classify -m FILE.gguf   policy decisions (allow/warn/deny) for actions (JSON lines)\n"
    "  snapshot -m FILE.gguf   save the evaluated policy prefix and calibration\n"
    "  mkmodel                 write a random-weight GGUF model of a given shape\n"
    "  bench -m FILE.gguf      verify, then measure probe latency and throughput\n"
    "  run -m FILE.gguf --policy FILE -- CMD   run CMD as a governed agent (seccomp supervisor)\n"
    "  broker -m FILE.gguf --policy FILE --socket PATH   act for an agent over a Unix socket (host functions)\n"
    "  eval -m FILE.gguf       evaluate on a labelled dataset: metrics, sweeps, plots, report\n"
    "  audit verify FILE       check an audit log's hash chain; report the first broken record\n"
    "\n"
    "Run 'probelogits COMMAND --help' for a command's options.\n";

static const char usage_inspect[] =
    "usage: probelogits inspect FILE.gguf\n"
    "Prints the architecture, hyperparameters, tokenizer, whether a chat template is present,\n"
    "and a table of tensors (name, type, shape, bytes).\n";

static const char usage_tokenize[] =
    "usage: probelogits tokenize -m FILE.gguf [--raw] [TEXT | -]\n"
    "Prints the token ids of TEXT ('-' or nothing: all of standard input, byte-exact),\n"
    "separated by single spaces on one line.\n"
    "  -m FILE   model or vocab-only GGUF\n"
    "  --raw     no BOS/EOS, special-token text tokenized as plain text\n"
    "            (default: BOS per the model's metadata, special-token text parsed)\n";

static const char usage_logits[] =
    "usage: probelogits logits -m FILE.gguf [-t N] [--all-positions] [--fast] [--top K] [--out FILE.f32] [TEXT | -]\n"
    "  --fast           int8 activations for quantized matmuls (like llama.cpp; not exact)\n"
    "Tokenizes TEXT (BOS per metadata, special tokens parsed), runs one forward pass and prints\n"
    "JSON: token ids, argmax, log-sum-exp and the top-K (id, logit) pairs of the last position.\n"
    "  -m FILE          model GGUF\n"
    "  -t N             threads (default 2)\n"
    "  --top K          pairs to print (default 10)\n"
    "  --all-positions  compute logits for every position (summaries under \"positions\")\n"
    "  --out FILE.f32   write raw little-endian float32 logits: n_vocab values for the last\n"
    "                   position, or n_tokens x n_vocab with --all-positions\n";

int cli_die_usage(const char *usage, const char *msg) {
    if (msg) fprintf(stderr, "probelogits: %s\n", msg);
    fputs(usage, stderr);
    return 2;
}

/* Text from the argument, or all of stdin for "-" / no argument. */
int cli_read_text(const char *arg, char **text, size_t *len) {
    if (arg && strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        *text = malloc(*len + 1);
        if (!*text) return PL_ERR_NOMEM;
        memcpy(*text, arg, *len + 1);
        return PL_OK;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return PL_ERR_NOMEM;
    for (;;) {
        if (n == cap) {
            char *nb = cap < ((size_t)1 << 30) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                return PL_ERR_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            free(buf);
            return PL_ERR_IO;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    *text = buf;
    *len = n;
    return PL_OK;
}

static int tokenize_all(pl_model *m, const char *text, size_t len, int flags, int32_t **ids, size_t *n) {
    char err[256] = "";
    size_t need = 0;
    *ids = NULL;
    int rc = pl_tokenize(m, text, len, flags, NULL, 0, &need, err, sizeof err);
    if (rc != PL_OK && rc != PL_ERR_RANGE) {
        fprintf(stderr, "probelogits: tokenize: %s\n", err);
        return rc;
    }
    *ids = malloc((need ? need : 1) * sizeof(int32_t));
    if (!*ids) return PL_ERR_NOMEM;
    rc = pl_tokenize(m, text, len, flags, *ids, need, n, err, sizeof err);
    if (rc != PL_OK) fprintf(stderr, "probelogits: tokenize: %s\n", err);
    return rc;
}

static void print_str_field(const gguf_file *f, const char *label, const char *key) {
    gguf_str s;
    if (gguf_get_str(f, key, &s, NULL) == PL_OK) printf("%-22s %.*s\n", label, (int)(s.len > 200 ? 200 : s.len), s.ptr);
}

static int cmd_inspect(int argc, char **argv) {
    if (argc != 2) return cli_die_usage(usage_inspect, argc < 2 ? "missing FILE.gguf" : "too many arguments");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_inspect, stdout);
        return 0;
    }
    char ebuf[512] = "";
    pl_err err = {ebuf, sizeof ebuf};
    gguf_file *f;
    if (gguf_open(argv[1], &f, &err) != PL_OK) {
        fprintf(stderr, "probelogits: %s\n", ebuf);
        return 1;
    }
    printf("file                   %s\n", argv[1]);
    printf("gguf version           %u\n", gguf_version(f));
    printf("metadata keys          %llu\n", (unsigned long long)gguf_n_kv(f));
    print_str_field(f, "architecture", "general.architecture");
    print_str_field(f, "name", "general.name");
    gguf_str arch;
    if (gguf_get_str(f, "general.architecture", &arch, NULL) == PL_OK && arch.len < 64) {
        static const char *const keys[] = {
            "context_length",      "embedding_length",     "block_count",
            "feed_forward_length", "attention.head_count", "attention.head_count_kv",
            "rope.freq_base",      "rope.dimension_count", "attention.layer_norm_rms_epsilon"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            char key[128];
            snprintf(key, sizeof key, "%.*s.%s", (int)arch.len, arch.ptr, keys[i]);
            const gguf_kv *kv = gguf_find(f, key);
            if (!kv) continue;
            if (kv->type == GGUF_F32 || kv->type == GGUF_F64)
                printf("%-22s %g\n", keys[i], kv->v.f64);
            else if (kv->type == GGUF_I8 || kv->type == GGUF_I16 || kv->type == GGUF_I32 || kv->type == GGUF_I64)
                printf("%-22s %lld\n", keys[i], (long long)kv->v.i64);
            else if (kv->type != GGUF_STRING && kv->type != GGUF_ARRAY)
                printf("%-22s %llu\n", keys[i], (unsigned long long)kv->v.u64);
        }
    }
    print_str_field(f, "tokenizer model", "tokenizer.ggml.model");
    print_str_field(f, "tokenizer pre", "tokenizer.ggml.pre");
    const gguf_kv *toks = gguf_find(f, "tokenizer.ggml.tokens");
    if (toks && toks->type == GGUF_ARRAY) printf("%-22s %llu\n", "vocab size", (unsigned long long)toks->arr_n);
    const gguf_kv *merges = gguf_find(f, "tokenizer.ggml.merges");
    if (merges && merges->type == GGUF_ARRAY) printf("%-22s %llu\n", "merges", (unsigned long long)merges->arr_n);
    printf("%-22s %s\n", "chat template", gguf_find(f, "tokenizer.chat_template") ? "present" : "absent");
    printf("tensors                %llu\n", (unsigned long long)gguf_n_tensors(f));
    if (gguf_n_tensors(f) > 0) printf("\n%-40s %-6s %-26s %12s\n", "name", "type", "shape", "bytes");
    uint64_t total = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char shape[96];
        int off = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            off += snprintf(shape + off, sizeof shape - (size_t)off, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        snprintf(shape + off, sizeof shape - (size_t)off, "]");
        printf("%-40s %-6s %-26s %12llu\n", t->name, ggml_type_name(t->type), shape, (unsigned long long)t->nbytes);
        total += t->nbytes;
    }
    if (gguf_n_tensors(f) > 0) printf("%-40s %-6s %-26s %12llu\n", "total", "", "", (unsigned long long)total);
    const int vocab_only = gguf_n_tensors(f) == 0;
    gguf_close(f);
    /* Full validation as the engine sees it (supported arch and types). */
    pl_model *m;
    if (pl_model_open(argv[1], vocab_only, &m, ebuf, sizeof ebuf) != PL_OK) {
        printf("\nloadable               no: %s\n", ebuf);
        return 0;
    }
    printf("\nloadable               yes (%s)\n", vocab_only ? "vocab only" : "full model");
    pl_model_close(m);
    return 0;
}

/* Parses the common "-m FILE" and "-t N" options; returns the index of the
 * first positional argument or -1 after printing an error. */
typedef struct cli_opts {
    const char *model;
    int threads;
    int raw;
    int all_positions;
    int fast; /* --fast: int8 activations (pl_session_set_fast) */
    int top;
    const char *out;
    const char *text;
} cli_opts;

static int parse_opts(int argc, char **argv, const char *usage, cli_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!next) return cli_die_usage(usage, "-m needs a file");
            o->model = next, i++;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            char *end;
            long v = next ? strtol(next, &end, 10) : 0;
            if (!next || *end || v < 1 || v > 256) return cli_die_usage(usage, "-t needs a thread count in 1..256");
            o->threads = (int)v, i++;
        } else if (!strcmp(a, "--top")) {
            char *end;
            long v = next ? strtol(next, &end, 10) : -1;
            if (!next || *end || v < 0 || v > 1000000) return cli_die_usage(usage, "--top needs a count >= 0");
            o->top = (int)v, i++;
        } else if (!strcmp(a, "--out")) {
            if (!next) return cli_die_usage(usage, "--out needs a file");
            o->out = next, i++;
        } else if (!strcmp(a, "--raw")) {
            o->raw = 1;
        } else if (!strcmp(a, "--all-positions")) {
            o->all_positions = 1;
        } else if (!strcmp(a, "--fast")) {
            o->fast = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            char msg[128];
            snprintf(msg, sizeof msg, "unknown option %s", a);
            return cli_die_usage(usage, msg);
        } else {
            if (o->text) return cli_die_usage(usage, "more than one TEXT argument");
            o->text = a;
        }
    }
    if (!o->model) return cli_die_usage(usage, "missing -m FILE.gguf");
    return 0;
}

static int cmd_tokenize(int argc, char **argv) {
    cli_opts o = {.threads = 2, .top = 10};
    int rc = parse_opts(argc, argv, usage_tokenize, &o);
    if (rc) return rc;
    char ebuf[512] = "";
    pl_model *m;
    if (pl_model_open(o.model, 1, &m, ebuf, sizeof ebuf) != PL_OK) {
        fprintf(stderr, "probelogits: %s\n", ebuf);
        return 1;
    }
    char *text;
    size_t len;
    if (cli_read_text(o.text, &text, &len) != PL_OK) {
        fprintf(stderr, "probelogits: cannot read the text\n");
        pl_model_close(m);
        return 1;
    }
    int32_t *ids;
    size_t n;
    rc = tokenize_all(m, text, len, o.raw ? 0 : PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, &ids, &n);
    if (rc == PL_OK) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    pl_model_close(m);
    return rc == PL_OK ? 0 : 1;
}

typedef struct top_entry {
    int32_t id;
    float logit;
} top_entry;

/* Prints {"argmax", "lse", "top"} of one logits row (top sorted by logit
 * descending, ties by id ascending). */
static void print_row_summary(const float *row, int32_t n_vocab, int top, top_entry *buf) {
    double mx = -INFINITY;
    int32_t arg = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (row[i] > mx) mx = row[i], arg = i;
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)row[i] - mx);
    printf("\"argmax\": %d, \"lse\": %.9g", arg, mx + log(sum));
    if (top <= 0) return;
    if (top > n_vocab) top = n_vocab;
    int n = 0; /* insertion into a sorted list of size top */
    for (int32_t i = 0; i < n_vocab; i++) {
        if (n == top && !(row[i] > buf[n - 1].logit)) continue;
        int j = n < top ? n++ : n - 1;
        while (j > 0 && row[i] > buf[j - 1].logit) {
            buf[j] = buf[j - 1];
            j--;
        }
        buf[j] = (top_entry){i, row[i]};
    }
    printf(", \"top\": [");
    for (int i = 0; i < n; i++) printf("%s[%d, %.9g]", i ? ", " : "", buf[i].id, buf[i].logit);
    printf("]");
}

static int cmd_logits(int argc, char **argv) {
    cli_opts o = {.threads = 2, .top = 10};
    int rc = parse_opts(argc, argv, usage_logits, &o);
    if (rc) return rc;
    char ebuf[512] = "";
    pl_model *m = NULL;
    pl_session *s = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    top_entry *topbuf = NULL;
    FILE *out = NULL;
    int status = 1;
    size_t len, n;
    if (pl_model_open(o.model, 0, &m, ebuf, sizeof ebuf) != PL_OK) {
        fprintf(stderr, "probelogits: %s\n", ebuf);
        goto done;
    }
    if (cli_read_text(o.text, &text, &len) != PL_OK) {
        fprintf(stderr, "probelogits: cannot read the text\n");
        goto done;
    }
    if (tokenize_all(m, text, len, PL_TOK_ADD_SPECIAL | PL_TOK_PARSE_SPECIAL, &ids, &n) != PL_OK) goto done;
    if (n == 0) {
        fprintf(stderr, "probelogits: the text has no tokens\n");
        goto done;
    }
    int32_t n_ctx = (int32_t)(n < 512 ? 512 : n);
    if (n > (1u << 20) || pl_session_create(m, n_ctx, o.threads, &s, ebuf, sizeof ebuf) != PL_OK) {
        fprintf(stderr, "probelogits: %s\n", n > (1u << 20) ? "text too long" : ebuf);
        goto done;
    }
    pl_session_set_fast(s, o.fast);
    double t0 = pl_now();
    if (pl_session_eval(s, ids, n, o.all_positions ? PL_EVAL_ALL_POSITIONS : PL_EVAL_LAST) != PL_OK) {
        fprintf(stderr, "probelogits: %s\n", pl_session_errmsg(s));
        goto done;
    }
    double dt = pl_now() - t0;
    const int32_t n_vocab = pl_model_n_vocab(m);
    const size_t rows = o.all_positions ? n : 1;
    topbuf = malloc(sizeof(top_entry) * (size_t)(o.top > 0 ? o.top : 1));
    if (!topbuf) goto done;
    printf("{\"model\": \"%s\", \"n_vocab\": %d, \"n_tokens\": %zu, \"eval_ms\": %.3f, \"isa\": \"%s\", \"tokens\": [",
           m->arch_name, n_vocab, n, dt * 1e3, pl_kernels_get()->isa);
    for (size_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
    printf("], ");
    print_row_summary(pl_session_logits(s, rows - 1), n_vocab, o.top, topbuf);
    if (o.all_positions) {
        printf(", \"positions\": [");
        for (size_t i = 0; i < n; i++) {
            printf("%s{", i ? ", " : "");
            print_row_summary(pl_session_logits(s, i), n_vocab, o.top, topbuf);
            printf("}");
        }
        printf("]");
    }
    printf("}\n");
    if (o.out) {
        out = fopen(o.out, "wb");
        if (!out) {
            fprintf(stderr, "probelogits: cannot write %s: %s\n", o.out, strerror(errno));
            goto done;
        }
        for (size_t i = 0; i < rows; i++)
            if (fwrite(pl_session_logits(s, i), sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) {
                fprintf(stderr, "probelogits: write error on %s\n", o.out);
                goto done;
            }
        if (fclose(out) != 0) {
            out = NULL;
            fprintf(stderr, "probelogits: write error on %s\n", o.out);
            goto done;
        }
        out = NULL;
    }
    status = 0;
done:
    if (out) fclose(out);
    free(topbuf);
    free(ids);
    free(text);
    pl_session_free(s);
    pl_model_close(m);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 2) return cli_die_usage(usage_main, "missing command");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "logits")) return cmd_logits(argc - 1, argv + 1);
    if (!strcmp(cmd, "probe")) return cli_probe(argc - 1, argv + 1);
    if (!strcmp(cmd, "classify")) return cli_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "snapshot")) return cli_snapshot(argc - 1, argv + 1);
    if (!strcmp(cmd, "mkmodel")) return cli_mkmodel(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cli_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cli_run_governed(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cli_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "broker")) return cli_broker(argc - 1, argv + 1);
    if (!strcmp(cmd, "audit")) return cli_audit(argc - 1, argv + 1);
    char msg[128];
    snprintf(msg, sizeof msg, "unknown command '%s'", cmd);
    return cli_die_usage(usage_main, msg);
}
