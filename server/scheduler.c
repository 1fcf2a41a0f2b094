/* scheduler.c - the continuous-batching loop (see scheduler.h).
 *
 * Each step: admit queued sequences into free slots, drop those whose client
 * went away, then one lsc_batch_forward over every running slot: a prefilling
 * sequence feeds its next prompt chunk, a decoding one its last sampled
 * token. After the step each sequence reads its own logits: prompt rows give
 * the echoed tokens' log-probabilities, the last row is sampled. Prompt chunks
 * give the same bits as one pass (the KV cache contract), so a sequence's
 * numbers never depend on how it was cut or what ran beside it. */
#include "scheduler.h"
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prompt tokens one sequence feeds per step: bounds the logits rows held
 * ([chunk, n_vocab] floats: 25 MB for GPT-2 when every row is kept) and how
 * long a long prompt delays the others' next token. */
#define PREFILL_CHUNK_ALL 128
#define PREFILL_CHUNK_LAST 256

typedef struct seq {
    cmpl_req *req;
    cmpl_choice *ch;
    const int32_t *prompt;
    size_t n_prompt;
    lsc_sampler *sampler;
    int32_t *hist;   /* prompt then generated ids [n_prompt + max_tokens] */
    size_t n_hist;
    size_t n_fed;    /* ids of hist already in the KV cache */
    int32_t *counts; /* generated-token counts [n_vocab] for the presence and
                        frequency penalties; NULL when both are 0 */
    double t_last;   /* when its last token came */
} seq;

typedef struct slot {
    lsc_ctx *ctx;
    seq *s;
} slot;

struct scheduler {
    const lsc_model *model;
    const lsc_tokenizer *tok;
    metrics *mt;
    int n_vocab, eos_id;
    slot *slots;
    int n_slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    seq **queue; /* ring of cap */
    size_t q_head, q_len, q_cap;
    size_t n_running;
    int stop;
    pthread_t thread;
    int started;
    float *scratch;   /* [n_vocab] the row the sampler sees */
    int32_t *top_idx; /* [n_vocab] lsc_top_k's output (it needs only k) */
};

static void choice_push(cmpl_choice *ch, const tok_rec *rec) {
    if (ch->n_toks == ch->cap_toks) {
        size_t cap = ch->cap_toks ? ch->cap_toks * 2 : 16;
        tok_rec *t = realloc(ch->toks, cap * sizeof *t);
        if (!t) return; /* the record is lost; finish() reports the shortfall */
        ch->toks = t;
        ch->cap_toks = cap;
    }
    ch->toks[ch->n_toks++] = *rec;
}

/* Ends a sequence: marks its choice (unless the client is gone), wakes the
 * connection, frees the sequence and its reference. `error` NULL: success. */
static void seq_finish(seq *s, const char *reason, const char *error) {
    cmpl_req *r = s->req;
    pthread_mutex_lock(&r->mu);
    if (error) {
        s->ch->failed = 1;
        snprintf(s->ch->error, sizeof s->ch->error, "%s", error);
    }
    s->ch->finish_reason = reason;
    s->ch->gen_safe = s->ch->gen_len;
    s->ch->finished = 1;
    r->n_finished++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    lsc_sampler_free(s->sampler);
    free(s->hist);
    free(s->counts);
    free(s);
    cmpl_req_unref(r);
}

/* The log-softmax value of row[id]: the formula lsc_score uses, so echoed
 * prompt log-probabilities equal `logitscope score`'s bit for bit, and a
 * token's value in token_logprobs and in top_logprobs is the same float. */
static float row_logprob(const float *row, double lse, int32_t id) {
    return (float)((double)row[id] - lse);
}

/* The log-sum-exp of row r of the context's logits: computed by the step's
 * lsc_batch_logsumexp over the threads, or here when that ran short of
 * memory. */
static double row_lse(const scheduler *sc, const lsc_ctx *ctx, size_t r) {
    const double *lse = lsc_ctx_logsumexp(ctx, NULL);
    if (lse) return lse[r];
    return lsc_logsumexp(lsc_ctx_logits(ctx, NULL) + r * (size_t)sc->n_vocab, (size_t)sc->n_vocab);
}

/* Fills rec's log-probability of rec->id and the row's top-k; lse is the
 * row's log-sum-exp. */
static void fill_logprobs(scheduler *sc, const float *row, double lse, int k, tok_rec *rec) {
    rec->has_lp = 1;
    rec->lp = row_logprob(row, lse, rec->id);
    rec->n_top = 0;
    if (k <= 0) return;
    if (lsc_top_k(row, (size_t)sc->n_vocab, (size_t)k, sc->top_idx, NULL) != LSC_OK) return;
    for (int i = 0; i < k; i++) {
        rec->top_id[i] = sc->top_idx[i];
        rec->top_lp[i] = row_logprob(row, lse, sc->top_idx[i]);
    }
    rec->n_top = k;
}

/* 1 when the bytes of ids end inside a UTF-8 character that more bytes
 * could still complete (its decoded U+FFFD is provisional). */
static int ends_mid_char(const lsc_tokenizer *tok, const int32_t *ids, size_t n) {
    unsigned char tail[4];
    size_t k = 0;
    for (size_t i = n; i-- > 0 && k < 4;) {
        size_t len;
        const char *b = lsc_tokenizer_token_bytes(tok, ids[i], &len);
        if (!b) return 0;
        while (len-- > 0 && k < 4) tail[k++] = (unsigned char)b[len];
    }
    /* tail[0] is the last byte: walk back over continuation bytes to a lead */
    for (size_t j = 0; j < k; j++) {
        unsigned char c = tail[j];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        return need > j + 1 && need > 1;
    }
    return 0;
}

/* Recomputes the choice's generated text after a new token and looks for
 * the stop strings. Returns 1 when one was found (the text is cut there). */
static int update_text(scheduler *sc, seq *s, size_t n_text_ids) {
    cmpl_req *r = s->req;
    char *text = NULL;
    size_t len = 0;
    if (lsc_tokenizer_decode(sc->tok, s->hist + s->n_prompt, n_text_ids, &text, &len, NULL) !=
        LSC_OK)
        return 0;
    int stopped = 0;
    size_t cut = len;
    for (int i = 0; i < r->n_stop; i++) {
        char *p = memmem(text, len, r->stop[i], r->stop_len[i]);
        if (p && (size_t)(p - text) < cut) {
            cut = (size_t)(p - text);
            stopped = 1;
        }
    }
    size_t safe = cut;
    if (!stopped) {
        if (ends_mid_char(sc->tok, s->hist + s->n_prompt, n_text_ids) && safe >= 3) safe -= 3;
        /* hold back a tail that may be the start of a stop string */
        size_t hold = 0;
        for (int i = 0; i < r->n_stop; i++)
            for (size_t k = r->stop_len[i] - 1; k > hold; k--)
                if (k <= safe && !memcmp(text + safe - k, r->stop[i], k)) {
                    hold = k;
                    break;
                }
        safe -= hold;
    }
    text[cut] = '\0';
    pthread_mutex_lock(&r->mu);
    free(s->ch->gen_text);
    s->ch->gen_text = text;
    s->ch->gen_len = cut;
    if (safe > s->ch->gen_safe) s->ch->gen_safe = safe;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return stopped;
}

/* The sequence's row that predicts its next token (row `at` of ctx's logits):
 * sample it, record it. Returns 1 when the sequence has finished (and was
 * freed). */
static int next_token(scheduler *sc, seq *s, const lsc_ctx *ctx, size_t at) {
    cmpl_req *r = s->req;
    const float *row = lsc_ctx_logits(ctx, NULL) + at * (size_t)sc->n_vocab;
    cmpl_choice *ch = s->ch;
    size_t V = (size_t)sc->n_vocab;
    if (ch->n_gen == (size_t)r->max_tokens) { /* max_tokens 0 with echo */
        seq_finish(s, "length", NULL);
        return 1;
    }
    float *x = sc->scratch;
    memcpy(x, row, V * sizeof *x);
    for (size_t i = 0; i < r->n_bias; i++) x[r->bias_ids[i]] += r->bias_vals[i];
    if (s->counts)
        for (size_t i = s->n_prompt; i < s->n_hist; i++) {
            int32_t id = s->hist[i];
            if (s->counts[id] < 0) continue; /* already penalised */
            x[id] -= (float)(r->frequency_penalty * s->counts[id] + r->presence_penalty);
            s->counts[id] = -s->counts[id];
        }
    if (s->counts) /* restore the signs flipped above */
        for (size_t i = s->n_prompt; i < s->n_hist; i++)
            if (s->counts[s->hist[i]] < 0) s->counts[s->hist[i]] = -s->counts[s->hist[i]];
    int32_t id;
    lsc_error e;
    if (lsc_sampler_sample(s->sampler, x, V, s->hist, s->n_hist, &id, &e) != LSC_OK) {
        seq_finish(s, NULL, e.message);
        return 1;
    }
    double t = now_s();
    if (ch->n_gen == 0) metrics_ttft(sc->mt, t - r->t_arrival);
    else metrics_token_latency(sc->mt, t - s->t_last);
    s->t_last = t;
    tok_rec rec = {.id = id};
    if (r->logprobs >= 0) fill_logprobs(sc, row, row_lse(sc, ctx, at), r->logprobs, &rec);
    s->hist[s->n_hist++] = id;
    if (s->counts) s->counts[id]++;
    pthread_mutex_lock(&r->mu);
    if (r->logprobs >= 0) choice_push(ch, &rec);
    ch->n_gen++;
    pthread_mutex_unlock(&r->mu);
    metrics_tokens(sc->mt, 0, 1);
    if (id == sc->eos_id && !r->ignore_eos) {
        update_text(sc, s, ch->n_gen - 1);
        seq_finish(s, "stop", NULL);
        return 1;
    }
    if (update_text(sc, s, ch->n_gen)) {
        seq_finish(s, "stop", NULL);
        return 1;
    }
    if (ch->n_gen == (size_t)r->max_tokens) {
        seq_finish(s, "length", NULL);
        return 1;
    }
    return 0;
}

/* After a step: the rows of the n tokens seq s fed. Returns 1 when it
 * finished. */
static int after_step(scheduler *sc, seq *s, lsc_ctx *ctx, size_t n) {
    cmpl_req *r = s->req;
    size_t V = (size_t)sc->n_vocab;
    size_t first = s->n_fed; /* position of the first token fed */
    s->n_fed += n;
    if (first >= s->n_prompt) /* a decode step */
        return next_token(sc, s, ctx, 0);
    size_t rows;
    const float *logits = lsc_ctx_logits(ctx, &rows);
    if (rows == n) { /* every row: the echoed prompt tokens' log-probabilities */
        for (size_t i = 0; i < n; i++) {
            size_t t = first + i + 1; /* the token row i predicts */
            if (t >= s->n_prompt) break;
            tok_rec rec = {.id = s->prompt[t]};
            fill_logprobs(sc, logits + i * V, row_lse(sc, ctx, i), r->logprobs, &rec);
            pthread_mutex_lock(&r->mu);
            choice_push(s->ch, &rec);
            pthread_mutex_unlock(&r->mu);
        }
    }
    if (s->n_fed < s->n_prompt) return 0;
    metrics_tokens(sc->mt, s->n_prompt, 0);
    return next_token(sc, s, ctx, rows - 1);
}

static void *loop(void *arg) {
    scheduler *sc = arg;
    int n = sc->n_slots;
    lsc_ctx **ctxs = calloc((size_t)n, sizeof *ctxs);
    const int32_t **ids = calloc((size_t)n, sizeof *ids);
    size_t *n_ids = calloc((size_t)n, sizeof *n_ids);
    lsc_logits_mode *modes = calloc((size_t)n, sizeof *modes);
    lsc_error *errs = calloc((size_t)n, sizeof *errs);
    int *which = calloc((size_t)n, sizeof *which);
    lsc_ctx **with_lp = calloc((size_t)n, sizeof *with_lp);
    if (!ctxs || !ids || !n_ids || !modes || !errs || !which || !with_lp)
        abort(); /* 7 small arrays at start */
    for (;;) {
        pthread_mutex_lock(&sc->mu);
        while (!sc->stop && sc->n_running == 0 && sc->q_len == 0)
            pthread_cond_wait(&sc->cv, &sc->mu);
        if (sc->stop) {
            pthread_mutex_unlock(&sc->mu);
            break;
        }
        for (int i = 0; i < n && sc->q_len; i++) {
            if (sc->slots[i].s) continue;
            seq *s = sc->queue[sc->q_head];
            sc->q_head = (sc->q_head + 1) % sc->q_cap;
            sc->q_len--;
            sc->slots[i].s = s;
            sc->n_running++;
            lsc_ctx_reset(sc->slots[i].ctx);
        }
        metrics_gauges(sc->mt, sc->q_len, sc->n_running);
        pthread_mutex_unlock(&sc->mu);

        int nb = 0;
        for (int i = 0; i < n; i++) {
            seq *s = sc->slots[i].s;
            if (!s) continue;
            int cancelled;
            pthread_mutex_lock(&s->req->mu);
            cancelled = s->req->cancelled;
            pthread_mutex_unlock(&s->req->mu);
            if (cancelled) {
                seq_finish(s, NULL, "cancelled: the client went away");
                goto free_slot;
            }
            if (s->n_fed == 0 && s->req->max_tokens == 0 && s->req->logprobs < 0) {
                /* echo alone: nothing to compute */
                seq_finish(s, "length", NULL);
                goto free_slot;
            }
            ctxs[nb] = sc->slots[i].ctx;
            if (s->n_fed < s->n_prompt) {
                int all = s->req->echo && s->req->logprobs >= 0;
                size_t chunk = all ? PREFILL_CHUNK_ALL : PREFILL_CHUNK_LAST;
                size_t left = s->n_prompt - s->n_fed;
                ids[nb] = s->prompt + s->n_fed;
                n_ids[nb] = left < chunk ? left : chunk;
                modes[nb] = all ? LSC_LOGITS_ALL : LSC_LOGITS_LAST;
            } else {
                ids[nb] = s->hist + s->n_fed;
                n_ids[nb] = 1;
                modes[nb] = LSC_LOGITS_LAST;
            }
            which[nb++] = i;
            continue;
        free_slot:
            pthread_mutex_lock(&sc->mu);
            sc->slots[i].s = NULL;
            sc->n_running--;
            pthread_mutex_unlock(&sc->mu);
        }
        if (nb == 0) continue;
        lsc_batch_forward(ctxs, ids, n_ids, (size_t)nb, modes, errs, NULL);
        metrics_step(sc->mt, (size_t)nb);
        /* the log-probabilities' log-sum-exps, over the pool's threads rather
         * than one by one here while they wait */
        size_t n_lp = 0;
        for (int b = 0; b < nb; b++)
            if (errs[b].status == LSC_OK && sc->slots[which[b]].s->req->logprobs >= 0)
                with_lp[n_lp++] = ctxs[b];
        lsc_batch_logsumexp(with_lp, n_lp, NULL); /* short of memory: row_lse sums alone */
        for (int b = 0; b < nb; b++) {
            slot *sl = &sc->slots[which[b]];
            seq *s = sl->s;
            int done;
            if (errs[b].status != LSC_OK) {
                seq_finish(s, NULL, errs[b].message);
                done = 1;
            } else {
                done = after_step(sc, s, sl->ctx, n_ids[b]);
            }
            if (done) {
                pthread_mutex_lock(&sc->mu);
                sl->s = NULL;
                sc->n_running--;
                pthread_mutex_unlock(&sc->mu);
            }
        }
    }
    free(ctxs);
    free(ids);
    free(n_ids);
    free(modes);
    free(errs);
    free(which);
    free(with_lp);
    return NULL;
}

lsc_status sched_new(const lsc_model *model, const lsc_tokenizer *tok, sched_params p,
                     metrics *mt, scheduler **out, lsc_error *err) {
    *out = NULL;
    scheduler *sc = calloc(1, sizeof *sc);
    if (!sc) goto nomem;
    sc->model = model;
    sc->tok = tok;
    sc->mt = mt;
    sc->n_vocab = lsc_model_n_vocab(model);
    sc->eos_id = lsc_tokenizer_eos_id(tok);
    sc->n_slots = p.parallel;
    sc->q_cap = (size_t)p.queue;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    sc->slots = calloc((size_t)p.parallel, sizeof *sc->slots);
    sc->queue = calloc(sc->q_cap ? sc->q_cap : 1, sizeof *sc->queue);
    sc->scratch = malloc((size_t)sc->n_vocab * sizeof *sc->scratch);
    sc->top_idx = malloc((size_t)sc->n_vocab * sizeof *sc->top_idx);
    if (!sc->slots || !sc->queue || !sc->scratch || !sc->top_idx) goto nomem;
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = p.threads;
    for (int i = 0; i < p.parallel; i++) {
        lsc_status st = lsc_ctx_new(model, cp, &sc->slots[i].ctx, err);
        if (st) {
            sched_free(sc);
            return st;
        }
    }
    if (pthread_create(&sc->thread, NULL, loop, sc) != 0) {
        sched_free(sc);
        if (err) {
            err->status = LSC_ERR_INTERNAL;
            snprintf(err->message, sizeof err->message, "cannot start the batching thread");
        }
        return LSC_ERR_INTERNAL;
    }
    sc->started = 1;
    *out = sc;
    return LSC_OK;
nomem:
    sched_free(sc);
    if (err) {
        err->status = LSC_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory creating the scheduler");
    }
    return LSC_ERR_NOMEM;
}

/* A sequence for choice c of r, or NULL when memory ran out. */
static seq *seq_new(scheduler *sc, cmpl_req *r, cmpl_choice *c) {
    seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->req = r;
    s->ch = c;
    s->prompt = r->prompts[c->prompt_index];
    s->n_prompt = r->n_prompt[c->prompt_index];
    s->hist = malloc((s->n_prompt + (size_t)r->max_tokens + 1) * sizeof *s->hist);
    lsc_sampler_params sp = r->sampling;
    sp.seed += (uint64_t)(c->index - c->prompt_index * r->n); /* choice k: seed + k */
    if (r->presence_penalty != 0 || r->frequency_penalty != 0)
        s->counts = calloc((size_t)sc->n_vocab, sizeof *s->counts);
    if (!s->hist || lsc_sampler_new(sp, &s->sampler, NULL) != LSC_OK ||
        ((r->presence_penalty != 0 || r->frequency_penalty != 0) && !s->counts)) {
        lsc_sampler_free(s->sampler);
        free(s->hist);
        free(s->counts);
        free(s);
        return NULL;
    }
    memcpy(s->hist, s->prompt, s->n_prompt * sizeof *s->hist);
    s->n_hist = s->n_prompt;
    if (r->echo && r->logprobs >= 0) { /* the first prompt token: nothing predicts it */
        tok_rec rec = {.id = s->prompt[0], .has_lp = 0};
        choice_push(c, &rec);
    }
    return s;
}

int sched_submit(scheduler *sc, cmpl_req *r) {
    seq **made = calloc((size_t)r->n_choices, sizeof *made);
    if (!made) return -1;
    int ok = 1;
    for (int i = 0; i < r->n_choices && ok; i++) ok = (made[i] = seq_new(sc, r, &r->choices[i])) != NULL;
    pthread_mutex_lock(&sc->mu);
    if (!ok || sc->stop || sc->q_len + (size_t)r->n_choices > sc->q_cap) {
        pthread_mutex_unlock(&sc->mu);
        for (int i = 0; i < r->n_choices; i++)
            if (made[i]) {
                lsc_sampler_free(made[i]->sampler);
                free(made[i]->hist);
                free(made[i]->counts);
                free(made[i]);
            }
        free(made);
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < r->n_choices; i++) r->choices[i].n_toks = 0;
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    pthread_mutex_lock(&r->mu);
    r->refs += r->n_choices;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n_choices; i++) {
        sc->queue[(sc->q_head + sc->q_len) % sc->q_cap] = made[i];
        sc->q_len++;
    }
    metrics_gauges(sc->mt, sc->q_len, sc->n_running);
    pthread_cond_signal(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    free(made);
    return 0;
}

void sched_counts(scheduler *sc, size_t *waiting, size_t *running) {
    pthread_mutex_lock(&sc->mu);
    *waiting = sc->q_len;
    *running = sc->n_running;
    pthread_mutex_unlock(&sc->mu);
}

void sched_stop(scheduler *sc) {
    pthread_mutex_lock(&sc->mu);
    sc->stop = 1;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    if (sc->started) {
        pthread_join(sc->thread, NULL);
        sc->started = 0;
    }
    for (int i = 0; sc->slots && i < sc->n_slots; i++)
        if (sc->slots[i].s) {
            seq_finish(sc->slots[i].s, NULL, "the server is shutting down");
            sc->slots[i].s = NULL;
        }
    pthread_mutex_lock(&sc->mu);
    for (; sc->queue && sc->q_len; sc->q_len--, sc->q_head = (sc->q_head + 1) % sc->q_cap)
        seq_finish(sc->queue[sc->q_head], NULL, "the server is shutting down");
    sc->n_running = 0;
    pthread_mutex_unlock(&sc->mu);
}

void sched_free(scheduler *sc) {
    if (!sc) return;
    sched_stop(sc);
    for (int i = 0; sc->slots && i < sc->n_slots; i++) lsc_ctx_free(sc->slots[i].ctx);
    free(sc->slots);
    free(sc->queue);
    free(sc->scratch);
    free(sc->top_idx);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    free(sc);
}
