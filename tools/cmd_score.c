/* cmd_score.c - `logitscope score`: the log-probability the model gives each
 * actual next token of a text, the negative log-likelihood and perplexity
 * (transformers' model(ids, labels=ids).loss), with Hugging Face's sliding
 * window for texts longer than the context. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_FILE = 2000, OPT_STRIDE, OPT_MAX_LENGTH, OPT_SUMMARY };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"file", 0, "F", OPT_FILE, "read the text (UTF-8) from a file"},
    {"max-length", 0, "L", OPT_MAX_LENGTH, "window length (default the context, 1024 for GPT-2)"},
    {"stride", 0, "S", OPT_STRIDE, "how far each window moves on (default L/2)"},
    {"summary", 0, NULL, OPT_SUMMARY, "only the totals, not the per-token table"},
    {0},
};

const cli_command cli_cmd_score = {
    .name = "score",
    .summary = "log-probability of each actual next token, NLL and perplexity",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3 | --file F)",
    .about = "The log-probability of each actual next token, the mean negative log-likelihood\n"
             "(transformers' loss) and the perplexity exp(mean NLL). Texts longer than L\n"
             "tokens are scored in windows of L tokens that move on by S, as in Hugging\n"
             "Face's perplexity guide; each token is scored once.\n",
    .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_OUTPUT,
    .opts = opts,
    .json = "  {\"n_tokens\", \"n_scored\", \"token_logprobs\", \"nll\", \"total_nll\",\n"
            "   \"perplexity\", \"n_windows\", \"max_length\", \"stride\"}\n",
    .run = run,
};

/* Reads a whole text file (at most 256 MiB) into a new NUL-terminated string
 * (free with free()); prints the error and returns NULL on failure. */
static char *read_text_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("--file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (256 << 20)) {
        fclose(f);
        cli_error("--file %s: not a regular file of at most 256 MiB", path);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        cli_error("--file %s: cannot read it", path);
        return NULL;
    }
    fclose(f);
    buf[n] = '\0';
    if (strlen(buf) != n) {
        free(buf);
        cli_error("--file %s: contains a NUL byte; it is not a text file", path);
        return NULL;
    }
    return buf;
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_score, argc, argv);
    const char *file = NULL;
    long stride = 0, max_length = 0;
    bool summary = false;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_FILE) file = a.val;
        else if (opt == OPT_STRIDE) {
            if (!cli_parse_int(a.val, 1, INT_MAX, &stride))
                return cli_usage_error("--stride: '%s' is not a whole number >= 1", a.val);
        } else if (opt == OPT_MAX_LENGTH) {
            if (!cli_parse_int(a.val, 2, INT_MAX, &max_length))
                return cli_usage_error("--max-length: '%s' is not a whole number >= 2", a.val);
        } else if (opt == OPT_SUMMARY) summary = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (file && (c.text || c.ids)) return cli_usage_error("score: give exactly one of --text, --ids or --file");

    cli_lm lm;
    int rc = 1;
    char *text = NULL;
    float *lps = NULL;
    lsc_error err;
    if (file) {
        text = read_text_file(file);
        if (!text) return 1;
        if (!*text) {
            free(text);
            return cli_error("--file %s is empty: there is no token to score", file);
        }
        c.text = text;
    }
    if (!cli_lm_open(&c, true, &lm)) goto out;
    if (lm.n < 2) {
        cli_error("score: the input is 1 token; scoring needs at least 2 (the first is only "
                  "context)");
        goto out;
    }
    lps = malloc((lm.n - 1) * sizeof *lps);
    if (!lps) {
        cli_error("out of memory");
        goto out;
    }
    lsc_score_params sp = lsc_score_default_params();
    sp.max_length = (int)max_length;
    sp.stride = (int)stride;
    lsc_score_result res;
    if (lsc_score(lm.ctx, lm.ids, lm.n, sp, lps, &res, &err) != LSC_OK) {
        cli_error("%s", err.message);
        goto out;
    }
    if (!isfinite(res.nll)) { /* NaN/Inf weights: name the tensor when they are the cause */
        if (lsc_model_check_finite(lm.model, &err) != LSC_OK)
            cli_error("%s", err.message);
        else
            cli_error("score: the log-likelihood is not finite (%g)", res.nll);
        goto out;
    }
    int L = max_length ? (int)max_length : lsc_ctx_n_ctx(lm.ctx);
    int S = stride ? (int)stride : L / 2;
    if (!cli_hooks_finish(lm.hooks)) goto out; /* before any output: --cache-out, unused --hook */
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "n_tokens", (double)lm.n);
        cJSON_AddNumberToObject(o, "n_scored", (double)res.n_scored);
        cJSON *ids = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; ids && i < lm.n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(lm.ids[i]));
        cJSON *lp = cJSON_AddArrayToObject(o, "token_logprobs");
        for (size_t i = 0; lp && i + 1 < lm.n; i++)
            cJSON_AddItemToArray(lp, cJSON_CreateNumber(lps[i]));
        cJSON_AddNumberToObject(o, "nll", res.mean_nll);
        cJSON_AddNumberToObject(o, "total_nll", res.nll);
        cJSON_AddNumberToObject(o, "perplexity", res.perplexity);
        cJSON_AddNumberToObject(o, "n_windows", (double)res.n_windows);
        cJSON_AddNumberToObject(o, "max_length", L);
        cJSON_AddNumberToObject(o, "stride", S);
        rc = cli_print_json(o);
        goto out;
    }
    if (!summary) {
        printf("%5s %7s %10s  %s\n", "pos", "id", "logprob", "token");
        for (size_t t = 1; t < lm.n; t++) {
            printf("%5zu %7d %10.4f  ", t, (int)lm.ids[t], (double)lps[t - 1]);
            cli_print_token(stdout, lm.tok, lm.ids[t]);
            fputc('\n', stdout);
        }
        fputc('\n', stdout);
    }
    printf("tokens: %zu (%zu scored, %zu window%s of %d, stride %d)\n", lm.n, res.n_scored,
           res.n_windows, res.n_windows == 1 ? "" : "s", L, S);
    printf("total negative log-likelihood: %.4f\n", res.nll);
    printf("mean negative log-likelihood (loss): %.6f\n", res.mean_nll);
    printf(res.perplexity < 1e6 ? "perplexity: %.4f\n" : "perplexity: %.6g\n", res.perplexity);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    free(lps);
    free(text);
    cli_lm_close(&lm);
    return rc;
}
