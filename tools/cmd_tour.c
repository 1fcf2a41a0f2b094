/* cmd_tour.c - `logitscope tour`: the notebook end to end on one model and text:
 * tokens, logits, argmax, softmax and log-softmax, the top-10, the rank of a
 * token, multinomial draws, a 10-step greedy loop and a generate call. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_TOKEN = 2000, OPT_STEPS, OPT_MAX_NEW };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"token", 0, "TEXT", OPT_TOKEN, "the token to rank (default \" coffee\"; exactly one token)"},
    {"seed", 0, "S", OPT_SEED, "the seed of the multinomial draws (default 0)"},
    {"steps", 0, "N", OPT_STEPS, "steps of the greedy loop (default 10)"},
    {"max-new-tokens", 0, "N", OPT_MAX_NEW, "tokens of the generate call (default 20)"},
    {0},
};

const cli_command cli_cmd_tour = {
    .name = "tour",
    .summary = "the notebook end to end: tokens, softmax, top-10, rank, sampling, generation",
    .synopsis = "[options] [TEXT | --text T | --ids 1,2,3]",
    .about = "Walks through the notebook on one text (at least 6 tokens): the token count,\n"
             "the 5th and 6th tokens, the argmax at position 5, the logit sum, softmax and\n"
             "log-softmax, the final top-10, the rank (0 = the most likely) of --token, 5\n"
             "multinomial draws, an N-step greedy loop and a generate call (greedy, as\n"
             "transformers' default).\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  one object per section of the text output (docs/cli.md)\n",
    .run = run,
};

static const char default_text[] = "After a long night of work, I really need a hot cup of";


/* Appends the decoded token as a JSON string to arr. */
static void json_token(cJSON *arr, const lsc_tokenizer *tok, int32_t id) {
    char *s = cli_token_text(tok, id, NULL);
    cJSON_AddItemToArray(arr, cJSON_CreateString(s ? s : ""));
    lsc_free(s);
}

/* Appends to `steps` (when JSON) or prints the notebook's loop lines. */
typedef struct tour_loop {
    const lsc_tokenizer *tok;
    int32_t *seq;
    size_t len;
    cJSON *steps; /* NULL: print */
} tour_loop;

static int tour_on_token(int32_t id, size_t step, void *user) {
    tour_loop *t = user;
    t->seq[t->len++] = id;
    char *text;
    size_t len;
    if (lsc_tokenizer_decode(t->tok, t->seq, t->len, &text, &len, NULL) != LSC_OK) return 0;
    if (t->steps) cJSON_AddItemToArray(t->steps, cJSON_CreateString(text));
    else printf("Iteration %zu:  %s\n", step, text);
    lsc_free(text);
    return 0;
}

/* Generates greedily from ids[n]: up to max_new tokens, stopping at eos; each
 * token goes through tour_on_token. *out holds the whole sequence afterwards
 * (free with free()). Prints the error and returns false on failure. */
static bool greedy(cli_lm *lm, long max_new, cJSON *steps, int32_t **out, size_t *out_len) {
    lsc_sampler *s = NULL;
    lsc_error err;
    tour_loop t = {lm->tok, malloc((lm->n + (size_t)max_new) * sizeof(int32_t)), lm->n, steps};
    if (!t.seq) return cli_error("out of memory"), false;
    memcpy(t.seq, lm->ids, lm->n * sizeof *t.seq);
    lsc_generate_params gp = lsc_generate_default_params();
    gp.max_new_tokens = (int)max_new;
    int eos = lsc_tokenizer_eos_id(lm->tok);
    gp.eos_id = eos >= 0 && (size_t)eos < lm->n_vocab ? eos : -1;
    if (lsc_sampler_new(lsc_sampler_default_params(), &s, &err) != LSC_OK ||
        lsc_generate(lm->ctx, s, lm->ids, lm->n, gp, tour_on_token, &t, NULL, NULL, &err) != LSC_OK) {
        lsc_sampler_free(s);
        free(t.seq);
        return cli_error("%s", err.message), false;
    }
    lsc_sampler_free(s);
    *out = t.seq;
    *out_len = t.len;
    return true;
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_tour, argc, argv);
    const char *token = " coffee";
    long steps = 10, max_new = 20;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_TOKEN) token = a.val;
        else if (opt == OPT_STEPS) {
            if (!cli_parse_int(a.val, 1, 1000, &steps))
                return cli_usage_error("--steps: '%s' is not a whole number from 1 to 1000", a.val);
        } else if (opt == OPT_MAX_NEW) {
            if (!cli_parse_int(a.val, 1, 1000000, &max_new))
                return cli_usage_error("--max-new-tokens: '%s' is not a whole number from 1 to "
                                       "1000000",
                                       a.val);
        }
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    lsc_sampler_params sp = a.sampler;
    if (!c.text && !c.ids) c.text = default_text;

    cli_lm lm;
    int rc = 1;
    float *pr = NULL, *lp = NULL;
    int32_t *gen = NULL, *loop = NULL;
    size_t gen_len = 0, loop_len = 0;
    cJSON *o = NULL;
    lsc_error err;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    if (lm.n < 6) {
        cli_error("tour: the text is %zu token%s; the tour needs at least 6 (it shows the 5th and "
                  "6th)",
                  lm.n, lm.n == 1 ? "" : "s");
        goto out;
    }
    int32_t coffee;
    if (!cli_single_token(lm.tok, "--token", token, c.no_special, &coffee)) goto out;
    size_t longest = lm.n + (size_t)(steps > max_new ? steps : max_new);
    if (longest > (size_t)lsc_ctx_n_ctx(lm.ctx)) { /* checked before the first line of output */
        cli_error("tour: the text (%zu tokens) and %ld new ones do not fit the model's context of "
                  "%d tokens; give a shorter text or fewer --steps/--max-new-tokens",
                  lm.n, steps > max_new ? steps : max_new, lsc_ctx_n_ctx(lm.ctx));
        goto out;
    }
    if ((size_t)coffee >= lm.n_vocab) {
        cli_error("--token: id %d is outside the model's vocabulary", (int)coffee);
        goto out;
    }
    /* the forwards below: the 6th position's row, the last one's, then the
     * two greedy generations from the whole text (the longer one covers both) */
    long prefills[2] = {6, (long)lm.n};
    if (!cli_hooks_check_plan(lm.hooks, prefills, 2, (steps > max_new ? steps : max_new) - 1))
        goto out;
    size_t V = lm.n_vocab, last = lm.n - 1;
    pr = malloc(V * sizeof *pr);
    lp = malloc(V * sizeof *lp);
    if (!pr || !lp) {
        cli_error("out of memory");
        goto out;
    }
    bool json = c.json;
    if (json) o = cJSON_CreateObject();

    /* 1. tokens */
    char *text;
    size_t text_len;
    if (lsc_tokenizer_decode(lm.tok, lm.ids, lm.n, &text, &text_len, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (json) {
        cJSON_AddStringToObject(o, "text", text);
        cJSON_AddNumberToObject(o, "n_tokens", (double)lm.n);
        cJSON_AddNumberToObject(o, "n_vocab", (double)V);
        cJSON *ids = cJSON_AddArrayToObject(o, "ids"), *toks = cJSON_AddArrayToObject(o, "tokens");
        for (size_t i = 0; ids && toks && i < lm.n; i++) {
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(lm.ids[i]));
            json_token(toks, lm.tok, lm.ids[i]);
        }
    } else {
        printf("== 1. Tokens\nText: %s\n%zu tokens (vocabulary of %zu). The 5th and 6th: ", text,
               lm.n, V);
        cli_print_token(stdout, lm.tok, lm.ids[4]);
        printf(" (id %d) and ", (int)lm.ids[4]);
        cli_print_token(stdout, lm.tok, lm.ids[5]);
        printf(" (id %d)\n\n", (int)lm.ids[5]);
    }
    lsc_free(text);

    /* 2. logits at position 5: the argmax and the row's sum */
    const float *row = cli_lm_row(&lm, 5);
    if (!row) goto out;
    int32_t am5 = (int32_t)lsc_argmax(row, V);
    double sum5 = 0;
    for (size_t i = 0; i < V; i++) sum5 += row[i];
    if (json) {
        cJSON *p5 = cJSON_AddObjectToObject(o, "position_5");
        cJSON_AddNumberToObject(p5, "argmax", am5);
        cJSON_AddNumberToObject(p5, "logit", row[am5]);
        cJSON_AddNumberToObject(p5, "logit_sum", sum5);
    } else {
        printf("== 2. Logits [%zu, %zu]; at position 5 (after ", lm.n, V);
        cli_print_token(stdout, lm.tok, lm.ids[5]);
        printf(")\nargmax: id %d ", (int)am5);
        cli_print_token(stdout, lm.tok, am5);
        printf(", logit %.4f; sum of the row's logits: %.4f\n\n", (double)row[am5], sum5);
    }

    /* 3. the last position: softmax, log-softmax, top-10 */
    row = cli_lm_row(&lm, last);
    if (!row) goto out;
    lsc_softmax(row, V, pr);
    lsc_log_softmax(row, V, lp);
    double psum = 0, lsum = 0;
    size_t best = lsc_argmax(row, V);
    for (size_t i = 0; i < V; i++) psum += pr[i], lsum += row[i];
    int32_t top[10];
    size_t k = V < 10 ? V : 10;
    if (lsc_top_k(row, V, k, top, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    size_t rank;
    if (lsc_rank(row, V, (size_t)coffee, &rank, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (json) {
        cJSON *l = cJSON_AddObjectToObject(o, "last");
        cJSON_AddNumberToObject(l, "logit_sum", lsum);
        cJSON_AddNumberToObject(l, "prob_sum", psum);
        cJSON_AddNumberToObject(l, "max_prob", pr[best]);
        cJSON_AddNumberToObject(l, "max_logprob", lp[best]);
        cJSON *t = cJSON_AddArrayToObject(l, "top");
        for (size_t i = 0; t && i < k; i++) {
            cJSON *e = cJSON_CreateObject();
            char *s = cli_token_text(lm.tok, top[i], NULL);
            cJSON_AddNumberToObject(e, "id", top[i]);
            cJSON_AddStringToObject(e, "token", s ? s : "");
            lsc_free(s);
            cJSON_AddNumberToObject(e, "logit", row[top[i]]);
            cJSON_AddNumberToObject(e, "prob", pr[top[i]]);
            cJSON_AddNumberToObject(e, "logprob", lp[top[i]]);
            cJSON_AddItemToArray(t, e);
        }
        cJSON *r = cJSON_AddObjectToObject(o, "rank");
        cJSON_AddNumberToObject(r, "id", coffee);
        cJSON_AddStringToObject(r, "token", token);
        cJSON_AddNumberToObject(r, "rank", (double)rank);
        cJSON_AddNumberToObject(r, "logit", row[coffee]);
        cJSON_AddNumberToObject(r, "prob", pr[coffee]);
    } else {
        printf("== 3. The last position (after ");
        cli_print_token(stdout, lm.tok, lm.ids[last]);
        printf(")\nsum of the logits %.4f; softmax: probabilities sum to %.6f, the largest is "
               "%.6f (log-softmax %.4f)\n\n",
               lsum, psum, (double)pr[best], (double)lp[best]);
        printf("%4s %7s %10s %10s %10s  %s\n", "rank", "id", "logit", "prob", "logprob", "token");
        for (size_t i = 0; i < k; i++) {
            printf("%4zu %7d %10.4f %10.6f %10.4f  ", i, (int)top[i], (double)row[top[i]],
                   (double)pr[top[i]], (double)lp[top[i]]);
            cli_print_token(stdout, lm.tok, top[i]);
            fputc('\n', stdout);
        }
        printf("\n== 4. Rank of ");
        cli_print_token(stdout, lm.tok, coffee);
        printf(" (id %d): %zu of %zu, logit %.4f, probability %.6g\n\n", (int)coffee, rank, V,
               (double)row[coffee], (double)pr[coffee]);
    }

    /* 5. five draws without replacement, as torch.multinomial(probs, 5) */
    size_t nonzero = 0;
    for (size_t i = 0; i < V; i++) nonzero += pr[i] > 0.0f;
    size_t nd = nonzero < 5 ? nonzero : 5;
    int32_t draws[5];
    lsc_rng rng;
    lsc_rng_seed(&rng, sp.seed);
    if (lsc_multinomial(pr, V, nd, 0, &rng, draws, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (json) {
        cJSON *d = cJSON_AddObjectToObject(o, "samples");
        cJSON *ids = cJSON_AddArrayToObject(d, "ids"), *toks = cJSON_AddArrayToObject(d, "tokens");
        for (size_t i = 0; ids && toks && i < nd; i++) {
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(draws[i]));
            json_token(toks, lm.tok, draws[i]);
        }
        cJSON_AddNumberToObject(d, "seed", (double)sp.seed);
    } else {
        printf("== 5. %zu draws without replacement (seed %llu):", nd, (unsigned long long)sp.seed);
        for (size_t i = 0; i < nd; i++) {
            fputc(' ', stdout);
            cli_print_token(stdout, lm.tok, draws[i]);
        }
        printf("\n\n== 6. A %ld-step greedy loop\n", steps);
    }

    /* 6. the notebook's loop: argmax, append, print; 7. a generate call */
    cJSON *st = json ? cJSON_AddArrayToObject(o, "loop") : NULL;
    if (!greedy(&lm, steps, st, &loop, &loop_len)) goto out;
    if (!json) printf("\n== 7. generate(max_new_tokens=%ld), greedy\n", max_new);
    cJSON *gsteps = cJSON_CreateArray(); /* the generate call's steps are not printed */
    bool ok = greedy(&lm, max_new, gsteps, &gen, &gen_len);
    cJSON_Delete(gsteps);
    if (!ok) goto out;
    if (lsc_tokenizer_decode(lm.tok, gen, gen_len, &text, &text_len, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (json) {
        cJSON *g = cJSON_AddObjectToObject(o, "generate");
        cJSON *ids = cJSON_AddArrayToObject(g, "new_ids");
        for (size_t i = lm.n; ids && i < gen_len; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(gen[i]));
        cJSON_AddStringToObject(g, "text", text);
        lsc_free(text);
        rc = cli_print_json(o);
        o = NULL;
        goto out;
    }
    printf("%s\n", text);
    lsc_free(text);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out, after the streamed sections */
    cJSON_Delete(o);
    free(pr);
    free(lp);
    free(gen);
    free(loop);
    cli_lm_close(&lm);
    return rc;
}
