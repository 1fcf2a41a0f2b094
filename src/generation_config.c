/* generation_config.c - generation_config.json -> lsc_generation_config, with
 * transformers' GenerationConfig defaults and strict checks, and the number
 * of new tokens model.generate(input_ids) makes when given no length. */
#include "internal.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GENCONFIG_MAX_BYTES (1u << 20)

/* The key `name` of `root` as a number in [lo, hi] (`lo_open`: > lo), into
 * *out; absent or null keeps *out. `integer` requires a whole number. */
static lsc_status get_num(const char *path, const cJSON *root, const char *name, double lo,
                          bool lo_open, double hi, bool integer, double *out, lsc_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j || cJSON_IsNull(j)) return LSC_OK;
    double v = j->valuedouble;
    if (!cJSON_IsNumber(j) || (integer && v != floor(v)))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" must be %s", path, name,
                        integer ? "an integer" : "a number");
    if (!(lo_open ? v > lo : v >= lo) || !(v <= hi))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" = %g is outside %c%g, %g]", path, name,
                        v, lo_open ? '(' : '[', lo, hi);
    *out = v;
    return LSC_OK;
}

/* Fills *g from the parsed object `root` of file `path`. */
static lsc_status parse(const char *path, const cJSON *root, lsc_generation_config *g,
                        lsc_error *err) {
    lsc_sampler_params *sp = &g->sampler;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "do_sample");
    if (ds && !cJSON_IsNull(ds)) {
        if (!cJSON_IsBool(ds))
            return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"do_sample\" must be true or false", path);
        sp->do_sample = cJSON_IsTrue(ds) ? 1 : 0;
    }
    double t = sp->temperature, k = sp->top_k, p = sp->top_p, mp = sp->min_p,
           rp = sp->repetition_penalty, mnt = 0, ml = 0;
    lsc_status st;
    if ((st = get_num(path, root, "temperature", 0, false, HUGE_VAL, false, &t, err)) ||
        (st = get_num(path, root, "top_k", 0, false, INT_MAX, true, &k, err)) ||
        (st = get_num(path, root, "top_p", 0, true, 1, false, &p, err)) ||
        (st = get_num(path, root, "min_p", 0, false, 1, false, &mp, err)) ||
        (st = get_num(path, root, "repetition_penalty", 0, true, HUGE_VAL, false, &rp, err)) ||
        (st = get_num(path, root, "max_new_tokens", 1, false, INT_MAX, true, &mnt, err)) ||
        (st = get_num(path, root, "max_length", 1, false, INT_MAX, true, &ml, err)))
        return st;
    sp->temperature = (float)t;
    sp->top_k = (int)k;
    sp->top_p = p;
    sp->min_p = (float)mp;
    sp->repetition_penalty = (float)rp;
    g->max_new_tokens = (int)mnt;
    g->max_length = (int)ml;

    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (eos && cJSON_IsArray(eos)) {
        if (cJSON_GetArraySize(eos) != 1)
            return lsc_fail(err, LSC_ERR_UNSUPPORTED,
                            "%s: \"eos_token_id\" lists %d ids; only a single id is supported",
                            path, cJSON_GetArraySize(eos));
        eos = cJSON_GetArrayItem(eos, 0);
    }
    if (eos && !cJSON_IsNull(eos)) {
        double v = eos->valuedouble;
        if (!cJSON_IsNumber(eos) || v != floor(v) || v < 0 || v > INT32_MAX)
            return lsc_fail(err, LSC_ERR_FORMAT,
                            "%s: \"eos_token_id\" must be a token id (an integer >= 0) or a list "
                            "of one",
                            path);
        g->eos_id = (int32_t)v;
    }
    return LSC_OK;
}

lsc_status lsc_generation_config_load(const char *dir, lsc_generation_config *out,
                                      lsc_error *err) {
    memset(out, 0, sizeof *out);
    out->sampler = lsc_sampler_default_params();
    out->eos_id = -1;
    char *path = lsc_path_join(dir, "generation_config.json");
    if (!path) return lsc_fail(err, LSC_ERR_NOMEM, "generation config: out of memory");
    char *text = NULL;
    size_t len = 0;
    lsc_status st = lsc_read_file(path, GENCONFIG_MAX_BYTES, &text, &len, err);
    if (st == LSC_ERR_NOT_FOUND) {
        free(path);
        return LSC_OK;
    }
    if (st == LSC_OK) {
        out->found = 1;
        cJSON *root = cJSON_ParseWithLength(text, len);
        if (!root) st = lsc_fail(err, LSC_ERR_FORMAT, "%s: not valid JSON", path);
        else if (!cJSON_IsObject(root)) st = lsc_fail(err, LSC_ERR_FORMAT, "%s: not a JSON object", path);
        else st = parse(path, root, out, err);
        cJSON_Delete(root);
    }
    free(text);
    free(path);
    if (st) { /* leave the defaults, not half a file */
        memset(out, 0, sizeof *out);
        out->sampler = lsc_sampler_default_params();
        out->eos_id = -1;
    }
    return st;
}

lsc_status lsc_generation_config_max_new(const lsc_generation_config *cfg, size_t n_prompt,
                                         size_t n_ctx, int *max_new, lsc_error *err) {
    *max_new = 0;
    if (cfg && cfg->max_new_tokens > 0) {
        *max_new = cfg->max_new_tokens;
        return LSC_OK;
    }
    if (cfg && cfg->max_length > 0) {
        if (n_prompt >= (size_t)cfg->max_length)
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "generate: the prompt has %zu tokens but generation_config.json's "
                            "max_length is %d (prompt included); give --max-new-tokens",
                            n_prompt, cfg->max_length);
        *max_new = cfg->max_length - (int)n_prompt;
        return LSC_OK;
    }
    if (n_prompt >= n_ctx) /* transformers caps 20 + n_prompt at max_position_embeddings */
        return lsc_fail(err, LSC_ERR_CONTEXT_FULL,
                        "generate: the prompt's %zu tokens fill the context of %zu", n_prompt,
                        n_ctx);
    *max_new = n_ctx - n_prompt < 20 ? (int)(n_ctx - n_prompt) : 20;
    return LSC_OK;
}
