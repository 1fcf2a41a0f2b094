/* hooks.c - the CLI's interventions (--hook) and activation cache (--cache,
 * --cache-out), built on lsc_ctx_add_hook (see cli.h and hookspec.h).
 *
 * Positions: a hook or cache callback sees the rows of absolute positions
 * [pos0, pos0 + n_pos) of the current forward. The attention maps
 * (hook_attn_scores, hook_pattern: [H, T, P]) hold a position's values in H
 * segments of P; every other point holds them in one contiguous row. */
#include "cli.h"
#include "hookspec.h"
#include "npy.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT_BYTES ((size_t)1 << 33) /* .npy/.npz read for add/patch */

/* One --hook: its parsed spec and what its op needs. */
typedef struct hook_state {
    hookspec spec;
    const char *text; /* the --hook argument, for messages */
    int32_t token;    /* set */
    npy_array vec;    /* add */
    npz_file patch;   /* patch */
    long hits;        /* positions rewritten so far */
    char msg[512];    /* why the hook aborted */
} hook_state;

/* One cached point: a row per absolute position (NULL when not computed). */
typedef struct cache_entry {
    int point;
    const char *name;
    bool attn_map;         /* [H, T, P] layout */
    int n_dims;            /* the point's dims */
    int64_t shape[4];      /* its shape for T = 1 */
    float **rows;          /* [n_rows] */
    size_t *row_len;       /* [n_rows] floats in each */
    size_t n_rows, cap;
    bool failed;
} cache_entry;

struct cli_hooks {
    lsc_ctx *ctx;
    const lsc_model *model;
    lsc_tokenizer *own_tok; /* loaded here for set:TOKEN */
    hook_state **hooks;
    int n_hooks;
    int *handles; /* every registration, to remove them */
    int n_handles;
    cache_entry *cache;
    int n_cache;
    const char *cache_out;
};

/* True for the points whose layout is [H, T, P]. */
static bool is_attn_map(const char *name) {
    size_t n = strlen(name);
    return (n >= 16 && !strcmp(name + n - 16, "hook_attn_scores")) ||
           (n >= 12 && !strcmp(name + n - 12, "hook_pattern"));
}

/* How one position's values lie in an activation. */
typedef struct rowview {
    int n_seg;      /* segments per position: H for points with heads, else 1 */
    size_t seg_len; /* floats per segment */
    bool attn_map;
} rowview;

static rowview view_of(const lsc_activation *a) {
    rowview v = {.n_seg = 1, .seg_len = 1, .attn_map = is_attn_map(a->name)};
    if (v.attn_map) {
        v.n_seg = (int)a->shape[0];
        v.seg_len = (size_t)a->shape[2];
    } else if (a->n_dims == 3) { /* [T, H, D]: a segment per head */
        v.n_seg = (int)a->shape[1];
        v.seg_len = (size_t)a->shape[2];
    } else {
        for (int d = 1; d < a->n_dims; d++) v.seg_len *= (size_t)a->shape[d];
    }
    return v;
}

/* Segment s of query row t. */
static float *seg_ptr(const lsc_activation *a, const rowview *v, int t, int s) {
    if (v->attn_map) return a->data + ((size_t)s * a->n_pos + t) * v->seg_len;
    return a->data + ((size_t)t * (size_t)v->n_seg + (size_t)s) * v->seg_len;
}

/* Sets the abort reason and returns 1 (abort the forward pass). */
static int hook_abort(hook_state *hs, lsc_activation *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int hook_abort(hook_state *hs, lsc_activation *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = snprintf(hs->msg, sizeof hs->msg, "--hook '%.200s': ", hs->text);
    vsnprintf(hs->msg + k, sizeof hs->msg - (size_t)k, fmt, ap);
    va_end(ap);
    a->message = hs->msg;
    return 1;
}

/* The --hook callback: applies the op to every selected position. */
static int intervene(lsc_activation *a, void *user_data) {
    hook_state *hs = user_data;
    const hookspec *sp = &hs->spec;
    rowview v = view_of(a);
    long end = (long)a->pos0 + a->n_pos;
    size_t row = (size_t)v.n_seg * v.seg_len;
    const npy_array *src = sp->op == HOOK_OP_PATCH ? npz_find(&hs->patch, a->name) : NULL;
    for (int t = 0; t < a->n_pos; t++) {
        long p = (long)a->pos0 + t;
        if (!hookspec_selects(sp, p, end)) continue;
        hs->hits++;
        if (sp->op == HOOK_OP_SET) {
            float *x = seg_ptr(a, &v, t, 0);
            float mx = x[0], mn = x[0];
            for (size_t j = 1; j < row; j++) {
                mx = x[j] > mx ? x[j] : mx;
                mn = x[j] < mn ? x[j] : mn;
            }
            double base = sp->base == HOOK_BASE_MAX ? mx : sp->base == HOOK_BASE_MIN ? mn : 0;
            x[hs->token] = (float)(base + sp->value);
            continue;
        }
        if (sp->op == HOOK_OP_ADD && hs->vec.count != row)
            return hook_abort(hs, a, "%s has %zu values per position here, the vector %zu",
                              a->name, row, hs->vec.count);
        if (sp->op == HOOK_OP_PATCH) {
            /* src: [N, ...] rows of `row`, or [H, N, Pc] for attention maps */
            int64_t N = src->shape[v.attn_map ? 1 : 0];
            if (p >= N)
                return hook_abort(hs, a, "position %ld is not in the cache (%s has %lld)", p,
                                  a->name, (long long)N);
            if (v.attn_map && (size_t)src->shape[2] < v.seg_len)
                return hook_abort(hs, a, "the cached %s covers %lld key positions, this run %zu",
                                  a->name, (long long)src->shape[2], v.seg_len);
        }
        for (int s = 0; s < v.n_seg; s++) {
            if (!hookspec_selects_head(sp, s)) continue;
            float *x = seg_ptr(a, &v, t, s);
            switch (sp->op) {
            case HOOK_OP_ZERO: memset(x, 0, v.seg_len * sizeof *x); break;
            case HOOK_OP_SCALE:
                for (size_t j = 0; j < v.seg_len; j++) x[j] = (float)(x[j] * sp->factor);
                break;
            case HOOK_OP_ADD: {
                const float *d = hs->vec.data + (size_t)s * v.seg_len;
                for (size_t j = 0; j < v.seg_len; j++) x[j] = (float)(x[j] + sp->factor * d[j]);
                break;
            }
            case HOOK_OP_PATCH: {
                const float *d =
                    v.attn_map ? src->data + ((size_t)s * (size_t)src->shape[1] + (size_t)p) *
                                                 (size_t)src->shape[2]
                               : src->data + (size_t)p * row + (size_t)s * v.seg_len;
                for (size_t j = 0; j < v.seg_len; j++)
                    if (isnan(d[j]))
                        return hook_abort(hs, a, "position %ld of %s was not computed in the "
                                                 "cached run (NaN)", p, a->name);
                memcpy(x, d, v.seg_len * sizeof *x);
                break;
            }
            case HOOK_OP_SET: break;
            }
        }
    }
    return 0;
}

/* The --cache callback: copies each position's values into its row. */
static int cache_hook(lsc_activation *a, void *user_data) {
    cache_entry *e = user_data;
    rowview v = view_of(a);
    size_t row = (size_t)v.n_seg * v.seg_len, need = (size_t)a->pos0 + (size_t)a->n_pos;
    if (need > e->cap) {
        size_t cap = need > 2 * e->cap ? need : 2 * e->cap;
        float **r = realloc(e->rows, cap * sizeof *r);
        if (r) e->rows = r;
        size_t *l = r ? realloc(e->row_len, cap * sizeof *l) : NULL;
        if (l) e->row_len = l;
        if (!r || !l) {
            a->message = "out of memory for the activation cache";
            return 1;
        }
        for (size_t i = e->cap; i < cap; i++) {
            e->rows[i] = NULL;
            e->row_len[i] = 0;
        }
        e->cap = cap;
    }
    if (need > e->n_rows) e->n_rows = need;
    for (int t = 0; t < a->n_pos; t++) {
        size_t p = (size_t)a->pos0 + (size_t)t;
        if (e->row_len[p] != row) {
            free(e->rows[p]);
            e->row_len[p] = 0;
            if (!(e->rows[p] = malloc(row * sizeof(float)))) {
                a->message = "out of memory for the activation cache";
                return 1;
            }
            e->row_len[p] = row;
        }
        for (int s = 0; s < v.n_seg; s++)
            memcpy(e->rows[p] + (size_t)s * v.seg_len, seg_ptr(a, &v, t, s),
                   v.seg_len * sizeof(float));
    }
    return 0;
}

/* Registers fn on `pattern`, keeping the handle; prints the error. */
static bool add(cli_hooks *h, const char *pattern, lsc_hook_fn fn, void *ud, const char *what) {
    lsc_error err;
    int handle;
    if (lsc_ctx_add_hook(h->ctx, pattern, fn, ud, &handle, &err) != LSC_OK) {
        cli_error("%s: %s", what, err.message);
        return false;
    }
    h->handles[h->n_handles++] = handle;
    return true;
}

/* The number of values per position of point i (0 for attention maps, whose
 * count grows with the context), and its shape for one token. */
static size_t point_row(const lsc_model *m, int i, int64_t shape[4], int *n_dims) {
    *n_dims = lsc_model_hook_point_shape(m, i, 1, shape);
    if (is_attn_map(lsc_model_hook_point_name(m, i))) return 0;
    size_t r = 1;
    for (int d = 1; d < *n_dims; d++) r *= (size_t)shape[d];
    return r;
}

/* Checks the op of `hs` against every point its pattern matches and loads
 * what it needs. Prints the error and returns false on failure. */
static bool prepare(cli_hooks *h, hook_state *hs, const cli_common *c, lsc_tokenizer *tok) {
    const lsc_model *m = h->model;
    const hookspec *sp = &hs->spec;
    char err[600];
    int n_match = 0, logits = lsc_model_hook_point_index(m, "hook_logits");
    int H = lsc_model_n_head(m), V = lsc_model_n_vocab(m);
    if (sp->op == HOOK_OP_ADD &&
        npy_read_f32(sp->arg, MAX_INPUT_BYTES, &hs->vec, err, sizeof err) != 0)
        return !cli_error("--hook '%s': %s", hs->text, err);
    if (sp->op == HOOK_OP_PATCH &&
        npz_read_f32(sp->arg, MAX_INPUT_BYTES, &hs->patch, err, sizeof err) != 0)
        return !cli_error("--hook '%s': %s", hs->text, err);
    for (int i = 0; i < lsc_model_n_hook_points(m); i++) {
        if (!lsc_model_hook_point_matches(m, i, sp->point)) continue;
        n_match++;
        const char *name = lsc_model_hook_point_name(m, i);
        int64_t shape[4];
        int nd;
        size_t row = point_row(m, i, shape, &nd);
        if (sp->n_heads) {
            int n_h = is_attn_map(name) ? (int)shape[0] : nd == 3 ? (int)shape[1] : 0;
            if (!n_h)
                return !cli_error("--hook '%s': %s has no head axis (heads apply to hook_q/k/v/z, "
                                  "hook_attn_scores and hook_pattern)",
                                  hs->text, name);
            for (int k = 0; k < sp->n_heads; k++)
                if (sp->heads[k] >= n_h)
                    return !cli_error("--hook '%s': head %d is out of range (%s has %d heads)",
                                      hs->text, sp->heads[k], name, n_h);
        }
        if (sp->op == HOOK_OP_SET && i != logits)
            return !cli_error("--hook '%s': set works only on hook_logits (lm_head), not on %s",
                              hs->text, name);
        if (sp->op == HOOK_OP_ADD && row &&
            (hs->vec.count != row ||
             (hs->vec.n_dims != 1 &&
              (hs->vec.n_dims != nd - 1 ||
               memcmp(hs->vec.shape, shape + 1, (size_t)(nd - 1) * sizeof *shape)))))
            return !cli_error("--hook '%s': %s holds %zu values per position (shape [T%s]), "
                              "but %s has %zu",
                              hs->text, name, row, nd == 3 ? ", H, D" : ", n", sp->arg,
                              hs->vec.count);
        if (sp->op == HOOK_OP_PATCH) {
            const npy_array *a = npz_find(&hs->patch, name);
            if (!a)
                return !cli_error("--hook '%s': %s has no array '%s' (write one with --cache "
                                  "'%s' --cache-out FILE)",
                                  hs->text, sp->arg, name, name);
            bool ok = row ? a->n_dims == nd &&
                                !memcmp(a->shape + 1, shape + 1, (size_t)(nd - 1) * sizeof *shape)
                          : a->n_dims == 3 && a->shape[0] == H;
            if (!ok)
                return !cli_error("--hook '%s': the array '%s' in %s does not have the point's "
                                  "shape",
                                  hs->text, name, sp->arg);
        }
    }
    if (!n_match)
        return !cli_error("--hook '%s': no hook point matches '%s' (names like "
                          "blocks.0.hook_mlp_out or lm_head; see logitscope arch)",
                          hs->text, sp->point);
    if (sp->op == HOOK_OP_SET) {
        const char *t = sp->arg;
        bool digits = true;
        for (const char *q = t; *q; q++) digits = digits && *q >= '0' && *q <= '9';
        if (digits) {
            long id;
            if (!cli_parse_int(t, 0, V - 1, &id))
                return !cli_error("--hook '%s': token id %s is outside the vocabulary [0, %d)",
                                  hs->text, t, V);
            hs->token = (int32_t)id;
            return true;
        }
        if (!tok && !(tok = h->own_tok = cli_load_tokenizer(c))) return false;
        /* the quoted form tools print (Python's repr: ' coffee') names the text inside */
        char unq[HOOKSPEC_MAX_LEN + 1];
        size_t tl = strlen(t);
        if (tl >= 2 && (t[0] == '\'' || t[0] == '"') && t[tl - 1] == t[0]) {
            snprintf(unq, sizeof unq, "%.*s", (int)(tl - 2), t + 1);
            t = unq;
        }
        char flag[64];
        snprintf(flag, sizeof flag, "--hook %.40s%s", hs->text, strlen(hs->text) > 40 ? "..." : "");
        if (!cli_single_token(tok, flag, t, c->no_special, &hs->token)) return false;
        if (hs->token >= V)
            return !cli_error("--hook '%s': token %d is outside the model's vocabulary", hs->text,
                              hs->token);
    }
    return true;
}

bool cli_hooks_attach(const cli_common *c, lsc_ctx *ctx, lsc_tokenizer *tok, cli_hooks **out) {
    *out = NULL;
    if (!c->n_hooks && !c->n_cache && !c->cache_out) return true;
    if (c->n_cache && !c->cache_out)
        return !cli_error("--cache needs --cache-out FILE.npz to write the activations to");
    const lsc_model *m = lsc_ctx_model(ctx);
    int n_points = lsc_model_n_hook_points(m);
    cli_hooks *h = calloc(1, sizeof *h);
    if (!h) return !cli_error("out of memory");
    *out = h;
    h->ctx = ctx;
    h->model = m;
    h->cache_out = c->cache_out;
    if (!(h->hooks = calloc((size_t)c->n_hooks + 1, sizeof *h->hooks)) ||
        !(h->handles = calloc((size_t)(c->n_hooks + n_points), sizeof *h->handles)) ||
        !(h->cache = calloc((size_t)n_points, sizeof *h->cache)))
        return !cli_error("out of memory");
    for (int i = 0; i < c->n_hooks; i++) {
        hook_state *hs = calloc(1, sizeof *hs);
        if (!hs) return !cli_error("out of memory");
        h->hooks[h->n_hooks++] = hs;
        hs->text = c->hooks[i];
        char err[512];
        if (!hookspec_parse(c->hooks[i], &hs->spec, err, sizeof err))
            return !cli_error("--hook '%s': %s", c->hooks[i], err);
        if (!prepare(h, hs, c, tok)) return false;
        char what[300];
        snprintf(what, sizeof what, "--hook '%.200s'", hs->text);
        if (!add(h, hs->spec.point, intervene, hs, what)) return false;
    }
    if (!c->cache_out) return true;
    /* the cache hooks come after the interventions: they see rewritten values */
    for (int j = 0; j < c->n_cache; j++) {
        bool any = false;
        for (int i = 0; i < n_points && !any; i++) any = lsc_model_hook_point_matches(m, i, c->cache[j]);
        if (!any)
            return !cli_error("--cache: no hook point matches '%s' (names like "
                              "blocks.0.hook_resid_post; see logitscope arch)",
                              c->cache[j]);
    }
    for (int i = 0; i < n_points; i++) {
        bool want = !c->n_cache; /* --cache-out alone: every point */
        for (int j = 0; j < c->n_cache && !want; j++)
            want = lsc_model_hook_point_matches(m, i, c->cache[j]);
        if (!want) continue;
        cache_entry *e = &h->cache[h->n_cache++];
        e->point = i;
        e->name = lsc_model_hook_point_name(m, i);
        e->attn_map = is_attn_map(e->name);
        e->n_dims = lsc_model_hook_point_shape(m, i, 1, e->shape);
        if (!add(h, e->name, cache_hook, e, "--cache")) return false;
    }
    return true;
}

/* Writes the cache as an .npz: one array per point, positions 0 .. the
 * last one computed along the position axis; rows never computed are NaN,
 * and attention-map entries past a row's own key positions are what the
 * causal mask gives (-inf scores, 0 pattern). */
static bool write_cache(cli_hooks *h) {
    npz_writer *w = npz_open(h->cache_out);
    if (!w) return false;
    for (int k = 0; k < h->n_cache; k++) {
        cache_entry *e = &h->cache[k];
        size_t N = e->n_rows, count = 1;
        int64_t shape[4];
        int nd = e->n_dims;
        if (e->attn_map) {
            size_t Hn = (size_t)e->shape[0], P = 0;
            for (size_t p = 0; p < N; p++)
                if (e->rows[p] && e->row_len[p] / Hn > P) P = e->row_len[p] / Hn;
            shape[0] = (int64_t)Hn;
            shape[1] = (int64_t)N;
            shape[2] = (int64_t)P;
        } else {
            shape[0] = (int64_t)N;
            for (int d = 1; d < nd; d++) shape[d] = e->shape[d];
        }
        for (int d = 0; d < nd; d++) count *= (size_t)shape[d];
        float *data = malloc((count ? count : 1) * sizeof *data);
        if (!data) {
            cli_error("%s: out of memory for %s", h->cache_out, e->name);
            npz_abort(w);
            return false;
        }
        for (size_t i = 0; i < count; i++) data[i] = NAN;
        if (e->attn_map) {
            size_t Hn = (size_t)shape[0], P = (size_t)shape[2];
            float pad = strstr(e->name, "scores") ? -INFINITY : 0.0f;
            for (size_t p = 0; p < N; p++) {
                if (!e->rows[p]) continue;
                size_t L = e->row_len[p] / Hn;
                for (size_t hh = 0; hh < Hn; hh++) {
                    float *dst = data + (hh * N + p) * P;
                    memcpy(dst, e->rows[p] + hh * L, L * sizeof *dst);
                    for (size_t j = L; j < P; j++) dst[j] = pad;
                }
            }
        } else {
            size_t R = N ? count / N : 0;
            for (size_t p = 0; p < N; p++)
                if (e->rows[p]) memcpy(data + p * R, e->rows[p], R * sizeof *data);
        }
        bool ok = npz_add_f32(w, e->name, data, shape, nd);
        free(data);
        if (!ok) {
            npz_abort(w);
            return false;
        }
    }
    if (!npz_commit(w)) return false;
    /* say what was written, on stderr: stdout holds the command's result */
    fprintf(stderr, "logitscope: wrote %s: %d array%s (", h->cache_out, h->n_cache,
            h->n_cache == 1 ? "" : "s");
    for (int k = 0; k < h->n_cache && k < 4; k++)
        fprintf(stderr, "%s%s", k ? ", " : "", h->cache[k].name);
    fprintf(stderr, "%s)\n", h->n_cache > 4 ? ", ..." : "");
    return true;
}

/* True when every point `pattern` matches runs only on the positions whose
 * logits are kept (the final layer norm and the logits). */
static bool final_points_only(const lsc_model *m, const char *pattern) {
    for (int i = 0; i < lsc_model_n_hook_points(m); i++) {
        const char *name = lsc_model_hook_point_name(m, i);
        if (lsc_model_hook_point_matches(m, i, pattern) &&
            strcmp(name, "ln_final.hook_normalized") && strcmp(name, "hook_logits"))
            return false;
    }
    return true;
}

bool cli_hooks_check_plan(const cli_hooks *h, const long *prefills, int n_prefills, long steps) {
    if (!h) return true;
    for (int i = 0; i < h->n_hooks; i++) {
        const hookspec *sp = &h->hooks[i]->spec;
        bool final = final_points_only(h->model, sp->point), any = false;
        long n = 0;
        for (int f = 0; f < n_prefills && !any; f++) {
            n = prefills[f];
            for (long p = final ? n - 1 : 0; p < n && !any; p++) any = hookspec_selects(sp, p, n);
        }
        for (long s = 0; s < steps && !any; s++) any = hookspec_selects(sp, n + s, n + s + 1);
        if (!any)
            return !cli_error("--hook '%s': its positions select nothing in this run (positions "
                              "0 to %ld%s)",
                              h->hooks[i]->text, n + steps - 1,
                              final ? "; ln_final and hook_logits run on the last position of "
                                      "the prompt and on each new one"
                                    : "");
    }
    return true;
}

bool cli_hooks_finish(cli_hooks *h) {
    if (!h) return true;
    for (int i = 0; i < h->n_hooks; i++)
        if (h->hooks[i]->hits == 0)
            return !cli_error("--hook '%s': its positions selected nothing in this run",
                              h->hooks[i]->text);
    return !h->cache_out || write_cache(h);
}

void cli_hooks_free(cli_hooks *h) {
    if (!h) return;
    for (int i = 0; i < h->n_handles; i++) lsc_ctx_remove_hook(h->ctx, h->handles[i]);
    for (int i = 0; i < h->n_hooks; i++) {
        free(h->hooks[i]->vec.data);
        npz_free(&h->hooks[i]->patch);
        free(h->hooks[i]);
    }
    for (int k = 0; k < h->n_cache; k++) {
        for (size_t p = 0; p < h->cache[k].n_rows; p++) free(h->cache[k].rows[p]);
        free(h->cache[k].rows);
        free(h->cache[k].row_len);
    }
    free(h->cache);
    free(h->hooks);
    free(h->handles);
    lsc_tokenizer_free(h->own_tok);
    free(h);
}
