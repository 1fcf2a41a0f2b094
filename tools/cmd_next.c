/* cmd_next.c - `logitscope next`: the most likely next token at a position and
 * the notebook's table of the top-k (logit, probability, log-probability,
 * token), with the sum of the row's raw logits. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdlib.h>

enum { OPT_POS = 2000, OPT_K };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"},
    {"top-k", 0, "K", OPT_K, "how many of the most likely tokens to list (default 10; 0 = all)"},
    {0},
};

const cli_command cli_cmd_next = {
    .name = "next",
    .summary = "the most likely next token and the top-k table (logit, prob, logprob)",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = "The most likely next token after position I and a table of the K most likely:\n"
             "rank (0 = the most likely), id, logit, probability (softmax), log-probability\n"
             "(log-softmax) and token (Python repr: the leading space shows).\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"pos\", \"n_tokens\", \"n_vocab\", \"input\": {\"id\", \"token\"}, \"argmax\": {\"id\",\n"
            "   \"token\", \"logit\", \"prob\", \"logprob\"}, \"logit_sum\",\n"
            "   \"top\": [{\"rank\", \"id\", \"token\", \"logit\", \"prob\", \"logprob\"}]}\n",
    .run = run,
};

/* Adds {"id", "token"} fields for `id` to obj. */
static void add_token(cJSON *obj, const lsc_tokenizer *tok, int32_t id) {
    char *s = cli_token_text(tok, id, NULL);
    cJSON_AddNumberToObject(obj, "id", id);
    cJSON_AddStringToObject(obj, "token", s ? s : "");
    lsc_free(s);
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_next, argc, argv);
    const char *pos_arg = NULL;
    long k = 10;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_POS) pos_arg = a.val;
        else if (opt == OPT_K && !cli_parse_top_k(a.flag, a.val, &k)) return CLI_EXIT_USAGE;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;

    cli_lm lm;
    int rc = 1;
    float *lp = NULL, *pr = NULL;
    int32_t *top = NULL;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    size_t pos = lm.n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, lm.n, &pos)) goto out;
    const float *row = cli_lm_row(&lm, pos);
    if (!row) goto out;
    size_t V = lm.n_vocab, kk = k == 0 || (size_t)k > V ? V : (size_t)k;
    lp = malloc(V * sizeof *lp);
    pr = malloc(V * sizeof *pr);
    top = malloc(kk * sizeof *top);
    if (!lp || !pr || !top) {
        cli_error("out of memory");
        goto out;
    }
    lsc_log_softmax(row, V, lp);
    lsc_softmax(row, V, pr);
    lsc_error err;
    if (lsc_top_k(row, V, kk, top, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    double sum = 0;
    for (size_t i = 0; i < V; i++) sum += row[i];
    int32_t best = (int32_t)lsc_argmax(row, V);

    if (!cli_hooks_finish(lm.hooks)) goto out; /* before any output: --cache-out, unused --hook */
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "pos", (double)pos);
        cJSON_AddNumberToObject(o, "n_tokens", (double)lm.n);
        cJSON_AddNumberToObject(o, "n_vocab", (double)V);
        cJSON *at = cJSON_AddObjectToObject(o, "input");
        if (at) add_token(at, lm.tok, lm.ids[pos]);
        cJSON *am = cJSON_AddObjectToObject(o, "argmax");
        if (am) {
            add_token(am, lm.tok, best);
            cJSON_AddNumberToObject(am, "logit", row[best]);
            cJSON_AddNumberToObject(am, "prob", pr[best]);
            cJSON_AddNumberToObject(am, "logprob", lp[best]);
        }
        cJSON_AddNumberToObject(o, "logit_sum", sum);
        cJSON *arr = cJSON_AddArrayToObject(o, "top");
        for (size_t i = 0; arr && i < kk; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "rank", (double)i);
            add_token(e, lm.tok, top[i]);
            cJSON_AddNumberToObject(e, "logit", row[top[i]]);
            cJSON_AddNumberToObject(e, "prob", pr[top[i]]);
            cJSON_AddNumberToObject(e, "logprob", lp[top[i]]);
            cJSON_AddItemToArray(arr, e);
        }
        rc = cli_print_json(o);
        goto out;
    }
    printf("Position %zu of %zu, token ", pos, lm.n);
    cli_print_token(stdout, lm.tok, lm.ids[pos]);
    printf(" (id %d): the most likely next token is ", (int)lm.ids[pos]);
    cli_print_token(stdout, lm.tok, best);
    printf(" (id %d, probability %.4f).\n", (int)best, pr[best]);
    printf("Sum of the %zu logits: %.4f\n\n", V, sum);
    printf("%4s %7s %10s %10s %10s  %s\n", "rank", "id", "logit", "prob", "logprob", "token");
    for (size_t i = 0; i < kk; i++) {
        int32_t id = top[i];
        printf("%4zu %7d %10.4f %10.6f %10.4f  ", i, (int)id, (double)row[id], (double)pr[id],
               (double)lp[id]);
        cli_print_token(stdout, lm.tok, id);
        fputc('\n', stdout);
    }
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    free(lp);
    free(pr);
    free(top);
    cli_lm_close(&lm);
    return rc;
}
