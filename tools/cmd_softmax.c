/* cmd_softmax.c - `logitscope softmax`: the notebook's softmax done two ways
 * on the logits at a position: directly, exp(x / T) / sum(exp(x / T)) in
 * float32, and the stable way (the max subtracted first, lsc_softmax). It
 * shows where the direct formula overflows (exp() beyond float32's 3.4e38,
 * so inf / inf = NaN) and prints the largest difference between the two. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>

enum { OPT_POS = 2000, OPT_TEMP };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"},
    {"temperature", 0, "T", OPT_TEMP,
     "divide the logits by T first (default 1); a small T (e.g. 0.1) makes\n"
     "exp() overflow float32 in the direct formula"},
    {0},
};

const cli_command cli_cmd_softmax = {
    .name = "softmax",
    .summary = "softmax directly and the stable way on a position's logits, and where they differ",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = "Computes softmax(logits / T) at position I twice, exp() in float32: directly,\n"
             "exp(x) / sum(exp(x)), and the stable way, exp(x - max) / sum(exp(x - max)).\n"
             "Prints the largest logit, how many exp(x) overflow to inf in the direct way,\n"
             "the two sums, the top token's probability each way and the largest difference.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"pos\", \"temperature\", \"max_logit\", \"n_overflow\", \"direct_sum\", \"stable_sum\",\n"
            "   \"argmax\": {\"id\", \"token\", \"direct_prob\", \"stable_prob\"}, \"max_abs_diff\"}\n",
    .run = run,
};

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_softmax, argc, argv);
    const char *pos_arg = NULL;
    double temp = 1.0;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_POS) pos_arg = a.val;
        else if (opt == OPT_TEMP && (!cli_parse_float(a.val, &temp) || !(temp > 0)))
            return cli_usage_error("--temperature: '%s' is not a number > 0", a.val);
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;

    cli_lm lm;
    int rc = 1;
    float *x = NULL, *direct = NULL, *stable = NULL;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    size_t pos = lm.n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, lm.n, &pos)) goto out;
    const float *row = cli_lm_row(&lm, pos);
    if (!row) goto out;
    size_t V = lm.n_vocab;
    x = malloc(V * sizeof *x);
    direct = malloc(V * sizeof *direct);
    stable = malloc(V * sizeof *stable);
    if (!x || !direct || !stable) {
        cli_error("out of memory");
        goto out;
    }
    for (size_t i = 0; i < V; i++) x[i] = (float)(row[i] / temp);
    /* the direct formula: exp() in float32 as the lesson's tensors are (the
     * sums in double, as accurate as torch's tree-wise sums) */
    double dsum = 0.0;
    size_t n_over = 0;
    for (size_t i = 0; i < V; i++) {
        direct[i] = expf(x[i]);
        n_over += isinf(direct[i]);
        dsum += direct[i];
    }
    for (size_t i = 0; i < V; i++) direct[i] = (float)(direct[i] / dsum);
    float m = x[0];
    for (size_t i = 1; i < V; i++) m = x[i] > m ? x[i] : m;
    double ssum = 0.0;
    for (size_t i = 0; i < V; i++) ssum += stable[i] = expf(x[i] - m);
    for (size_t i = 0; i < V; i++) stable[i] = (float)(stable[i] / ssum);
    double diff = 0;
    size_t n_nan = 0;
    for (size_t i = 0; i < V; i++) {
        double d = fabs((double)direct[i] - (double)stable[i]);
        if (isnan(d)) n_nan++;
        else if (d > diff) diff = d;
    }
    int32_t best = (int32_t)lsc_argmax(x, V);
    if (!cli_hooks_finish(lm.hooks)) goto out;
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "pos", (double)pos);
        cJSON_AddNumberToObject(o, "temperature", temp);
        cJSON_AddNumberToObject(o, "max_logit", m);
        cJSON_AddNumberToObject(o, "n_overflow", (double)n_over);
        if (isfinite(dsum)) cJSON_AddNumberToObject(o, "direct_sum", dsum);
        else cJSON_AddNullToObject(o, "direct_sum");
        cJSON_AddNumberToObject(o, "stable_sum", ssum);
        cJSON *am = cJSON_AddObjectToObject(o, "argmax");
        char *s = cli_token_text(lm.tok, best, NULL);
        cJSON_AddNumberToObject(am, "id", best);
        cJSON_AddStringToObject(am, "token", s ? s : "");
        lsc_free(s);
        if (isfinite(direct[best])) cJSON_AddNumberToObject(am, "direct_prob", direct[best]);
        else cJSON_AddNullToObject(am, "direct_prob");
        cJSON_AddNumberToObject(am, "stable_prob", stable[best]);
        if (n_nan) cJSON_AddNullToObject(o, "max_abs_diff");
        else cJSON_AddNumberToObject(o, "max_abs_diff", diff);
        rc = cli_print_json(o);
        goto out;
    }
    printf("softmax of the %zu logits / %g at position %zu (float32)\n", V, temp, pos);
    printf("  largest logit / T: %.4f (exp of it: %g; float32 overflows past exp(88.72))\n",
           (double)m, (double)expf(m));
    printf("  direct  exp(x) / sum(exp(x)):             sum %g, %zu exp() overflowed to inf\n",
           dsum, n_over);
    printf("  stable  exp(x - max) / sum(exp(x - max)): sum %g\n", ssum);
    printf("  top token ");
    cli_print_token(stdout, lm.tok, best);
    printf(" (id %d): direct %g, stable %.6f\n", (int)best, (double)direct[best],
           (double)stable[best]);
    if (n_nan)
        printf("  the direct formula gave NaN for %zu of %zu tokens (inf / inf); the stable way "
               "cannot overflow\n",
               n_nan, V);
    else printf("  largest difference between the two: %.3g\n", diff);
    rc = 0;
out:
    free(x);
    free(direct);
    free(stable);
    cli_lm_close(&lm);
    return rc;
}
