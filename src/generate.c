/* generate.c - the generation loop built on a context: the prompt once,
 * then one position per new token through the KV cache. Scoring a text is
 * score.c. */
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
