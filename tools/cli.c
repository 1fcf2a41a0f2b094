/* cli.c - helpers shared by the commands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("logitscope: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool cli_parse_int(const char *s, long min, long max, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
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

int cli_common_option(cli_common *c, int opt, const char *arg) {
    long v;
    switch (opt) {
    case OPT_MODEL: c->model = arg; return 1;
    case OPT_REVISION: c->revision = arg; return 1;
    case OPT_TEXT: c->text = arg; return 1;
    case OPT_IDS: c->ids = arg; return 1;
    case OPT_JSON: c->json = true; return 1;
    case OPT_NO_SPECIAL: c->no_special = true; return 1;
    case OPT_THREADS:
        if (!cli_parse_int(arg, 0, 1024, &v)) {
            cli_error("--threads: '%s' is not a number from 0 to 1024", arg);
            return -1;
        }
        c->threads = (int)v;
        return 1;
    }
    return 0;
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
        cli_error("%s", err.message);
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
    if (lsc_model_load(dir, lsc_model_default_params(), &m, &err) != LSC_OK) {
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
        cli_error("give the input as exactly one of --text or --ids");
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
