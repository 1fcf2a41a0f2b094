/* model.c - GPT-2 weights, loading, the forward pass with its KV cache, and the
 * named hook points that fire along the way.
 *
 * The forward pass follows transformers' GPT2LMHeadModel in eval mode:
 *   x = wte[ids] + wpe[pos]
 *   per block: x += attn(ln_1(x)); x += mlp(ln_2(x))
 *   logits = ln_f(x) @ lm_head^T
 * Weights are used in place from the mmap'd safetensors file when they are F32
 * and converted to F32 at load otherwise. */
#include "config.h"
#include "internal.h"
#include "kernels.h"
#include "pool.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Hook point names                                                          */
/* ------------------------------------------------------------------------ */

/* The points of one block, in forward order; the point index of block i's
 * point p is HP_FIRST_BLOCK + i * HP_PER_BLOCK + p. */
enum {
    HP_RESID_PRE, HP_LN1, HP_Q, HP_K, HP_V, HP_SCORES, HP_PATTERN, HP_Z, HP_ATTN_OUT,
    HP_RESID_MID, HP_LN2, HP_MLP_PRE, HP_MLP_POST, HP_MLP_OUT, HP_RESID_POST, HP_PER_BLOCK
};
static const char *const block_points[HP_PER_BLOCK] = {
    "hook_resid_pre",    "ln1.hook_normalized",     "attn.hook_q",     "attn.hook_k",
    "attn.hook_v",       "attn.hook_attn_scores",   "attn.hook_pattern", "attn.hook_z",
    "hook_attn_out",     "hook_resid_mid",          "ln2.hook_normalized", "mlp.hook_pre",
    "mlp.hook_post",     "hook_mlp_out",            "hook_resid_post",
};
enum { HP_EMBED = 0, HP_POS_EMBED = 1, HP_FIRST_BLOCK = 2 };
#define HP_LN_FINAL(L) (HP_FIRST_BLOCK + (L) * HP_PER_BLOCK)
#define HP_LOGITS(L) (HP_LN_FINAL(L) + 1)
#define HP_BLOCK(l, p) (HP_FIRST_BLOCK + (l) * HP_PER_BLOCK + (p))

/* ------------------------------------------------------------------------ */
/* Model                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct layer_weights {
    const lsc_f32u *ln1_g, *ln1_b;     /* [E] */
    const lsc_f32u *attn_w, *attn_b;   /* [E, 3E], [3E] */
    const lsc_f32u *proj_w, *proj_b;   /* [E, E], [E] */
    const lsc_f32u *ln2_g, *ln2_b;     /* [E] */
    const lsc_f32u *fc_w, *fc_b;       /* [E, M], [M] */
    const lsc_f32u *fc2_w, *fc2_b;     /* [M, E], [E] */
    /* the four matrices as the products use them: the F32 above in place, or
     * converted to the model's weight type (kernels.h) */
    lsc_weights attn, proj, fc, fc2;
} layer_weights;

struct lsc_model {
    lsc_config cfg;
    lsc_act act;
    lsc_st_file *st; /* the mapping F32 weights point into */
    const lsc_f32u *wte;     /* [V, E] */
    int embed_from_lm;       /* 1: tied and the unembedding in panels: the
                              * lookup reads its rows there (wte let go) */
    const lsc_f32u *wpe;     /* [n_ctx, E] */
    const lsc_f32u *lnf_g, *lnf_b; /* [E] */
    const lsc_f32u *lm_head; /* [V, E]: wte when tied */
    lsc_weights lm;          /* lm_head as the unembedding product uses it */
    layer_weights *layers;   /* [n_layer] */
    float **owned;           /* tensors converted to F32 at load */
    size_t n_owned;
    char *conv;              /* the BF16 / Q8 matrices: one mapping (conv_map) */
    size_t conv_size, conv_used;
    int n_points;
    char **point_names; /* [n_points] */
};

lsc_model_params lsc_model_default_params(void) {
    lsc_model_params p = {.weight_type = LSC_WEIGHTS_F32, .use_mmap = 1};
    return p;
}

void lsc_model_free(lsc_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->conv) munmap(m->conv, m->conv_size);
    if (m->point_names)
        for (int i = 0; i < m->n_points; i++) free(m->point_names[i]);
    free(m->point_names);
    free(m->layers);
    lsc_st_close(m->st);
    free(m);
}

/* Finds the weight `name` (tried with `prefix` first), checks its dtype and
 * shape [d0] or [d0, d1] (d1 < 0 for 1-D) and sets *out to F32 data: in place
 * for F32, converted into a buffer the model owns otherwise. */
static lsc_status get_weight(lsc_model *m, const char *prefix, const char *name, int64_t d0,
                             int64_t d1, const lsc_f32u **out, lsc_error *err) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const lsc_st_tensor *t = lsc_st_find(m->st, full);
    if (!t) t = lsc_st_find(m->st, name);
    if (!t)
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: tensor '%s' is missing", m->st->path, full);
    int64_t want[2] = {d0, d1};
    int nd = d1 < 0 ? 1 : 2;
    if (t->n_dims != nd || t->shape[0] != d0 || (nd == 2 && t->shape[1] != d1)) {
        char a[160], b[64];
        return lsc_fail(err, LSC_ERR_FORMAT,
                        "%s: tensor '%s' has shape %s, but config.json implies %s "
                        "(n_layer=%d n_head=%d n_embd=%d n_positions=%d vocab_size=%d n_inner=%d)",
                        m->st->path, t->name, lsc_shape_str(t->shape, t->n_dims, a, sizeof a),
                        lsc_shape_str(want, nd, b, sizeof b), m->cfg.n_layer, m->cfg.n_head,
                        m->cfg.n_embd, m->cfg.n_ctx, m->cfg.n_vocab, m->cfg.n_inner);
    }
    if (t->dtype == LSC_ST_F32) {
        *out = t->data;
        return LSC_OK;
    }
    if (t->dtype != LSC_ST_F16 && t->dtype != LSC_ST_BF16 && t->dtype != LSC_ST_F64)
        return lsc_fail(err, LSC_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has dtype %s (F32, F16, BF16 or F64 expected)",
                        m->st->path, t->name, lsc_st_dtype_name(t->dtype));
    float *buf = malloc((t->n_elements ? t->n_elements : 1) * sizeof *buf);
    float **grown = realloc(m->owned, (m->n_owned + 1) * sizeof *grown);
    if (!buf || !grown) {
        free(buf);
        if (grown) m->owned = grown;
        return lsc_fail(err, LSC_ERR_NOMEM, "%s: cannot allocate %zu floats for '%s'",
                        m->st->path, t->n_elements, t->name);
    }
    m->owned = grown;
    m->owned[m->n_owned++] = buf;
    lsc_st_to_f32(t->dtype, t->data, t->n_elements, buf);
    *out = buf;
    return LSC_OK;
}

/* Looks up and checks every weight the forward pass uses. */
static lsc_status load_weights(lsc_model *m, lsc_error *err) {
    const lsc_config *c = &m->cfg;
    int64_t E = c->n_embd, M = c->n_inner, V = c->n_vocab;
    const char *pre = lsc_st_find(m->st, "transformer.wte.weight") ? "transformer." : "";
    lsc_status st;
    if ((st = get_weight(m, pre, "wte.weight", V, E, &m->wte, err)) ||
        (st = get_weight(m, pre, "wpe.weight", c->n_ctx, E, &m->wpe, err)) ||
        (st = get_weight(m, pre, "ln_f.weight", E, -1, &m->lnf_g, err)) ||
        (st = get_weight(m, pre, "ln_f.bias", E, -1, &m->lnf_b, err)))
        return st;
    if (c->tie_word_embeddings)
        m->lm_head = m->wte;
    else if ((st = get_weight(m, "", "lm_head.weight", V, E, &m->lm_head, err)))
        return st;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for %d layers", c->n_layer);
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];
        char p[64];
        snprintf(p, sizeof p, "%sh.%d.", pre, l);
        /* names relative to "h.N." so the message names the full tensor */
        struct {
            const char *name;
            int64_t d0, d1;
            const lsc_f32u **out;
        } want[] = {
            {"ln_1.weight", E, -1, &w->ln1_g},      {"ln_1.bias", E, -1, &w->ln1_b},
            {"attn.c_attn.weight", E, 3 * E, &w->attn_w}, {"attn.c_attn.bias", 3 * E, -1, &w->attn_b},
            {"attn.c_proj.weight", E, E, &w->proj_w}, {"attn.c_proj.bias", E, -1, &w->proj_b},
            {"ln_2.weight", E, -1, &w->ln2_g},      {"ln_2.bias", E, -1, &w->ln2_b},
            {"mlp.c_fc.weight", E, M, &w->fc_w},    {"mlp.c_fc.bias", M, -1, &w->fc_b},
            {"mlp.c_proj.weight", M, E, &w->fc2_w}, {"mlp.c_proj.bias", E, -1, &w->fc2_b},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            char full[128];
            snprintf(full, sizeof full, "%s%s", p, want[i].name);
            if ((st = get_weight(m, "", full, want[i].d0, want[i].d1, want[i].out, err))) return st;
        }
    }
    return LSC_OK;
}

/* Bytes of a converted matrix in the conversion mapping: data, then scale,
 * each from a 64-byte boundary. */
static bool conv_bytes(lsc_weight_type type, size_t K, size_t N, size_t *out) {
    size_t db, sb;
    if (!lsc_weights_size(type, K, N, &db, &sb) || !lsc_add_size(db, 63, &db) ||
        !lsc_add_size(sb, 63, &sb))
        return false;
    return lsc_add_size(db & ~(size_t)63, sb & ~(size_t)63, out);
}

/* Maps `bytes` of zeroed memory for the converted matrices, from a 2 MiB
 * boundary and asked for in transparent huge pages: a decode step streams
 * through every matrix once, and with 4 KiB pages the BF16 and Q8 kernels
 * read slower (a TLB miss and a stop of the hardware prefetcher every
 * 4 KiB; bench/README.md). Where the kernel gives no huge pages the hint
 * changes nothing. */
static lsc_status conv_map(lsc_model *m, size_t bytes, lsc_error *err) {
    const size_t huge = (size_t)2 << 20, page = 4096;
    size_t len, span;
    if (!lsc_add_size(bytes ? bytes : 1, page - 1, &len) ||
        !lsc_add_size(len & ~(page - 1), huge, &span))
        return lsc_fail(err, LSC_ERR_NOMEM, "converted weights of %zu bytes are too large", bytes);
    len &= ~(page - 1);
    char *p = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return lsc_fail(err, LSC_ERR_NOMEM, "cannot map %zu bytes for converted weights: %s",
                        len, strerror(errno));
    char *a = (char *)(((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1));
    if (a > p) munmap(p, (size_t)(a - p));
    if (p + span > a + len) munmap(a + len, (size_t)(p + span - (a + len)));
#ifdef MADV_HUGEPAGE
    madvise(a, len, MADV_HUGEPAGE);
#endif
    m->conv = a;
    m->conv_size = len;
    m->conv_used = 0;
    return LSC_OK;
}

/* Lets the pages of a converted matrix's F32 source go: the products read
 * only the copy, so peak RSS stays near the converted size. In the file
 * mapping a page read again comes back from the file (the embedding lookup
 * faults in the few rows it reads); in a copy in memory it would read as
 * zeros, so there the embedding table stays unless the lookup reads the
 * unembedding's panels (lsc_model_check_finite maps the file again). */
static void release_source(lsc_model *m, const lsc_f32u *w, size_t bytes) {
    if (m->st->region != m->st->map && w == m->wte && !m->embed_from_lm) return;
    uintptr_t lo = (uintptr_t)m->st->map, hi = lo + m->st->map_size, page = 4096;
    uintptr_t a = ((uintptr_t)w + page - 1) & ~(page - 1);
    uintptr_t b = ((uintptr_t)w + bytes) & ~(page - 1);
    if ((uintptr_t)w >= lo && b <= hi && a < b) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Bytes a matrix takes in the conversion mapping (0: none, used in place). */
static bool view_bytes(lsc_weight_type type, int panels, size_t K, size_t N, size_t *out) {
    if (type != LSC_WEIGHTS_F32) return conv_bytes(type, K, N, out);
    size_t floats; /* panels are rows of 64 bytes: each matrix starts on a 64-byte boundary */
    *out = 0;
    return !panels ||
           (lsc_weights_panels_size(K, N, &floats) && lsc_mul_size(floats, sizeof(float), out));
}

/* Rows of an [N, K] matrix put in panels at a time (a multiple of 16). */
#define NK_PIECE_ROWS 1024

/* Sets *out to the F32 matrix w ([K, N], or [N, K] when nk) as it is, or to a
 * copy in the model's conversion mapping, which make_views sized for every
 * matrix: converted to BF16 / Q8, or F32 rearranged in panels (kernels.h). */
static void matrix_view(lsc_model *m, lsc_weight_type type, int panels, const lsc_f32u *w,
                        int nk, size_t K, size_t N, lsc_weights *out) {
    if (type == LSC_WEIGHTS_F32 && !panels) {
        *out = (lsc_weights){.type = LSC_WEIGHTS_F32, .layout = nk ? LSC_LAYOUT_NK : LSC_LAYOUT_KN, .data = w};
        return;
    }
    size_t bytes = 0; /* no overflow: make_views checked the sizes */
    view_bytes(type, panels, K, N, &bytes);
    char *data = m->conv + m->conv_used;
    m->conv_used += bytes;
    if (type == LSC_WEIGHTS_F32) {
        /* [N, K] (the unembedding) in pieces of whole panels, each let go
         * once copied: peak RSS stays near the file's size during the load;
         * [K, N] in one piece */
        if (w == m->wte) m->embed_from_lm = 1; /* the same floats, one lookup away */
        size_t piece = nk ? NK_PIECE_ROWS : N;
        for (size_t n0 = 0; n0 < N; n0 += piece) {
            size_t rows = N - n0 < piece ? N - n0 : piece;
            lsc_weights_panels(w + n0 * K, nk, K, rows, (float *)data + n0 * K, out);
            release_source(m, w + n0 * K, rows * K * sizeof(float));
        }
        out->data = data; /* the whole matrix's panels */
        return;
    }
    size_t db = 0, sb = 0;
    lsc_weights_size(type, K, N, &db, &sb);
    float *scale = sb ? (float *)(data + ((db + 63) & ~(size_t)63)) : NULL;
    lsc_weights_convert(w, nk, K, N, type, data, scale, out);
    release_source(m, w, K * N * sizeof(float));
}

/* Makes the product views of every matrix for the weight type: BF16 and Q8
 * copies, and F32 in panels (weights read into memory), go into one mapping
 * sized here for all of them. */
static lsc_status make_views(lsc_model *m, lsc_weight_type type, int panels, lsc_error *err) {
    const lsc_config *c = &m->cfg;
    size_t E = (size_t)c->n_embd, M = (size_t)c->n_inner, V = (size_t)c->n_vocab;
    if (type != LSC_WEIGHTS_F32 || panels) {
        /* the four products of each block, then lm_head */
        const size_t K[5] = {E, E, E, M, E}, N[5] = {3 * E, E, M, E, V};
        size_t total = 0, b;
        for (int i = 0; i < 5; i++)
            if (!view_bytes(type, panels, K[i], N[i], &b) ||
                !lsc_mul_size(b, i < 4 ? (size_t)c->n_layer : 1, &b) ||
                !lsc_add_size(total, b, &total))
                return lsc_fail(err, LSC_ERR_NOMEM, "the converted weights are too large");
        lsc_status st = conv_map(m, total, err);
        if (st) return st;
    }
    for (int l = 0; l < c->n_layer; l++) {
        layer_weights *w = &m->layers[l];
        matrix_view(m, type, panels, w->attn_w, 0, E, 3 * E, &w->attn);
        matrix_view(m, type, panels, w->proj_w, 0, E, E, &w->proj);
        matrix_view(m, type, panels, w->fc_w, 0, E, M, &w->fc);
        matrix_view(m, type, panels, w->fc2_w, 0, M, E, &w->fc2);
    }
    matrix_view(m, type, panels, m->lm_head, 1, E, V, &m->lm);
    return LSC_OK;
}

/* Builds the names of the hook points, in forward order. */
static lsc_status make_point_names(lsc_model *m, lsc_error *err) {
    int L = m->cfg.n_layer;
    m->n_points = HP_LOGITS(L) + 1;
    m->point_names = calloc((size_t)m->n_points, sizeof *m->point_names);
    if (!m->point_names) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for hook names");
    char buf[96];
    for (int i = 0; i < m->n_points; i++) {
        if (i == HP_EMBED)
            snprintf(buf, sizeof buf, "hook_embed");
        else if (i == HP_POS_EMBED)
            snprintf(buf, sizeof buf, "hook_pos_embed");
        else if (i == HP_LN_FINAL(L))
            snprintf(buf, sizeof buf, "ln_final.hook_normalized");
        else if (i == HP_LOGITS(L))
            snprintf(buf, sizeof buf, "hook_logits");
        else
            snprintf(buf, sizeof buf, "blocks.%d.%s", (i - HP_FIRST_BLOCK) / HP_PER_BLOCK,
                     block_points[(i - HP_FIRST_BLOCK) % HP_PER_BLOCK]);
        if (!(m->point_names[i] = strdup(buf)))
            return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for hook names");
    }
    return LSC_OK;
}

lsc_status lsc_model_load(const char *dir, lsc_model_params params, lsc_model **out,
                          lsc_error *err) {
    if (!out) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_model_load: out is NULL");
    *out = NULL;
    if (!dir) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_model_load: dir is NULL");
    if (params.weight_type != LSC_WEIGHTS_F32 && params.weight_type != LSC_WEIGHTS_BF16 &&
        params.weight_type != LSC_WEIGHTS_Q8)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "unknown weight type %d (F32, BF16 or Q8)",
                        (int)params.weight_type);
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: model folder not found (%s)", dir,
                        strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "%s: not a folder", dir);
    lsc_model *m = calloc(1, sizeof *m);
    char *cfg_path = lsc_path_join(dir, "config.json");
    char *st_path = lsc_path_join(dir, "model.safetensors");
    lsc_status st;
    if (!m || !cfg_path || !st_path) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = lsc_config_load(cfg_path, &m->cfg, &m->act, err))) goto done;
    if (stat(st_path, &sb) != 0) {
        char *idx = lsc_path_join(dir, "model.safetensors.index.json");
        char *bin = lsc_path_join(dir, "pytorch_model.bin");
        struct stat s2;
        if (idx && stat(idx, &s2) == 0)
            st = lsc_fail(err, LSC_ERR_UNSUPPORTED, "%s: sharded checkpoints are not supported", idx);
        else if (bin && stat(bin, &s2) == 0)
            st = lsc_fail(err, LSC_ERR_UNSUPPORTED,
                          "%s: not found (pytorch_model.bin is not supported; convert to safetensors)",
                          st_path);
        else
            st = lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: not found", st_path);
        free(idx);
        free(bin);
        goto done;
    }
    if ((st = lsc_st_open(st_path, !params.use_mmap, &m->st, err))) goto done;
    if ((st = load_weights(m, err))) goto done;
    /* weights read into memory are F32 in panels: the layout a batched
     * step streams fastest (docs/performance.md) */
    if ((st = make_views(m, params.weight_type, !params.use_mmap, err))) goto done;
    if ((st = make_point_names(m, err))) goto done;
done:
    free(cfg_path);
    free(st_path);
    if (st) {
        lsc_model_free(m);
        return st;
    }
    *out = m;
    return LSC_OK;
}

const lsc_config *lsc_model_config(const lsc_model *m) { return &m->cfg; }
int lsc_model_n_vocab(const lsc_model *m) { return m->cfg.n_vocab; }
int lsc_model_n_ctx(const lsc_model *m) { return m->cfg.n_ctx; }
int lsc_model_n_layer(const lsc_model *m) { return m->cfg.n_layer; }
int lsc_model_n_embd(const lsc_model *m) { return m->cfg.n_embd; }
int lsc_model_n_head(const lsc_model *m) { return m->cfg.n_head; }

/* True for the non-parameter buffers some files carry (the causal mask). */
static bool is_buffer(const char *name) {
    size_t n = strlen(name);
    return (n >= 10 && !strcmp(name + n - 10, ".attn.bias")) ||
           (n >= 17 && !strcmp(name + n - 17, ".attn.masked_bias"));
}

void lsc_model_file_info(const lsc_model *m, lsc_model_file *info) {
    memset(info, 0, sizeof *info);
    info->path = m->st->path;
    info->n_bytes = m->st->map_size;
    info->n_tensors = (int)m->st->n_tensors;
    info->prefixed = lsc_st_find(m->st, "transformer.wte.weight") != NULL;
    int dtype = -1;
    for (size_t i = 0; i < m->st->n_tensors; i++) {
        const lsc_st_tensor *t = &m->st->tensors[i];
        if (is_buffer(t->name)) continue;
        if (dtype < 0) dtype = (int)t->dtype;
        else if (dtype != (int)t->dtype) dtype = LSC_ST_N_DTYPES;
    }
    info->dtype = dtype == LSC_ST_N_DTYPES ? "mixed"
                  : dtype < 0              ? "none"
                                           : lsc_st_dtype_name((lsc_st_dtype)dtype);
}

lsc_status lsc_model_check_finite(const lsc_model *m, lsc_error *err) {
    if (!m) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_model_check_finite: model is NULL");
    float buf[1024];
    /* a copy in memory has let the converted matrices go (release_source):
     * read the file itself, mapped again */
    const uint8_t *base = m->st->map;
    if (m->st->region != m->st->map) {
        int fd = open(m->st->path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        void *p = MAP_FAILED;
        if (fd >= 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == m->st->map_size)
            p = mmap(NULL, m->st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (fd >= 0) close(fd);
        if (p == MAP_FAILED)
            return lsc_fail(err, LSC_ERR_IO, "%s: cannot read the file again to check it (changed "
                            "on disk?)", m->st->path);
        base = p;
    }
    lsc_status st = LSC_OK;
    for (size_t i = 0; i < m->st->n_tensors && !st; i++) {
        const lsc_st_tensor *t = &m->st->tensors[i];
        if (is_buffer(t->name)) continue;
        size_t esz = lsc_st_dtype_size(t->dtype);
        const uint8_t *data = base + ((const uint8_t *)t->data - (const uint8_t *)m->st->map);
        for (size_t j = 0; j < t->n_elements && !st; j += 1024) {
            size_t n = t->n_elements - j < 1024 ? t->n_elements - j : 1024;
            if (!lsc_st_to_f32(t->dtype, data + j * esz, n, buf)) break;
            for (size_t k = 0; k < n && !st; k++)
                if (!isfinite(buf[k]))
                    st = lsc_fail(err, LSC_ERR_FORMAT,
                                  "%s: tensor '%s' holds %s at element %zu (NaN/Inf weights "
                                  "make the logits NaN)",
                                  m->st->path, t->name, isnan(buf[k]) ? "NaN" : "Inf", j + k);
        }
    }
    if (base != m->st->map) munmap((void *)base, m->st->map_size);
    return st;
}

int lsc_model_n_hook_points(const lsc_model *m) { return m->n_points; }

const char *lsc_model_hook_point_name(const lsc_model *m, int index) {
    return index >= 0 && index < m->n_points ? m->point_names[index] : NULL;
}

/* The shape of point `index` for T new tokens after n_past cached ones;
 * returns the number of dimensions (0 for a bad index). */
static int point_shape(const lsc_model *m, int index, int64_t T, int64_t n_past,
                       int64_t shape[4]) {
    const lsc_config *c = &m->cfg;
    int64_t E = c->n_embd, H = c->n_head, D = E / H, P = n_past + T;
    int L = c->n_layer;
    if (index < 0 || index >= m->n_points) return 0;
    shape[0] = T;
    shape[1] = E;
    shape[2] = shape[3] = 0;
    if (index == HP_LOGITS(L)) shape[1] = c->n_vocab;
    if (index < HP_FIRST_BLOCK || index >= HP_LN_FINAL(L)) return 2;
    switch ((index - HP_FIRST_BLOCK) % HP_PER_BLOCK) {
    case HP_Q: case HP_K: case HP_V: case HP_Z:
        shape[1] = H;
        shape[2] = D;
        return 3;
    case HP_SCORES: case HP_PATTERN:
        shape[0] = H;
        shape[1] = T;
        shape[2] = P;
        return 3;
    case HP_MLP_PRE: case HP_MLP_POST:
        shape[1] = c->n_inner;
        return 2;
    }
    return 2;
}

int lsc_model_hook_point_shape(const lsc_model *m, int index, int n_tokens, int64_t shape[4]) {
    int64_t tmp[4];
    return point_shape(m, index, n_tokens, 0, shape ? shape : tmp);
}

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct hook_reg {
    int handle;
    lsc_hook_fn fn;
    void *user_data;
    unsigned char *match; /* [n_points]: 1 where the pattern matched */
} hook_reg;

struct lsc_ctx {
    const lsc_model *m;
    int n_ctx;
    int n_threads;
    int n_past;
    struct lsc_pool *pool; /* n_threads threads (0: one per CPU) for the kernels */
    lsc_kernels *kern;     /* the kernels' level, on pool, with their scratch */
    /* per layer: keys transposed [E, kt_ld] (dimension e of position p at
     * e * kt_ld + p: the attention kernels read a dimension of consecutive
     * keys at once), values [n_ctx, E] */
    float *k_cache, *v_cache;
    size_t kt_ld; /* n_ctx padded so that rows are not 4 KiB apart (which
                     would put every row in the same L1 set) */
    /* scratch, grown on demand to cap_T rows: the rows of every step this
     * context drives (lsc_ctx_forward, or as ctxs[0] of lsc_batch_forward) */
    size_t cap_T;
    float *x, *h, *q, *k, *v, *z, *o; /* [T, E] */
    float *mlp;                       /* [T, M] */
    float *qkv;                       /* [T, 3E] */
    size_t cap_scores;
    float *scores; /* [H, T, P] */
    size_t cap_logits;
    float *logits; /* [rows, V] */
    size_t cap_step_logits;
    float *step_logits; /* [rows, V] of a step of several sequences it drives */
    size_t n_logit_rows;
    double *lse;  /* [n_lse]: the rows' log-sum-exp (lsc_batch_logsumexp) */
    size_t cap_lse, n_lse;
    /* hooks */
    hook_reg *hooks;
    int n_hooks, cap_hooks, next_handle;
    int *point_hooks; /* [n_points]: how many registrations match each point */
};

lsc_ctx_params lsc_ctx_default_params(void) {
    lsc_ctx_params p = {.n_ctx = 0, .n_threads = 0, .simd = LSC_SIMD_BEST};
    return p;
}

void lsc_ctx_free(lsc_ctx *c) {
    if (!c) return;
    lsc_ctx_clear_hooks(c);
    free(c->hooks);
    free(c->point_hooks);
    free(c->k_cache);
    free(c->v_cache);
    free(c->x); free(c->h); free(c->q); free(c->k); free(c->v); free(c->z); free(c->o);
    free(c->mlp); free(c->qkv); free(c->scores); free(c->logits); free(c->step_logits);
    free(c->lse);
    lsc_kernels_free(c->kern);
    lsc_pool_free(c->pool);
    free(c);
}

lsc_status lsc_ctx_new(const lsc_model *m, lsc_ctx_params params, lsc_ctx **out,
                       lsc_error *err) {
    if (!out) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_new: out is NULL");
    *out = NULL;
    if (!m) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_new: model is NULL");
    if (params.n_ctx < 0 || params.n_ctx > m->cfg.n_ctx)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "context size %d is outside [0, %d]",
                        params.n_ctx, m->cfg.n_ctx);
    if (params.n_threads < 0 || params.n_threads > LSC_MAX_THREADS)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "thread count %d is outside [0, %d]",
                        params.n_threads, LSC_MAX_THREADS);
    lsc_ctx *c = calloc(1, sizeof *c);
    if (!c) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    c->m = m;
    c->n_ctx = params.n_ctx ? params.n_ctx : m->cfg.n_ctx;
    c->n_threads = params.n_threads;
    c->next_handle = 1;
    size_t n, nk;
    c->kt_ld = ((size_t)c->n_ctx + 15) / 16 * 16 + 16;
    if (!lsc_mul_size((size_t)m->cfg.n_layer * (size_t)c->n_ctx, (size_t)m->cfg.n_embd, &n) ||
        !lsc_mul_size((size_t)m->cfg.n_layer * c->kt_ld, (size_t)m->cfg.n_embd, &nk) ||
        !(c->k_cache = calloc(nk, sizeof(float))) || !(c->v_cache = calloc(n, sizeof(float))) ||
        !(c->point_hooks = calloc((size_t)m->n_points, sizeof(int)))) {
        lsc_ctx_free(c);
        return lsc_fail(err, LSC_ERR_NOMEM, "cannot allocate the KV cache (%d layers x %d positions x %d)",
                        m->cfg.n_layer, c->n_ctx, m->cfg.n_embd);
    }
    lsc_status st = lsc_pool_new(params.n_threads, &c->pool, err);
    if (!st) st = lsc_kernels_new(params.simd, c->pool, &c->kern, err);
    if (st) {
        lsc_ctx_free(c);
        return st;
    }
    *out = c;
    return LSC_OK;
}

/* The context's logits now hold n rows; their log-sum-exp is not computed. */
static void set_logit_rows(lsc_ctx *c, size_t n) {
    c->n_logit_rows = n;
    c->n_lse = 0;
}

void lsc_ctx_reset(lsc_ctx *c) {
    if (!c) return;
    c->n_past = 0;
    set_logit_rows(c, 0);
}

int lsc_ctx_n_past(const lsc_ctx *c) { return c->n_past; }
const char *lsc_ctx_simd_level(const lsc_ctx *c) { return lsc_simd_name(lsc_kernels_level(c->kern)); }
int lsc_ctx_n_ctx(const lsc_ctx *c) { return c->n_ctx; }
const lsc_model *lsc_ctx_model(const lsc_ctx *c) { return c->m; }

const float *lsc_ctx_logits(const lsc_ctx *c, size_t *n_rows) {
    if (n_rows) *n_rows = c->n_logit_rows;
    return c->n_logit_rows ? c->logits : NULL;
}

/* Row i of lsc_batch_logsumexp's rows: the contexts' rows in turn. */
typedef struct lse_job {
    lsc_ctx *const *ctxs;
    const size_t *first; /* [n + 1]: the index of context k's first row */
    size_t n;
} lse_job;

static void lse_item(void *arg, size_t i, int ith) {
    (void)ith;
    const lse_job *j = arg;
    size_t k = 0;
    while (j->first[k + 1] <= i) k++;
    lsc_ctx *c = j->ctxs[k];
    size_t V = (size_t)c->m->cfg.n_vocab, r = i - j->first[k];
    c->lse[r] = lsc_logsumexp(c->logits + r * V, V);
}

lsc_status lsc_batch_logsumexp(lsc_ctx *const *ctxs, size_t n, lsc_error *err) {
    if (n && !ctxs) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_batch_logsumexp: NULL argument");
    for (size_t k = 0; k < n; k++)
        if (!ctxs[k])
            return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_batch_logsumexp: context %zu is NULL", k);
    size_t *first = malloc((n + 1) * sizeof *first);
    lsc_ctx **todo = malloc((n ? n : 1) * sizeof *todo);
    if (!first || !todo) {
        free(first);
        free(todo);
        return lsc_fail(err, LSC_ERR_NOMEM, "lsc_batch_logsumexp: out of memory for %zu contexts", n);
    }
    /* the contexts whose rows are not computed yet (each once) */
    size_t m = 0, rows = 0;
    for (size_t k = 0; k < n; k++) {
        lsc_ctx *c = ctxs[k];
        int seen = c->n_lse == c->n_logit_rows; /* done, or no rows */
        for (size_t j = 0; j < m && !seen; j++) seen = todo[j] == c;
        if (seen) continue;
        if (c->cap_lse < c->n_logit_rows) {
            double *p = malloc(c->n_logit_rows * sizeof *p);
            if (!p) {
                free(first);
                free(todo);
                return lsc_fail(err, LSC_ERR_NOMEM,
                                "lsc_batch_logsumexp: out of memory for %zu rows", c->n_logit_rows);
            }
            free(c->lse);
            c->lse = p;
            c->cap_lse = c->n_logit_rows;
        }
        first[m] = rows;
        rows += c->n_logit_rows;
        todo[m++] = c;
    }
    first[m] = rows;
    if (rows) {
        lse_job j = {todo, first, m};
        lsc_pool_for(rows > 1 ? ctxs[0]->pool : NULL, rows, lse_item, &j);
        for (size_t k = 0; k < m; k++) todo[k]->n_lse = todo[k]->n_logit_rows;
    }
    free(first);
    free(todo);
    return LSC_OK;
}

const double *lsc_ctx_logsumexp(const lsc_ctx *c, size_t *n_rows) {
    int ready = c && c->n_logit_rows && c->n_lse == c->n_logit_rows;
    if (n_rows) *n_rows = ready ? c->n_lse : 0;
    return ready ? c->lse : NULL;
}

/* Grows *buf to hold at least `n` floats (keeping nothing); false when out of
 * memory (the old buffer is then kept). */
static bool grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return true;
    float *p = malloc(n * sizeof *p);
    if (!p) return false;
    free(*buf);
    *buf = p;
    *cap = n;
    return true;
}

/* Makes the row buffers of a step big enough for T rows (the context is
 * the step's driver); the attention scores and the logits are grown per
 * sequence where they are used. */
static lsc_status ensure_rows(lsc_ctx *c, size_t T, lsc_error *err) {
    const lsc_config *cfg = &c->m->cfg;
    size_t E = (size_t)cfg->n_embd, M = (size_t)cfg->n_inner, n;
    if (T <= c->cap_T) return LSC_OK;
    float **bufs[] = {&c->x, &c->h, &c->q, &c->k, &c->v, &c->z, &c->o};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    free(c->mlp);
    free(c->qkv);
    c->mlp = c->qkv = NULL;
    c->cap_T = 0;
    bool ok = lsc_mul_size(T, (M > 3 * E ? M : 3 * E) * sizeof(float), &n);
    for (size_t i = 0; ok && i < sizeof bufs / sizeof bufs[0]; i++)
        ok = (*bufs[i] = malloc(T * E * sizeof(float))) != NULL;
    ok = ok && (c->mlp = malloc(T * M * sizeof(float)));
    ok = ok && (c->qkv = malloc(T * 3 * E * sizeof(float)));
    if (!ok) return lsc_fail(err, LSC_ERR_NOMEM, "cannot allocate scratch for %zu tokens", T);
    c->cap_T = T;
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* Hooks                                                                     */
/* ------------------------------------------------------------------------ */

/* Glob match: '*' matches any run of characters (including none and dots). */
static bool glob_match(const char *pat, const char *s) {
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat == *s) {
            pat++;
            s++;
        } else if (star) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*') pat++;
    return *pat == '\0';
}

int lsc_model_hook_point_matches(const lsc_model *m, int index, const char *pattern) {
    if (!m || !pattern || index < 0 || index >= m->n_points) return 0;
    return glob_match(pattern, m->point_names[index]) ||
           (index == HP_LOGITS(m->cfg.n_layer) && glob_match(pattern, "lm_head"));
}

int lsc_model_hook_point_index(const lsc_model *m, const char *name) {
    if (!m || !name) return -1;
    if (!strcmp(name, "lm_head")) return HP_LOGITS(m->cfg.n_layer);
    for (int i = 0; i < m->n_points; i++)
        if (!strcmp(m->point_names[i], name)) return i;
    return -1;
}

lsc_status lsc_ctx_add_hook(lsc_ctx *c, const char *pattern, lsc_hook_fn fn, void *user_data,
                            int *handle, lsc_error *err) {
    if (!c || !pattern || !fn)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_add_hook: NULL context, pattern or function");
    const lsc_model *m = c->m;
    unsigned char *match = calloc((size_t)m->n_points, 1);
    if (!match) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
    int n = 0;
    for (int i = 0; i < m->n_points; i++) {
        match[i] = (unsigned char)lsc_model_hook_point_matches(m, i, pattern);
        n += match[i];
    }
    if (!n) {
        free(match);
        return lsc_fail(err, LSC_ERR_NOT_FOUND,
                        "no hook point matches '%s' (names like blocks.0.hook_mlp_out; see "
                        "'logitscope arch')",
                        pattern);
    }
    if (c->n_hooks == c->cap_hooks) {
        int cap = c->cap_hooks ? 2 * c->cap_hooks : 8;
        hook_reg *p = realloc(c->hooks, (size_t)cap * sizeof *p);
        if (!p) {
            free(match);
            return lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        }
        c->hooks = p;
        c->cap_hooks = cap;
    }
    hook_reg *r = &c->hooks[c->n_hooks++];
    r->handle = c->next_handle++;
    r->fn = fn;
    r->user_data = user_data;
    r->match = match;
    for (int i = 0; i < m->n_points; i++) c->point_hooks[i] += match[i];
    if (handle) *handle = r->handle;
    return LSC_OK;
}

void lsc_ctx_remove_hook(lsc_ctx *c, int handle) {
    if (!c) return;
    for (int j = 0; j < c->n_hooks; j++) {
        if (c->hooks[j].handle != handle) continue;
        for (int i = 0; i < c->m->n_points; i++) c->point_hooks[i] -= c->hooks[j].match[i];
        free(c->hooks[j].match);
        memmove(&c->hooks[j], &c->hooks[j + 1], (size_t)(c->n_hooks - j - 1) * sizeof *c->hooks);
        c->n_hooks--;
        return;
    }
}

void lsc_ctx_clear_hooks(lsc_ctx *c) {
    if (!c) return;
    for (int j = 0; j < c->n_hooks; j++) free(c->hooks[j].match);
    c->n_hooks = 0;
    if (c->point_hooks) memset(c->point_hooks, 0, (size_t)c->m->n_points * sizeof(int));
}

/* Calls every hook registered on `point`, in registration order. */
static lsc_status fire_hooks(lsc_ctx *c, int point, int layer, float *data, int T, int pos0,
                             lsc_error *err) {
    lsc_activation a = {.name = c->m->point_names[point], .layer = layer, .data = data,
                        .pos0 = pos0, .n_pos = T};
    a.n_dims = point_shape(c->m, point, T, pos0, a.shape); /* P = pos0 + T */
    for (int j = 0; j < c->n_hooks; j++) {
        if (!c->hooks[j].match[point]) continue;
        if (c->hooks[j].fn(&a, c->hooks[j].user_data)) {
            if (a.message)
                return lsc_fail(err, LSC_ERR_HOOK, "%s: %s", a.name, a.message);
            return lsc_fail(err, LSC_ERR_HOOK, "hook %d on %s aborted the forward pass",
                            c->hooks[j].handle, a.name);
        }
    }
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* Forward pass over a step of one or more sequences                         */
/* ------------------------------------------------------------------------ */
/*
 * Every forward call is a step: one or more contexts, each adding its own new
 * tokens. Their rows are stacked into one [R, .] set of buffers (the driver
 * context's scratch), so that the layer norms, the weight products and the
 * activations run once over all R rows; attention runs per sequence, on its
 * own KV cache. Every kernel computes a row in an order that does not depend
 * on the other rows (kernels.h), so a sequence's results are the same bits
 * whatever else is in the step. lsc_ctx_forward is a step of one.
 */

/* One sequence of a step. */
typedef struct step_seq {
    lsc_ctx *c;
    const int32_t *ids;
    int T;           /* new tokens */
    int n_past;      /* tokens cached before the step */
    size_t r0;       /* its first row in the step's [R, .] buffers */
    int first;       /* first new position whose logits are kept (T - 1 for LAST) */
    size_t l0;       /* its first row in the step's logits [Rl, V] */
    lsc_error *err;  /* where its failure goes */
    lsc_status st;   /* LSC_OK until one of its hooks aborts (or it runs out of memory) */
} step_seq;

typedef struct step {
    lsc_ctx *d;       /* the driver: its pool runs the kernels, its scratch holds the rows */
    step_seq *s;
    size_t n;         /* sequences */
    size_t n_live;    /* sequences not yet failed */
    size_t R, Rl;     /* rows, logits rows */
    float *logits;    /* [Rl, V]: the driver's step buffer, or the only sequence's own */
    lsc_attn_args *attn; /* [n]: a block's fused attentions (block) */
} step;

/* Fires the hooks of `point` for sequence s on its rows of `data`, unless it
 * has failed already; a hook that aborts fails the sequence alone. */
static void fire_seq(step *b, step_seq *s, int point, int layer, float *data, int T, int pos0) {
    if (s->st || !s->c->point_hooks[point]) return;
    if ((s->st = fire_hooks(s->c, point, layer, data, T, pos0, s->err))) b->n_live--;
}

/* Fires `point` for every sequence on its rows of the [R, width] buffer
 * `buf`; stops the step when no sequence is left. -DLSC_BENCH_NO_HOOKS
 * compiles the checks out (bench/hooks_cost compares). */
#ifndef LSC_BENCH_NO_HOOKS
#define FIRE_ROWS(point, layer, buf, width)                                              \
    do {                                                                                 \
        for (size_t i_ = 0; i_ < b->n; i_++)                                             \
            fire_seq(b, &b->s[i_], (point), (layer), (buf) + b->s[i_].r0 * (width),      \
                     b->s[i_].T, b->s[i_].n_past);                                       \
        if (!b->n_live) return;                                                          \
    } while (0)
#else
#define FIRE_ROWS(point, layer, buf, width) ((void)fire_seq)
#endif

/* The attention arguments of block l for sequence s: its T queries (rows of
 * the step's q) against its cache of n_past + T positions, writing its rows
 * of z. */
static lsc_attn_args attn_args(const step *b, const step_seq *s, int l) {
    lsc_ctx *c = s->c;
    const lsc_config *cfg = &c->m->cfg;
    size_t E = (size_t)cfg->n_embd, H = (size_t)cfg->n_head, D = E / H;
    return (lsc_attn_args){b->d->q + s->r0 * E, c->k_cache + (size_t)l * c->kt_ld * E,
                           c->v_cache + (size_t)l * c->n_ctx * E, b->d->z + s->r0 * E,
                           E, c->kt_ld, E, E, (size_t)s->T, (size_t)s->n_past, H, D,
                           cfg->scale_attn_weights ? sqrtf((float)D) : 1.0f,
                           cfg->scale_attn_by_inverse_layer_idx ? (float)(l + 1) : 1.0f};
}

/* Whether a hook of sequence s reads or changes block l's [H, T, P] scores
 * or pattern (then its attention runs in steps, attention_hooked). */
static bool attn_hooked(const step_seq *s, int l) {
    return !s->st && (s->c->point_hooks[HP_BLOCK(l, HP_SCORES)] ||
                      s->c->point_hooks[HP_BLOCK(l, HP_PATTERN)]);
}

/* Causal self-attention of block l for sequence s in steps, firing
 * hook_attn_scores and hook_pattern on the [H, T, P] scores in between: the
 * same bits as the fused kernel when no hook changes them. */
static void attention_hooked(step *b, step_seq *s, int l) {
    lsc_ctx *c = s->c;
    size_t H = (size_t)c->m->cfg.n_head, T = (size_t)s->T, P = (size_t)s->n_past + T;
    if (!grow(&c->scores, &c->cap_scores, H * T * P)) {
        s->st = lsc_fail(s->err, LSC_ERR_NOMEM, "cannot allocate attention scores for %zu x %zu",
                         T, P);
        b->n_live--;
        return; /* its rows are not used any more */
    }
    lsc_attn_args a = attn_args(b, s, l);
    float *S = c->scores;
    lsc_attn_scores(b->d->kern, &a, S);
    fire_seq(b, s, HP_BLOCK(l, HP_SCORES), l, S, s->T, s->n_past);
    lsc_attn_softmax(b->d->kern, &a, S);
    fire_seq(b, s, HP_BLOCK(l, HP_PATTERN), l, S, s->T, s->n_past);
    lsc_attn_values(b->d->kern, &a, S);
}

/* Writes the keys k [T, E] transposed into a layer's cache kt [E, ld] at
 * columns 0..T-1, 16 positions at a time (one 64-byte line per row). */
static void store_keys(float *kt, size_t ld, const float *k, size_t T, size_t E) {
    for (size_t t0 = 0; t0 < T; t0 += 16) {
        size_t t1 = t0 + 16 < T ? t0 + 16 : T;
        for (size_t e = 0; e < E; e++)
            for (size_t t = t0; t < t1; t++) kt[e * ld + t] = k[t * E + e];
    }
}

/* [*a, *e): the rows of [lo, hi) within a thread's share [t0, t1); false
 * when there are none. */
static bool overlap(size_t lo, size_t hi, size_t t0, size_t t1, size_t *a, size_t *e) {
    *a = lo > t0 ? lo : t0;
    *e = hi < t1 ? hi : t1;
    return *a < *e;
}

/* Row-wise steps over fewer rows than this run on the calling thread: waking
 * the pool costs more than the work of a few rows (decode has T = 1). */
#define ROWS_MIN_PARALLEL 32

/* The row-wise copies and adds of a block over all R rows of the step, run
 * over the pool by ranges of rows: cheap per row, but in a long prefill they
 * would keep the other threads waiting. ROWS_STORE_KV writes each row's key
 * and value into its sequence's cache. */
typedef enum { ROWS_SPLIT_QKV, ROWS_STORE_KV, ROWS_ADD_O } rows_op;

typedef struct rows_job {
    const step *b;
    int l;
    size_t E;
    rows_op op;
} rows_job;

static void rows_range(void *arg, int ith, int nth) {
    const rows_job *j = arg;
    lsc_ctx *d = j->b->d;
    size_t E = j->E, R = j->b->R, t0, t1;
    /* rows in 16s (a key's cache line holds 16 positions), unless there are
     * only a few (a decode step of several sequences: a row each) */
    lsc_pool_split(R, R >= ROWS_MIN_PARALLEL ? 16 : 1, ith, nth, &t0, &t1);
    if (t0 >= t1) return;
    switch (j->op) {
    case ROWS_SPLIT_QKV:
        for (size_t t = t0; t < t1; t++) {
            const float *r = d->qkv + t * 3 * E;
            memcpy(d->q + t * E, r, E * sizeof(float));
            memcpy(d->k + t * E, r + E, E * sizeof(float));
            memcpy(d->v + t * E, r + 2 * E, E * sizeof(float));
        }
        break;
    case ROWS_STORE_KV:
        for (size_t i = 0; i < j->b->n; i++) { /* the sequences' rows in [t0, t1) */
            const step_seq *s = &j->b->s[i];
            size_t r0 = s->r0, a, e;
            if (!overlap(r0, r0 + (size_t)s->T, t0, t1, &a, &e)) continue;
            size_t pos = (size_t)s->n_past + (a - r0); /* a's position */
            lsc_ctx *c = s->c;
            memcpy(c->v_cache + ((size_t)j->l * c->n_ctx + pos) * E, d->v + a * E,
                   (e - a) * E * sizeof(float));
            store_keys(c->k_cache + (size_t)j->l * c->kt_ld * E + pos, c->kt_ld, d->k + a * E,
                       e - a, E);
        }
        break;
    case ROWS_ADD_O: {
        float *restrict x = d->x;
        const float *restrict o = d->o;
        for (size_t i = t0 * E; i < t1 * E; i++) x[i] += o[i];
        break;
    }
    }
}

static void run_rows(step *b, int l, rows_op op) {
    rows_job j = {b, l, (size_t)b->d->m->cfg.n_embd, op};
    /* the caches' scattered key writes are worth the pool from 2 rows on */
    size_t min_rows = op == ROWS_STORE_KV ? 2 : ROWS_MIN_PARALLEL;
    lsc_pool_run(b->R >= min_rows ? b->d->pool : NULL, rows_range, &j);
}

/* Thread ith's share of the step's logits rows, copied into the contexts'
 * own buffers (a scoring step keeps thousands of rows of n_vocab floats). */
static void copy_logits(void *arg, int ith, int nth) {
    const step *b = arg;
    size_t V = (size_t)b->d->m->cfg.n_vocab, r0, r1;
    lsc_pool_split(b->Rl, 1, ith, nth, &r0, &r1);
    for (size_t i = 0; i < b->n && r0 < r1; i++) {
        const step_seq *s = &b->s[i];
        size_t l0 = s->l0, a, e;
        if (s->st || !overlap(l0, l0 + (size_t)(s->T - s->first), r0, r1, &a, &e)) continue;
        memcpy(s->c->logits + (a - l0) * V, b->logits + a * V, (e - a) * V * sizeof(float));
    }
}

/* One transformer block on the step's residual stream x [R, E]. */
static void block(step *b, int l) {
    lsc_ctx *d = b->d;
    const lsc_model *m = d->m;
    const lsc_config *cfg = &m->cfg;
    const layer_weights *w = &m->layers[l];
    size_t E = (size_t)cfg->n_embd, M = (size_t)cfg->n_inner, R = b->R;
    FIRE_ROWS(HP_BLOCK(l, HP_RESID_PRE), l, d->x, E);
    lsc_layernorm(d->kern, d->x, w->ln1_g, w->ln1_b, d->h, R, E, cfg->layer_norm_epsilon);
    FIRE_ROWS(HP_BLOCK(l, HP_LN1), l, d->h, E);
    lsc_matmul(d->kern, d->h, &w->attn, w->attn_b, d->qkv, R, E, 3 * E);
    run_rows(b, l, ROWS_SPLIT_QKV);
    FIRE_ROWS(HP_BLOCK(l, HP_Q), l, d->q, E);
    FIRE_ROWS(HP_BLOCK(l, HP_K), l, d->k, E);
    FIRE_ROWS(HP_BLOCK(l, HP_V), l, d->v, E);
    run_rows(b, l, ROWS_STORE_KV);
    size_t n_fused = 0; /* the sequences' attentions in one loop over the pool */
    for (size_t i = 0; i < b->n; i++) {
        step_seq *s = &b->s[i];
        if (!s->T) continue;
        if (attn_hooked(s, l)) attention_hooked(b, s, l);
        else b->attn[n_fused++] = attn_args(b, s, l);
    }
    lsc_attention_many(d->kern, b->attn, n_fused);
    if (!b->n_live) return;
    FIRE_ROWS(HP_BLOCK(l, HP_Z), l, d->z, E);
    lsc_matmul(d->kern, d->z, &w->proj, w->proj_b, d->o, R, E, E);
    FIRE_ROWS(HP_BLOCK(l, HP_ATTN_OUT), l, d->o, E);
    run_rows(b, l, ROWS_ADD_O);
    FIRE_ROWS(HP_BLOCK(l, HP_RESID_MID), l, d->x, E);
    lsc_layernorm(d->kern, d->x, w->ln2_g, w->ln2_b, d->h, R, E, cfg->layer_norm_epsilon);
    FIRE_ROWS(HP_BLOCK(l, HP_LN2), l, d->h, E);
    lsc_matmul(d->kern, d->h, &w->fc, w->fc_b, d->mlp, R, E, M);
    FIRE_ROWS(HP_BLOCK(l, HP_MLP_PRE), l, d->mlp, M);
    lsc_act_apply(d->kern, m->act, d->mlp, R * M);
    FIRE_ROWS(HP_BLOCK(l, HP_MLP_POST), l, d->mlp, M);
    lsc_matmul(d->kern, d->mlp, &w->fc2, w->fc2_b, d->o, R, M, E);
    FIRE_ROWS(HP_BLOCK(l, HP_MLP_OUT), l, d->o, E);
    run_rows(b, l, ROWS_ADD_O);
    FIRE_ROWS(HP_BLOCK(l, HP_RESID_POST), l, d->x, E);
}

/* The whole pass for a step of checked sequences whose buffers are in
 * place; a sequence's n_past and logits change only when it succeeds. */
static void forward(step *b) {
    lsc_ctx *d = b->d;
    const lsc_model *m = d->m;
    const lsc_config *cfg = &m->cfg;
    size_t E = (size_t)cfg->n_embd, V = (size_t)cfg->n_vocab;
    int L = cfg->n_layer;
    /* embeddings: token rows in h, position rows in o, summed into x */
    for (size_t i = 0; i < b->n; i++) {
        const step_seq *s = &b->s[i];
        for (int t = 0; t < s->T; t++) {
            const lsc_f32u *te = m->wte + (size_t)s->ids[t] * E,
                           *pe = m->wpe + (size_t)(s->n_past + t) * E;
            float *h = d->h + (s->r0 + (size_t)t) * E, *o = d->o + (s->r0 + (size_t)t) * E;
            if (m->embed_from_lm) lsc_weights_column(&m->lm, E, V, (size_t)s->ids[t], h);
            else memcpy(h, te, E * sizeof *h);
            memcpy(o, pe, E * sizeof *o);
        }
    }
    FIRE_ROWS(HP_EMBED, -1, d->h, E);
    FIRE_ROWS(HP_POS_EMBED, -1, d->o, E);
    for (size_t i = 0; i < b->R * E; i++) d->x[i] = d->h[i] + d->o[i];
    for (int l = 0; l < L; l++) {
        block(b, l);
        if (!b->n_live) return;
    }
    /* the rows whose logits are kept, packed into h [Rl, E] */
    for (size_t i = 0; i < b->n; i++) {
        const step_seq *s = &b->s[i];
        lsc_layernorm(d->kern, d->x + (s->r0 + (size_t)s->first) * E, m->lnf_g, m->lnf_b,
                      d->h + s->l0 * E, (size_t)(s->T - s->first), E, cfg->layer_norm_epsilon);
    }
    for (size_t i = 0; i < b->n; i++) {
        step_seq *s = &b->s[i];
        fire_seq(b, s, HP_LN_FINAL(L), -1, d->h + s->l0 * E, s->T - s->first,
                 s->n_past + s->first);
    }
    if (!b->n_live) return;
    lsc_matmul(d->kern, d->h, &m->lm, NULL, b->logits, b->Rl, E, V);
    for (size_t i = 0; i < b->n; i++) {
        step_seq *s = &b->s[i];
        fire_seq(b, s, HP_LOGITS(L), -1, b->logits + s->l0 * V, s->T - s->first,
                 s->n_past + s->first);
    }
    if (b->logits == d->step_logits) /* the step's rows into each context's own */
        lsc_pool_run(b->Rl >= ROWS_MIN_PARALLEL ? d->pool : NULL, copy_logits, b);
    for (size_t i = 0; i < b->n; i++) {
        step_seq *s = &b->s[i];
        if (s->st) continue;
        size_t rows = (size_t)(s->T - s->first);
        set_logit_rows(s->c, rows);
        s->c->n_past = s->n_past + s->T;
    }
}

/* Checks one sequence's input: ids in the vocabulary, room in its context,
 * a known mode. */
static lsc_status check_input(const lsc_ctx *c, const int32_t *ids, size_t n,
                              lsc_logits_mode mode, lsc_error *err) {
    if (n == 0 || !ids) return lsc_fail(err, LSC_ERR_INVALID_ARG, "no tokens to run the model on");
    if (mode != LSC_LOGITS_LAST && mode != LSC_LOGITS_ALL)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "unknown logits mode %d", (int)mode);
    int V = c->m->cfg.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "token id %ld (at index %zu) is outside the vocabulary [0, %d)",
                            (long)ids[i], i, V);
    if (n > (size_t)(c->n_ctx - c->n_past))
        return lsc_fail(err, LSC_ERR_CONTEXT_FULL,
                        "%zu tokens after %d cached ones exceed the context of %d positions (n_positions)",
                        n, c->n_past, c->n_ctx);
    return LSC_OK;
}

/* Runs the step of the b->n checked sequences in b->s (T, ids, c, err and
 * mode-derived `first` set): lays out their rows, grows the buffers and runs
 * the pass. A sequence whose buffers cannot be had fails alone. */
static void run_step(step *b) {
    lsc_ctx *d = b->d;
    size_t V = (size_t)d->m->cfg.n_vocab;
    b->R = b->Rl = 0;
    b->n_live = 0;
    for (size_t i = 0; i < b->n; i++) {
        step_seq *s = &b->s[i];
        size_t rows = (size_t)(s->T - s->first);
        set_logit_rows(s->c, 0);
        s->n_past = s->c->n_past;
        if (!s->st && !grow(&s->c->logits, &s->c->cap_logits, rows * V))
            s->st = lsc_fail(s->err, LSC_ERR_NOMEM, "cannot allocate logits for %zu rows", rows);
        if (s->st) { /* no rows: it takes no part */
            s->T = s->first = 0;
            continue;
        }
        s->r0 = b->R;
        s->l0 = b->Rl;
        b->R += (size_t)s->T;
        b->Rl += rows;
        b->n_live++;
    }
    if (!b->n_live) return;
    lsc_error e;
    lsc_status st = ensure_rows(d, b->R, &e);
    if (!st) { /* the kernels' scratch: products of R rows (K is E or M; N of
                * [K, N] weights 3E, E or M) and attention over as many
                * positions as any context of the model holds (sized once) */
        const lsc_config *cfg = &d->m->cfg;
        size_t E = (size_t)cfg->n_embd, M = (size_t)cfg->n_inner;
        st = lsc_kernels_reserve(d->kern, b->R, E > M ? E : M, 3 * E > M ? 3 * E : M,
                                 (size_t)cfg->n_ctx, &e);
    }
    b->logits = NULL;
    if (!st && b->n_live == 1) {
        for (size_t i = 0; i < b->n; i++)
            if (!b->s[i].st) b->logits = b->s[i].c->logits; /* straight into its own */
    } else if (!st && !grow(&d->step_logits, &d->cap_step_logits, b->Rl * V)) {
        st = lsc_fail(&e, LSC_ERR_NOMEM, "cannot allocate logits for %zu rows", b->Rl);
    }
    if (!st) b->logits = b->logits ? b->logits : d->step_logits;
    if (st) {
        for (size_t i = 0; i < b->n; i++)
            if (!b->s[i].st) {
                b->s[i].st = st;
                if (b->s[i].err) *b->s[i].err = e;
            }
        b->n_live = 0;
        return;
    }
    forward(b);
}

lsc_status lsc_ctx_forward(lsc_ctx *c, const int32_t *ids, size_t n, lsc_logits_mode mode,
                           lsc_error *err) {
    if (!c) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_forward: context is NULL");
    set_logit_rows(c, 0);
    lsc_status st = check_input(c, ids, n, mode, err);
    if (st) return st;
    step_seq s = {.c = c, .ids = ids, .T = (int)n, .err = err,
                  .first = mode == LSC_LOGITS_ALL ? 0 : (int)n - 1};
    lsc_attn_args attn;
    step b = {.d = c, .s = &s, .n = 1, .attn = &attn};
    run_step(&b);
    return s.st;
}

/* ------------------------------------------------------------------------ */
/* Unembedding and logit lens                                                */
/* ------------------------------------------------------------------------ */

lsc_status lsc_ctx_unembed(lsc_ctx *c, const float *resid, size_t rows, float *out,
                           lsc_error *err) {
    if (!c || (rows && (!resid || !out)))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_unembed: NULL argument");
    const lsc_model *m = c->m;
    size_t E = (size_t)m->cfg.n_embd, bytes;
    if (!lsc_mul_size(rows, E * sizeof(float), &bytes))
        return lsc_fail(err, LSC_ERR_NOMEM, "lsc_ctx_unembed: %zu rows is too many", rows);
    lsc_status st = lsc_kernels_reserve(c->kern, rows, E, 0, 0, err);
    if (st) return st;
    float *h = malloc(bytes ? bytes : 1);
    if (!h) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for %zu rows", rows);
    /* the same kernels as the end of forward() */
    lsc_layernorm(c->kern, resid, m->lnf_g, m->lnf_b, h, rows, E, m->cfg.layer_norm_epsilon);
    lsc_matmul(c->kern, h, &m->lm, NULL, out, rows, E, (size_t)m->cfg.n_vocab);
    free(h);
    return LSC_OK;
}

/* What the logit lens's capture hooks share: the rows of positions
 * [pos0, pos0 + n_pos) of each residual stream, [n_layer + 1, n_pos, E]. */
typedef struct lens_capture {
    float *rows;
    int pos0, n_pos, E;
} lens_capture;

/* Copies the captured positions of a residual stream into its layer's slot:
 * blocks.0.hook_resid_pre is slot 0, blocks.{i}.hook_resid_post slot i + 1. */
static int lens_hook(lsc_activation *a, void *user_data) {
    lens_capture *cap = user_data;
    int slot = strstr(a->name, "hook_resid_pre") ? 0 : a->layer + 1;
    for (int t = 0; t < a->n_pos; t++) {
        int p = a->pos0 + t - cap->pos0;
        if (p < 0 || p >= cap->n_pos) continue;
        memcpy(cap->rows + ((size_t)slot * cap->n_pos + p) * cap->E,
               a->data + (size_t)t * cap->E, (size_t)cap->E * sizeof(float));
    }
    return 0;
}

lsc_status lsc_ctx_logit_lens(lsc_ctx *c, const int32_t *ids, size_t n, int pos0, int n_pos,
                              float *out, lsc_error *err) {
    if (!c || !ids || !out)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_ctx_logit_lens: NULL argument");
    if (n == 0) return lsc_fail(err, LSC_ERR_INVALID_ARG, "no tokens to run the model on");
    if (pos0 < 0 || n_pos < 1 || (size_t)pos0 >= n || (size_t)n_pos > n - (size_t)pos0)
        return lsc_fail(err, LSC_ERR_INVALID_ARG,
                        "logit lens positions [%d, %d) are outside the %zu tokens", pos0,
                        pos0 + n_pos, n);
    const lsc_model *m = c->m;
    int L = m->cfg.n_layer;
    size_t E = (size_t)m->cfg.n_embd, rows = (size_t)(L + 1) * (size_t)n_pos;
    lens_capture cap = {.pos0 = pos0, .n_pos = n_pos, .E = (int)E};
    if (!(cap.rows = calloc(rows * E, sizeof(float))))
        return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for the logit lens");
    int h1 = 0, h2 = 0;
    lsc_status st = lsc_ctx_add_hook(c, "blocks.0.hook_resid_pre", lens_hook, &cap, &h1, err);
    if (!st) st = lsc_ctx_add_hook(c, "blocks.*.hook_resid_post", lens_hook, &cap, &h2, err);
    if (!st) {
        lsc_ctx_reset(c);
        st = lsc_ctx_forward(c, ids, n, LSC_LOGITS_LAST, err);
    }
    lsc_ctx_remove_hook(c, h1);
    lsc_ctx_remove_hook(c, h2);
    if (!st) st = lsc_ctx_unembed(c, cap.rows, rows, out, err);
    free(cap.rows);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

lsc_status lsc_batch_forward(lsc_ctx *const *ctxs, const int32_t *const *ids,
                             const size_t *n_ids, size_t n_seqs,
                             const lsc_logits_mode *modes, lsc_error *errs, lsc_error *err) {
    if (n_seqs && (!ctxs || !ids || !n_ids))
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_batch_forward: NULL argument");
    for (size_t i = 0; i < n_seqs; i++) {
        if (!ctxs[i]) return lsc_fail(err, LSC_ERR_INVALID_ARG, "lsc_batch_forward: context %zu is NULL", i);
        if (ctxs[i]->m != ctxs[0]->m)
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "lsc_batch_forward: context %zu belongs to another model", i);
        /* the step runs on ctxs[0]'s kernels: a sequence must get the bits
         * its own level gives */
        if (lsc_kernels_level(ctxs[i]->kern) != lsc_kernels_level(ctxs[0]->kern))
            return lsc_fail(err, LSC_ERR_INVALID_ARG,
                            "lsc_batch_forward: context %zu runs the '%s' kernels, context 0 '%s'",
                            i, lsc_ctx_simd_level(ctxs[i]), lsc_ctx_simd_level(ctxs[0]));
        for (size_t j = 0; j < i; j++)
            if (ctxs[j] == ctxs[i])
                return lsc_fail(err, LSC_ERR_INVALID_ARG,
                                "lsc_batch_forward: context %zu appears twice (also at %zu)", i, j);
    }
    step_seq *seqs = n_seqs ? calloc(n_seqs, sizeof *seqs) : NULL;
    lsc_attn_args *attn = n_seqs ? calloc(n_seqs, sizeof *attn) : NULL;
    lsc_error *own = NULL;
    if (!errs && n_seqs) errs = own = calloc(n_seqs, sizeof *own);
    if (n_seqs && (!seqs || !attn || !errs)) {
        free(seqs);
        free(attn);
        free(own);
        return lsc_fail(err, LSC_ERR_NOMEM, "lsc_batch_forward: out of memory for %zu sequences",
                        n_seqs);
    }
    /* the sequences that take part, each checked alone */
    step b = {.d = n_seqs ? ctxs[0] : NULL, .s = seqs, .attn = attn};
    for (size_t i = 0; i < n_seqs; i++) {
        errs[i].status = LSC_OK;
        errs[i].message[0] = '\0';
        if (!n_ids[i]) continue; /* sits this step out */
        lsc_logits_mode mode = modes ? modes[i] : LSC_LOGITS_LAST;
        set_logit_rows(ctxs[i], 0);
        if (check_input(ctxs[i], ids[i], n_ids[i], mode, &errs[i])) continue;
        step_seq *s = &seqs[b.n++];
        *s = (step_seq){.c = ctxs[i], .ids = ids[i], .T = (int)n_ids[i], .err = &errs[i],
                        .first = mode == LSC_LOGITS_ALL ? 0 : (int)n_ids[i] - 1};
    }
    if (b.n) run_step(&b);
    lsc_status first = LSC_OK;
    for (size_t i = 0; i < n_seqs && !first; i++)
        if (errs[i].status) {
            first = errs[i].status;
            lsc_fail(err, first, "sequence %zu: %s", i, errs[i].message);
        }
    free(seqs);
    free(attn);
    free(own);
    return first;
}
