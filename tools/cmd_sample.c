/* cmd_sample.c - `logitscope sample`: n draws of the next token from the
 * softmax of the logits (after the optional temperature / top-k / top-p /
 * min-p warpers), without replacement by default like the notebook's
 * torch.multinomial(probs, 5). */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_N, OPT_REPLACEMENT, OPT_TRIALS };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"n", 'n', "N", OPT_N, "how many tokens to draw (default 5)"},
    {"replacement", 0, NULL, OPT_REPLACEMENT, "draw with replacement (default: without)"},
    {"trials", 0, "T", OPT_TRIALS, "repeat the N draws T times (default 1) with one rng stream"},
    {"pos", 0, "I", OPT_POS, "the position (default -1, the last; negative counts from the end)"},
    {0},
};

const cli_command cli_cmd_sample = {
    .name = "sample",
    .summary = "n draws of the next token (torch.multinomial), with or without replacement",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = "Draws N next tokens after position I from softmax(logits), without replacement\n"
             "unless --replacement (torch.multinomial). By default the distribution is the\n"
             "plain softmax (temperature 1, no top-k/top-p cut); the sampler flags act as\n"
             "transformers' warpers (temperature 0 = always the argmax).\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_SAMPLER | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"pos\", \"ids\", \"tokens\", \"probs\", \"replacement\", \"seed\"}\n"
            "  (+ \"trials\": [[ids], ...] with --trials)\n",
    .run = run,
};

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_sample, argc, argv);
    a.sampler.do_sample = 1;
    a.sampler.top_k = 0; /* the notebook's plain softmax */
    const char *pos_arg = NULL;
    long n_draws = 5, trials = 1;
    bool replacement = false, n_given = false;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_POS) pos_arg = a.val;
        else if (opt == OPT_N) {
            if (!cli_parse_int(a.val, 1, 100000000, &n_draws))
                return cli_usage_error("%s: '%s' is not a whole number from 1 to 100000000", a.flag,
                                       a.val);
            n_given = true;
        } else if (opt == OPT_TRIALS) {
            if (!cli_parse_int(a.val, 1, 10000000, &trials))
                return cli_usage_error("--trials: '%s' is not a whole number from 1 to 10000000",
                                       a.val);
        } else if (opt == OPT_REPLACEMENT) replacement = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    lsc_sampler_params sp = a.sampler;
    if ((double)n_draws * (double)trials > 1e8)
        return cli_usage_error("sample: -n %ld x --trials %ld is more than 100000000 draws", n_draws,
                               trials);

    cli_lm lm;
    int rc = 1;
    float *probs = NULL;
    int32_t *draws = NULL;
    lsc_sampler *smp = NULL;
    lsc_error err;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    size_t pos = lm.n - 1;
    if (pos_arg && !cli_parse_pos(pos_arg, lm.n, &pos)) goto out;
    const float *row = cli_lm_row(&lm, pos);
    if (!row) goto out;
    size_t V = lm.n_vocab, per = (size_t)n_draws, total = per * (size_t)trials;
    probs = malloc(V * sizeof *probs);
    draws = malloc(total * sizeof *draws);
    if (!probs || !draws) {
        cli_error("out of memory");
        goto out;
    }
    if (lsc_sampler_new(sp, &smp, &err) != LSC_OK ||
        lsc_sampler_apply(smp, row, V, lm.ids, pos + 1, probs, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (sp.temperature == 0.0f) { /* greedy: all the mass on the argmax */
        size_t best = lsc_argmax(probs, V);
        memset(probs, 0, V * sizeof *probs);
        probs[best] = 1.0f;
    } else {
        lsc_softmax(probs, V, probs);
    }
    size_t nonzero = 0;
    for (size_t i = 0; i < V; i++) nonzero += probs[i] > 0.0f;
    if (!replacement && per > nonzero) {
        cli_error("%s%zu draws without replacement need %zu tokens of non-zero probability; "
                  "here %zu ha%s one%s: use --replacement or -n %zu",
                  n_given ? "-n " : "the default of ", per, per, nonzero, nonzero == 1 ? "s" : "ve",
                  sp.temperature == 0.0f ? " (--temperature 0 keeps only the argmax)" : "",
                  nonzero);
        goto out;
    }
    lsc_rng rng;
    lsc_rng_seed(&rng, sp.seed);
    for (size_t t = 0; t < (size_t)trials; t++)
        if (lsc_multinomial(probs, V, per, replacement, &rng, draws + t * per, &err) != LSC_OK) {
            cli_error("%s", err.message);
            goto out;
        }

    if (!cli_hooks_finish(lm.hooks)) goto out; /* before any output: --cache-out, unused --hook */
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *ids = cJSON_AddArrayToObject(o, "ids");
        cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
        cJSON *ps = cJSON_AddArrayToObject(o, "probs");
        for (size_t i = 0; ids && toks && ps && i < per; i++) {
            char *s = cli_token_text(lm.tok, draws[i], NULL);
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(draws[i]));
            cJSON_AddItemToArray(toks, cJSON_CreateString(s ? s : ""));
            cJSON_AddItemToArray(ps, cJSON_CreateNumber(probs[draws[i]]));
            lsc_free(s);
        }
        if (trials > 1) {
            cJSON *tr = cJSON_AddArrayToObject(o, "trials");
            for (size_t t = 0; tr && t < (size_t)trials; t++) {
                cJSON *one = cJSON_CreateArray();
                for (size_t i = 0; one && i < per; i++)
                    cJSON_AddItemToArray(one, cJSON_CreateNumber(draws[t * per + i]));
                cJSON_AddItemToArray(tr, one);
            }
        }
        cJSON_AddNumberToObject(o, "pos", (double)pos);
        cJSON_AddBoolToObject(o, "replacement", replacement);
        cJSON_AddNumberToObject(o, "seed", (double)sp.seed);
        rc = cli_print_json(o);
        goto out;
    }
    printf("%zu draw%s %s replacement after position %zu (seed %llu):\n\n", per, per == 1 ? "" : "s",
           replacement ? "with" : "without", pos, (unsigned long long)sp.seed);
    for (size_t t = 0; t < (size_t)trials; t++) {
        if (trials > 1) printf("trial %zu:\n", t);
        printf("%5s %7s %10s  %s\n", "draw", "id", "prob", "token");
        for (size_t i = 0; i < per; i++) {
            int32_t id = draws[t * per + i];
            printf("%5zu %7d %10.6f  ", i, (int)id, (double)probs[id]);
            cli_print_token(stdout, lm.tok, id);
            fputc('\n', stdout);
        }
    }
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    lsc_sampler_free(smp);
    free(probs);
    free(draws);
    cli_lm_close(&lm);
    return rc;
}
