/* stubs.c - TEMPORARY: public functions not written yet. Each module's author
 * deletes its functions from here when the real ones land; this file goes
 * away when it is empty. Every stub fails with LSC_ERR_UNSUPPORTED. */
#include "internal.h"

#define NOT_YET(err) lsc_fail((err), LSC_ERR_UNSUPPORTED, "%s: not implemented yet", __func__)

/* model.c */
lsc_model_params lsc_model_default_params(void) { lsc_model_params p = {0}; return p; }
lsc_status lsc_model_load(const char *dir, lsc_model_params params, lsc_model **out, lsc_error *err) { *out = NULL; return NOT_YET(err); }
void lsc_model_free(lsc_model *model) {}
const lsc_config *lsc_model_config(const lsc_model *model) { return NULL; }
int lsc_model_n_vocab(const lsc_model *model) { return 0; }
int lsc_model_n_ctx(const lsc_model *model) { return 0; }
int lsc_model_n_layer(const lsc_model *model) { return 0; }
int lsc_model_n_embd(const lsc_model *model) { return 0; }
int lsc_model_n_head(const lsc_model *model) { return 0; }
lsc_ctx_params lsc_ctx_default_params(void) { lsc_ctx_params p = {0}; return p; }
lsc_status lsc_ctx_new(const lsc_model *model, lsc_ctx_params params, lsc_ctx **out, lsc_error *err) { *out = NULL; return NOT_YET(err); }
void lsc_ctx_free(lsc_ctx *ctx) {}
void lsc_ctx_reset(lsc_ctx *ctx) {}
int lsc_ctx_n_past(const lsc_ctx *ctx) { return 0; }
lsc_status lsc_ctx_forward(lsc_ctx *ctx, const int32_t *ids, size_t n, lsc_logits_mode mode, lsc_error *err) { return NOT_YET(err); }
const float *lsc_ctx_logits(const lsc_ctx *ctx, size_t *n_rows) { return NULL; }
lsc_status lsc_ctx_add_hook(lsc_ctx *ctx, const char *pattern, lsc_hook_fn fn, void *user_data, int *handle, lsc_error *err) { return NOT_YET(err); }
void lsc_ctx_remove_hook(lsc_ctx *ctx, int handle) {}
void lsc_ctx_clear_hooks(lsc_ctx *ctx) {}
int lsc_model_n_hook_points(const lsc_model *model) { return 0; }
const char *lsc_model_hook_point_name(const lsc_model *model, int index) { return NULL; }
int lsc_model_hook_point_shape(const lsc_model *model, int index, int n_tokens, int64_t shape[4]) { return 0; }

/* model.c: two context accessors that generate.c (lsc_generate, lsc_score) needs */
int lsc_ctx_n_ctx(const lsc_ctx *ctx) { return 0; }
const lsc_model *lsc_ctx_model(const lsc_ctx *ctx) { return NULL; }
