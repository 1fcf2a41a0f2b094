/* cli.c - helpers shared by the commands (see cli.h). */
#include "cli.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* True when a JSON text holds the escape \u0000, which cJSON would silently
 * cut the string at. */
bool cli_json_has_nul_escape(const char *s) {
    for (; *s; s++) {
        if (*s != '\\') continue;
        if (s[1] == 'u' && s[2] == '0' && s[3] == '0' && s[4] == '0' && s[5] == '0') return true;
        if (s[1]) s++;
    }
    return false;
}

bool cli_parse_id_list(const char *s, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return false;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char buf[32];
        long id;
        if (len == 0 || len >= sizeof buf) goto bad;
        memcpy(buf, p, len);
        buf[len] = '\0';
        if (!cli_parse_int(buf, INT32_MIN, INT32_MAX, &id)) goto bad;
        v[k++] = (int32_t)id;
        if (!comma) break;
        p = comma + 1;
    }
    *ids = v;
    *n = k;
    return true;
bad:
    free(v);
    return false;
}

const char *cli_model_dir(const cli_common *c) {
    static char *dir, *for_model, *for_revision; /* the last answer, kept */
    const char *model = c->model ? c->model : "gpt2";
    const char *rev = c->revision ? c->revision : "";
    if (dir && !strcmp(for_model, model) && !strcmp(for_revision, rev)) return dir;
    free(dir);
    free(for_model);
    free(for_revision);
    dir = for_model = for_revision = NULL;
    lsc_error err;
    if (lsc_hub_resolve(model, cli_hub_params(c->revision), &dir, &err) != LSC_OK) {
        cli_error("%s", err.message); /* says the offline way (lsc_hub_resolve) */
        return NULL;
    }
    for_model = strdup(model);
    for_revision = strdup(rev);
    if (!for_model || !for_revision) {
        cli_error("out of memory");
        return NULL; /* the next call resolves again */
    }
    return dir;
}

lsc_model *cli_load_model(const cli_common *c) {
    const char *dir = cli_model_dir(c);
    if (!dir) return NULL;
    lsc_model *m = NULL;
    lsc_error err;
    lsc_model_params mp = lsc_model_default_params();
    mp.weight_type = c->weights;
    mp.use_mmap = !c->no_mmap;
    if (lsc_model_load(dir, mp, &m, &err) != LSC_OK) {
        cli_error("%s", err.message);
        return NULL;
    }
    return m;
}

lsc_tokenizer *cli_load_tokenizer(const cli_common *c) {
    const char *dir = cli_model_dir(c);
    if (!dir) return NULL;
    lsc_tokenizer *t = NULL;
    lsc_error err;
    if (lsc_tokenizer_load(dir, &t, &err) != LSC_OK) {
        cli_error("%s", err.message);
        return NULL;
    }
    return t;
}

bool cli_input_ids(const cli_common *c, lsc_tokenizer *tok, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!!c->text == !!c->ids) {
        cli_error("give the input as exactly one of TEXT/--text or --ids");
        return false;
    }
    if (c->ids) {
        if (!cli_parse_id_list(c->ids, ids, n)) {
            cli_error("--ids: '%s' is not a comma-separated list of token ids", c->ids);
            return false;
        }
        return true;
    }
    if (!tok) {
        cli_error("--text needs a tokenizer");
        return false;
    }
    lsc_error err;
    if (lsc_tokenizer_encode(tok, c->text, strlen(c->text), c->no_special ? LSC_ENCODE_NO_SPECIAL : 0,
                             ids, n, &err) != LSC_OK) {
        cli_error("%s", err.message);
        return false;
    }
    if (*n == 0) {
        free(*ids);
        *ids = NULL;
        cli_error("--text is empty: there is no token to run the model on");
        return false;
    }
    return true;
}

/* The compiled [\p{C}\p{Z}] that cli_print_repr asks which characters Python
 * does not call printable; compiled on first use, kept for the process. */
static pcre2_code *nonprint_re;
static pcre2_match_data *nonprint_md;

void cli_print_repr(FILE *out, const char *s, size_t n) {
    if (!nonprint_re) {
        int ec;
        PCRE2_SIZE eo;
        nonprint_re = pcre2_compile((PCRE2_SPTR) "[\\p{C}\\p{Z}]", PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
        nonprint_md = nonprint_re ? pcre2_match_data_create_from_pattern(nonprint_re, NULL) : NULL;
    }
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    fputc(q, out);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (len > n - i) len = n - i;
        uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
        for (size_t k = 1; k < len; k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
        if (c == '\\' || c == (unsigned char)q) fprintf(out, "\\%c", c);
        else if (c == '\t') fputs("\\t", out);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\r') fputs("\\r", out);
        else if (c != ' ' && nonprint_md &&
                 pcre2_match(nonprint_re, (PCRE2_SPTR)s + i, len, 0, PCRE2_ANCHORED, nonprint_md, NULL) > 0)
            fprintf(out, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x", cp);
        else
            fwrite(s + i, 1, len, out);
        i += len;
    }
    fputc(q, out);
}

bool cli_check_logits(const lsc_model *m, const float *logits, size_t rows, size_t n_vocab,
                      size_t pos0) {
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n_vocab; i++) {
            float v = logits[r * n_vocab + i];
            if (isfinite(v)) continue;
            lsc_error err;
            if (lsc_model_check_finite(m, &err) != LSC_OK)
                cli_error("%s", err.message);
            else
                cli_error("the logit of token %zu at position %zu is %s: not finite (the weights "
                          "are finite; a hook or overflow?)",
                          i, pos0 + r, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
            return false;
        }
    return true;
}
