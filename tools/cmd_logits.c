/* cmd_logits.c - `logitscope logits`: run the model on --ids/--text and report the
 * logits at every position (shape, argmax id, its logit, the row's sum), or
 * write them all to a .npy file. */
#include "cli.h"
#include "npy.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_NPY };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"pos", 0, "I", OPT_POS, "only this position (negative counts from the end)"},
    {"npy", 0, "FILE", OPT_NPY, "write all the logits [T, n_vocab] as a float32 .npy"},
    {0},
};

const cli_command cli_cmd_logits = {
    .name = "logits",
    .summary = "logits at every position of the input (shape, argmax, row sums, --npy)",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = "Prints the logits' shape [T, n_vocab] and, for each position (or only --pos I),\n"
             "the argmax token id, its logit and the sum of the row of raw logits.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"shape\": [T, n_vocab], \"npy\" (with --npy),\n"
            "   \"positions\": [{\"pos\", \"id\", \"argmax\", \"logit\", \"logit_sum\"}]}\n",
    .run = run,
};

/* Sum of a row in double, printed as the row's total. */
static double row_sum(const float *row, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += row[i];
    return s;
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_logits, argc, argv);
    const char *npy = NULL, *pos_arg = NULL;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_POS) pos_arg = a.val;
        else if (opt == OPT_NPY) npy = a.val;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;

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
    size_t pos = 0;
    bool one = pos_arg != NULL;
    if (one && !cli_parse_pos(pos_arg, n, &pos)) goto done;
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
    size_t first = one ? pos : 0, last = one ? pos + 1 : n;
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
            cJSON_AddNumberToObject(r, "logit_sum", row_sum(row, V));
            cJSON_AddItemToArray(rows, r);
        }
        if (npy) cJSON_AddStringToObject(root, "npy", npy);
        rc = cli_print_json(root);
        goto done;
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
