/* config.c - config.json -> lsc_config, with transformers' GPT2Config
 * defaults and strict checks (see config.h). */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u << 20)

/* The key `name`, or its transformers alias (attribute_map) when absent. */
static const cJSON *get_key(const cJSON *root, const char *name, const char *alias) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j && alias) j = cJSON_GetObjectItemCaseSensitive(root, alias);
    return j;
}

/* Reads an integer key in [min, max] into *out, leaving the default when the
 * key is absent (or null when `null_ok`). */
static lsc_status get_int(const char *path, const cJSON *root, const char *name,
                          const char *alias, long min, long max, bool null_ok, int *out,
                          lsc_error *err) {
    const cJSON *j = get_key(root, name, alias);
    if (!j || (null_ok && cJSON_IsNull(j))) return LSC_OK;
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" must be an integer", path, j->string);
    if (!(j->valuedouble >= (double)min && j->valuedouble <= (double)max))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" = %g is outside [%ld, %ld]", path,
                        j->string, j->valuedouble, min, max);
    *out = (int)j->valuedouble;
    return LSC_OK;
}

/* Reads a boolean key (JSON true/false) into *out, keeping the default when
 * absent. */
static lsc_status get_bool(const char *path, const cJSON *root, const char *name, int *out,
                           lsc_error *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!j) return LSC_OK;
    if (!cJSON_IsBool(j))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" must be true or false", path, name);
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return LSC_OK;
}

static const struct {
    const char *name;
    lsc_act act;
} activations[] = {
    {"gelu_new", LSC_ACT_GELU_NEW},      {"gelu_pytorch_tanh", LSC_ACT_GELU_NEW},
    {"gelu_python_tanh", LSC_ACT_GELU_NEW}, {"gelu", LSC_ACT_GELU},
    {"gelu_python", LSC_ACT_GELU},       {"gelu_fast", LSC_ACT_GELU_FAST},
    {"quick_gelu", LSC_ACT_QUICK_GELU},  {"relu", LSC_ACT_RELU},
    {"relu6", LSC_ACT_RELU6},            {"silu", LSC_ACT_SILU},
    {"swish", LSC_ACT_SILU},             {"sigmoid", LSC_ACT_SIGMOID},
    {"tanh", LSC_ACT_TANH},              {"linear", LSC_ACT_LINEAR},
};

lsc_status lsc_config_parse(const char *path, const char *json, size_t len, lsc_config *cfg,
                            lsc_act *act, lsc_error *err) {
    lsc_config c = {
        .n_layer = 12, .n_head = 12, .n_embd = 768, .n_ctx = 1024, .n_vocab = 50257,
        .n_inner = 0, .layer_norm_epsilon = 1e-5f, .scale_attn_weights = 1,
        .scale_attn_by_inverse_layer_idx = 0, .reorder_and_upcast_attn = 0,
        .tie_word_embeddings = 1, .activation_function = "gelu_new",
        .embd_pdrop = 0.1f, .attn_pdrop = 0.1f, .resid_pdrop = 0.1f,
    };
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return lsc_fail(err, LSC_ERR_FORMAT, "%s: not valid JSON", path);
    lsc_status st = LSC_OK;
    if (!cJSON_IsObject(root)) {
        st = lsc_fail(err, LSC_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && !(cJSON_IsString(mt) && !strcmp(mt->valuestring, "gpt2"))) {
        st = lsc_fail(err, LSC_ERR_UNSUPPORTED, "%s: \"model_type\" is %s%.40s%s, only \"gpt2\" is supported",
                      path, cJSON_IsString(mt) ? "\"" : "", cJSON_IsString(mt) ? mt->valuestring : "not a string",
                      cJSON_IsString(mt) ? "\"" : "");
        goto done;
    }
    int n_ctx_alt = 0;
    const cJSON *npos = get_key(root, "n_positions", "max_position_embeddings");
    if ((st = get_int(path, root, "n_layer", "num_hidden_layers", 1, 1024, false, &c.n_layer, err)) ||
        (st = get_int(path, root, "n_head", "num_attention_heads", 1, 4096, false, &c.n_head, err)) ||
        (st = get_int(path, root, "n_embd", "hidden_size", 1, 65536, false, &c.n_embd, err)) ||
        (st = get_int(path, root, "n_positions", "max_position_embeddings", 1, 1 << 20, false, &c.n_ctx, err)) ||
        (st = get_int(path, root, "n_ctx", NULL, 1, 1 << 20, false, &n_ctx_alt, err)) ||
        (st = get_int(path, root, "vocab_size", NULL, 1, 1 << 24, false, &c.n_vocab, err)) ||
        (st = get_int(path, root, "n_inner", NULL, 1, 1 << 20, true, &c.n_inner, err)) ||
        (st = get_bool(path, root, "scale_attn_weights", &c.scale_attn_weights, err)) ||
        (st = get_bool(path, root, "scale_attn_by_inverse_layer_idx", &c.scale_attn_by_inverse_layer_idx, err)) ||
        (st = get_bool(path, root, "reorder_and_upcast_attn", &c.reorder_and_upcast_attn, err)) ||
        (st = get_bool(path, root, "tie_word_embeddings", &c.tie_word_embeddings, err)))
        goto done;
    if (n_ctx_alt) {
        if (!npos) {
            c.n_ctx = n_ctx_alt;
        } else if (n_ctx_alt != c.n_ctx) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: \"n_ctx\" = %d contradicts \"n_positions\" = %d",
                          path, n_ctx_alt, c.n_ctx);
            goto done;
        }
    }
    if (c.n_embd % c.n_head) {
        st = lsc_fail(err, LSC_ERR_FORMAT, "%s: \"n_embd\" = %d is not a multiple of \"n_head\" = %d",
                      path, c.n_embd, c.n_head);
        goto done;
    }
    if (!c.n_inner) c.n_inner = 4 * c.n_embd;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble >= 0 && eps->valuedouble < 1)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: \"layer_norm_epsilon\" must be a number in [0, 1)", path);
            goto done;
        }
        c.layer_norm_epsilon = (float)eps->valuedouble;
    }
    struct { const char *name; float *out; } drops[] = {
        {"embd_pdrop", &c.embd_pdrop}, {"attn_pdrop", &c.attn_pdrop}, {"resid_pdrop", &c.resid_pdrop}};
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, drops[i].name);
        if (!d) continue;
        if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble <= 1)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: \"%s\" must be a number in [0, 1]", path,
                          drops[i].name);
            goto done;
        }
        *drops[i].out = (float)d->valuedouble;
    }
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    lsc_act a = LSC_ACT_GELU_NEW;
    if (af) {
        if (!cJSON_IsString(af)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: \"activation_function\" must be a string", path);
            goto done;
        }
        size_t i, n = sizeof activations / sizeof activations[0];
        for (i = 0; i < n; i++)
            if (!strcmp(af->valuestring, activations[i].name)) break;
        if (i == n) {
            st = lsc_fail(err, LSC_ERR_UNSUPPORTED,
                          "%s: \"activation_function\" \"%.40s\" is not supported (gelu_new, gelu, "
                          "gelu_pytorch_tanh, gelu_fast, quick_gelu, relu, relu6, silu, sigmoid, tanh, linear)",
                          path, af->valuestring);
            goto done;
        }
        a = activations[i].act;
        snprintf(c.activation_function, sizeof c.activation_function, "%s", activations[i].name);
    }
    int cross = 0;
    if ((st = get_bool(path, root, "add_cross_attention", &cross, err))) goto done;
    if (cross) {
        st = lsc_fail(err, LSC_ERR_UNSUPPORTED, "%s: \"add_cross_attention\" = true is not supported", path);
        goto done;
    }
    *cfg = c;
    *act = a;
done:
    cJSON_Delete(root);
    return st;
}

lsc_status lsc_config_load(const char *path, lsc_config *cfg, lsc_act *act, lsc_error *err) {
    char *text;
    size_t len;
    lsc_status st = lsc_read_file(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (st) return st;
    st = lsc_config_parse(path, text, len, cfg, act, err);
    lsc_free(text);
    return st;
}
