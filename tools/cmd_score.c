/* cmd_score.c - `logitscope score`: the log-probability the model gives each
 * actual next token of a text, the negative log-likelihood and perplexity
 * (transformers' model(ids, labels=ids).loss), with Hugging Face's sliding
 * window for texts longer than the context. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_FILE = 2000, OPT_STRIDE, OPT_MAX_LENGTH, OPT_SUMMARY, OPT_JSONL, OPT_BATCH };

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"file", 0, "F", OPT_FILE, "read the text (UTF-8) from a file"},
    {"max-length", 0, "L", OPT_MAX_LENGTH, "window length (default the context, 1024 for GPT-2)"},
    {"stride", 0, "S", OPT_STRIDE, "how far each window moves on (default L/2)"},
    {"summary", 0, NULL, OPT_SUMMARY, "only the totals, not the per-token table"},
    {"jsonl", 0, NULL, OPT_JSONL,
     "read {\"text\": ...} or {\"ids\": [...]} lines on stdin and write one --json line per "
     "input, in input order, scoring B texts at once (shared forward steps, no padding); a bad "
     "input gets {\"line\": N, \"error\": ...} and the others go on (exit status 1)"},
    {"batch", 0, "B", OPT_BATCH, "texts in flight with --jsonl (default 16)"},
    {0},
};

const cli_command cli_cmd_score = {
    .name = "score",
    .summary = "log-probability of each actual next token, NLL and perplexity",
    .synopsis = "[options] (TEXT | --text T | --ids 1,2,3 | --file F | --jsonl < lines)",
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

/* score --json's object for one text. */
static cJSON *score_json(const int32_t *ids, size_t n, const float *lps,
                         const lsc_score_result *res, int L, int S) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n_tokens", (double)n);
    cJSON_AddNumberToObject(o, "n_scored", (double)res->n_scored);
    cJSON *a = cJSON_AddArrayToObject(o, "ids");
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    a = cJSON_AddArrayToObject(o, "token_logprobs");
    for (size_t i = 0; a && i + 1 < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(lps[i]));
    cJSON_AddNumberToObject(o, "nll", res->mean_nll);
    cJSON_AddNumberToObject(o, "total_nll", res->nll);
    cJSON_AddNumberToObject(o, "perplexity", res->perplexity);
    cJSON_AddNumberToObject(o, "n_windows", (double)res->n_windows);
    cJSON_AddNumberToObject(o, "max_length", L);
    cJSON_AddNumberToObject(o, "stride", S);
    return o;
}

/* One --jsonl input: its ids (from "text" or "ids"), or the reason it has
 * none; then its scores. */
typedef struct jsonl_text {
    size_t line;
    int32_t *ids;
    size_t n;
    char *error; /* set when the line cannot be scored */
    float *lps;
    lsc_score_seq seq;
} jsonl_text;

/* Reads input line `lineno` into *t: {"text": "..."} encoded with `tok`, or
 * {"ids": [...]} of integers. A bad line sets t->error (malloc'd). */
static void read_jsonl_text(const char *line, size_t len, size_t lineno, lsc_tokenizer *tok,
                            int flags, jsonl_text *t) {
    char msg[LSC_ERROR_MESSAGE_SIZE + 64];
    memset(t, 0, sizeof *t);
    t->line = lineno;
    msg[0] = '\0';
    cJSON *obj = strlen(line) == len ? cJSON_Parse(line) : NULL;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "ids");
    if (strlen(line) != len) {
        snprintf(msg, sizeof msg, "the line contains a NUL byte");
    } else if (!cJSON_IsObject(obj)) {
        snprintf(msg, sizeof msg, "not a JSON object");
    } else if (!text == !ids) {
        snprintf(msg, sizeof msg, "give exactly one of \"text\" (a string) or \"ids\" (a list of ids)");
    } else if (text) {
        lsc_error err;
        if (!cJSON_IsString(text))
            snprintf(msg, sizeof msg, "\"text\" must be a string");
        else if (cli_json_has_nul_escape(line))
            snprintf(msg, sizeof msg, "\\u0000 (U+0000) is not supported in JSON input");
        else if (lsc_tokenizer_encode(tok, text->valuestring, strlen(text->valuestring), flags,
                                      &t->ids, &t->n, &err))
            snprintf(msg, sizeof msg, "%s", err.message);
    } else if (!cJSON_IsArray(ids)) {
        snprintf(msg, sizeof msg, "\"ids\" must be a list of token ids");
    } else {
        size_t n = (size_t)cJSON_GetArraySize(ids), i = 0;
        t->ids = malloc((n ? n : 1) * sizeof *t->ids);
        const cJSON *e;
        cJSON_ArrayForEach(e, ids) {
            double v = cJSON_IsNumber(e) ? e->valuedouble : 0.5;
            if (v != floor(v) || v < INT32_MIN || v > INT32_MAX) {
                snprintf(msg, sizeof msg, "\"ids\"[%zu] is not a whole number", i);
                break;
            }
            if (t->ids) t->ids[i] = (int32_t)v;
            i++;
        }
        t->n = n;
        if (!t->ids) snprintf(msg, sizeof msg, "out of memory");
    }
    cJSON_Delete(obj);
    if (!msg[0] && !(t->lps = malloc((t->n ? t->n : 1) * sizeof *t->lps)))
        snprintf(msg, sizeof msg, "out of memory");
    if (msg[0]) t->error = strdup(msg);
    t->seq = (lsc_score_seq){.ids = t->ids, .n = t->n, .logprobs = t->lps};
}

/* Prints the result line of one input: its scores, or its error. Returns
 * true when it was scored. */
static bool print_jsonl_result(const lsc_model *model, jsonl_text *t, int L, int S) {
    const char *error = t->error ? t->error : t->seq.err.status ? t->seq.err.message : NULL;
    lsc_error werr;
    if (!error && !isfinite(t->seq.result.nll)) /* NaN/Inf weights: name the tensor */
        error = lsc_model_check_finite(model, &werr) ? werr.message
                                                     : "the log-likelihood is not finite";
    cJSON *o;
    if (error) {
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "line", (double)t->line);
        cJSON_AddStringToObject(o, "error", error);
    } else {
        o = score_json(t->ids, t->n, t->lps, &t->seq.result, L, S);
    }
    return cli_print_json(o) == 0 && !error;
}

/* Texts read ahead and scored together (slots are refilled within a group,
 * so only its tail runs with fewer than `batch` texts in flight). */
#define JSONL_GROUP 512

/* score --jsonl: reads the lines in groups, scores each group with `batch`
 * contexts (lsc_score_batch) sized for its longest window, prints the
 * results in input order. 0 when every line was scored. */
static int score_jsonl(const cli_common *c, int max_length, int stride, size_t batch) {
    lsc_model *model = cli_load_model(c);
    lsc_tokenizer *tok = model ? cli_load_tokenizer(c) : NULL;
    jsonl_text *group = calloc(JSONL_GROUP, sizeof *group);
    lsc_ctx **ctxs = calloc(batch, sizeof *ctxs);
    lsc_score_seq *seqs = calloc(JSONL_GROUP, sizeof *seqs);
    int rc = 0, have_ctx = 0; /* the contexts' n_ctx */
    int model_ctx = model ? lsc_model_n_ctx(model) : 0;
    int flags = c->no_special ? LSC_ENCODE_NO_SPECIAL : 0;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    bool eof = false;
    if (!tok || !group || !ctxs || !seqs) {
        if (tok) cli_error("out of memory");
        rc = 1;
        goto out;
    }
    if (max_length > model_ctx) {
        rc = cli_error("score: a window of %d tokens is more than the context of %d", max_length,
                       model_ctx);
        goto out;
    }
    while (!eof) {
        size_t n = 0;
        int need = max_length ? max_length : stride > 2 ? stride : 2;
        while (n < JSONL_GROUP) {
            ssize_t got = getline(&line, &cap, stdin);
            if (got <= 0) {
                eof = true;
                break;
            }
            lineno++;
            if (got == 1 && line[0] == '\n') continue; /* blank lines are skipped */
            read_jsonl_text(line, (size_t)got, lineno, tok, flags, &group[n]);
            if (!group[n].error && group[n].n > (size_t)need) need = (int)group[n].n;
            n++;
        }
        if (need > model_ctx) need = model_ctx;
        /* contexts sized by the longest window of the group (the KV caches
         * of `batch` contexts at the model's n_ctx would mostly sit idle);
         * without --max-length a text that fits is one window either way */
        if (n && need > have_ctx) {
            for (size_t k = 0; k < batch; k++) {
                lsc_ctx_free(ctxs[k]);
                ctxs[k] = NULL;
            }
            lsc_ctx_params cp = lsc_ctx_default_params();
            cp.n_ctx = need;
            lsc_error err;
            for (size_t k = 0; k < batch; k++) {
                cp.n_threads = k ? 1 : c->threads; /* the first context's pool runs the steps */
                if (lsc_ctx_new(model, cp, &ctxs[k], &err)) {
                    rc = cli_error("%s", err.message);
                    goto out;
                }
            }
            have_ctx = need;
        }
        size_t m = 0; /* the group's scorable texts, in order */
        for (size_t i = 0; i < n; i++)
            if (!group[i].error) seqs[m++] = group[i].seq;
        lsc_score_params sp = lsc_score_default_params();
        sp.max_length = max_length; /* 0: the contexts' n_ctx */
        sp.stride = stride;
        lsc_error err;
        lsc_status st = m ? lsc_score_batch(ctxs, batch, seqs, m, sp, &err) : LSC_OK;
        bool one_failed = false;
        for (size_t j = 0; j < m; j++) one_failed = one_failed || seqs[j].err.status;
        if (st && !one_failed) { /* the call itself: a bad --max-length or --stride */
            rc = cli_error("%s", err.message);
            goto out;
        }
        int L = max_length ? max_length : model_ctx, S = stride ? stride : L / 2;
        for (size_t i = 0, j = 0; i < n; i++) {
            if (!group[i].error) group[i].seq = seqs[j++];
            if (!print_jsonl_result(model, &group[i], L, S)) rc = 1;
            free(group[i].ids);
            free(group[i].lps);
            free(group[i].error);
            memset(&group[i], 0, sizeof group[i]);
        }
    }
    if (ferror(stdin)) rc = cli_error("cannot read stdin");
    if (fflush(stdout) != 0) rc = cli_error("cannot write stdout");
out:
    for (size_t i = 0; group && i < JSONL_GROUP; i++) {
        free(group[i].ids);
        free(group[i].lps);
        free(group[i].error);
    }
    for (size_t k = 0; ctxs && k < batch; k++) lsc_ctx_free(ctxs[k]);
    free(ctxs);
    free(seqs);
    free(group);
    free(line);
    lsc_tokenizer_free(tok);
    lsc_model_free(model);
    return rc;
}

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_score, argc, argv);
    const char *file = NULL;
    long stride = 0, max_length = 0, batch = 0;
    bool summary = false, jsonl = false;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_FILE) file = a.val;
        else if (opt == OPT_STRIDE) {
            if (!cli_parse_int(a.val, 1, INT_MAX, &stride))
                return cli_usage_error("--stride: '%s' is not a whole number >= 1", a.val);
        } else if (opt == OPT_MAX_LENGTH) {
            if (!cli_parse_int(a.val, 2, INT_MAX, &max_length))
                return cli_usage_error("--max-length: '%s' is not a whole number >= 2", a.val);
        } else if (opt == OPT_BATCH) {
            if (!cli_parse_int(a.val, 1, 1024, &batch))
                return cli_usage_error("--batch: '%s' is not a whole number from 1 to 1024", a.val);
        } else if (opt == OPT_SUMMARY) summary = true;
        else if (opt == OPT_JSONL) jsonl = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (file && (c.text || c.ids)) return cli_usage_error("score: give exactly one of --text, --ids or --file");
    if (jsonl && (file || c.text || c.ids || summary || c.json || c.n_hooks || c.n_cache))
        return cli_usage_error("score: --jsonl reads stdin and writes JSON lines; it takes no "
                               "--text, --ids, --file, --summary, --json, --hook or --cache");
    if (batch && !jsonl) return cli_usage_error("score: --batch goes with --jsonl");
    if (jsonl) return score_jsonl(&c, (int)max_length, (int)stride, batch ? (size_t)batch : 16);

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
        rc = cli_print_json(score_json(lm.ids, lm.n, lps, &res, L, S));
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
