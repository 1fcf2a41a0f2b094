/* cmd_generate.c - `logitscope generate`: continues a text token by token
 * through the KV cache (greedy, or sampled with transformers' warpers),
 * streaming it as it comes, or printing the notebook's "Iteration i:" lines. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

enum { OPT_MAX_NEW = 2000, OPT_GREEDY, OPT_DO_SAMPLE, OPT_SHOW_STEPS, OPT_NO_STOP, OPT_N };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"max-new-tokens", 0, "N", OPT_MAX_NEW, "at most N new tokens (default: the model's, else 20)"},
    {"greedy", 0, NULL, OPT_GREEDY, "always the most likely token"},
    {"do-sample", 0, NULL, OPT_DO_SAMPLE,
     "sample (implied by --temperature, --top-k, --top-p, --min-p)"},
    {"show-steps", 0, NULL, OPT_SHOW_STEPS,
     "print 'Iteration i:  <text so far>' after each token (--json: \"steps\")"},
    {"no-stop", 0, NULL, OPT_NO_STOP, "do not stop at the eos token"},
    {"n", 0, "N", OPT_N,
     "N independent samples of the prompt (seeds S, S+1, ...), generated together in one "
     "batch and printed when done (not with --show-steps, --hook or --cache)"},
    {0},
};

const cli_command cli_cmd_generate = {
    .name = "generate",
    .summary = "continue a text (greedy or sampled), streamed, with the KV cache",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3)",
    .about = "Generates up to N new tokens, streaming the text, with the defaults of\n"
             "transformers' model.generate(input_ids): those of the model folder's\n"
             "generation_config.json when it has one (do_sample, temperature, top_k, top_p,\n"
             "min_p, repetition_penalty, eos_token_id, max_new_tokens, max_length), else\n"
             "greedy, temperature 1, top-k 50, top-p 1 and 20 new tokens (fewer when the\n"
             "context is full). Flags override the file. --repetition-penalty applies in\n"
             "both modes. Stops after the eos token (the file's eos_token_id, else\n"
             "<|endoftext|>) unless --no-stop. The same --seed gives the same tokens.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_SAMPLER | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"prompt_ids\", \"new_ids\", \"text\", \"new_text\", \"stop\", \"do_sample\",\n"
            "   \"seed\", \"max_new_tokens\", \"generation_config\"} (+ \"steps\" with --show-steps);\n"
            "  with --n: {\"prompt_ids\", \"samples\": [{\"seed\", \"new_ids\", \"text\",\n"
            "   \"new_text\", \"stop\"}, ...]}\n",
    .run = run,
};

/* What the per-token callback needs. */
typedef struct gen_state {
    const lsc_tokenizer *tok;
    bool show_steps, json;
    cJSON *steps; /* --show-steps --json: the text after each step */
    int32_t *seq; /* prompt + new tokens so far */
    size_t len;
} gen_state;

/* Called by lsc_generate after each token: streams its bytes (after the
 * prompt's, the first time), or prints the whole text so far as an
 * "Iteration i:" line. */
static int on_token(int32_t id, size_t step, void *user) {
    gen_state *g = user;
    g->seq[g->len++] = id;
    if (g->json) {
        char *text;
        size_t len;
        if (g->steps && lsc_tokenizer_decode(g->tok, g->seq, g->len, &text, &len, NULL) == LSC_OK) {
            cJSON_AddItemToArray(g->steps, cJSON_CreateString(text));
            lsc_free(text);
        }
        return 0;
    }
    if (g->show_steps) {
        char *text;
        size_t len;
        if (lsc_tokenizer_decode(g->tok, g->seq, g->len, &text, &len, NULL) == LSC_OK) {
            printf("Iteration %zu:  ", step);
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
            lsc_free(text);
        }
    } else {
        size_t len;
        if (step == 0) /* the prompt first, once the model has run on it */
            for (size_t i = 0; i + 1 < g->len; i++) {
                const char *b = lsc_tokenizer_token_bytes(g->tok, g->seq[i], &len);
                if (b) fwrite(b, 1, len, stdout);
            }
        const char *bytes = lsc_tokenizer_token_bytes(g->tok, id, &len);
        if (bytes) fwrite(bytes, 1, len, stdout);
    }
    fflush(stdout);
    return 0;
}

/* Decodes ids into a new cJSON string (NULL when decoding fails). */
static cJSON *json_text(const lsc_tokenizer *tok, const int32_t *ids, size_t n) {
    char *text;
    size_t len;
    if (lsc_tokenizer_decode(tok, ids, n, &text, &len, NULL) != LSC_OK) return NULL;
    cJSON *s = cJSON_CreateString(text);
    lsc_free(text);
    return s;
}

/* A JSON array of ids. */
static cJSON *json_ids(const int32_t *ids, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

/* --n N: N samples of the prompt in one lsc_generate_batch, seeds
 * sp.seed + i, each on its own context sized for the prompt and its new
 * tokens (lm's context drives the steps on its threads). Prints every
 * sample that finished, an error line for each that did not; 0 when all
 * finished. */
static int generate_samples(cli_lm *lm, const cli_common *c, lsc_sampler_params sp,
                            lsc_generate_params gp, size_t n, bool from_config) {
    lsc_generate_seq *seqs = calloc(n, sizeof *seqs);
    int rc = 1;
    lsc_error err;
    if (!seqs) return cli_error("out of memory");
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_ctx = (int)(lm->n + (size_t)gp.max_new_tokens);
    cp.n_threads = 1; /* only the first context's pool runs the steps */
    if ((size_t)cp.n_ctx > (size_t)lsc_model_n_ctx(lm->model)) cp.n_ctx = 0;
    for (size_t i = 0; i < n; i++) {
        lsc_sampler_params si = sp;
        si.seed = sp.seed + i;
        seqs[i].ctx = i ? NULL : lm->ctx;
        if ((i && lsc_ctx_new(lm->model, cp, &seqs[i].ctx, &err)) ||
            lsc_sampler_new(si, &seqs[i].sampler, &err)) {
            cli_error("%s", err.message);
            goto out;
        }
        seqs[i].prompt = lm->ids;
        seqs[i].n_prompt = lm->n;
        seqs[i].params = gp;
    }
    lsc_status st = lsc_generate_batch(seqs, n, &err);
    rc = st != LSC_OK;
    cJSON *o = c->json ? cJSON_CreateObject() : NULL, *arr = NULL;
    if (o) {
        cJSON_AddItemToObject(o, "prompt_ids", json_ids(lm->ids, lm->n));
        arr = cJSON_AddArrayToObject(o, "samples");
    }
    for (size_t i = 0; i < n; i++) {
        lsc_generate_seq *s = &seqs[i];
        uint64_t seed = sp.seed + i;
        if (s->err.status) {
            cli_error("sample %zu (seed %llu): %s", i, (unsigned long long)seed, s->err.message);
            continue;
        }
        bool at_eos = s->n_new > 0 && gp.eos_id >= 0 && s->new_ids[s->n_new - 1] == gp.eos_id;
        int32_t *all = malloc((lm->n + s->n_new) * sizeof *all);
        if (!all) {
            rc = cli_error("out of memory");
            continue;
        }
        memcpy(all, lm->ids, lm->n * sizeof *all);
        memcpy(all + lm->n, s->new_ids, s->n_new * sizeof *all);
        if (o) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "seed", (double)seed);
            cJSON_AddItemToObject(e, "new_ids", json_ids(s->new_ids, s->n_new));
            cJSON_AddItemToObject(e, "text", json_text(lm->tok, all, lm->n + s->n_new));
            cJSON_AddItemToObject(e, "new_text", json_text(lm->tok, s->new_ids, s->n_new));
            cJSON_AddStringToObject(e, "stop", at_eos ? "eos" : "max_new_tokens");
            cJSON_AddItemToArray(arr, e);
        } else {
            char *text;
            size_t len;
            printf("--- sample %zu (seed %llu) ---\n", i, (unsigned long long)seed);
            if (lsc_tokenizer_decode(lm->tok, all, lm->n + s->n_new, &text, &len, NULL) == LSC_OK) {
                fwrite(text, 1, len, stdout);
                lsc_free(text);
            }
            fputc('\n', stdout);
        }
        free(all);
    }
    if (o) {
        cJSON_AddBoolToObject(o, "do_sample", sp.do_sample);
        cJSON_AddNumberToObject(o, "max_new_tokens", (double)gp.max_new_tokens);
        cJSON_AddBoolToObject(o, "generation_config", from_config);
        if (cli_print_json(o)) rc = 1;
    } else if (fflush(stdout)) {
        rc = cli_error("cannot write stdout");
    }
out:
    for (size_t i = 0; i < n; i++) {
        if (i) lsc_ctx_free(seqs[i].ctx);
        lsc_sampler_free(seqs[i].sampler);
        lsc_free(seqs[i].new_ids);
    }
    free(seqs);
    return rc;
}

/* Copies into *sp the sampler flags the user gave (bit opt - OPT_TEMPERATURE
 * of `given`) from *flags: flags override generation_config.json. */
static void apply_flags(lsc_sampler_params *sp, const lsc_sampler_params *flags, unsigned given) {
#define GIVEN(o) (given & (1u << ((o) - OPT_TEMPERATURE)))
    if (GIVEN(OPT_TEMPERATURE)) sp->temperature = flags->temperature;
    if (GIVEN(OPT_TOP_K)) sp->top_k = flags->top_k;
    if (GIVEN(OPT_TOP_P)) sp->top_p = flags->top_p;
    if (GIVEN(OPT_MIN_P)) sp->min_p = flags->min_p;
    if (GIVEN(OPT_REPETITION_PENALTY)) sp->repetition_penalty = flags->repetition_penalty;
    sp->seed = flags->seed;
#undef GIVEN
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_generate, argc, argv);
    long max_new = 0;   /* 0: from generation_config.json or transformers' default */
    long n_samples = 1; /* --n */
    bool greedy = false, do_sample = false, show_steps = false, no_stop = false;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_MAX_NEW) {
            if (!cli_parse_int(a.val, 1, 1000000, &max_new))
                return cli_usage_error("--max-new-tokens: '%s' is not a whole number from 1 to "
                                       "1000000",
                                       a.val);
        } else if (opt == OPT_N) {
            if (!cli_parse_int(a.val, 1, 256, &n_samples))
                return cli_usage_error("--n: '%s' is not a whole number from 1 to 256", a.val);
        } else if (opt == OPT_GREEDY) greedy = true;
        else if (opt == OPT_DO_SAMPLE) do_sample = true;
        else if (opt == OPT_SHOW_STEPS) show_steps = true;
        else if (opt == OPT_NO_STOP) no_stop = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    lsc_sampler_params flags = a.sampler, sp;
    unsigned given = a.sampler_given;
    const char *warper_flag = a.warper_flag; /* a flag that only means something when sampling */
    if (greedy && do_sample)
        return cli_usage_error("generate: --greedy and --do-sample exclude each other");
    if (greedy && warper_flag)
        return cli_usage_error("generate: %s only applies when sampling, not with --greedy", warper_flag);
    if (n_samples > 1 && (show_steps || c.n_hooks || c.n_cache))
        return cli_usage_error("generate: --n %ld does not combine with %s", n_samples,
                               show_steps ? "--show-steps" : c.n_hooks ? "--hook" : "--cache");

    cli_lm lm;
    int rc = 1;
    lsc_sampler *smp = NULL;
    int32_t *new_ids = NULL;
    gen_state g = {0};
    lsc_error err;
    if (!cli_lm_open(&c, true, &lm)) goto out;
    lsc_generation_config gc;
    if (lsc_generation_config_load(cli_model_dir(&c), &gc, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    sp = gc.sampler;
    apply_flags(&sp, &flags, given);
    if (greedy) sp.do_sample = 0;
    if (do_sample || warper_flag) sp.do_sample = 1;
    if (!max_new) {
        int n;
        if (lsc_generation_config_max_new(&gc, lm.n, (size_t)lsc_ctx_n_ctx(lm.ctx), &n, &err) !=
            LSC_OK) {
            cli_error("%s", err.message);
            goto out;
        }
        max_new = n;
    }
    long prompt = (long)lm.n;
    if (!cli_hooks_check_plan(lm.hooks, &prompt, 1, max_new - 1)) goto out; /* before any output */
    lsc_generate_params gp = lsc_generate_default_params();
    gp.max_new_tokens = (int)max_new;
    int eos = gc.found ? gc.eos_id : lsc_tokenizer_eos_id(lm.tok);
    gp.eos_id = no_stop || eos < 0 || (size_t)eos >= lm.n_vocab ? -1 : eos;
    if (n_samples > 1) {
        rc = generate_samples(&lm, &c, sp, gp, (size_t)n_samples, gc.found);
        goto out;
    }
    if (lsc_sampler_new(sp, &smp, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    g.tok = lm.tok;
    g.show_steps = show_steps;
    g.json = c.json;
    if (c.json && show_steps && !(g.steps = cJSON_CreateArray())) {
        cli_error("out of memory");
        goto out;
    }
    g.seq = malloc((lm.n + (size_t)max_new) * sizeof *g.seq);
    if (!g.seq) {
        cli_error("out of memory");
        goto out;
    }
    memcpy(g.seq, lm.ids, lm.n * sizeof *g.seq);
    g.len = lm.n;
    size_t n_new = 0;
    if (lsc_generate(lm.ctx, smp, lm.ids, lm.n, gp, on_token, &g, &new_ids, &n_new, &err) != LSC_OK) {
        if (!c.json && !show_steps && g.len > lm.n) fputc('\n', stdout);
        lsc_error werr; /* NaN logits: name the weight that holds a NaN/Inf, if one does */
        if (err.status != LSC_ERR_CONTEXT_FULL && lsc_model_check_finite(lm.model, &werr) != LSC_OK)
            err = werr;
        cli_error("%s", err.message);
        goto out;
    }
    bool at_eos = n_new > 0 && gp.eos_id >= 0 && new_ids[n_new - 1] == gp.eos_id;
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "prompt_ids", json_ids(lm.ids, lm.n));
        cJSON_AddItemToObject(o, "new_ids", json_ids(new_ids, n_new));
        cJSON_AddItemToObject(o, "text", json_text(lm.tok, g.seq, g.len));
        cJSON_AddItemToObject(o, "new_text", json_text(lm.tok, new_ids, n_new));
        cJSON_AddStringToObject(o, "stop", at_eos ? "eos" : "max_new_tokens");
        cJSON_AddBoolToObject(o, "do_sample", sp.do_sample);
        cJSON_AddNumberToObject(o, "seed", (double)sp.seed);
        cJSON_AddNumberToObject(o, "max_new_tokens", (double)max_new);
        cJSON_AddBoolToObject(o, "generation_config", gc.found);
        if (g.steps) cJSON_AddItemToObject(o, "steps", g.steps);
        g.steps = NULL;
        rc = cli_print_json(o);
        goto out;
    }
    if (!show_steps) fputc('\n', stdout);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out */
    cJSON_Delete(g.steps);
    free(g.seq);
    lsc_free(new_ids);
    lsc_sampler_free(smp);
    cli_lm_close(&lm);
    return rc;
}
