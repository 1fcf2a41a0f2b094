/* fuzz_model.c - libFuzzer target for loading a whole model folder: the input
 * is split at its first "\n@@\n" into config.json and model.safetensors,
 * written to a temporary folder and loaded. Loading must succeed or fail with
 * a status and a message; on success a short forward pass (with a hook on
 * every point) must run to completion without touching memory it should not. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lsc_fuzz_model_XXXXXX";

static void put(const char *name, const uint8_t *data, size_t n) {
    char *p = lsc_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) abort();
    fwrite(data, 1, n, f);
    fclose(f);
    free(p);
}

/* Reads every value of the activation (so ASan sees the whole extent). */
static int touch(lsc_activation *a, void *ud) {
    size_t n = 1;
    for (int i = 0; i < a->n_dims; i++) n *= (size_t)a->shape[i];
    float s = 0;
    for (size_t i = 0; i < n; i++) s += a->data[i];
    *(float *)ud += s;
    return 0;
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
        if (m != NULL || err.message[0] == '\0' || err.status != st) abort();
        return 0;
    }
    lsc_ctx *c = NULL;
    float sink = 0;
    if (lsc_ctx_new(m, lsc_ctx_default_params(), &c, &err) == LSC_OK) {
        int h;
        if (lsc_ctx_add_hook(c, "*", touch, &sink, &h, &err)) abort();
        int32_t ids[3] = {0, lsc_model_n_vocab(m) - 1, 0};
        size_t n = lsc_model_n_ctx(m) < 3 ? (size_t)lsc_model_n_ctx(m) : 3;
        if (lsc_ctx_forward(c, ids, n, LSC_LOGITS_ALL, &err)) abort();
        /* a second call fits exactly when 2n positions do */
        lsc_status again = lsc_ctx_forward(c, ids, n, LSC_LOGITS_LAST, &err);
        if (again != (lsc_model_n_ctx(m) >= (int)(2 * n) ? LSC_OK : LSC_ERR_CONTEXT_FULL)) abort();
        lsc_ctx_free(c);
    }
    lsc_model_free(m);
    return 0;
}
