/* lm.c - what the model commands (next, rank, sample, generate, score,
 * tour) share: loading model + tokenizer + context, reading the input ids,
 * --pos, the sampler flags, token display and JSON output (see cli.h). */
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool cli_lm_open(const cli_common *c, bool need_input, cli_lm *lm) {
    memset(lm, 0, sizeof *lm);
    lm->model = cli_load_model(c);
    if (!lm->model) return false;
    lm->tok = cli_load_tokenizer(c);
    if (!lm->tok) return false;
    lm->n_vocab = (size_t)lsc_model_n_vocab(lm->model);
    lsc_ctx_params cp = lsc_ctx_default_params();
    cp.n_threads = c->threads;
    lsc_error err;
    if (lsc_ctx_new(lm->model, cp, &lm->ctx, &err) != LSC_OK) {
        cli_error("%s", err.message);
        return false;
    }
    if (!cli_hooks_attach(c, lm->ctx, lm->tok, &lm->hooks)) return false;
    if (!need_input) return true;
    if (!cli_input_ids(c, lm->tok, &lm->ids, &lm->n)) return false;
    for (size_t i = 0; i < lm->n; i++)
        if (lm->ids[i] < 0 || (size_t)lm->ids[i] >= lm->n_vocab) {
            cli_error("--ids: id %d at position %zu is outside the model's vocabulary (0..%zu)",
                      (int)lm->ids[i], i, lm->n_vocab - 1);
            return false;
        }
    return true;
}

void cli_lm_close(cli_lm *lm) {
    free(lm->ids); /* from cli_input_ids: malloc'd (--ids) or lsc_free-compatible */
    cli_hooks_free(lm->hooks);
    lsc_ctx_free(lm->ctx);
    lsc_tokenizer_free(lm->tok);
    lsc_model_free(lm->model);
    memset(lm, 0, sizeof *lm);
}

bool cli_parse_pos(const char *arg, size_t n, size_t *pos) {
    long v;
    if (!cli_parse_int(arg, LONG_MIN, LONG_MAX, &v) || v >= (long)n || v < -(long)n) {
        cli_error("--pos: '%s' is outside the sequence of %zu token%s (use 0..%zu, or -%zu..-1 "
                  "from the end)",
                  arg, n, n == 1 ? "" : "s", n - 1, n);
        return false;
    }
    *pos = v < 0 ? (size_t)((long)n + v) : (size_t)v;
    return true;
}

const float *cli_lm_row(cli_lm *lm, size_t pos) {
    lsc_error err;
    lsc_ctx_reset(lm->ctx);
    if (lsc_ctx_forward(lm->ctx, lm->ids, pos + 1, LSC_LOGITS_LAST, &err) != LSC_OK) {
        cli_error("%s", err.message);
        return NULL;
    }
    const float *row = lsc_ctx_logits(lm->ctx, NULL);
    return cli_check_logits(lm->model, row, 1, lm->n_vocab, pos) ? row : NULL;
}

char *cli_token_text(const lsc_tokenizer *tok, int32_t id, size_t *len) {
    char *s = NULL;
    size_t l = 0;
    if (lsc_tokenizer_decode(tok, &id, 1, &s, &l, NULL) != LSC_OK) {
        s = calloc(1, 1);
        l = 0;
    }
    if (len) *len = l;
    return s;
}

void cli_print_token(FILE *out, const lsc_tokenizer *tok, int32_t id) {
    size_t len;
    char *s = cli_token_text(tok, id, &len);
    cli_print_repr(out, s ? s : "", s ? len : 0);
    lsc_free(s);
}

/* The ids of `text` as a new array (lsc_free), or NULL after printing the
 * error. */
static int32_t *encode(lsc_tokenizer *tok, const char *flag, const char *text, bool no_special,
                       size_t *n) {
    int32_t *ids = NULL;
    lsc_error err;
    if (lsc_tokenizer_encode(tok, text, strlen(text), no_special ? LSC_ENCODE_NO_SPECIAL : 0, &ids,
                             n, &err) != LSC_OK) {
        cli_error("%s: %s", flag, err.message);
        return NULL;
    }
    return ids;
}

bool cli_single_token(lsc_tokenizer *tok, const char *flag, const char *text, bool no_special,
                      int32_t *id) {
    size_t n = 0;
    int32_t *ids = encode(tok, flag, text, no_special, &n);
    if (!ids) return false;
    if (n == 1) {
        *id = ids[0];
        lsc_free(ids);
        return true;
    }
    char list[128] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used + 16 < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", i ? ", " : "", (int)ids[i]);
    if (n > 0 && used + 16 >= sizeof list) snprintf(list + used, sizeof list - used, ", ...");
    lsc_free(ids);
    /* GPT-2's words mostly start with their space: suggest the spaced form
     * when that is one token */
    char hint[160] = "";
    size_t len = strlen(text);
    if (n > 0 && text[0] != ' ' && len < 100) {
        char spaced[104];
        snprintf(spaced, sizeof spaced, " %s", text);
        size_t m = 0;
        int32_t *sp = encode(tok, flag, spaced, no_special, &m);
        if (sp && m == 1)
            snprintf(hint, sizeof hint, "; '%s' with the leading space is one token, id %d",
                     spaced, (int)sp[0]);
        lsc_free(sp);
    }
    cli_error("%s '%s' is %zu tokens%s%s%s, not one%s", flag, text, n, n ? " (" : "", list,
              n ? ")" : "", hint);
    return false;
}
