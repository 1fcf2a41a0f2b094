/* api_tokenizer.c - vLLM's tokenizer endpoints, which lm-evaluation-harness's
 * tokenizer_backend=remote calls: POST /tokenize, POST /detokenize,
 * GET /tokenizer_info. */
#include "server.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

char *token_bpe_string(const lsc_tokenizer *tok, int32_t id) {
    size_t len;
    const char *b = lsc_tokenizer_token_bytes(tok, id, &len);
    if (!b) return NULL;
    char *s = malloc(len * 2 + 1), *p = s;
    if (!s) return NULL;
    for (size_t i = 0; i < len; i++) {
        /* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
         * themselves, the other 68 take code points 256.. in byte order */
        unsigned c = (unsigned char)b[i], cp;
        if ((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)) {
            cp = c;
        } else {
            unsigned n = 0;
            for (unsigned x = 0; x < c; x++)
                n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
            cp = 256 + n;
        }
        if (cp < 0x80) {
            *p++ = (char)cp;
        } else {
            *p++ = (char)(0xC0 | (cp >> 6));
            *p++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    *p = '\0';
    return s;
}

static cJSON *parse_object(const http_request *req, http_reply *rep) {
    cJSON *root = cJSON_ParseWithLength(req->body, req->body_len);
    if (!root) {
        reply_error(rep, 400, NULL, "the body is not valid JSON");
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        reply_error(rep, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

void api_tokenize(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    cJSON *root = parse_object(req, rep);
    if (!root) return;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(root, "add_special_tokens");
    const cJSON *strs = cJSON_GetObjectItemCaseSensitive(root, "return_token_strs");
    if (!cJSON_IsString(p)) {
        cJSON_Delete(root);
        reply_error(rep, 400, "prompt", "'prompt' must be a string");
        return;
    }
    if ((add && !cJSON_IsNull(add) && !cJSON_IsBool(add)) ||
        (strs && !cJSON_IsNull(strs) && !cJSON_IsBool(strs))) {
        cJSON_Delete(root);
        reply_error(rep, 400, NULL, "'add_special_tokens' and 'return_token_strs' must be true or false");
        return;
    }
    int32_t *ids;
    size_t n;
    lsc_error err;
    /* GPT-2 adds no special tokens (no BOS), so add_special_tokens changes
     * nothing; "<|endoftext|>" in the text is id 50256 either way, as in
     * transformers' tokenizer */
    if (server_encode(srv, p->valuestring, strlen(p->valuestring), &ids, &n, &err) != LSC_OK) {
        cJSON_Delete(root);
        reply_error(rep, 400, "prompt", "%s", err.message);
        return;
    }
    int want_strs = cJSON_IsTrue(strs);
    cJSON_Delete(root);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddNumberToObject(o, "max_model_len", srv->n_ctx);
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(tokens, cJSON_CreateNumber(ids[i]));
    if (want_strs) {
        cJSON *ts = cJSON_AddArrayToObject(o, "token_strs");
        for (size_t i = 0; i < n; i++) {
            char *s = token_bpe_string(srv->tok, ids[i]);
            cJSON_AddItemToArray(ts, cJSON_CreateString(s ? s : ""));
            free(s);
        }
    } else {
        cJSON_AddNullToObject(o, "token_strs");
    }
    lsc_free(ids);
    reply_json(rep, 200, o);
}

void api_detokenize(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    cJSON *root = parse_object(req, rep);
    if (!root) return;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    if (!cJSON_IsArray(t)) {
        cJSON_Delete(root);
        reply_error(rep, 400, "tokens", "'tokens' must be a list of token ids");
        return;
    }
    size_t k = (size_t)cJSON_GetArraySize(t), n = 0;
    int32_t *ids = malloc((k ? k : 1) * sizeof *ids);
    if (!ids) {
        cJSON_Delete(root);
        reply_error(rep, 500, NULL, "out of memory");
        return;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, t) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d >= 0 && d < srv->n_vocab) || d != floor(d)) {
            free(ids);
            cJSON_Delete(root);
            reply_error(rep, 400, "tokens", "tokens[%zu] is not a token id in 0..%d", n,
                        srv->n_vocab - 1);
            return;
        }
        ids[n++] = (int32_t)d;
    }
    cJSON_Delete(root);
    char *text;
    size_t len;
    lsc_error err;
    lsc_status st = lsc_tokenizer_decode(srv->tok, ids, n, &text, &len, &err);
    free(ids);
    if (st != LSC_OK) {
        reply_error(rep, 400, "tokens", "%s", err.message);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prompt", text);
    lsc_free(text);
    reply_json(rep, 200, o);
}

void api_tokenizer_info(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "tokenizer_class", "GPT2Tokenizer");
    const char *eos = "<|endoftext|>";
    if (srv->eos_id >= 0) {
        cJSON_AddStringToObject(o, "eos_token", eos);
        cJSON_AddStringToObject(o, "bos_token", eos);
        cJSON_AddStringToObject(o, "unk_token", eos);
        cJSON_AddNumberToObject(o, "eos_token_id", srv->eos_id);
        cJSON_AddNumberToObject(o, "bos_token_id", srv->eos_id);
    } else {
        cJSON_AddNullToObject(o, "eos_token");
    }
    cJSON_AddNullToObject(o, "pad_token");
    cJSON_AddBoolToObject(o, "add_bos_token", 0);
    cJSON_AddNumberToObject(o, "model_max_length", srv->n_ctx);
    cJSON_AddNumberToObject(o, "vocab_size", lsc_tokenizer_n_vocab(srv->tok));
    reply_json(rep, 200, o);
}
