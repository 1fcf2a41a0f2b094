/* cmd_logits.c - `logitscope logits`: run the model on --ids/--text and report the
 * logits at every position (shape, argmax id, its logit, the row's sum), or
 * write them all to a .npy file. */
#include "cli.h"
#include "npy.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_NPY, OPT_HELP };

static const char usage[] =
    "usage: logitscope logits [--model DIR|REPO] [--revision R]\n"
    "                         (--ids 464,2068,7586 | --text T) [--pos I]\n"
    "                         [--npy FILE] [--json] [--threads N] [--weights f32|bf16|q8]\n"
    "  --model: a folder or a Hub repo id (default gpt2; see logitscope download)\n"
    "  prints the logits' shape [T, n_vocab] and, for each position (or only\n"
    "  --pos I, negative counts from the end), the argmax token id, its logit and\n"
    "  the sum of the row of raw logits; --npy writes all logits as float32 .npy\n"
    CLI_HOOK_USAGE;

/* Sum of a row in double, printed as the row's total. */
static double row_sum(const float *row, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += row[i];
    return s;
}

int cmd_logits(int argc, char **argv) {
    static const struct option opts[] = {
        CLI_COMMON_OPTIONS,
        CLI_HOOK_OPTIONS,
        {"pos", required_argument, 0, OPT_POS},
        {"npy", required_argument, 0, OPT_NPY},
        {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0},
    };
    cli_common c = {0};
    const char *npy = NULL, *pos_arg = NULL;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return 1;
        if (r > 0) continue;
        switch (opt) {
        case OPT_POS: pos_arg = optarg; break;
        case OPT_NPY: npy = optarg; break;
        case OPT_HELP: fputs(usage, stdout); return 0;
        default:
            return cli_error("logits: unknown or incomplete option '%s' (see logitscope logits --help)",
                             argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_error("logits: unexpected argument '%s'", argv[optind]);

    int rc = 1;
    lsc_model *model = NULL;
    lsc_tokenizer *tok = NULL;
    lsc_ctx *ctx = NULL;
    cli_hooks *hooks = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    lsc_error err;
    if (!(model = cli_load_model(&c))) goto done;
    if (c.text && !(tok = cli_load_tokenizer(&c))) goto done;
    if (!cli_input_ids(&c, tok, &ids, &n)) goto done;
    long pos = -1;
    bool one = false;
    if (pos_arg) {
        if (!cli_parse_int(pos_arg, -(long)n, (long)n - 1, &pos)) {
            cli_error("--pos: '%s' is not a position in [%ld, %zu) for %zu tokens", pos_arg,
                      -(long)n, n, n);
            goto done;
        }
        if (pos < 0) pos += (long)n;
        one = true;
    }
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = c.threads;
    if (lsc_ctx_new(model, cp, &ctx, &err)) {
        cli_error("%s", err.message);
        goto done;
    }
    if (!cli_hooks_attach(&c, ctx, tok, &hooks)) goto done;
    if (lsc_ctx_forward(ctx, ids, n, LSC_LOGITS_ALL, &err)) {
        cli_error("%s", err.message);
        goto done;
    }
    if (!cli_hooks_finish(hooks)) goto done;
    size_t V = (size_t)lsc_model_n_vocab(model);
    const float *logits = lsc_ctx_logits(ctx, NULL);
    if (!cli_check_logits(model, logits, n, V, 0)) goto done;
    if (npy) {
        int64_t shape[2] = {(int64_t)n, (int64_t)V};
        if (!npy_save_f32(npy, logits, shape, 2)) goto done;
    }
    size_t first = one ? (size_t)pos : 0, last = one ? (size_t)pos + 1 : n;
    if (c.json) {
        cJSON *root = cJSON_CreateObject(), *shape = cJSON_AddArrayToObject(root, "shape");
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)n));
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)V));
        cJSON *rows = cJSON_AddArrayToObject(root, "positions");
        for (size_t t = first; t < last; t++) {
            const float *row = logits + t * V;
            size_t am = lsc_argmax(row, V);
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "pos", (double)t);
            cJSON_AddNumberToObject(r, "id", ids[t]);
            cJSON_AddNumberToObject(r, "argmax", (double)am);
            cJSON_AddNumberToObject(r, "logit", row[am]);
            cJSON_AddNumberToObject(r, "sum", row_sum(row, V));
            cJSON_AddItemToArray(rows, r);
        }
        if (npy) cJSON_AddStringToObject(root, "npy", npy);
        char *s = cJSON_PrintUnformatted(root);
        if (s) puts(s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("logits shape [%zu, %zu]\n", n, V);
        printf("%5s %8s %8s %14s %16s\n", "pos", "id", "argmax", "logit", "row_sum");
        for (size_t t = first; t < last; t++) {
            const float *row = logits + t * V;
            size_t am = lsc_argmax(row, V);
            printf("%5zu %8d %8zu %14.6f %16.6f\n", t, (int)ids[t], am, row[am], row_sum(row, V));
        }
        if (npy) printf("wrote %s\n", npy);
    }
    rc = 0; /* main() flushes stdout and reports a failed write */
done:
    free(ids);
    cli_hooks_free(hooks);
    lsc_ctx_free(ctx);
    lsc_tokenizer_free(tok);
    lsc_model_free(model);
    return rc;
}
