/* api_explore.c - the explorer page's JSON endpoints (docs/explorer.md):
 *
 *   GET  /v1/explore/model      sizes and the hook point names
 *   GET  /v1/explore/vocab      every token's text, decode([id])
 *   POST /v1/explore/analyze    per token: id, text, logprob (as `score --json`),
 *                               rank (as `rank --json`), the entropy and top-k of
 *                               the prediction after it; NLL and perplexity
 *   POST /v1/explore/logits     one position's whole logits row (base64 float32)
 *   POST /v1/explore/lens       the logit lens over every layer and position
 *   POST /v1/explore/attention  one layer's hook_pattern [H, T, T] (base64 float32)
 *   POST /v1/explore/generate   new tokens, greedy or sampled with a seed
 *
 * Every POST takes the text as "text" (or "ids") and interventions as "hooks"
 * (the CLI's --hook specs, parsed and checked by tools/common's
 * cli_hooks_attach) plus "direction" (an added steering vector made from two
 * prompts). The requests run one at a time on one context of their own: the
 * completions scheduler keeps its contexts, and two cores gain nothing from
 * two analyses at once. */
#include "cli.h"
#include "hookspec.h"
#include "npy.h"
#include "server.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TOP_K 100
#define MAX_NEW_TOKENS 64
#define MAX_ATTN_TOKENS 512 /* [H, T, T] floats: 12 MiB at 512 for 12 heads */
#define LENS_CHUNK 32       /* rows unembedded at a time: [32, n_vocab] scratch */
/* Positions one lens request reads: each costs n_layer + 1 unembeddings (about
 * 2 CPU-seconds per 32 positions on the 124M shape) and ~1.5 KB of JSON each, so a
 * request stays bounded; the page asks for a longer text a window at a time. */
#define MAX_LENS_POS 32

static pthread_mutex_t explore_mu = PTHREAD_MUTEX_INITIALIZER;
static lsc_ctx *explore_ctx; /* made on first use, kept for the server's life */
/* The ids whose logits explore_ctx holds from a run without hooks (the page
 * asks for the analysis, then a row of the same text): n == 0 when none. */
static struct {
    int32_t *ids;
    size_t n;
} last_run;

static void forget_last_run(void) {
    free(last_run.ids);
    last_run.ids = NULL;
    last_run.n = 0;
}

/* One request's input and the hooks it put on the context. */
typedef struct explore {
    server *srv;
    cJSON *root;
    int32_t *ids;
    size_t n;
    cli_hooks *hooks;
    char dir[64]; /* temporary folder of a direction's .npy, "" when none */
    char msg[1024];
} explore;

static void explore_done(explore *e) {
    cli_hooks_free(e->hooks);
    e->hooks = NULL;
    if (e->dir[0]) {
        char path[128];
        snprintf(path, sizeof path, "%s/direction.npy", e->dir);
        unlink(path);
        rmdir(e->dir);
    }
    cJSON_Delete(e->root);
    free(e->ids);
}

static const cJSON *field(const explore *e, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(e->root, name);
}

/* An optional integer field in [lo, hi]; false (with e->msg) when malformed. */
static bool int_field(explore *e, const char *name, long lo, long hi, long *out) {
    const cJSON *v = field(e, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be a whole number from %ld to %ld", name, lo, hi);
        return false;
    }
    *out = (long)v->valuedouble;
    return true;
}

static bool num_field(explore *e, const char *name, double *out) {
    const cJSON *v = field(e, name);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        snprintf(e->msg, sizeof e->msg, "'%s' must be a number", name);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

/* Encodes a prompt under the tokenizer's lock into a malloc'd array. */
static bool encode(explore *e, const char *text, int32_t **ids, size_t *n) {
    int32_t *t;
    lsc_error err;
    if (server_encode(e->srv, text, strlen(text), &t, n, &err) != LSC_OK) {
        snprintf(e->msg, sizeof e->msg, "%s", err.message);
        return false;
    }
    *ids = malloc((*n ? *n : 1) * sizeof **ids);
    if (*ids) memcpy(*ids, t, *n * sizeof **ids);
    lsc_free(t);
    if (!*ids) snprintf(e->msg, sizeof e->msg, "out of memory");
    return *ids != NULL;
}

/* The request's "text" or "ids": not empty, in the vocabulary, within the
 * context. */
static bool read_input(explore *e) {
    const cJSON *text = field(e, "text"), *ids = field(e, "ids");
    if (!text == !ids) {
        snprintf(e->msg, sizeof e->msg, "give exactly one of 'text' (a string) or 'ids'");
        return false;
    }
    if (text) {
        if (!cJSON_IsString(text)) {
            snprintf(e->msg, sizeof e->msg, "'text' must be a string");
            return false;
        }
        if (!encode(e, text->valuestring, &e->ids, &e->n)) return false;
    } else {
        if (!cJSON_IsArray(ids)) {
            snprintf(e->msg, sizeof e->msg, "'ids' must be a list of token ids");
            return false;
        }
        e->n = (size_t)cJSON_GetArraySize(ids);
        if (!(e->ids = malloc((e->n ? e->n : 1) * sizeof *e->ids))) {
            snprintf(e->msg, sizeof e->msg, "out of memory");
            return false;
        }
        size_t i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) {
            if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < 0 ||
                x->valuedouble >= e->srv->n_vocab) {
                snprintf(e->msg, sizeof e->msg, "ids[%zu] is not a token id in 0..%d", i,
                         e->srv->n_vocab - 1);
                return false;
            }
            e->ids[i++] = (int32_t)x->valuedouble;
        }
    }
    if (e->n == 0) {
        snprintf(e->msg, sizeof e->msg, "the text is empty: there is no token to analyse");
        return false;
    }
    if (e->n > (size_t)e->srv->n_ctx) {
        snprintf(e->msg, sizeof e->msg,
                 "the text is %zu tokens, more than the model's context of %d", e->n,
                 e->srv->n_ctx);
        return false;
    }
    return true;
}

/* Copies the last row of the activation into the float buffer it points at. */
static int grab_last_row(lsc_activation *a, void *user_data) {
    float *out = user_data;
    size_t row = 1;
    for (int d = 1; d < a->n_dims; d++) row *= (size_t)a->shape[d];
    memcpy(out, a->data + (size_t)(a->n_pos - 1) * row, row * sizeof *out);
    return 0;
}

/* The activation at `point` for the last token of `prompt` (no hooks but
 * ours on the context). */
static bool last_row(explore *e, const char *point, const char *prompt, float *out) {
    int32_t *ids;
    size_t n;
    if (!encode(e, prompt, &ids, &n)) return false;
    lsc_error err;
    int handle = -1;
    bool ok = n > 0 && n <= (size_t)e->srv->n_ctx;
    if (!ok)
        snprintf(e->msg, sizeof e->msg, "a direction's prompt must be 1 to %d tokens",
                 e->srv->n_ctx);
    if (ok && lsc_ctx_add_hook(explore_ctx, point, grab_last_row, out, &handle, &err) != LSC_OK) {
        snprintf(e->msg, sizeof e->msg, "direction: %s", err.message);
        ok = false;
    }
    forget_last_run();
    lsc_ctx_reset(explore_ctx);
    if (ok && lsc_ctx_forward(explore_ctx, ids, n, LSC_LOGITS_LAST, &err) != LSC_OK) {
        snprintf(e->msg, sizeof e->msg, "direction: %s", err.message);
        ok = false;
    }
    if (handle >= 0) lsc_ctx_remove_hook(explore_ctx, handle);
    free(ids);
    return ok;
}

/* "direction": {"point", "plus", "minus", "strength", "positions"}: the
 * activation of `plus` minus that of `minus` at `point` (last token each),
 * saved as a .npy and added as the CLI's add:FILE*strength. Returns the
 * spec in spec[size], "" when the request has no direction. */
static bool direction_spec(explore *e, char *spec, size_t size) {
    spec[0] = '\0';
    const cJSON *d = field(e, "direction");
    if (!d || cJSON_IsNull(d)) return true;
    const cJSON *point = cJSON_GetObjectItemCaseSensitive(d, "point"),
                *plus = cJSON_GetObjectItemCaseSensitive(d, "plus"),
                *minus = cJSON_GetObjectItemCaseSensitive(d, "minus"),
                *strength = cJSON_GetObjectItemCaseSensitive(d, "strength"),
                *pos = cJSON_GetObjectItemCaseSensitive(d, "positions");
    if (!cJSON_IsString(point) || !cJSON_IsString(plus) || !cJSON_IsString(minus) ||
        (strength && !cJSON_IsNumber(strength)) || (pos && !cJSON_IsString(pos))) {
        snprintf(e->msg, sizeof e->msg,
                 "'direction' must be {\"point\": NAME, \"plus\": TEXT, \"minus\": TEXT, "
                 "\"strength\": NUMBER, \"positions\": \"-1\" (optional)}");
        return false;
    }
    /* the positions go into the spec's text: only what POSITIONS allows */
    if (pos && (!pos->valuestring[0] ||
                strspn(pos->valuestring, "0123456789-:,") != strlen(pos->valuestring))) {
        snprintf(e->msg, sizeof e->msg,
                 "direction: 'positions' must be like -1, 3, 0:5 or 1,4 (digits, '-', ':', ',')");
        return false;
    }
    const lsc_model *m = e->srv->model;
    int idx = lsc_model_hook_point_index(m, point->valuestring);
    int64_t shape[4];
    int nd = idx >= 0 ? lsc_model_hook_point_shape(m, idx, 1, shape) : 0;
    if (idx < 0 || strstr(point->valuestring, "hook_attn_scores") ||
        strstr(point->valuestring, "hook_pattern") || !strcmp(point->valuestring, "hook_logits") ||
        !strcmp(point->valuestring, "lm_head")) {
        snprintf(e->msg, sizeof e->msg,
                 "direction: '%.200s' is not a hook point with one vector per position "
                 "(e.g. blocks.6.hook_resid_post)",
                 point->valuestring);
        return false;
    }
    size_t row = 1;
    for (int k = 1; k < nd; k++) row *= (size_t)shape[k];
    float *a = malloc(row * sizeof *a), *b = malloc(row * sizeof *b);
    bool ok = a && b && last_row(e, point->valuestring, plus->valuestring, a) &&
              last_row(e, point->valuestring, minus->valuestring, b);
    if (ok) {
        for (size_t k = 0; k < row; k++) a[k] -= b[k];
        strcpy(e->dir, "/tmp/logitscope-explore-XXXXXX");
        char path[128];
        int64_t vshape[1] = {(int64_t)row};
        if (!mkdtemp(e->dir)) {
            e->dir[0] = '\0';
            snprintf(e->msg, sizeof e->msg, "direction: cannot make a temporary folder");
            ok = false;
        } else {
            snprintf(path, sizeof path, "%s/direction.npy", e->dir);
            ok = npy_save_f32(path, a, vshape, 1);
            if (!ok) snprintf(e->msg, sizeof e->msg, "direction: cannot write %s", path);
            snprintf(spec, size, "%s%s%s:add:%s*%.17g", point->valuestring, pos ? "@" : "",
                     pos ? pos->valuestring : "", path, strength ? strength->valuedouble : 1.0);
        }
    } else if (!a || !b) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
    }
    free(a);
    free(b);
    return ok;
}

/* Registers the request's "hooks" (--hook specs) and "direction" on the
 * context through the CLI's parser and checks. add:/patch: name files, so a
 * client may not give them: a direction is built here instead. */
static bool attach_hooks(explore *e) {
    const cJSON *h = field(e, "hooks");
    cli_common c = {0};
    static __thread char dspec[HOOKSPEC_MAX_LEN];
    if (h && !cJSON_IsNull(h)) {
        if (!cJSON_IsArray(h)) {
            snprintf(e->msg, sizeof e->msg, "'hooks' must be a list of --hook specs");
            return false;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, h) {
            if (!cJSON_IsString(x) || c.n_hooks >= CLI_MAX_HOOKS - 1) {
                snprintf(e->msg, sizeof e->msg, "'hooks' must be at most %d strings",
                         CLI_MAX_HOOKS - 1);
                return false;
            }
            static __thread hookspec hs;
            char err[512];
            if (!hookspec_parse(x->valuestring, &hs, err, sizeof err)) {
                snprintf(e->msg, sizeof e->msg, "--hook '%.200s': %s", x->valuestring, err);
                return false;
            }
            if (hs.op == HOOK_OP_ADD || hs.op == HOOK_OP_PATCH) {
                snprintf(e->msg, sizeof e->msg,
                         "--hook '%.200s': add:/patch: read files and are not taken from clients; "
                         "give a 'direction' instead",
                         x->valuestring);
                return false;
            }
            c.hooks[c.n_hooks++] = x->valuestring;
        }
    }
    if (!direction_spec(e, dspec, sizeof dspec)) return false;
    if (dspec[0]) c.hooks[c.n_hooks++] = dspec;
    if (!c.n_hooks) return true;
    cli_error_capture(e->msg, sizeof e->msg);
    pthread_mutex_lock(&e->srv->tok_mu); /* set:TOKEN encodes with the shared tokenizer */
    bool ok = cli_hooks_attach(&c, explore_ctx, e->srv->tok, &e->hooks);
    pthread_mutex_unlock(&e->srv->tok_mu);
    cli_error_capture(NULL, 0);
    return ok;
}

/* After a run: a hook whose positions selected nothing is an error, as in
 * the CLI. */
static bool finish_hooks(explore *e) {
    cli_error_capture(e->msg, sizeof e->msg);
    bool ok = cli_hooks_finish(e->hooks);
    cli_error_capture(NULL, 0);
    return ok;
}

/* Parses the body, takes the explorer's lock, makes the context, reads the
 * input and attaches the hooks. On failure replies (400/500) and returns
 * false with the lock released. */
static bool explore_begin(const http_request *req, http_reply *rep, explore *e) {
    memset(e, 0, sizeof *e);
    e->srv = req->srv;
    e->root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!cJSON_IsObject(e->root)) {
        cJSON_Delete(e->root);
        reply_error(rep, 400, NULL, "the body must be a JSON object");
        return false;
    }
    pthread_mutex_lock(&explore_mu);
    lsc_error err;
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = e->srv->n_threads;
    if (!explore_ctx && lsc_ctx_new(e->srv->model, cp, &explore_ctx, &err) != LSC_OK) {
        explore_done(e);
        pthread_mutex_unlock(&explore_mu);
        reply_error(rep, 500, NULL, "%s", err.message);
        return false;
    }
    if (!read_input(e) || !attach_hooks(e)) {
        reply_error(rep, 400, NULL, "%s", e->msg);
        explore_done(e); /* removes hooks from the context: still under the lock */
        pthread_mutex_unlock(&explore_mu);
        return false;
    }
    return true;
}

static void explore_end(explore *e) {
    explore_done(e);
    pthread_mutex_unlock(&explore_mu);
}

/* Fails the request (400) with the lock released. */
static void explore_fail(explore *e, http_reply *rep, int status, const char *msg) {
    reply_error(rep, status, NULL, "%s", msg);
    explore_end(e);
}

/* A float array as base64 of its little-endian bytes (x86 and aarch64 are
 * little-endian), a new string. */
static char *base64_f32(const float *x, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = (const unsigned char *)x;
    size_t len = n * 4, out_len = (len + 2) / 3 * 4;
    char *s = malloc(out_len + 1), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)b[i] << 16 | (i + 1 < len ? (unsigned)b[i + 1] << 8 : 0) |
                     (i + 2 < len ? b[i + 2] : 0);
        *p++ = tab[v >> 18 & 63];
        *p++ = tab[v >> 12 & 63];
        *p++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
        *p++ = i + 2 < len ? tab[v & 63] : '=';
    }
    *p = '\0';
    return s;
}

static void add_token_text(cJSON *o, const char *key, const lsc_tokenizer *tok, int32_t id) {
    char *s = cli_token_text(tok, id, NULL);
    cJSON_AddStringToObject(o, key, s ? s : "");
    lsc_free(s);
}

/* Runs the whole input with a logits row per position. With `reuse`, a
 * request without hooks whose ids are those of the last run takes that
 * run's logits (still in the context) instead of running again; callers
 * that register hooks of their own (the lens, attention) pass false, and
 * their runs are not kept (the lens unembeds on the context afterwards). */
static bool forward_all(explore *e, const float **rows, bool reuse) {
    lsc_error err;
    if (reuse && !e->hooks && last_run.n == e->n &&
        !memcmp(last_run.ids, e->ids, e->n * sizeof *e->ids)) {
        *rows = lsc_ctx_logits(explore_ctx, NULL);
        return true;
    }
    forget_last_run();
    lsc_ctx_reset(explore_ctx);
    if (lsc_ctx_forward(explore_ctx, e->ids, e->n, LSC_LOGITS_ALL, &err) != LSC_OK) {
        snprintf(e->msg, sizeof e->msg, "%s", err.message);
        return false;
    }
    *rows = lsc_ctx_logits(explore_ctx, NULL);
    if (reuse && !e->hooks && (last_run.ids = malloc(e->n * sizeof *e->ids))) {
        memcpy(last_run.ids, e->ids, e->n * sizeof *e->ids);
        last_run.n = e->n;
    }
    return finish_hooks(e);
}

void api_explore_analyze(const http_request *req, http_reply *rep) {
    explore e;
    if (!explore_begin(req, rep, &e)) return;
    server *srv = e.srv;
    long k = 10;
    const float *rows;
    if (!int_field(&e, "top_k", 0, MAX_TOP_K, &k) || !forward_all(&e, &rows, true))
        return explore_fail(&e, rep, 400, e.msg);
    size_t V = (size_t)srv->n_vocab;
    int32_t *top = malloc((size_t)(k ? k : 1) * sizeof *top);
    float *lp = malloc(V * sizeof *lp); /* the row's log-softmax, as `next --json` gives it */
    cJSON *o = cJSON_CreateObject(), *toks = cJSON_AddArrayToObject(o, "tokens");
    double nll = 0, prev_lse = 0;
    for (size_t t = 0; top && lp && t < e.n; t++) {
        const float *row = rows + t * V;
        double lse = lsc_logsumexp(row, V), ent = 0;
        if (!isfinite(lse)) {
            free(top);
            free(lp);
            cJSON_Delete(o);
            return explore_fail(&e, rep, 500, "the logits are not finite (NaN or Inf in the "
                                              "weights?)");
        }
        lsc_log_softmax(row, V, lp);
        for (size_t j = 0; j < V; j++)
            if (lp[j] > -INFINITY) ent -= exp((double)lp[j]) * (double)lp[j];
        cJSON *tk = cJSON_CreateObject();
        cJSON_AddItemToArray(toks, tk);
        cJSON_AddNumberToObject(tk, "pos", (double)t);
        cJSON_AddNumberToObject(tk, "id", e.ids[t]);
        add_token_text(tk, "text", srv->tok, e.ids[t]);
        if (t == 0) {
            cJSON_AddNullToObject(tk, "logprob");
            cJSON_AddNullToObject(tk, "rank");
        } else {
            /* exactly lsc_score's and `rank`'s arithmetic on the previous row */
            const float *prev = row - V;
            double dlp = (double)prev[e.ids[t]] - prev_lse;
            float tlp = (float)dlp;
            size_t rank = 0;
            lsc_rank(prev, V, (size_t)e.ids[t], &rank, NULL);
            nll -= dlp;
            cJSON_AddNumberToObject(tk, "logprob", tlp);
            cJSON_AddNumberToObject(tk, "rank", (double)rank);
        }
        /* the prediction after this token */
        cJSON *next = cJSON_AddObjectToObject(tk, "next");
        cJSON_AddNumberToObject(next, "entropy", ent);
        cJSON *tops = cJSON_AddArrayToObject(next, "top");
        if (k && lsc_top_k(row, V, (size_t)k, top, NULL) == LSC_OK)
            for (long i = 0; i < k; i++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "id", top[i]);
                add_token_text(c, "text", srv->tok, top[i]);
                cJSON_AddNumberToObject(c, "logit", row[top[i]]);
                cJSON_AddNumberToObject(c, "logprob", lp[top[i]]);
                cJSON_AddItemToArray(tops, c);
            }
        prev_lse = lse;
    }
    if (!top || !lp) {
        free(top);
        free(lp);
        cJSON_Delete(o);
        return explore_fail(&e, rep, 500, "out of memory");
    }
    free(top);
    free(lp);
    cJSON_AddNumberToObject(o, "n_tokens", (double)e.n);
    if (e.n > 1) {
        cJSON_AddNumberToObject(o, "total_nll", nll);
        cJSON_AddNumberToObject(o, "nll", nll / (double)(e.n - 1));
        cJSON_AddNumberToObject(o, "perplexity", exp(nll / (double)(e.n - 1)));
    }
    explore_end(&e);
    reply_json(rep, 200, o);
}

void api_explore_logits(const http_request *req, http_reply *rep) {
    explore e;
    if (!explore_begin(req, rep, &e)) return;
    long pos = (long)e.n - 1;
    const float *rows;
    if (!int_field(&e, "pos", -(long)e.n, (long)e.n - 1, &pos))
        return explore_fail(&e, rep, 400, e.msg);
    if (pos < 0) pos += (long)e.n;
    if (!forward_all(&e, &rows, true)) return explore_fail(&e, rep, 400, e.msg);
    size_t V = (size_t)e.srv->n_vocab;
    char *b64 = base64_f32(rows + (size_t)pos * V, V);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "pos", (double)pos);
    cJSON_AddNumberToObject(o, "n_vocab", (double)V);
    cJSON_AddStringToObject(o, "logits_f32", b64 ? b64 : "");
    free(b64);
    explore_end(&e);
    reply_json(rep, 200, o);
}

/* The residual streams of one run: [n_layer + 1][n, E]. */
typedef struct lens_capture {
    float *resid;
    size_t n, E;
} lens_capture;

static int grab_resid(lsc_activation *a, void *user_data) {
    lens_capture *c = user_data;
    /* blocks.0.hook_resid_pre is stream 0, blocks.i.hook_resid_post stream i + 1 */
    size_t s = strstr(a->name, "resid_pre") ? 0 : (size_t)a->layer + 1;
    memcpy(c->resid + (s * c->n + (size_t)a->pos0) * c->E, a->data,
           (size_t)a->n_pos * c->E * sizeof(float));
    return 0;
}

void api_explore_lens(const http_request *req, http_reply *rep) {
    explore e;
    if (!explore_begin(req, rep, &e)) return;
    const lsc_model *m = e.srv->model;
    size_t L = (size_t)lsc_model_n_layer(m) + 1, E = (size_t)lsc_model_n_embd(m),
           V = (size_t)e.srv->n_vocab, n = e.n;
    /* the positions [pos0, pos0 + n_pos) read through the lens: each costs
     * n_layer + 1 unembeddings, more than the forward itself */
    long pos0 = 0, n_pos = -1;
    if (!int_field(&e, "pos0", 0, (long)n - 1, &pos0) ||
        !int_field(&e, "n_pos", 1, MAX_LENS_POS, &n_pos))
        return explore_fail(&e, rep, 400, e.msg);
    if (n_pos < 0) { /* default: the rest of the text, when it is within the limit */
        n_pos = (long)n - pos0;
        if (n_pos > MAX_LENS_POS) {
            snprintf(e.msg, sizeof e.msg,
                     "the lens reads at most %d positions per request and the text has %zu "
                     "tokens from position %ld: give 'pos0' and 'n_pos' for a window",
                     MAX_LENS_POS, n, pos0);
            return explore_fail(&e, rep, 400, e.msg);
        }
    }
    if ((size_t)(pos0 + n_pos) > n) n_pos = (long)n - pos0;
    size_t p0 = (size_t)pos0, np = (size_t)n_pos;
    lens_capture cap = {.resid = malloc(L * n * E * sizeof(float)), .n = n, .E = E};
    float *out = malloc(LENS_CHUNK * V * sizeof *out), *final_lp = malloc(np * V * sizeof *final_lp);
    int h1 = -1, h2 = -1;
    lsc_error err;
    const float *rows;
    bool ok = cap.resid && out && final_lp &&
              lsc_ctx_add_hook(explore_ctx, "blocks.0.hook_resid_pre", grab_resid, &cap, &h1,
                               &err) == LSC_OK &&
              lsc_ctx_add_hook(explore_ctx, "blocks.*.hook_resid_post", grab_resid, &cap, &h2,
                               &err) == LSC_OK;
    if (!ok) snprintf(e.msg, sizeof e.msg, "%s", cap.resid && out && final_lp ? err.message : "out of memory");
    ok = ok && forward_all(&e, &rows, false);
    if (h1 >= 0) lsc_ctx_remove_hook(explore_ctx, h1);
    if (h2 >= 0) lsc_ctx_remove_hook(explore_ctx, h2);
    if (ok)
        for (size_t t = 0; t < np; t++) lsc_log_softmax(rows + (p0 + t) * V, V, final_lp + t * V);
    cJSON *o = cJSON_CreateObject(), *layers = cJSON_AddArrayToObject(o, "layers");
    for (size_t l = 0; ok && l < L; l++) {
        cJSON *ly = cJSON_CreateObject();
        cJSON_AddItemToArray(layers, ly);
        cJSON_AddStringToObject(ly, "stream", l == 0 ? "blocks.0.hook_resid_pre" : "");
        if (l > 0) {
            char nm[64];
            snprintf(nm, sizeof nm, "blocks.%zu.hook_resid_post", l - 1);
            cJSON_SetValuestring(cJSON_GetObjectItem(ly, "stream"), nm);
        }
        cJSON *top_id = cJSON_AddArrayToObject(ly, "top_id"),
              *top_prob = cJSON_AddArrayToObject(ly, "top_prob"),
              *next_prob = cJSON_AddArrayToObject(ly, "next_prob"),
              *next_rank = cJSON_AddArrayToObject(ly, "next_rank"),
              *kl = cJSON_AddArrayToObject(ly, "kl");
        for (size_t t0 = p0; ok && t0 < p0 + np; t0 += LENS_CHUNK) {
            size_t r = p0 + np - t0 < LENS_CHUNK ? p0 + np - t0 : LENS_CHUNK;
            if (lsc_ctx_unembed(explore_ctx, cap.resid + (l * n + t0) * E, r, out, &err) != LSC_OK) {
                snprintf(e.msg, sizeof e.msg, "%s", err.message);
                ok = false;
                break;
            }
            for (size_t i = 0; i < r; i++) {
                size_t t = t0 + i;
                float *row = out + i * V;
                size_t a = lsc_argmax(row, V);
                double lse = lsc_logsumexp(row, V), d = 0;
                const float *f = final_lp + (t - p0) * V;
                for (size_t j = 0; j < V; j++)
                    if (f[j] > -INFINITY) d += exp((double)f[j]) * ((double)f[j] - ((double)row[j] - lse));
                cJSON_AddItemToArray(top_id, cJSON_CreateNumber((double)a));
                cJSON_AddItemToArray(top_prob, cJSON_CreateNumber(exp((double)row[a] - lse)));
                cJSON_AddItemToArray(kl, cJSON_CreateNumber(d > 0 ? d : 0));
                if (t + 1 < n) {
                    size_t rank = 0;
                    lsc_rank(row, V, (size_t)e.ids[t + 1], &rank, NULL);
                    cJSON_AddItemToArray(next_prob,
                                         cJSON_CreateNumber(exp((double)row[e.ids[t + 1]] - lse)));
                    cJSON_AddItemToArray(next_rank, cJSON_CreateNumber((double)rank));
                } else {
                    cJSON_AddItemToArray(next_prob, cJSON_CreateNull());
                    cJSON_AddItemToArray(next_rank, cJSON_CreateNull());
                }
            }
        }
    }
    free(cap.resid);
    free(out);
    free(final_lp);
    if (!ok) {
        cJSON_Delete(o);
        return explore_fail(&e, rep, 400, e.msg);
    }
    cJSON_AddNumberToObject(o, "n_layers", (double)L);
    cJSON_AddNumberToObject(o, "n_tokens", (double)n);
    cJSON_AddNumberToObject(o, "pos0", (double)p0);
    cJSON_AddNumberToObject(o, "n_pos", (double)np);
    explore_end(&e);
    reply_json(rep, 200, o);
}

/* The pattern of one layer: [H, T, T] copied as it fires. */
typedef struct attn_capture {
    float *pattern;
    size_t n;
} attn_capture;

static int grab_pattern(lsc_activation *a, void *user_data) {
    attn_capture *c = user_data;
    memcpy(c->pattern, a->data, (size_t)a->shape[0] * c->n * c->n * sizeof(float));
    return 0;
}

void api_explore_attention(const http_request *req, http_reply *rep) {
    explore e;
    if (!explore_begin(req, rep, &e)) return;
    const lsc_model *m = e.srv->model;
    long layer = 0;
    size_t H = (size_t)lsc_model_n_head(m), n = e.n;
    if (!int_field(&e, "layer", 0, lsc_model_n_layer(m) - 1, &layer))
        return explore_fail(&e, rep, 400, e.msg);
    if (n > MAX_ATTN_TOKENS) {
        snprintf(e.msg, sizeof e.msg, "attention patterns are served for texts of at most %d "
                 "tokens (this one has %zu)", MAX_ATTN_TOKENS, n);
        return explore_fail(&e, rep, 400, e.msg);
    }
    attn_capture cap = {.pattern = malloc(H * n * n * sizeof(float)), .n = n};
    char point[64];
    snprintf(point, sizeof point, "blocks.%ld.attn.hook_pattern", layer);
    int h = -1;
    lsc_error err;
    const float *rows;
    bool ok = cap.pattern &&
              lsc_ctx_add_hook(explore_ctx, point, grab_pattern, &cap, &h, &err) == LSC_OK;
    if (!ok) snprintf(e.msg, sizeof e.msg, "%s", cap.pattern ? err.message : "out of memory");
    ok = ok && forward_all(&e, &rows, false);
    if (h >= 0) lsc_ctx_remove_hook(explore_ctx, h);
    char *b64 = ok ? base64_f32(cap.pattern, H * n * n) : NULL;
    free(cap.pattern);
    if (!ok) return explore_fail(&e, rep, 400, e.msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "layer", (double)layer);
    cJSON_AddNumberToObject(o, "n_head", (double)H);
    cJSON_AddNumberToObject(o, "n_tokens", (double)n);
    cJSON_AddStringToObject(o, "pattern_f32", b64 ? b64 : "");
    free(b64);
    explore_end(&e);
    reply_json(rep, 200, o);
}

void api_explore_generate(const http_request *req, http_reply *rep) {
    explore e;
    if (!explore_begin(req, rep, &e)) return;
    server *srv = e.srv;
    long max_new = 1, top_k = 0, seed = 0;
    double temperature = 1.0, top_p = 1.0;
    const cJSON *sample = field(&e, "do_sample");
    if (!int_field(&e, "max_new_tokens", 1, MAX_NEW_TOKENS, &max_new) ||
        !int_field(&e, "top_k", 0, srv->n_vocab, &top_k) ||
        !int_field(&e, "seed", 0, 9007199254740991L, &seed) ||
        !num_field(&e, "temperature", &temperature) || !num_field(&e, "top_p", &top_p))
        return explore_fail(&e, rep, 400, e.msg);
    if (sample && !cJSON_IsBool(sample))
        return explore_fail(&e, rep, 400, "'do_sample' must be true or false");
    lsc_sampler_params sp = lsc_sampler_default_params();
    sp.do_sample = cJSON_IsTrue(sample);
    sp.temperature = (float)temperature;
    sp.top_k = (int)top_k;
    sp.top_p = top_p;
    sp.seed = (uint64_t)seed;
    lsc_sampler *s = NULL;
    lsc_error err;
    if (lsc_sampler_new(sp, &s, &err) != LSC_OK) return explore_fail(&e, rep, 400, err.message);
    if (e.n + (size_t)max_new > (size_t)lsc_ctx_n_ctx(explore_ctx))
        max_new = (long)((size_t)lsc_ctx_n_ctx(explore_ctx) - e.n);
    if (max_new < 1) {
        lsc_sampler_free(s);
        return explore_fail(&e, rep, 400, "the text fills the model's context: no room for a "
                                          "new token");
    }
    lsc_generate_params gp = lsc_generate_default_params();
    gp.max_new_tokens = (int)max_new;
    gp.eos_id = srv->eos_id;
    int32_t *out = NULL;
    size_t n_new = 0;
    forget_last_run();
    lsc_status st = lsc_generate(explore_ctx, s, e.ids, e.n, gp, NULL, NULL, &out, &n_new, &err);
    lsc_sampler_free(s);
    if (st != LSC_OK) return explore_fail(&e, rep, 400, err.message);
    cJSON *o = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(o, "ids"),
          *texts = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n_new; i++) {
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(out[i]));
        char *t = cli_token_text(srv->tok, out[i], NULL);
        cJSON_AddItemToArray(texts, cJSON_CreateString(t ? t : ""));
        lsc_free(t);
    }
    char *text = NULL;
    size_t len;
    if (lsc_tokenizer_decode(srv->tok, out, n_new, &text, &len, NULL) == LSC_OK)
        cJSON_AddStringToObject(o, "text", text);
    lsc_free(text);
    lsc_free(out);
    explore_end(&e);
    reply_json(rep, 200, o);
}

void api_explore_model(const http_request *req, http_reply *rep) {
    const lsc_model *m = req->srv->model;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", req->srv->model_name);
    cJSON_AddNumberToObject(o, "n_layer", lsc_model_n_layer(m));
    cJSON_AddNumberToObject(o, "n_head", lsc_model_n_head(m));
    cJSON_AddNumberToObject(o, "n_embd", lsc_model_n_embd(m));
    cJSON_AddNumberToObject(o, "n_ctx", req->srv->n_ctx);
    cJSON_AddNumberToObject(o, "n_vocab", req->srv->n_vocab);
    cJSON_AddNumberToObject(o, "max_lens_positions", MAX_LENS_POS);
    cJSON *pts = cJSON_AddArrayToObject(o, "hook_points");
    for (int i = 0; i < lsc_model_n_hook_points(m); i++)
        cJSON_AddItemToArray(pts, cJSON_CreateString(lsc_model_hook_point_name(m, i)));
    reply_json(rep, 200, o);
}

void api_explore_vocab(const http_request *req, http_reply *rep) {
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tokens");
    for (int32_t id = 0; id < req->srv->n_vocab; id++) {
        char *s = cli_token_text(req->srv->tok, id, NULL);
        cJSON_AddItemToArray(a, cJSON_CreateString(s ? s : ""));
        lsc_free(s);
    }
    reply_json(rep, 200, o);
}
