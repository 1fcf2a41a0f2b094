/* cmd_generate.c - `logitscope generate`: continues a text token by token
 * through the KV cache (greedy, or sampled with transformers' warpers),
 * streaming it as it comes, or printing the notebook's "Iteration i:" lines. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

enum { OPT_MAX_NEW = 2000, OPT_GREEDY, OPT_DO_SAMPLE, OPT_SHOW_STEPS, OPT_NO_STOP, OPT_HELP };

static const char usage[] =
    "usage: logitscope generate [--model DIR|REPO] (--text T | --ids 1,2,3) [--max-new-tokens N]\n"
    "                           [--greedy | --do-sample] [--temperature X] [--top-k K]\n"
    "                           [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S]\n"
    "                           [--show-steps] [--no-stop] [--json]\n"
    "Generates up to N new tokens, streaming the text, with the defaults of transformers'\n"
    "model.generate(input_ids): those of the model folder's generation_config.json when\n"
    "it has one (do_sample, temperature, top_k, top_p, min_p, repetition_penalty,\n"
    "eos_token_id, max_new_tokens, max_length), else greedy, temperature 1, top-k 50,\n"
    "top-p 1, and 20 new tokens (fewer when the context is full). A max_length in the\n"
    "file counts the prompt. Flags override the file. --do-sample (implied by\n"
    "--temperature, --top-k, --top-p, --min-p) samples; --greedy does not.\n"
    "--repetition-penalty applies in both modes. Stops after the eos token (the file's\n"
    "eos_token_id, else <|endoftext|>) unless --no-stop. The same --seed (default 0)\n"
    "gives the same tokens.\n"
    "  --show-steps  print 'Iteration i:  <text so far>' after each token\n"
    "  --json        {\"prompt_ids\", \"new_ids\", \"text\", \"new_text\", \"stop\"}\n"
    CLI_HOOK_USAGE;

/* What the per-token callback needs. */
typedef struct gen_state {
    const lsc_tokenizer *tok;
    bool show_steps, json;
    int32_t *seq; /* prompt + new tokens so far */
    size_t len;
} gen_state;

/* Called by lsc_generate after each token: streams its bytes (after the
 * prompt's, the first time), or prints the whole text so far as an
 * "Iteration i:" line. */
static int on_token(int32_t id, size_t step, void *user) {
    gen_state *g = user;
    g->seq[g->len++] = id;
    if (g->json) return 0;
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

int cmd_generate(int argc, char **argv) {
    static const struct option opts[] = {CLI_COMMON_OPTIONS, CLI_HOOK_OPTIONS,
                                         CLI_SAMPLER_OPTIONS,
                                         {"max-new-tokens", required_argument, 0, OPT_MAX_NEW},
                                         {"greedy", no_argument, 0, OPT_GREEDY},
                                         {"do-sample", no_argument, 0, OPT_DO_SAMPLE},
                                         {"show-steps", no_argument, 0, OPT_SHOW_STEPS},
                                         {"no-stop", no_argument, 0, OPT_NO_STOP},
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    cli_common c = {0};
    lsc_sampler_params flags = lsc_sampler_default_params(), sp;
    unsigned given = 0; /* the sampler flags given, bit opt - OPT_TEMPERATURE */
    long max_new = 0;   /* 0: from generation_config.json or transformers' default */
    bool greedy = false, do_sample = false, show_steps = false, no_stop = false;
    const char *warper_flag = NULL; /* a flag that only means something when sampling */
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (!r) {
            r = cli_sampler_option(&flags, opt, optarg);
            if (r > 0) given |= 1u << (opt - OPT_TEMPERATURE);
            if (r > 0 && opt != OPT_REPETITION_PENALTY && opt != OPT_SEED)
                warper_flag = argv[optind - 1 - (optarg == argv[optind - 1])];
        }
        if (r < 0) return 1;
        if (r) continue;
        if (opt == OPT_MAX_NEW) {
            if (!cli_parse_int(optarg, 1, 1000000, &max_new))
                return cli_error("--max-new-tokens: '%s' is not a whole number from 1 to 1000000",
                                 optarg);
        } else if (opt == OPT_GREEDY) greedy = true;
        else if (opt == OPT_DO_SAMPLE) do_sample = true;
        else if (opt == OPT_SHOW_STEPS) show_steps = true;
        else if (opt == OPT_NO_STOP) no_stop = true;
        else if (opt == OPT_HELP || opt == 'h') {
            fputs(usage, stdout);
            return 0;
        } else
            return cli_error("generate: unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
    }
    if (optind < argc) return cli_error("generate: unexpected argument '%s'", argv[optind]);
    if (greedy && do_sample) return cli_error("generate: --greedy and --do-sample exclude each other");
    if (greedy && warper_flag)
        return cli_error("generate: %s only applies when sampling, not with --greedy", warper_flag);

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
    if (lsc_sampler_new(sp, &smp, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    lsc_generate_params gp = lsc_generate_default_params();
    gp.max_new_tokens = (int)max_new;
    int eos = gc.found ? gc.eos_id : lsc_tokenizer_eos_id(lm.tok);
    gp.eos_id = no_stop || eos < 0 || (size_t)eos >= lm.n_vocab ? -1 : eos;
    g.tok = lm.tok;
    g.show_steps = show_steps;
    g.json = c.json;
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
        rc = cli_print_json(o);
        goto out;
    }
    if (!show_steps) fputc('\n', stdout);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out */
    free(g.seq);
    lsc_free(new_ids);
    lsc_sampler_free(smp);
    cli_lm_close(&lm);
    return rc;
}
