/* cmd_sample.c - `logitscope sample`: n draws of the next token from the
 * softmax of the logits (after the optional temperature / top-k / top-p /
 * min-p warpers), without replacement by default like the notebook's
 * torch.multinomial(probs, 5). */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_POS = 2000, OPT_REPLACEMENT, OPT_TRIALS, OPT_HELP };

static const char usage[] =
    "usage: logitscope sample [--model DIR|REPO] (--text T | --ids 1,2,3) [-n N] [--replacement]\n"
    "                         [--seed S] [--temperature X] [--top-k K] [--top-p P] [--min-p P]\n"
    "                         [--repetition-penalty R] [--pos I] [--trials T] [--json]\n"
    "Draws N (default 5) next tokens after position I (default the last) from\n"
    "softmax(logits), without replacement unless --replacement (torch.multinomial).\n"
    "By default the distribution is the plain softmax (temperature 1, no top-k/top-p);\n"
    "the warpers act as transformers' (temperature 0 = always the argmax). The same\n"
    "--seed (default 0) gives the same draws.\n"
    "  --trials T  repeat the N draws T times (default 1) with one rng stream\n"
    "  --json      {\"ids\", \"tokens\", \"probs\", \"position\", \"replacement\", \"seed\"}\n"
    "              (+ \"trials\": [[ids], ...] with --trials)\n"
    CLI_HOOK_USAGE;

int cmd_sample(int argc, char **argv) {
    static const struct option opts[] = {CLI_COMMON_OPTIONS, CLI_HOOK_OPTIONS,
                                         CLI_SAMPLER_OPTIONS,
                                         {"pos", required_argument, 0, OPT_POS},
                                         {"replacement", no_argument, 0, OPT_REPLACEMENT},
                                         {"trials", required_argument, 0, OPT_TRIALS},
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    cli_common c = {0};
    lsc_sampler_params sp = lsc_sampler_default_params();
    sp.do_sample = 1;
    sp.top_k = 0; /* the notebook's plain softmax */
    const char *pos_arg = NULL;
    long n_draws = 5, trials = 1;
    bool replacement = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (!r) r = cli_sampler_option(&sp, opt, optarg);
        if (r < 0) return 1;
        if (r) continue;
        if (opt == OPT_POS) pos_arg = optarg;
        else if (opt == 'n') {
            if (!cli_parse_int(optarg, 1, 100000000, &n_draws))
                return cli_error("-n: '%s' is not a whole number from 1 to 100000000", optarg);
        } else if (opt == OPT_TRIALS) {
            if (!cli_parse_int(optarg, 1, 10000000, &trials))
                return cli_error("--trials: '%s' is not a whole number from 1 to 10000000", optarg);
        } else if (opt == OPT_REPLACEMENT) replacement = true;
        else if (opt == OPT_HELP || opt == 'h') {
            fputs(usage, stdout);
            return 0;
        } else
            return cli_error("sample: unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
    }
    if (optind < argc) return cli_error("sample: unexpected argument '%s'", argv[optind]);
    if ((double)n_draws * (double)trials > 1e8)
        return cli_error("sample: -n %ld x --trials %ld is more than 100000000 draws", n_draws, trials);

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
        cli_error("-n %zu: without replacement at most %zu token%s can be drawn (the vocabulary "
                  "has %zu, %zu with non-zero probability here); use --replacement",
                  per, nonzero, nonzero == 1 ? "" : "s", V, nonzero);
        goto out;
    }
    lsc_rng rng;
    lsc_rng_seed(&rng, sp.seed);
    for (size_t t = 0; t < (size_t)trials; t++)
        if (lsc_multinomial(probs, V, per, replacement, &rng, draws + t * per, &err) != LSC_OK) {
            cli_error("%s", err.message);
            goto out;
        }

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
        cJSON_AddNumberToObject(o, "position", (double)pos);
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
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out */
    lsc_sampler_free(smp);
    free(probs);
    free(draws);
    cli_lm_close(&lm);
    return rc;
}
