/* score.c - scoring a text: the log-probability of each actual next token,
 * with Hugging Face's sliding window for texts longer than the context. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
