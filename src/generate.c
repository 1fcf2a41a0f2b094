/* generate.c - the loops built on a context: generation (prompt once, then
 * one position per new token through the KV cache, for one sequence or many
 * in shared steps) and scoring (the
 * log-probability of each actual next token, with Hugging Face's sliding
 * window for texts longer than the context). */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

lsc_generate_params lsc_generate_default_params(void) {
    lsc_generate_params p = {0};
    p.max_new_tokens = 20;
    p.eos_id = -1;
    return p;
}

/* Fills seqs[i].err, marks the sequence failed and returns its status. */
#define FAIL_SEQ(i, ...) lsc_fail(&seqs[i].err, __VA_ARGS__)

/* Checks sequence i's prompt and limits before anything runs. */
static lsc_status check_seq(lsc_generate_seq *seqs, size_t i) {
    const lsc_generate_seq *s = &seqs[i];
    if (s->n_prompt == 0 || !s->prompt)
        return FAIL_SEQ(i, LSC_ERR_INVALID_ARG, "generate: the prompt is empty");
    if (s->params.max_new_tokens <= 0)
        return FAIL_SEQ(i, LSC_ERR_INVALID_ARG, "generate: max_new_tokens must be > 0, got %d",
                        s->params.max_new_tokens);
    size_t max_new = (size_t)s->params.max_new_tokens, n_ctx = (size_t)lsc_ctx_n_ctx(s->ctx);
    if (s->n_prompt > n_ctx || max_new > n_ctx - s->n_prompt)
        return FAIL_SEQ(i, LSC_ERR_CONTEXT_FULL,
                        "generate: %zu prompt tokens + %zu new tokens is more than the context "
                        "of %zu tokens",
                        s->n_prompt, max_new, n_ctx);
    return LSC_OK;
}

lsc_status lsc_generate_batch(lsc_generate_seq *seqs, size_t n, lsc_error *err) {
    if (n && !seqs) return lsc_fail(err, LSC_ERR_INVALID_ARG, "generate: seqs is NULL");
    for (size_t i = 0; i < n; i++) {
        if (!seqs[i].ctx || !seqs[i].sampler)
            return lsc_fail(err, LSC_ERR_INVALID_ARG, "generate: sequence %zu has no %s", i,
                            seqs[i].ctx ? "sampler" : "context");
        if (lsc_ctx_model(seqs[i].ctx) != lsc_ctx_model(seqs[0].ctx))
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "generate: sequence %zu's context belongs to another model", i);
        for (size_t j = 0; j < i; j++)
            if (seqs[j].ctx == seqs[i].ctx)
                return lsc_fail(err, LSC_ERR_INVALID_ARG,
                                "generate: sequences %zu and %zu share a context", j, i);
    }
    /* per sequence: the prompt followed by the new tokens (what the
     * repetition penalty sees), and what the next step feeds it */
    lsc_ctx **ctxs = calloc(n ? n : 1, sizeof *ctxs);
    const int32_t **ids = calloc(n ? n : 1, sizeof *ids);
    size_t *n_ids = calloc(n ? n : 1, sizeof *n_ids), *len = calloc(n ? n : 1, sizeof *len);
    int32_t **seq = calloc(n ? n : 1, sizeof *seq);
    lsc_error *errs = calloc(n ? n : 1, sizeof *errs);
    bool *live = calloc(n ? n : 1, sizeof *live);
    lsc_status st = LSC_OK;
    if (!ctxs || !ids || !n_ids || !len || !seq || !errs || !live) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "generate: out of memory for %zu sequences", n);
        goto done;
    }
    size_t n_live = 0;
    for (size_t i = 0; i < n; i++) {
        lsc_generate_seq *s = &seqs[i];
        s->new_ids = NULL;
        s->n_new = 0;
        s->err.status = LSC_OK;
        s->err.message[0] = '\0';
        ctxs[i] = s->ctx;
        if (check_seq(seqs, i)) continue;
        if (!(seq[i] = malloc((s->n_prompt + (size_t)s->params.max_new_tokens) * sizeof **seq))) {
            FAIL_SEQ(i, LSC_ERR_NOMEM, "generate: out of memory");
            continue;
        }
        memcpy(seq[i], s->prompt, s->n_prompt * sizeof **seq);
        len[i] = s->n_prompt;
        lsc_ctx_reset(s->ctx);
        ids[i] = s->prompt;
        n_ids[i] = s->n_prompt;
        live[i] = true;
        n_live++;
    }
    while (n_live) {
        lsc_batch_forward(ctxs, ids, n_ids, n, NULL, errs, NULL);
        for (size_t i = 0; i < n; i++) {
            if (!live[i]) continue;
            lsc_generate_seq *s = &seqs[i];
            int32_t next;
            bool stop = false;
            if (errs[i].status) {
                s->err = errs[i];
                stop = true;
            } else if (lsc_sampler_sample(s->sampler, lsc_ctx_logits(s->ctx, NULL),
                                          (size_t)lsc_model_n_vocab(lsc_ctx_model(s->ctx)),
                                          seq[i], len[i], &next, &s->err)) {
                stop = true;
            } else {
                seq[i][len[i]++] = next;
                size_t step = len[i] - s->n_prompt - 1;
                stop = (s->fn && s->fn(next, step, s->user_data)) || next == s->params.eos_id ||
                       step + 1 == (size_t)s->params.max_new_tokens;
                ids[i] = &seq[i][len[i] - 1];
                n_ids[i] = 1;
            }
            if (stop) {
                live[i] = false;
                n_ids[i] = 0;
                n_live--;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        lsc_generate_seq *s = &seqs[i];
        if (s->err.status) continue;
        s->n_new = len[i] - s->n_prompt;
        if (!(s->new_ids = malloc((s->n_new ? s->n_new : 1) * sizeof *s->new_ids))) {
            FAIL_SEQ(i, LSC_ERR_NOMEM, "generate: out of memory");
            s->n_new = 0;
            continue;
        }
        memcpy(s->new_ids, seq[i] + s->n_prompt, s->n_new * sizeof *s->new_ids);
    }
    for (size_t i = 0; i < n && !st; i++)
        if (seqs[i].err.status)
            st = lsc_fail(err, seqs[i].err.status, "sequence %zu: %s", i, seqs[i].err.message);
done:
    for (size_t i = 0; seq && i < n; i++) free(seq[i]);
    free(ctxs);
    free(ids);
    free(n_ids);
    free(len);
    free(seq);
    free(errs);
    free(live);
    return st;
}

lsc_status lsc_generate(lsc_ctx *ctx, lsc_sampler *sampler, const int32_t *prompt,
                        size_t n_prompt, lsc_generate_params params, lsc_token_fn fn,
                        void *user_data, int32_t **new_ids, size_t *n_new, lsc_error *err) {
    if (new_ids) *new_ids = NULL;
    if (n_new) *n_new = 0;
    lsc_generate_seq s = {.ctx = ctx, .sampler = sampler, .prompt = prompt,
                          .n_prompt = n_prompt, .params = params, .fn = fn,
                          .user_data = user_data};
    lsc_status st = lsc_generate_batch(&s, 1, err);
    if (st) {
        if (err && s.err.status) *err = s.err; /* its own message, without "sequence 0: " */
        return st;
    }
    if (n_new) *n_new = s.n_new;
    if (new_ids) *new_ids = s.new_ids;
    else lsc_free(s.new_ids);
    return LSC_OK;
}

lsc_score_params lsc_score_default_params(void) {
    lsc_score_params p = {0};
    return p;
}

/* Positions run through the model per forward call while scoring: bounds the
 * logits buffer ([SCORE_CHUNK, n_vocab]) whatever the window length. */
#define SCORE_CHUNK 128

/* Where the scoring of one text stands: its window [begin, end) scores the
 * targets t in [first, end), predicted from the row of position t - 1; the
 * next chunk to run starts at c. */
typedef struct score_cursor {
    const int32_t *ids;
    size_t n, max_len, stride;
    size_t begin, end, first, prev_end, c, m;
    size_t windows;
    double nll;
    float *logprobs;
} score_cursor;

/* Opens the window that starts at cur->begin. */
static void score_window(score_cursor *cur) {
    cur->end = cur->begin + cur->max_len < cur->n ? cur->begin + cur->max_len : cur->n;
    cur->first = cur->prev_end > 1 ? cur->prev_end : 1;
    cur->c = cur->begin;
    cur->windows++;
}

/* The next chunk: positions c .. c + m - 1, predicting c + 1 .. c + m; its
 * logits are needed (all rows) only when it reaches the first target. */
static lsc_logits_mode score_chunk(score_cursor *cur) {
    cur->m = cur->end - cur->c < SCORE_CHUNK ? cur->end - cur->c : SCORE_CHUNK;
    return cur->c + cur->m >= cur->first ? LSC_LOGITS_ALL : LSC_LOGITS_LAST;
}

/* Takes the chunk's logits rows [m, V] (ALL) and moves on; returns true when
 * the text is done. `reset` is set when the context must start afresh (a new
 * window). */
static bool score_take(score_cursor *cur, const float *rows, size_t n_vocab, bool *reset) {
    *reset = false;
    if (cur->c + cur->m >= cur->first)
        for (size_t r = 0; r < cur->m; r++) {
            size_t t = cur->c + r + 1;
            if (t < cur->first || t >= cur->end) continue;
            const float *row = rows + r * n_vocab;
            double lp = (double)row[cur->ids[t]] - lsc_logsumexp(row, n_vocab);
            if (cur->logprobs) cur->logprobs[t - 1] = (float)lp;
            cur->nll -= lp;
        }
    cur->c += cur->m;
    if (cur->c < cur->end) return false;
    cur->prev_end = cur->end;
    if (cur->end == cur->n) return true;
    cur->begin += cur->stride;
    score_window(cur);
    *reset = true;
    return false;
}

/* The window length and stride for contexts of n_ctx positions. */
static lsc_status score_window_params(lsc_score_params params, size_t n_ctx, size_t *max_len,
                                      size_t *stride, lsc_error *err) {
    if (params.max_length < 0 || params.stride < 0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: max_length and stride must be >= 0");
    *max_len = params.max_length ? (size_t)params.max_length : n_ctx;
    if (*max_len > n_ctx)
        return lsc_fail(err, LSC_ERR_CONTEXT_FULL,
                        "score: a window of %zu tokens is more than the context of %zu", *max_len,
                        n_ctx);
    if (*max_len < 2)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: a window must hold at least 2 tokens");
    *stride = params.stride ? (size_t)params.stride : *max_len / 2;
    if (*stride > *max_len)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "score: the stride %zu is longer than the window of %zu tokens (tokens "
                        "would be skipped)",
                        *stride, *max_len);
    return LSC_OK;
}

lsc_status lsc_score_batch(lsc_ctx *const *ctxs, size_t n_ctxs, lsc_score_seq *seqs,
                           size_t n_seqs, lsc_score_params params, lsc_error *err) {
    if (!n_seqs) return LSC_OK;
    if (!seqs || !ctxs || !n_ctxs)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: no texts or no contexts");
    size_t n_ctx = SIZE_MAX;
    for (size_t k = 0; k < n_ctxs; k++) {
        if (!ctxs[k]) return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: context %zu is NULL", k);
        size_t nk = (size_t)lsc_ctx_n_ctx(ctxs[k]);
        n_ctx = nk < n_ctx ? nk : n_ctx;
    }
    size_t max_len = 0, stride = 0;
    lsc_status st = score_window_params(params, n_ctx, &max_len, &stride, err);
    if (st) return st;
    size_t n_vocab = (size_t)lsc_model_n_vocab(lsc_ctx_model(ctxs[0]));
    /* slot k: the text ctxs[k] is scoring (SIZE_MAX: none) */
    score_cursor *cur = calloc(n_ctxs, sizeof *cur);
    size_t *text = malloc(n_ctxs * sizeof *text), *n_ids = calloc(n_ctxs, sizeof *n_ids);
    const int32_t **ids = calloc(n_ctxs, sizeof *ids);
    lsc_logits_mode *modes = calloc(n_ctxs, sizeof *modes);
    lsc_error *errs = calloc(n_ctxs, sizeof *errs);
    if (!cur || !text || !n_ids || !ids || !modes || !errs) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "score: out of memory for %zu contexts", n_ctxs);
        goto done;
    }
    size_t next = 0, busy = 0; /* the next text to start; slots in use */
    for (size_t k = 0; k < n_ctxs; k++) text[k] = SIZE_MAX;
    for (;;) {
        /* idle slots take the next texts that can be scored */
        for (size_t k = 0; k < n_ctxs; k++) {
            while (text[k] == SIZE_MAX && next < n_seqs) {
                lsc_score_seq *q = &seqs[next];
                memset(&q->result, 0, sizeof q->result);
                q->err.status = LSC_OK;
                q->err.message[0] = '\0';
                if (q->n < 2 || !q->ids) {
                    lsc_fail(&q->err, LSC_ERR_INVALID_ARG,
                             "score: %zu token%s: scoring needs at least 2 (one to predict "
                             "from, one to predict)",
                             q->n, q->n == 1 ? "" : "s");
                    next++;
                    continue;
                }
                cur[k] = (score_cursor){.ids = q->ids, .n = q->n, .max_len = max_len,
                                        .stride = stride, .logprobs = q->logprobs};
                score_window(&cur[k]);
                lsc_ctx_reset(ctxs[k]);
                text[k] = next++;
                busy++;
            }
        }
        if (!busy) break;
        for (size_t k = 0; k < n_ctxs; k++) {
            n_ids[k] = 0;
            if (text[k] == SIZE_MAX) continue;
            modes[k] = score_chunk(&cur[k]);
            ids[k] = cur[k].ids + cur[k].c;
            n_ids[k] = cur[k].m;
        }
        lsc_batch_forward(ctxs, ids, n_ids, n_ctxs, modes, errs, NULL);
        for (size_t k = 0; k < n_ctxs; k++) {
            if (text[k] == SIZE_MAX) continue;
            lsc_score_seq *q = &seqs[text[k]];
            bool reset, finished = true;
            if (errs[k].status) q->err = errs[k];
            else finished = score_take(&cur[k], lsc_ctx_logits(ctxs[k], NULL), n_vocab, &reset);
            if (!finished) {
                if (reset) lsc_ctx_reset(ctxs[k]);
                continue;
            }
            if (!q->err.status) {
                q->result.n_scored = q->n - 1;
                q->result.n_windows = cur[k].windows;
                q->result.nll = cur[k].nll;
                q->result.mean_nll = cur[k].nll / (double)(q->n - 1);
                q->result.perplexity = exp(q->result.mean_nll);
            }
            text[k] = SIZE_MAX;
            busy--;
        }
    }
    for (size_t i = 0; i < n_seqs && !st; i++)
        if (seqs[i].err.status)
            st = lsc_fail(err, seqs[i].err.status, "text %zu: %s", i, seqs[i].err.message);
done:
    free(cur);
    free(text);
    free(n_ids);
    free(ids);
    free(modes);
    free(errs);
    return st;
}

lsc_status lsc_score(lsc_ctx *ctx, const int32_t *ids, size_t n, lsc_score_params params,
                     float *logprobs, lsc_score_result *result, lsc_error *err) {
    memset(result, 0, sizeof *result);
    lsc_score_seq q = {.ids = ids, .n = n, .logprobs = logprobs};
    lsc_status st = lsc_score_batch(&ctx, 1, &q, 1, params, err);
    if (st) {
        if (err && q.err.status) *err = q.err; /* its own message, without "text 0: " */
        return st;
    }
    *result = q.result;
    return LSC_OK;
}
