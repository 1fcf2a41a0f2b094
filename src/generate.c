/* generate.c - the loops built on a context: generation (prompt once, then
 * one position per new token through the KV cache, for one sequence or many
 * in shared steps) and scoring (the
 * log-probability of each actual next token, with Hugging Face's sliding
 * window for texts longer than the context). */
#include "internal.h"

#include <math.h>
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

lsc_status lsc_score(lsc_ctx *ctx, const int32_t *ids, size_t n, lsc_score_params params,
                     float *logprobs, lsc_score_result *result, lsc_error *err) {
    memset(result, 0, sizeof *result);
    if (n < 2)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "score: %zu token%s: scoring needs at least 2 (one to predict from, one "
                        "to predict)",
                        n, n == 1 ? "" : "s");
    size_t n_ctx = (size_t)lsc_ctx_n_ctx(ctx);
    if (params.max_length < 0 || params.stride < 0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: max_length and stride must be >= 0");
    size_t max_len = params.max_length ? (size_t)params.max_length : n_ctx;
    if (max_len > n_ctx)
        return lsc_fail(err, LSC_ERR_CONTEXT_FULL,
                        "score: a window of %zu tokens is more than the context of %zu", max_len,
                        n_ctx);
    if (max_len < 2)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "score: a window must hold at least 2 tokens");
    size_t stride = params.stride ? (size_t)params.stride : max_len / 2;
    if (stride > max_len)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "score: the stride %zu is longer than the window of %zu tokens (tokens "
                        "would be skipped)",
                        stride, max_len);
    size_t n_vocab = (size_t)lsc_model_n_vocab(lsc_ctx_model(ctx));

    double nll = 0.0;
    size_t prev_end = 0, windows = 0;
    for (size_t begin = 0;; begin += stride) {
        size_t end = begin + max_len < n ? begin + max_len : n;
        /* this window scores targets t in [max(prev_end, 1), end), predicted
         * from the row of position t - 1 */
        size_t first = prev_end > 1 ? prev_end : 1;
        lsc_ctx_reset(ctx);
        windows++;
        for (size_t c = begin; c < end; c += SCORE_CHUNK) {
            size_t m = end - c < SCORE_CHUNK ? end - c : SCORE_CHUNK;
            /* the chunk's rows are positions c .. c + m - 1, predicting c + 1 .. c + m */
            bool wanted = c + m >= first;
            lsc_status st = lsc_ctx_forward(ctx, ids + c, m, wanted ? LSC_LOGITS_ALL : LSC_LOGITS_LAST,
                                            err);
            if (st) return st;
            if (!wanted) continue;
            const float *rows = lsc_ctx_logits(ctx, NULL);
            for (size_t r = 0; r < m; r++) {
                size_t t = c + r + 1;
                if (t < first || t >= end) continue;
                const float *row = rows + r * n_vocab;
                double lp = (double)row[ids[t]] - lsc_logsumexp(row, n_vocab);
                if (logprobs) logprobs[t - 1] = (float)lp;
                nll -= lp;
            }
        }
        prev_end = end;
        if (end == n) break;
    }
    result->n_scored = n - 1;
    result->n_windows = windows;
    result->nll = nll;
    result->mean_nll = nll / (double)(n - 1);
    result->perplexity = exp(result->mean_nll);
    return LSC_OK;
}
