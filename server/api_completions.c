/* api_completions.c - POST /v1/completions in the OpenAI / vLLM wire format:
 * the request's fields checked into a cmpl_req (completion.h), queued on the
 * scheduler, and its choices written back as one JSON object or as
 * Server-Sent Events. */
#include "completion.h"
#include "metrics.h"
#include "scheduler.h"
#include "server.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_MAX_TOKENS 16
#define MAX_N 128

cmpl_req *cmpl_req_new(void) {
    cmpl_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->logprobs = -1;
    return r;
}

void cmpl_req_unref(cmpl_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (!last) return;
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts ? r->prompts[i] : NULL);
    free(r->prompts);
    free(r->n_prompt);
    for (int i = 0; i < r->n_choices; i++) {
        free(r->choices[i].toks);
        free(r->choices[i].gen_text);
    }
    free(r->choices);
    free(r->bias_ids);
    free(r->bias_vals);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---- Reading the request ---- */

/* Each getter leaves *out alone when the field is absent or null, and
 * returns 0 after filling `rep` with a 400 naming the field when its value
 * has the wrong type or range. */
static int get_bool(const cJSON *o, const char *name, int *out, http_reply *rep) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsBool(v)) {
        reply_error(rep, 400, name, "'%s' must be true or false", name);
        return 0;
    }
    *out = cJSON_IsTrue(v);
    return 1;
}

static int get_int(const cJSON *o, const char *name, double min, double max, long long *out,
                   http_reply *rep) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= min && d <= max) || d != floor(d)) {
        reply_error(rep, 400, name, "'%s' must be an integer from %.0f to %.0f", name, min, max);
        return 0;
    }
    *out = (long long)d;
    return 1;
}

static int get_num(const cJSON *o, const char *name, double min, double max, double *out,
                   http_reply *rep) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return 1;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= min && d <= max)) {
        reply_error(rep, 400, name, "'%s' must be a number from %g to %g", name, min, max);
        return 0;
    }
    *out = d;
    return 1;
}

/* A list of token ids into a new array; 0 after a 400. */
static int read_ids(server *srv, const cJSON *arr, int index, int32_t **ids, size_t *n,
                    http_reply *rep) {
    size_t k = (size_t)cJSON_GetArraySize(arr);
    *ids = malloc((k ? k : 1) * sizeof **ids);
    *n = 0;
    if (!*ids) {
        reply_error(rep, 500, NULL, "out of memory");
        return 0;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < srv->n_vocab) || d != floor(d)) {
            if (cJSON_IsNumber(e))
                reply_error(rep, 400, "prompt",
                            "prompt %d: token id %g at position %zu is outside the vocabulary "
                            "(0..%d)",
                            index, d, *n, srv->n_vocab - 1);
            else
                reply_error(rep, 400, "prompt",
                            "prompt %d: position %zu is not a token id (prompts are a string, a "
                            "list of strings, a list of ids or a list of lists of ids)",
                            index, *n);
            return 0;
        }
        (*ids)[(*n)++] = (int32_t)d;
    }
    return 1;
}

static int read_prompts(server *srv, const cJSON *root, cmpl_req *r, http_reply *rep) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p)) {
        reply_error(rep, 400, "prompt", "'prompt' is required");
        return 0;
    }
    const cJSON *one[1] = {p};
    int n = 1, as_ids = 0;
    if (cJSON_IsArray(p)) {
        n = cJSON_GetArraySize(p);
        if (n == 0) {
            reply_error(rep, 400, "prompt", "'prompt' is an empty list");
            return 0;
        }
        if (cJSON_IsNumber(p->child)) {
            as_ids = 1; /* one prompt of ids */
            n = 1;
        }
    } else if (!cJSON_IsString(p)) {
        reply_error(rep, 400, "prompt",
                    "'prompt' must be a string, a list of strings, a list of token ids or a "
                    "list of lists of token ids");
        return 0;
    }
    r->prompts = calloc((size_t)n, sizeof *r->prompts);
    r->n_prompt = calloc((size_t)n, sizeof *r->n_prompt);
    if (!r->prompts || !r->n_prompt) {
        reply_error(rep, 500, NULL, "out of memory");
        return 0;
    }
    r->n_prompts = n;
    const cJSON *e = cJSON_IsArray(p) && !as_ids ? p->child : one[0];
    for (int i = 0; i < n; i++, e = e ? e->next : NULL) {
        if (!as_ids && i > 0 && cJSON_IsArray(e) != cJSON_IsArray(p->child)) {
            reply_error(rep, 400, "prompt",
                        "prompt %d: a list of prompts must be all strings or all lists of ids", i);
            return 0;
        }
        if (as_ids || cJSON_IsArray(e)) {
            if (!read_ids(srv, e, i, &r->prompts[i], &r->n_prompt[i], rep)) return 0;
        } else if (cJSON_IsString(e)) {
            lsc_error err;
            if (server_encode(srv, e->valuestring, strlen(e->valuestring), &r->prompts[i],
                              &r->n_prompt[i], &err) != LSC_OK) {
                reply_error(rep, 400, "prompt", "prompt %d: %s", i, err.message);
                return 0;
            }
        } else {
            reply_error(rep, 400, "prompt",
                        "prompt %d is neither a string nor a list of token ids", i);
            return 0;
        }
        if (r->n_prompt[i] == 0) {
            reply_error(rep, 400, "prompt", "prompt %d is empty (no tokens)", i);
            return 0;
        }
    }
    return 1;
}

static int read_stop(const cJSON *root, cmpl_req *r, http_reply *rep) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "stop");
    if (!s || cJSON_IsNull(s)) return 1;
    const cJSON *e = cJSON_IsArray(s) ? s->child : s;
    for (; e; e = cJSON_IsArray(s) ? e->next : NULL) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || r->n_stop == CMPL_MAX_STOP) {
            reply_error(rep, 400, "stop",
                        "'stop' must be a non-empty string or a list of at most %d of them",
                        CMPL_MAX_STOP);
            return 0;
        }
        r->stop_len[r->n_stop] = strlen(e->valuestring);
        if (!(r->stop[r->n_stop++] = strdup(e->valuestring))) {
            reply_error(rep, 500, NULL, "out of memory");
            return 0;
        }
    }
    return 1;
}

static int read_logit_bias(server *srv, const cJSON *root, cmpl_req *r, http_reply *rep) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "logit_bias");
    if (!b || cJSON_IsNull(b)) return 1;
    if (!cJSON_IsObject(b)) {
        reply_error(rep, 400, "logit_bias", "'logit_bias' must be an object {\"token id\": bias}");
        return 0;
    }
    size_t n = (size_t)cJSON_GetArraySize(b);
    r->bias_ids = malloc((n ? n : 1) * sizeof *r->bias_ids);
    r->bias_vals = malloc((n ? n : 1) * sizeof *r->bias_vals);
    if (!r->bias_ids || !r->bias_vals) {
        reply_error(rep, 500, NULL, "out of memory");
        return 0;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, b) {
        char *end;
        errno = 0;
        long id = strtol(e->string, &end, 10);
        if (errno || end == e->string || *end || id < 0 || id >= srv->n_vocab) {
            reply_error(rep, 400, "logit_bias",
                        "logit_bias: '%.40s' is not a token id in 0..%d", e->string,
                        srv->n_vocab - 1);
            return 0;
        }
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= -100 && e->valuedouble <= 100)) {
            reply_error(rep, 400, "logit_bias",
                        "logit_bias: the bias of token %ld must be a number from -100 to 100", id);
            return 0;
        }
        r->bias_ids[r->n_bias] = (int32_t)id;
        r->bias_vals[r->n_bias++] = (float)e->valuedouble;
    }
    return 1;
}

/* A random seed for requests that give none (each differs). */
static uint64_t fresh_seed(void) {
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lsc_rng rng;
    lsc_rng_seed(&rng, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (counter++ << 17));
    return lsc_rng_next(&rng);
}

/* The whole request into r; 0 after filling `rep` with the error. */
static int read_request(server *srv, const cJSON *root, cmpl_req *r, http_reply *rep) {
    long long max_tokens = DEFAULT_MAX_TOKENS, logprobs = -1, n = 1, top_k = -1, seed = -1,
              best_of = -1;
    double temperature = 1.0, top_p = 1.0, min_p = 0.0, rep_pen = 1.0;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(root, "logprobs");
    if (lp && cJSON_IsBool(lp)) { /* the chat API's form, met in the wild */
        reply_error(rep, 400, "logprobs", "'logprobs' must be an integer from 0 to 20");
        return 0;
    }
    if (!get_int(root, "max_tokens", 0, 1e9, &max_tokens, rep) ||
        !get_int(root, "logprobs", 0, CMPL_MAX_LOGPROBS, &logprobs, rep) ||
        !get_int(root, "n", 1, MAX_N, &n, rep) || !get_int(root, "top_k", -1, 1e9, &top_k, rep) ||
        !get_int(root, "seed", -9.2e18, 9.2e18, &seed, rep) ||
        !get_int(root, "best_of", 1, MAX_N, &best_of, rep) ||
        !get_num(root, "temperature", 0, 100, &temperature, rep) ||
        !get_num(root, "top_p", 1e-9, 1, &top_p, rep) ||
        !get_num(root, "min_p", 0, 1, &min_p, rep) ||
        !get_num(root, "repetition_penalty", 1e-3, 100, &rep_pen, rep) ||
        !get_num(root, "presence_penalty", -2, 2, &r->presence_penalty, rep) ||
        !get_num(root, "frequency_penalty", -2, 2, &r->frequency_penalty, rep) ||
        !get_bool(root, "echo", &r->echo, rep) || !get_bool(root, "stream", &r->stream, rep) ||
        !get_bool(root, "ignore_eos", &r->ignore_eos, rep))
        return 0;
    if (best_of != -1 && best_of != n) {
        reply_error(rep, 400, "best_of", "'best_of' other than n is not supported");
        return 0;
    }
    const cJSON *suffix = cJSON_GetObjectItemCaseSensitive(root, "suffix");
    if (suffix && !cJSON_IsNull(suffix)) {
        reply_error(rep, 400, "suffix", "'suffix' is not supported (GPT-2 has no infilling)");
        return 0;
    }
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(root, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            reply_error(rep, 400, "stream_options", "'stream_options' must be an object");
            return 0;
        }
        if (!get_bool(so, "include_usage", &r->include_usage, rep)) return 0;
    }
    if (max_tokens == 0 && !r->echo) {
        reply_error(rep, 400, "max_tokens", "'max_tokens' must be at least 1 (0 only with echo)");
        return 0;
    }
    r->max_tokens = (int)(max_tokens < srv->n_ctx ? max_tokens : srv->n_ctx + 1);
    r->logprobs = (int)logprobs;
    r->n = (int)n;
    lsc_sampler_params sp = lsc_sampler_default_params();
    sp.do_sample = temperature > 0;
    sp.temperature = temperature > 0 ? (float)temperature : 1.0f;
    sp.top_k = top_k > 0 ? (int)top_k : 0;
    sp.top_p = top_p;
    sp.min_p = (float)min_p;
    sp.repetition_penalty = (float)rep_pen;
    sp.seed = seed == -1 ? fresh_seed() : (uint64_t)seed;
    r->sampling = sp;
    if (!read_stop(root, r, rep) || !read_logit_bias(srv, root, r, rep) ||
        !read_prompts(srv, root, r, rep))
        return 0;
    if ((long long)r->n_prompts * n > srv->max_seqs_per_request) {
        reply_error(rep, 400, "n",
                    "the request asks for %lld sequences (%d prompts x n = %lld); the server takes "
                    "at most %d per request",
                    (long long)r->n_prompts * n, r->n_prompts, n, srv->max_seqs_per_request);
        return 0;
    }
    for (int i = 0; i < r->n_prompts; i++)
        if (r->n_prompt[i] + (size_t)max_tokens > (size_t)srv->n_ctx) {
            reply_error(rep, 400, r->n_prompt[i] > (size_t)srv->n_ctx ? "prompt" : "max_tokens",
                        "this model's maximum context length is %d tokens, but prompt %d has %zu "
                        "tokens and max_tokens is %lld (%zu in all)",
                        srv->n_ctx, i, r->n_prompt[i], max_tokens,
                        r->n_prompt[i] + (size_t)max_tokens);
            return 0;
        }
    r->n_choices = r->n_prompts * r->n;
    r->choices = calloc((size_t)r->n_choices, sizeof *r->choices);
    if (!r->choices) {
        reply_error(rep, 500, NULL, "out of memory");
        return 0;
    }
    for (int i = 0; i < r->n_choices; i++) {
        r->choices[i].index = i;
        r->choices[i].prompt_index = i / r->n;
    }
    return 1;
}

/* ---- Writing the response ---- */

/* tokenizer.decode([id]) as a cJSON string. */
static cJSON *token_string(server *srv, int32_t id) {
    char *s = NULL;
    size_t len;
    if (lsc_tokenizer_decode(srv->tok, &id, 1, &s, &len, NULL) != LSC_OK) return cJSON_CreateString("");
    cJSON *j = cJSON_CreateString(s);
    lsc_free(s);
    return j;
}

static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The logprobs object of tokens recs[n]: tokens, token_logprobs,
 * top_logprobs (the chosen token always among them, as vLLM does) and
 * text_offset from *offset on (code points into the choice's text). */
static cJSON *logprobs_json(server *srv, const tok_rec *recs, size_t n, size_t *offset) {
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    if (!tops || !offs) {
        cJSON_Delete(o);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const tok_rec *t = &recs[i];
        cJSON *ts = token_string(srv, t->id);
        cJSON_AddItemToArray(tokens, ts);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)*offset));
        if (ts && ts->valuestring) *offset += utf8_chars(ts->valuestring);
        if (!t->has_lp) {
            cJSON_AddItemToArray(lps, cJSON_CreateNull());
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            continue;
        }
        cJSON_AddItemToArray(lps, cJSON_CreateNumber((double)t->lp));
        cJSON *top = cJSON_CreateObject();
        int chosen_in = 0;
        for (int k = 0; k <= t->n_top; k++) {
            int32_t id;
            float v;
            if (k < t->n_top) {
                id = t->top_id[k];
                v = t->top_lp[k];
                chosen_in |= id == t->id;
            } else if (!chosen_in) {
                id = t->id;
                v = t->lp;
            } else {
                break;
            }
            cJSON *key = token_string(srv, id);
            /* two ids can decode alike (partial characters): keep the first */
            if (key && key->valuestring && !cJSON_GetObjectItemCaseSensitive(top, key->valuestring))
                cJSON_AddNumberToObject(top, key->valuestring, (double)v);
            cJSON_Delete(key);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static cJSON *usage_json(const cmpl_req *r) {
    size_t prompt = 0, gen = 0;
    for (int i = 0; i < r->n_prompts; i++) prompt += r->n_prompt[i];
    for (int i = 0; i < r->n_choices; i++) gen += r->choices[i].n_gen;
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)gen);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(prompt + gen));
    return u;
}

static cJSON *response_head(server *srv, const char *id, time_t created) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)created);
    cJSON_AddStringToObject(o, "model", srv->model_name);
    return o;
}

/* The echoed prompt text of choice c (decode of its ids), new string. */
static char *prompt_text(server *srv, const cmpl_req *r, const cmpl_choice *c) {
    char *s = NULL;
    size_t len;
    lsc_tokenizer_decode(srv->tok, r->prompts[c->prompt_index], r->n_prompt[c->prompt_index], &s,
                         &len, NULL);
    return s;
}

/* Waits (under r->mu) up to 50 ms for news; cancels the request when the
 * client has gone. Returns 1 when it has. */
static int wait_news(cmpl_req *r, int fd) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    if (client_gone(fd)) {
        r->cancelled = 1;
        return 1;
    }
    return 0;
}

static void make_id(char *id, size_t size) {
    lsc_rng rng;
    lsc_rng_seed(&rng, fresh_seed());
    snprintf(id, size, "cmpl-%016llx%08llx", (unsigned long long)lsc_rng_next(&rng),
             (unsigned long long)(lsc_rng_next(&rng) >> 32));
}

/* The whole response once every choice has finished (non-streamed). */
static void reply_whole(server *srv, cmpl_req *r, const char *id, http_reply *rep) {
    cJSON *o = response_head(srv, id, time(NULL));
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < r->n_choices; i++) {
        cmpl_choice *c = &r->choices[i];
        if (c->failed) {
            cJSON_Delete(o);
            reply_error(rep, 500, NULL, "choice %d failed: %s", i, c->error);
            return;
        }
        cJSON *co = cJSON_CreateObject();
        cJSON_AddNumberToObject(co, "index", c->index);
        char *echo = r->echo ? prompt_text(srv, r, c) : NULL;
        size_t elen = echo ? strlen(echo) : 0, glen = c->gen_text ? c->gen_len : 0;
        char *text = malloc(elen + glen + 1);
        if (text) {
            if (elen) memcpy(text, echo, elen);
            if (glen) memcpy(text + elen, c->gen_text, glen);
            text[elen + glen] = '\0';
        }
        cJSON_AddStringToObject(co, "text", text ? text : "");
        free(text);
        lsc_free(echo);
        size_t offset = 0;
        if (r->logprobs >= 0)
            cJSON_AddItemToObject(co, "logprobs", logprobs_json(srv, c->toks, c->n_toks, &offset));
        else
            cJSON_AddNullToObject(co, "logprobs");
        cJSON_AddStringToObject(co, "finish_reason", c->finish_reason ? c->finish_reason : "length");
        cJSON_AddNullToObject(co, "stop_reason");
        cJSON_AddItemToArray(choices, co);
    }
    cJSON_AddItemToObject(o, "usage", usage_json(r));
    reply_json(rep, 200, o);
}

/* ---- Streaming: Server-Sent Events ---- */

typedef struct stream_choice {
    size_t sent_toks, sent_text, offset;
    int sent_echo, sent_final;
} stream_choice;

typedef struct stream {
    server *srv;
    cmpl_req *r;
    int fd;
    char id[48];
    time_t created;
    stream_choice *sc;
    char *buf; /* events built, not yet handed to the connection */
    size_t len, pos, cap;
    int done;
    double last_sent; /* now_s() when bytes last went out */
} stream;

/* A comment line every this many seconds without news keeps proxies and
 * clients from timing out a stream that waits in the queue. */
#define KEEPALIVE_S 15.0

static void stream_put(stream *st, const char *s, size_t n) {
    if (st->len + n > st->cap) {
        size_t cap = (st->len + n) * 2;
        char *b = realloc(st->buf, cap);
        if (!b) return;
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, s, n);
    st->len += n;
}

static void stream_event(stream *st, cJSON *o) {
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return;
    stream_put(st, "data: ", 6);
    stream_put(st, s, strlen(s));
    stream_put(st, "\n\n", 2);
    free(s);
}

/* Builds the events for what is new (called under r->mu). */
static void stream_collect(stream *st) {
    cmpl_req *r = st->r;
    for (int i = 0; i < r->n_choices; i++) {
        cmpl_choice *c = &r->choices[i];
        stream_choice *sc = &st->sc[i];
        if (sc->sent_final) continue;
        if (c->failed) {
            char msg[LSC_ERROR_MESSAGE_SIZE + 32];
            snprintf(msg, sizeof msg, "choice %d failed: %s", i, c->error);
            stream_event(st, error_json(500, NULL, msg));
            sc->sent_final = 1;
            continue;
        }
        size_t safe = c->finished ? c->gen_len : c->gen_safe;
        int new_text = safe > sc->sent_text, new_toks = c->n_toks > sc->sent_toks;
        int echo_now = r->echo && !sc->sent_echo;
        if (!new_text && !new_toks && !echo_now && !c->finished) continue;
        cJSON *o = response_head(st->srv, st->id, st->created);
        cJSON *choices = cJSON_AddArrayToObject(o, "choices");
        cJSON *co = cJSON_CreateObject();
        cJSON_AddNumberToObject(co, "index", c->index);
        char *echo = echo_now ? prompt_text(st->srv, r, c) : NULL;
        size_t elen = echo ? strlen(echo) : 0, glen = new_text ? safe - sc->sent_text : 0;
        char *text = malloc(elen + glen + 1);
        if (text) {
            if (elen) memcpy(text, echo, elen);
            if (glen) memcpy(text + elen, c->gen_text + sc->sent_text, glen);
            text[elen + glen] = '\0';
        }
        cJSON_AddStringToObject(co, "text", text ? text : "");
        free(text);
        lsc_free(echo);
        sc->sent_echo = 1;
        sc->sent_text = safe;
        if (r->logprobs >= 0)
            cJSON_AddItemToObject(co, "logprobs",
                                  logprobs_json(st->srv, c->toks + sc->sent_toks,
                                                c->n_toks - sc->sent_toks, &sc->offset));
        else
            cJSON_AddNullToObject(co, "logprobs");
        sc->sent_toks = c->n_toks;
        if (c->finished) {
            cJSON_AddStringToObject(co, "finish_reason", c->finish_reason ? c->finish_reason : "length");
            sc->sent_final = 1;
        } else {
            cJSON_AddNullToObject(co, "finish_reason");
        }
        cJSON_AddNullToObject(co, "stop_reason");
        cJSON_AddItemToArray(choices, co);
        if (r->include_usage) cJSON_AddNullToObject(o, "usage");
        stream_event(st, o);
    }
    if (r->n_finished == r->n_choices) {
        if (r->include_usage) {
            cJSON *o = response_head(st->srv, st->id, st->created);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_json(r));
            stream_event(st, o);
        }
        stream_put(st, "data: [DONE]\n\n", 14);
        st->done = 1;
    }
}

static ssize_t stream_read(void *cls, char *out, size_t max) {
    stream *st = cls;
    cmpl_req *r = st->r;
    pthread_mutex_lock(&r->mu);
    while (st->pos == st->len && !st->done) {
        st->pos = st->len = 0;
        stream_collect(st);
        if (st->len || st->done) break;
        if (wait_news(r, st->fd)) break;
        if (now_s() - st->last_sent > KEEPALIVE_S) stream_put(st, ": keep-alive\n\n", 14);
    }
    st->last_sent = now_s();
    pthread_mutex_unlock(&r->mu);
    size_t n = st->len - st->pos < max ? st->len - st->pos : max;
    if (n == 0) return 0; /* the end, or the client went away */
    memcpy(out, st->buf + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream *st = cls;
    pthread_mutex_lock(&st->r->mu);
    if (st->r->n_finished < st->r->n_choices) st->r->cancelled = 1;
    pthread_mutex_unlock(&st->r->mu);
    cmpl_req_unref(st->r);
    free(st->sc);
    free(st->buf);
    free(st);
}

void api_completions(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    double t0 = now_s();
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!root) {
        reply_error(rep, 400, NULL, "the body is not valid JSON");
        return;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        reply_error(rep, 400, NULL, "the body must be a JSON object");
        return;
    }
    cmpl_req *r = cmpl_req_new();
    if (!r) {
        cJSON_Delete(root);
        reply_error(rep, 500, NULL, "out of memory");
        return;
    }
    r->t_arrival = t0;
    int ok = read_request(srv, root, r, rep);
    cJSON_Delete(root);
    if (!ok) {
        cmpl_req_unref(r);
        return;
    }
    if (sched_submit(srv->sched, r) != 0) {
        cmpl_req_unref(r);
        reply_error(rep, 503, NULL, "the server is busy (its queue is full); retry later");
        rep->retry_after = 1;
        return;
    }
    char id[48];
    make_id(id, sizeof id);
    if (r->stream) {
        stream *st = calloc(1, sizeof *st);
        if (st) st->sc = calloc((size_t)r->n_choices, sizeof *st->sc);
        if (!st || !st->sc) {
            if (st) free(st);
            pthread_mutex_lock(&r->mu);
            r->cancelled = 1;
            pthread_mutex_unlock(&r->mu);
            cmpl_req_unref(r);
            reply_error(rep, 500, NULL, "out of memory");
            return;
        }
        st->srv = srv;
        st->r = r;
        st->fd = req->client_fd;
        st->created = time(NULL);
        st->last_sent = now_s();
        memcpy(st->id, id, sizeof st->id);
        rep->status = 200;
        rep->content_type = "text/event-stream";
        rep->stream_read = stream_read;
        rep->stream_free = stream_free;
        rep->stream_cls = st;
        return;
    }
    pthread_mutex_lock(&r->mu);
    int gone = 0;
    while (r->n_finished < r->n_choices && !gone) gone = wait_news(r, req->client_fd);
    pthread_mutex_unlock(&r->mu);
    if (gone) reply_error(rep, 400, NULL, "the client went away");
    else reply_whole(srv, r, id, rep);
    cmpl_req_unref(r);
}
