/* generate.c - the loops built on a context: generation (prompt once, then
 * one position per new token through the KV cache) and scoring (the
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

lsc_status lsc_generate(lsc_ctx *ctx, lsc_sampler *sampler, const int32_t *prompt,
                        size_t n_prompt, lsc_generate_params params, lsc_token_fn fn,
                        void *user_data, int32_t **new_ids, size_t *n_new, lsc_error *err) {
    if (new_ids) *new_ids = NULL;
    if (n_new) *n_new = 0;
    if (n_prompt == 0) return lsc_fail(err, LSC_ERR_INVALID_ARG, "generate: the prompt is empty");
    if (params.max_new_tokens <= 0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "generate: max_new_tokens must be > 0, got %d",
                        params.max_new_tokens);
    size_t max_new = (size_t)params.max_new_tokens;
    size_t n_ctx = (size_t)lsc_ctx_n_ctx(ctx);
    if (n_prompt > n_ctx || max_new > n_ctx - n_prompt)
        return lsc_fail(err, LSC_ERR_CONTEXT_FULL,
                        "generate: %zu prompt tokens + %zu new tokens is more than the context "
                        "of %zu tokens",
                        n_prompt, max_new, n_ctx);

    /* seq = prompt followed by the new tokens: what the repetition penalty sees */
    int32_t *seq = malloc((n_prompt + max_new) * sizeof *seq);
    if (!seq) return lsc_fail(err, LSC_ERR_NOMEM, "generate: out of memory");
    memcpy(seq, prompt, n_prompt * sizeof *seq);
    size_t len = n_prompt;

    lsc_ctx_reset(ctx);
    lsc_status st = lsc_ctx_forward(ctx, prompt, n_prompt, LSC_LOGITS_LAST, err);
    while (st == LSC_OK) {
        const float *row = lsc_ctx_logits(ctx, NULL);
        int32_t next;
        st = lsc_sampler_sample(sampler, row, (size_t)lsc_model_n_vocab(lsc_ctx_model(ctx)), seq, len, &next, err);
        if (st) break;
        seq[len++] = next;
        size_t step = len - n_prompt - 1;
        if (fn && fn(next, step, user_data)) break;
        if (next == params.eos_id || step + 1 == max_new) break;
        st = lsc_ctx_forward(ctx, &next, 1, LSC_LOGITS_LAST, err);
    }
    if (st) {
        free(seq);
        return st;
    }
    size_t made = len - n_prompt;
    if (n_new) *n_new = made;
    if (new_ids) {
        int32_t *res = malloc((made ? made : 1) * sizeof *res);
        if (!res) {
            free(seq);
            return lsc_fail(err, LSC_ERR_NOMEM, "generate: out of memory");
        }
        memcpy(res, seq + n_prompt, made * sizeof *res);
        *new_ids = res;
    }
    free(seq);
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
