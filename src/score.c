/* score.c - scoring texts: the log-probability of each actual next token,
 * with Hugging Face's sliding window for texts longer than the context, for
 * one text or many in shared steps (lsc_score_batch). */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* Takes the chunk's logits rows [m, V] (ALL) from ctx and moves on; returns true when
 * the text is done. `reset` is set when the context must start afresh (a new
 * window). */
static bool score_take(score_cursor *cur, const lsc_ctx *ctx, size_t n_vocab, bool *reset) {
    *reset = false;
    const float *rows = lsc_ctx_logits(ctx, NULL);
    const double *lse = lsc_ctx_logsumexp(ctx, NULL); /* NULL: short of memory */
    if (cur->c + cur->m >= cur->first)
        for (size_t r = 0; r < cur->m; r++) {
            size_t t = cur->c + r + 1;
            if (t < cur->first || t >= cur->end) continue;
            const float *row = rows + r * n_vocab;
            double lp = (double)row[cur->ids[t]] - (lse ? lse[r] : lsc_logsumexp(row, n_vocab));
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
    lsc_ctx **all = calloc(n_ctxs, sizeof *all);
    if (!cur || !text || !n_ids || !ids || !modes || !errs || !all) {
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
        /* the rows' log-sum-exps over the threads (one row takes ~60 us) */
        size_t n_all = 0;
        for (size_t k = 0; k < n_ctxs; k++)
            if (n_ids[k] && !errs[k].status && modes[k] == LSC_LOGITS_ALL) all[n_all++] = ctxs[k];
        lsc_batch_logsumexp(all, n_all, NULL); /* on failure score_take sums alone */
        for (size_t k = 0; k < n_ctxs; k++) {
            if (text[k] == SIZE_MAX) continue;
            lsc_score_seq *q = &seqs[text[k]];
            bool reset, finished = true;
            if (errs[k].status) q->err = errs[k];
            else finished = score_take(&cur[k], ctxs[k], n_vocab, &reset);
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
    free(all);
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
