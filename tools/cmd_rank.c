/* cmd_rank.c - `logitscope rank`: where one token stands among all the model's
 * predictions at a position: its id, logit, probability and rank (0 = the
 * most likely, as torch.where(logits.argsort(descending=True) == id)). */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_TOKEN, OPT_TOKEN_ID };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"token", 0, "TEXT", OPT_TOKEN,
     "the token to rank, as text: exactly one token (mind the leading space:\n"
     "\" coffee\" is one token, \"coffee\" two)"},
    {"token-id", 0, "ID", OPT_TOKEN_ID, "the token to rank, by id"},
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"},
    {0},
};

const cli_command cli_cmd_rank = {
    .name = "rank",
    .summary = "rank, logit and probability of one --token among all next tokens",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3) (--token TEXT | --token-id ID)",
    .about = "The rank (0 = the most likely) of a token among all the vocabulary's logits\n"
             "after position I, with its id, logit, probability and log-probability.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"pos\", \"n_vocab\", \"id\", \"token\", \"rank\", \"logit\", \"prob\", \"logprob\"}\n",
    .run = run,
};

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_rank, argc, argv);
    const char *pos_arg = NULL, *token = NULL, *token_id = NULL;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_POS) pos_arg = a.val;
        else if (opt == OPT_TOKEN) token = a.val;
        else if (opt == OPT_TOKEN_ID) token_id = a.val;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (!token == !token_id) return cli_usage_error("rank: give exactly one of --token or --token-id");

    cli_lm lm;
    int rc = 1;
    float *lp = NULL, *pr = NULL;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    int32_t id;
    long v;
    if (token_id) {
        if (!cli_parse_int(token_id, 0, (long)lm.n_vocab - 1, &v)) {
            cli_error("--token-id: '%s' is not an id in 0..%zu", token_id, lm.n_vocab - 1);
            goto out;
        }
        id = (int32_t)v;
    } else if (!cli_single_token(lm.tok, "--token", token, c.no_special, &id)) {
        goto out;
    } else if ((size_t)id >= lm.n_vocab) {
        cli_error("--token: id %d is outside the model's vocabulary of %zu", (int)id, lm.n_vocab);
        goto out;
    }
    size_t pos = lm.n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, lm.n, &pos)) goto out;
    const float *row = cli_lm_row(&lm, pos);
    if (!row) goto out;
    size_t V = lm.n_vocab, rank;
    lp = malloc(V * sizeof *lp);
    pr = malloc(V * sizeof *pr);
    if (!lp || !pr) {
        cli_error("out of memory");
        goto out;
    }
    lsc_log_softmax(row, V, lp);
    lsc_softmax(row, V, pr);
    lsc_error err;
    if (lsc_rank(row, V, (size_t)id, &rank, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (!cli_hooks_finish(lm.hooks)) goto out; /* before any output: --cache-out, unused --hook */
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        char *s = cli_token_text(lm.tok, id, NULL);
        cJSON_AddNumberToObject(o, "id", id);
        cJSON_AddStringToObject(o, "token", s ? s : "");
        lsc_free(s);
        cJSON_AddNumberToObject(o, "rank", (double)rank);
        cJSON_AddNumberToObject(o, "logit", row[id]);
        cJSON_AddNumberToObject(o, "prob", pr[id]);
        cJSON_AddNumberToObject(o, "logprob", lp[id]);
        cJSON_AddNumberToObject(o, "pos", (double)pos);
        cJSON_AddNumberToObject(o, "n_vocab", (double)V);
        rc = cli_print_json(o);
        goto out;
    }
    cli_print_token(stdout, lm.tok, id);
    printf(" (id %d) after position %zu: rank %zu of %zu, logit %.4f, probability %.6g, "
           "log-probability %.4f\n",
           (int)id, pos, rank, V, (double)row[id], (double)pr[id], (double)lp[id]);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    free(lp);
    free(pr);
    cli_lm_close(&lm);
    return rc;
}
