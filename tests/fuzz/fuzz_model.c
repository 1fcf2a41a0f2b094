/* fuzz_model.c - libFuzzer target for a whole model folder: the input is
 * split at its first "\n@@\n" into config.json and model.safetensors, written
 * to a temporary folder and loaded with lsc_model_load, so the fuzzer reaches
 * the checks of tensor shapes against the configuration. A model that loads
 * is run on up to 3 tokens (a context of at most 4 positions) with a hook on
 * every point that aborts at the point the input's last byte picks: the
 * forward must fail with LSC_ERR_HOOK and leave the cache as it was, and the
 * same forward without hooks must then succeed. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lsc_fuzz_model_XXXXXX";

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

/* Writes n bytes to dir/name. */
static void put(const char *name, const uint8_t *data, size_t n) {
    char *p = lsc_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    require(f && fwrite(data, 1, n, f) == n && fclose(f) == 0);
    free(p);
}

static volatile float sink;

/* Reads every value of the activation (so ASan sees its whole extent), counts
 * down *user_data and aborts the forward pass at zero. */
static int abort_at(lsc_activation *act, void *user_data) {
    int *left = user_data;
    require(act->data != NULL && act->n_dims >= 2 && act->n_dims <= 4);
    size_t n = 1;
    for (int i = 0; i < act->n_dims; i++) n *= (size_t)act->shape[i];
    float s = 0;
    for (size_t i = 0; i < n; i++) s += act->data[i];
    sink += s;
    return --*left == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = 0;
    if (!ready && !(ready = mkdtemp(dir) != NULL)) abort();
    const uint8_t *sep = memmem(data, size, "\n@@\n", 4);
    if (!sep) return 0;
    put("config.json", data, (size_t)(sep - data));
    put("model.safetensors", sep + 4, size - (size_t)(sep - data) - 4);
    lsc_model *m = (lsc_model *)1;
    lsc_error err = {0};
    lsc_status st = lsc_model_load(dir, lsc_model_default_params(), &m, &err);
    if (st != LSC_OK) {
        require(m == NULL && err.status == st && err.message[0] && !strchr(err.message, '\n'));
        return 0;
    }
    lsc_ctx *ctx = NULL;
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_ctx = lsc_model_n_ctx(m) < 4 ? lsc_model_n_ctx(m) : 4;
    cp.n_threads = 1;
    require(lsc_ctx_new(m, cp, &ctx, &err) == LSC_OK);
    int32_t ids[3];
    size_t n = (size_t)(cp.n_ctx < 3 ? cp.n_ctx : 3);
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(data[i] % lsc_model_n_vocab(m));
    int left = data[size - 1] % (lsc_model_n_hook_points(m) + 1) + 1, h = 0;
    require(lsc_ctx_add_hook(ctx, "*", abort_at, &left, &h, &err) == LSC_OK);
    st = lsc_ctx_forward(ctx, ids, n, LSC_LOGITS_ALL, &err);
    require(st == LSC_OK || (st == LSC_ERR_HOOK && lsc_ctx_n_past(ctx) == 0));
    lsc_ctx_remove_hook(ctx, h);
    lsc_ctx_reset(ctx);
    require(lsc_ctx_forward(ctx, ids, n, LSC_LOGITS_ALL, &err) == LSC_OK);
    size_t rows;
    require(lsc_ctx_logits(ctx, &rows) != NULL && rows == n);
    require(lsc_ctx_forward(ctx, ids, 1, LSC_LOGITS_LAST, &err) ==
            (n + 1 <= (size_t)cp.n_ctx ? LSC_OK : LSC_ERR_CONTEXT_FULL));
    lsc_ctx_free(ctx);
    lsc_model_free(m);
    return 0;
}
