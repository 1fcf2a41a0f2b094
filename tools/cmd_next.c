/* cmd_next.c - `logitscope next`: the most likely next token at a position and
 * the notebook's table of the top-k (logit, probability, log-probability,
 * token), with the sum of the row's raw logits. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdlib.h>

enum { OPT_POS = 2000, OPT_K, OPT_HELP };

static const char usage[] =
    "usage: logitscope next [--model DIR|REPO] (--text T | --ids 1,2,3) [--pos I] [--top-k K] [--json]\n"
    "The most likely next token after position I (default the last; negative\n"
    "counts from the end) and a table of the K (default 10) most likely: logit,\n"
    "probability (softmax), log-probability (log-softmax) and token.\n"
    "  --json  {\"position\", \"n_tokens\", \"token\", \"argmax\", \"logit_sum\",\n"
    "           \"top\": [{\"id\", \"token\", \"logit\", \"prob\", \"logprob\"}]}\n"
    "  --threads N  worker threads (0 = all cores)\n"
    CLI_HOOK_USAGE;

/* Adds {"id", "token"} fields for `id` to obj. */
static void add_token(cJSON *obj, const lsc_tokenizer *tok, int32_t id) {
    char *s = cli_token_text(tok, id, NULL);
    cJSON_AddNumberToObject(obj, "id", id);
    cJSON_AddStringToObject(obj, "token", s ? s : "");
    lsc_free(s);
}

int cmd_next(int argc, char **argv) {
    static const struct option opts[] = {CLI_COMMON_OPTIONS, CLI_HOOK_OPTIONS,
                                         {"pos", required_argument, 0, OPT_POS},
                                         {"top-k", required_argument, 0, OPT_K},
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    cli_common c = {0};
    const char *pos_arg = NULL;
    long k = 10;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return 1;
        if (r) continue;
        if (opt == OPT_POS) pos_arg = optarg;
        else if (opt == OPT_K) {
            if (!cli_parse_int(optarg, 1, INT_MAX, &k))
                return cli_error("--top-k: '%s' is not a whole number >= 1", optarg);
        } else if (opt == OPT_HELP || opt == 'h') {
            fputs(usage, stdout);
            return 0;
        } else
            return cli_error("next: unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
    }
    if (optind < argc) return cli_error("next: unexpected argument '%s'", argv[optind]);

    cli_lm lm;
    int rc = 1;
    float *lp = NULL, *pr = NULL;
    int32_t *top = NULL;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    size_t pos = lm.n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, lm.n, &pos)) goto out;
    const float *row = cli_lm_row(&lm, pos);
    if (!row) goto out;
    size_t V = lm.n_vocab, kk = (size_t)k < V ? (size_t)k : V;
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

    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "position", (double)pos);
        cJSON_AddNumberToObject(o, "n_tokens", (double)lm.n);
        cJSON_AddNumberToObject(o, "n_vocab", (double)V);
        cJSON *at = cJSON_AddObjectToObject(o, "token");
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
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out */
    free(lp);
    free(pr);
    free(top);
    cli_lm_close(&lm);
    return rc;
}
