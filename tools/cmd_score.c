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

enum { OPT_FILE = 2000, OPT_STRIDE, OPT_MAX_LENGTH, OPT_SUMMARY, OPT_HELP };

static const char usage[] =
    "usage: logitscope score [--model DIR|REPO] (--text T | --ids 1,2,3 | --file F) [--max-length L]\n"
    "                        [--stride S] [--summary] [--json]\n"
    "The log-probability of each actual next token, the mean negative\n"
    "log-likelihood (transformers' loss) and the perplexity exp(mean NLL).\n"
    "Texts longer than L tokens (default the context, 1024 for GPT-2) are scored\n"
    "in windows of L tokens that move on by S (default L/2), as in Hugging Face's\n"
    "perplexity guide; each token is scored once.\n"
    "  --file F     read the text (UTF-8) from a file\n"
    "  --summary    only the totals, not the per-token table\n"
    "  --json       {\"n_tokens\", \"n_scored\", \"token_logprobs\", \"nll\", \"total_nll\",\n"
    "                \"perplexity\", \"n_windows\", \"max_length\", \"stride\"}\n"
    CLI_HOOK_USAGE;

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

int cmd_score(int argc, char **argv) {
    static const struct option opts[] = {CLI_COMMON_OPTIONS, CLI_HOOK_OPTIONS,
                                         {"file", required_argument, 0, OPT_FILE},
                                         {"stride", required_argument, 0, OPT_STRIDE},
                                         {"max-length", required_argument, 0, OPT_MAX_LENGTH},
                                         {"summary", no_argument, 0, OPT_SUMMARY},
                                         {"help", no_argument, 0, OPT_HELP},
                                         {0, 0, 0, 0}};
    cli_common c = {0};
    const char *file = NULL;
    long stride = 0, max_length = 0;
    bool summary = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = cli_common_option(&c, opt, optarg);
        if (r < 0) return 1;
        if (r) continue;
        if (opt == OPT_FILE) file = optarg;
        else if (opt == OPT_STRIDE) {
            if (!cli_parse_int(optarg, 1, INT_MAX, &stride))
                return cli_error("--stride: '%s' is not a whole number >= 1", optarg);
        } else if (opt == OPT_MAX_LENGTH) {
            if (!cli_parse_int(optarg, 2, INT_MAX, &max_length))
                return cli_error("--max-length: '%s' is not a whole number >= 2", optarg);
        } else if (opt == OPT_SUMMARY) summary = true;
        else if (opt == OPT_HELP || opt == 'h') {
            fputs(usage, stdout);
            return 0;
        } else
            return cli_error("score: unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
    }
    if (optind < argc) return cli_error("score: unexpected argument '%s'", argv[optind]);
    if (file && (c.text || c.ids)) return cli_error("score: give exactly one of --text, --ids or --file");

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
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "n_tokens", (double)lm.n);
        cJSON_AddNumberToObject(o, "n_scored", (double)res.n_scored);
        cJSON *ids = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; ids && i < lm.n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(lm.ids[i]));
        cJSON *a = cJSON_AddArrayToObject(o, "token_logprobs");
        for (size_t i = 0; a && i + 1 < lm.n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(lps[i]));
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
    printf("perplexity: %.4f\n", res.perplexity);
    rc = fflush(stdout) ? cli_error("cannot write stdout") : 0;
out:
    if (rc == 0 && !cli_hooks_finish(lm.hooks)) rc = 1; /* --cache-out */
    free(lps);
    free(text);
    cli_lm_close(&lm);
    return rc;
}
