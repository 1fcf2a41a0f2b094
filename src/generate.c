/* generate.c - the generation loop built on contexts: each prompt once, then
 * one position per new token through the KV cache, for one sequence or many
 * in shared steps. Scoring a text is score.c. */
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
