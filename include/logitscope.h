/*
 * logitscope.h - the one public header of liblogitscope.
 *
 * Next-token prediction with GPT-2 checkpoints in the Hugging Face layout
 * (config.json, model.safetensors, vocab.json + merges.txt), computed in C with
 * the same numbers as transformers' GPT2LMHeadModel in float32.
 *
 * Usage: a whole program (tests/test_install.py builds it against the installed
 * library with `cc example.c $(pkg-config --cflags --libs logitscope)`):
 *
 *     #include <logitscope.h>
 *     #include <stdio.h>
 *     #include <string.h>
 *
 *     int main(int argc, char **argv) {
 *         const char *dir = argc > 1 ? argv[1] : "path/to/gpt2", *text = "Hello, my dog";
 *         lsc_error err;
 *         lsc_model *model = NULL;
 *         lsc_tokenizer *tok = NULL;
 *         lsc_ctx *ctx = NULL;
 *         int32_t *ids = NULL;
 *         size_t n = 0;
 *         int rc = 1;
 *         if (lsc_model_load(dir, lsc_model_default_params(), &model, &err) ||
 *             lsc_tokenizer_load(dir, &tok, &err) ||
 *             lsc_ctx_new(model, lsc_ctx_default_params(), &ctx, &err) ||
 *             lsc_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n, &err) ||
 *             lsc_ctx_forward(ctx, ids, n, LSC_LOGITS_LAST, &err)) {
 *             fprintf(stderr, "error: %s\n", err.message);
 *         } else {
 *             const float *row = lsc_ctx_logits(ctx, NULL); // [n_vocab]
 *             printf("next token id: %zu\n", lsc_argmax(row, lsc_model_n_vocab(model)));
 *             rc = 0;
 *         }
 *         lsc_free(ids);
 *         lsc_ctx_free(ctx);
 *         lsc_tokenizer_free(tok);
 *         lsc_model_free(model);
 *         return rc;
 *     }
 *
 * Conventions:
 *  - Every symbol is lsc_*, every constant LSC_*.
 *  - Every fallible call returns lsc_status (LSC_OK = 0) and, when `err` is not
 *    NULL, fills it with the status and a one-line message naming the file,
 *    tensor or value at fault. `err` may be NULL everywhere.
 *  - The library never prints and never exits the process.
 *  - Objects come in new/free pairs; every *_free accepts NULL.
 *  - Arrays returned through `T **out` are allocated by the library and freed by
 *    the caller with lsc_free(). Pointers returned directly (const T *) are owned
 *    by the object they came from; each function says how long they stay valid.
 *  - Shapes are written in comments as [rows, cols], row-major, float32.
 */
#ifndef LOGITSCOPE_H
#define LOGITSCOPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LSC_VERSION "0.1.0"

/* Marks the library's public functions: the shared library is built with
 * -fvisibility=hidden, so these are the only symbols it exports. */
#if defined(__GNUC__)
#define LSC_API __attribute__((visibility("default")))
#else
#define LSC_API
#endif

/* ------------------------------------------------------------------------ */
/* Status and errors                                                         */
/* ------------------------------------------------------------------------ */

typedef enum lsc_status {
    LSC_OK = 0,
    LSC_ERR_INVALID_ARG,  /* a caller-supplied value is out of range or malformed */
    LSC_ERR_IO,           /* a file could not be opened, read, mapped or written */
    LSC_ERR_FORMAT,       /* a file's content is corrupt or violates its format */
    LSC_ERR_UNSUPPORTED,  /* valid input that logitscope does not implement */
    LSC_ERR_NOMEM,        /* an allocation failed or a size limit was exceeded */
    LSC_ERR_CONTEXT_FULL, /* more tokens than the context holds */
    LSC_ERR_NOT_FOUND,    /* a named thing (file, tensor, hook point, repo) is absent */
    LSC_ERR_NETWORK,      /* a download failed */
    LSC_ERR_AUTH,         /* the server refused access (401/403) */
    LSC_ERR_HOOK,         /* a hook callback asked to abort the forward pass */
    LSC_ERR_INTERNAL
} lsc_status;

#define LSC_ERROR_MESSAGE_SIZE 512

/* The most worker threads a context may have (lsc_ctx_params.n_threads). */
#define LSC_MAX_THREADS 1024

/* Filled by a failing call: the status and a one-line, human-readable message. */
typedef struct lsc_error {
    lsc_status status;
    char message[LSC_ERROR_MESSAGE_SIZE];
} lsc_error;

/* Static text for a status, e.g. "format error". Never NULL. */
LSC_API const char *lsc_status_str(lsc_status status);

/* The instruction-set levels of the numeric kernels. Each context runs the
 * one its lsc_ctx_params.simd names (contexts in one process may differ). */
typedef enum lsc_simd {
    LSC_SIMD_BEST = 0, /* the best this CPU has, capped by the environment
                          variable LSC_SIMD ("ref", "avx2", "avx512", "neon") */
    LSC_SIMD_REF,      /* plain C, the reference kernels */
    LSC_SIMD_AVX2,     /* x86-64 AVX2 + FMA */
    LSC_SIMD_AVX512,   /* x86-64 AVX-512 F/BW/VL/DQ */
    LSC_SIMD_NEON      /* aarch64 Advanced SIMD */
} lsc_simd;

/* The level a context made with the default parameters runs: the best the
 * CPU has unless LSC_SIMD names a lower one ("ref", "avx2", "avx512",
 * "neon"). F32 results are the same bits at "avx2" and "avx512". */
LSC_API const char *lsc_simd_level(void);

/* Frees an array the library returned through an out-parameter. NULL is fine. */
LSC_API void lsc_free(void *ptr);

/* ------------------------------------------------------------------------ */
/* Model: hyper-parameters and weights (read-only once loaded)               */
/* ------------------------------------------------------------------------ */

typedef struct lsc_model lsc_model;

/* How weights are held in memory for the matrix products. F32 is exact. */
typedef enum lsc_weight_type {
    LSC_WEIGHTS_F32 = 0, /* float32 (mmap'd without copy when the file is F32) */
    LSC_WEIGHTS_BF16,    /* bfloat16, converted at load */
    LSC_WEIGHTS_Q8       /* 8-bit with per-block scales, converted at load */
} lsc_weight_type;

typedef struct lsc_model_params {
    lsc_weight_type weight_type; /* default LSC_WEIGHTS_F32 */
    /* 1 (default): use the weights where they lie in the mmap'd file: loading
     * takes well under a millisecond and processes share the page cache.
     * 0: read the file into this process's memory, in 2 MiB pages where the
     * kernel allows (transparent huge pages), with F32 matrices rearranged
     * into the layout of the batched products (16-column panels): loading
     * copies the file (~0.5-1 s for GPT-2 124M) and the memory is private,
     * but a step of many sequences reads the weights as one stream instead
     * of repacking them block by block, and visits each page briefly with
     * far fewer TLB misses (docs/performance.md). Same bits either way.
     * llama.cpp calls this --no-mmap. */
    int use_mmap;
} lsc_model_params;

LSC_API lsc_model_params lsc_model_default_params(void);

/* The hyper-parameters read from config.json. */
typedef struct lsc_config {
    int n_layer;
    int n_head;
    int n_embd;
    int n_ctx;   /* n_positions (or n_ctx) */
    int n_vocab; /* vocab_size */
    int n_inner; /* MLP width, 4 * n_embd unless config says otherwise */
    float layer_norm_epsilon;
    int scale_attn_weights;              /* 1: divide scores by sqrt(head_dim) */
    int scale_attn_by_inverse_layer_idx; /* 1: also divide by (layer + 1) */
    int reorder_and_upcast_attn;         /* accepted; math is float32 either way */
    int tie_word_embeddings;             /* 1: lm_head is wte */
    char activation_function[32];        /* "gelu_new", "gelu", ... */
    float embd_pdrop, attn_pdrop, resid_pdrop; /* dropout: training only (shown by arch) */
} lsc_config;

/* Loads config.json and model.safetensors from the folder `dir`. On success
 * *out owns the model; free it with lsc_model_free(). On failure *out is NULL. */
LSC_API lsc_status lsc_model_load(const char *dir, lsc_model_params params, lsc_model **out,
                          lsc_error *err);
LSC_API void lsc_model_free(lsc_model *model);

/* The model's configuration; valid as long as the model. */
LSC_API const lsc_config *lsc_model_config(const lsc_model *model);
LSC_API int lsc_model_n_vocab(const lsc_model *model);
LSC_API int lsc_model_n_ctx(const lsc_model *model);
LSC_API int lsc_model_n_layer(const lsc_model *model);
LSC_API int lsc_model_n_embd(const lsc_model *model);
LSC_API int lsc_model_n_head(const lsc_model *model);

/* What the model's weights file holds, for reports such as `logitscope arch`.
 * Strings are valid as long as the model. */
typedef struct lsc_model_file {
    const char *path;  /* the model.safetensors that was mapped */
    uint64_t n_bytes;  /* its size */
    const char *dtype; /* the parameters' dtype: "F32", "F16", "BF16", "F64", or "mixed" */
    int prefixed;      /* 1: tensor names start with "transformer." (save_pretrained) */
    int n_tensors;     /* tensors in the file, buffers such as h.N.attn.bias included */
} lsc_model_file;

LSC_API void lsc_model_file_info(const lsc_model *model, lsc_model_file *info);

/* The module tree exactly as PyTorch prints transformers' GPT2LMHeadModel
 * (print(model)), ending in a newline. snprintf's contract: writes at most
 * `size` bytes, NUL included, and returns the length of the whole text (call
 * with size 0 to learn it). */
LSC_API size_t lsc_model_module_tree(const lsc_model *model, char *buf, size_t size);

/* Scans every weight of the file (buffers such as h.N.attn.bias aside) for
 * NaN or +-Inf as float32 and fails with LSC_ERR_FORMAT naming the first
 * tensor and element holding one. lsc_model_load does not scan (loading stays
 * a mapping of the file): NaN/Inf weights load and propagate into NaN logits,
 * as in torch; the CLI refuses non-finite logits and calls this to name the
 * tensor. Reads the whole file. */
LSC_API lsc_status lsc_model_check_finite(const lsc_model *model, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Context: KV cache, scratch buffers, hooks, logits of the last forward     */
/* ------------------------------------------------------------------------ */

typedef struct lsc_ctx lsc_ctx;

/* Threads: a model may be shared by any number of contexts on any threads;
 * a context (its KV cache, scratch, thread pool and hooks) is used by one
 * thread at a time. Contexts share no kernel state, so two of them may run
 * different SIMD levels at the same time. */
typedef struct lsc_ctx_params {
    int n_ctx;     /* tokens the KV cache holds; 0 = the model's n_ctx */
    int n_threads; /* 0 = all cores */
    lsc_simd simd; /* the kernels' level; LSC_SIMD_BEST (default) = the best
                      the CPU has; LSC_SIMD in the environment caps it; a
                      level the CPU lacks is an error */
} lsc_ctx_params;

LSC_API lsc_ctx_params lsc_ctx_default_params(void);

/* Creates a context over `model`, which must outlive it. */
LSC_API lsc_status lsc_ctx_new(const lsc_model *model, lsc_ctx_params params, lsc_ctx **out,
                       lsc_error *err);
LSC_API void lsc_ctx_free(lsc_ctx *ctx);

/* Forgets every cached token (hooks stay registered). */
LSC_API void lsc_ctx_reset(lsc_ctx *ctx);

/* Tokens already in the KV cache. */
LSC_API int lsc_ctx_n_past(const lsc_ctx *ctx);

/* The kernels' level this context runs: "ref", "avx2", "avx512" or "neon". */
LSC_API const char *lsc_ctx_simd_level(const lsc_ctx *ctx);

/* Tokens the KV cache holds in all (the n_ctx it was made with). */
LSC_API int lsc_ctx_n_ctx(const lsc_ctx *ctx);

/* The model the context runs. */
LSC_API const lsc_model *lsc_ctx_model(const lsc_ctx *ctx);

typedef enum lsc_logits_mode {
    LSC_LOGITS_LAST = 0, /* only the last new position's row */
    LSC_LOGITS_ALL = 1   /* a row for every new position */
} lsc_logits_mode;

/* Runs the model on `n` new tokens placed after the n_past cached ones and
 * appends their keys and values to the cache. Ids are checked against n_vocab
 * and n_past + n against n_ctx (LSC_ERR_CONTEXT_FULL). On failure the cache is
 * left as it was before the call. */
LSC_API lsc_status lsc_ctx_forward(lsc_ctx *ctx, const int32_t *ids, size_t n,
                           lsc_logits_mode mode, lsc_error *err);

/* Logits of the last forward: [n_rows, n_vocab], where n_rows is 1 for
 * LSC_LOGITS_LAST and n for LSC_LOGITS_ALL. Valid until the next forward,
 * reset or free. `n_rows` may be NULL. */
LSC_API const float *lsc_ctx_logits(const lsc_ctx *ctx, size_t *n_rows);

/* The log-sum-exp of every logits row of each of the n contexts (the bits of
 * lsc_logsumexp on that row: a row's log-softmax is row[i] - lse), spread
 * over ctxs[0]'s threads, for the contexts of a batch step (scoring, a
 * server's log-probabilities) whose rows would otherwise be summed one by one
 * on the calling thread. Rows already computed are not computed again. No
 * context may be used by another thread during the call. */
LSC_API lsc_status lsc_batch_logsumexp(lsc_ctx *const *ctxs, size_t n, lsc_error *err);

/* The rows lsc_batch_logsumexp computed for the context's current logits:
 * [n_rows] (n_rows as lsc_ctx_logits gives), or NULL (and 0) when they have
 * not been computed since the last forward or reset (or ctx is NULL).
 * `n_rows` may be NULL. */
LSC_API const double *lsc_ctx_logsumexp(const lsc_ctx *ctx, size_t *n_rows);

/* Advances several contexts of one model in one forward step (continuous
 * batching): context ctxs[i] gets the n_ids[i] new tokens ids[i] after its
 * own cached ones, and afterwards holds its logits as if lsc_ctx_forward(
 * ctxs[i], ids[i], n_ids[i], modes[i]) had run alone; the results are the
 * same bits whatever else is in the batch. n_ids[i] may differ between
 * sequences (a prefill beside single-token decode steps); n_ids[i] == 0 means
 * the context sits this step out (its logits and cache are untouched).
 * `modes` may be NULL (every sequence LSC_LOGITS_LAST). Each context keeps its
 * own KV cache and hooks; hooks fire with that context's rows only.
 *
 * A sequence whose input is bad (an id outside the vocabulary, more tokens
 * than its context holds, a hook that aborts) fails alone: errs[i] (when
 * `errs` is not NULL, an array of n_seqs) gets its status and message, its
 * cache is left as before the call, and the other sequences still advance.
 * errs[i].status is LSC_OK for the sequences that advanced. Returns LSC_OK
 * when every sequence advanced, otherwise the status of the first failed one
 * (with `err` naming its index).
 *
 * The rows of all sequences are stacked: the layer norms, the weight
 * products and the activations run once over all of them (the weights are
 * read once per step, not once per sequence); attention runs per sequence on
 * its own cache. Same bits: with F32 weights always (every kernel sums a row
 * in an order that does not depend on the other rows); with BF16 or Q8
 * weights a step of one row alone takes the matrix-vector kernels, which
 * round x differently from the products of several rows, so a one-token step
 * may differ from its batched twin within the weights' precision.
 *
 * Every context must belong to the same model and appear once. The kernels
 * run on the thread pool of ctxs[0] (the other contexts' pools are not used:
 * they may be made with n_threads = 1), and the stacked rows live in ctxs[0]'s
 * scratch, which grows to the step's total rows (about (9 E + 2 M) floats
 * per row, plus [rows, n_vocab] logits when several sequences take part).
 * No context may be used by another thread during the call. */
LSC_API lsc_status lsc_batch_forward(lsc_ctx *const *ctxs, const int32_t *const *ids,
                             const size_t *n_ids, size_t n_seqs,
                             const lsc_logits_mode *modes, lsc_error *errs, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Hook points                                                               */
/* ------------------------------------------------------------------------ */
/*
 * Named points follow TransformerLens. T is the number of new positions of the
 * forward call, P = n_past + T the positions attended to, H = n_head,
 * D = n_embd / n_head, E = n_embd, M = n_inner, V = n_vocab:
 *
 *   hook_embed                          [T, E]  token embeddings
 *   hook_pos_embed                      [T, E]  position embeddings
 *   blocks.{i}.hook_resid_pre           [T, E]
 *   blocks.{i}.ln1.hook_normalized      [T, E]
 *   blocks.{i}.attn.hook_q/hook_k/hook_v [T, H, D]
 *   blocks.{i}.attn.hook_attn_scores    [H, T, P]  scaled, causal mask = -inf
 *   blocks.{i}.attn.hook_pattern        [H, T, P]  softmax of the scores
 *   blocks.{i}.attn.hook_z              [T, H, D]  pattern @ v, before c_proj
 *   blocks.{i}.hook_attn_out            [T, E]
 *   blocks.{i}.hook_resid_mid           [T, E]
 *   blocks.{i}.ln2.hook_normalized      [T, E]
 *   blocks.{i}.mlp.hook_pre             [T, M]  before the activation
 *   blocks.{i}.mlp.hook_post            [T, M]  after the activation
 *   blocks.{i}.hook_mlp_out             [T, E]
 *   blocks.{i}.hook_resid_post          [T, E]
 *   ln_final.hook_normalized            [T, E]
 *   hook_logits (alias lm_head)         [T, V]  rows computed by this forward
 *
 * With LSC_LOGITS_LAST, ln_final.hook_normalized and hook_logits cover only the
 * last position (T = 1 there, pos0 = the last position).
 *
 * The *.hook_normalized points are the LayerNorm outputs with the affine
 * weight and bias applied (what transformers' ln_1 / ln_2 / ln_f return).
 * hook_k and hook_v fire before the new rows enter the KV cache, so rewriting
 * them changes what later tokens attend to. hook_attn_out and hook_mlp_out
 * include the c_proj bias. Points without a registered hook cost one branch.
 * A callback must not add or remove hooks on the context it runs in.
 */

/* What a hook callback sees. `data` may be rewritten in place; the forward pass
 * continues from the rewritten values. */
typedef struct lsc_activation {
    const char *name; /* the point's canonical name, e.g. "blocks.3.hook_mlp_out" */
    int layer;        /* block index, or -1 outside the blocks */
    float *data;      /* contiguous, row-major */
    int n_dims;
    int64_t shape[4];
    int pos0;  /* absolute position of the first query row (= n_past at call) */
    int n_pos; /* number of query positions covered (T) */
    const char *message; /* NULL; a hook that aborts may point it at a one-line
                            reason (valid until the forward returns), which the
                            LSC_ERR_HOOK message then gives */
} lsc_activation;

/* A hook returns 0 to continue, non-zero to abort the forward pass with
 * LSC_ERR_HOOK (the KV cache is then left as before the call). */
typedef int (*lsc_hook_fn)(lsc_activation *act, void *user_data);

/* Registers `fn` on every point whose name matches `pattern` (a point name, or
 * a glob where '*' matches any run of characters, e.g. "blocks.*.hook_mlp_out").
 * Hooks fire in registration order at every forward until removed. A pattern
 * matching no point is LSC_ERR_NOT_FOUND. *handle identifies the registration. */
LSC_API lsc_status lsc_ctx_add_hook(lsc_ctx *ctx, const char *pattern, lsc_hook_fn fn,
                            void *user_data, int *handle, lsc_error *err);

/* Removes a registration; unknown handles are ignored. */
LSC_API void lsc_ctx_remove_hook(lsc_ctx *ctx, int handle);

/* Removes every registration. */
LSC_API void lsc_ctx_clear_hooks(lsc_ctx *ctx);

/* The number of hook points of a model and their names, in forward order;
 * names are valid as long as the model. Fills `shape` (may be NULL) with the
 * point's shape for T = n_tokens new tokens and n_past = 0, returning its
 * number of dimensions. */
LSC_API int lsc_model_n_hook_points(const lsc_model *model);
LSC_API const char *lsc_model_hook_point_name(const lsc_model *model, int index);
LSC_API int lsc_model_hook_point_shape(const lsc_model *model, int index, int n_tokens,
                               int64_t shape[4]);

/* 1 when point `index` matches `pattern` as lsc_ctx_add_hook matches it (a
 * glob; "lm_head" names hook_logits), else 0. */
LSC_API int lsc_model_hook_point_matches(const lsc_model *model, int index, const char *pattern);

/* The index of the point named `name` (canonical, or the alias "lm_head"), or
 * -1 when there is none. */
LSC_API int lsc_model_hook_point_index(const lsc_model *model, const char *name);

/* ------------------------------------------------------------------------ */
/* Unembedding and logit lens                                                */
/* ------------------------------------------------------------------------ */

/* Passes rows of a residual stream resid[rows, n_embd] through ln_final (each
 * row normalized with its own mean and variance, then the affine weight and
 * bias) and the unembedding: out[rows, n_vocab]. For the final residual
 * stream (blocks.{L-1}.hook_resid_post) this gives the model's logits. */
LSC_API lsc_status lsc_ctx_unembed(lsc_ctx *ctx, const float *resid, size_t rows, float *out,
                           lsc_error *err);

/* The logit lens: resets `ctx`, runs ids[n] and writes into
 * out[n_layer + 1, n_pos, n_vocab] the unembedded (lsc_ctx_unembed) rows of
 * positions [pos0, pos0 + n_pos) of each residual stream, in layer order:
 * layer 0 is blocks.0.hook_resid_pre (the embeddings, transformers'
 * hidden_states[0]) and layer i + 1 is blocks.{i}.hook_resid_post, so the last
 * layer is the model's logits. Hooks registered on `ctx` fire as in any
 * forward (interventions show in the lens); the residual streams are read
 * after them. */
LSC_API lsc_status lsc_ctx_logit_lens(lsc_ctx *ctx, const int32_t *ids, size_t n, int pos0, int n_pos,
                              float *out, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Tokenizer: GPT-2 byte-level BPE                                           */
/* ------------------------------------------------------------------------ */

typedef struct lsc_tokenizer lsc_tokenizer;

/* Loads vocab.json + merges.txt from `dir`, or tokenizer.json (model.vocab +
 * model.merges) when those are absent. The files are checked: JSON syntax,
 * ids exactly 0..n-1 without duplicates, every token in GPT-2's byte-level
 * alphabet, all 256 single-byte tokens present, each merge "A B" naming
 * known tokens whose concatenation is a token (LSC_ERR_FORMAT naming the
 * file, line or entry). "<|endoftext|>" is the one special token. */
LSC_API lsc_status lsc_tokenizer_load(const char *dir, lsc_tokenizer **out, lsc_error *err);
LSC_API void lsc_tokenizer_free(lsc_tokenizer *tok);

LSC_API int lsc_tokenizer_n_vocab(const lsc_tokenizer *tok);
LSC_API int lsc_tokenizer_eos_id(const lsc_tokenizer *tok); /* <|endoftext|>, 50256 for GPT-2; -1 if absent */

enum {
    /* treat "<|endoftext|>" in the text as plain text instead of id 50256 */
    LSC_ENCODE_NO_SPECIAL = 1 << 0
};

/* Encodes `len` bytes of UTF-8 text. Invalid UTF-8 is LSC_ERR_INVALID_ARG.
 * *ids is allocated (free with lsc_free), *n_ids its length. Not thread-safe
 * for one tokenizer (it keeps a cache of pieces already seen). */
LSC_API lsc_status lsc_tokenizer_encode(lsc_tokenizer *tok, const char *text, size_t len,
                                int flags, int32_t **ids, size_t *n_ids, lsc_error *err);

/* The pre-tokenization pieces that encode applies BPE to: the matches of
 * GPT-2's pattern, and "<|endoftext|>" as a piece of its own (unless
 * LSC_ENCODE_NO_SPECIAL). (*ends)[i] is the byte offset where piece i ends;
 * it starts where piece i - 1 ends (or at 0). *ends is allocated (free with
 * lsc_free). Errors as lsc_tokenizer_encode. */
LSC_API lsc_status lsc_tokenizer_split(lsc_tokenizer *tok, const char *text, size_t len, int flags,
                               size_t **ends, size_t *n_pieces, lsc_error *err);

/* Decodes ids to UTF-8 text; invalid UTF-8 in the token bytes is replaced by
 * U+FFFD as Python's bytes.decode('utf-8', errors='replace') does. *text is
 * allocated and NUL-terminated (free with lsc_free), *len excludes the NUL.
 * An id outside [0, n_vocab) is LSC_ERR_INVALID_ARG. */
LSC_API lsc_status lsc_tokenizer_decode(const lsc_tokenizer *tok, const int32_t *ids,
                                size_t n_ids, char **text, size_t *len, lsc_error *err);

/* The raw bytes of one token (not NUL-terminated), valid as long as the
 * tokenizer; NULL for an id out of range. */
LSC_API const char *lsc_tokenizer_token_bytes(const lsc_tokenizer *tok, int32_t id, size_t *len);

/* ------------------------------------------------------------------------ */
/* Inspection: softmax, top-k, rank                                          */
/* ------------------------------------------------------------------------ */
/*
 * These work on one row of n values (a row of logits: [n_vocab]). NaN counts
 * as larger than every number in argmax, top-k and rank, as in torch.
 */

/* out[i] = exp(x[i] - max) / sum_j exp(x[j] - max), accumulated in double, so
 * it stays exact where exp(x[i]) alone would overflow or underflow. -inf
 * entries give 0. A row with no finite maximum (all -inf, or a +inf or NaN
 * entry) gives NaN everywhere, as torch.softmax. `out` may equal `x`. */
LSC_API void lsc_softmax(const float *x, size_t n, float *out);

/* out[i] = x[i] - max - log(sum_j exp(x[j] - max)) (the log-sum-exp trick),
 * in double. -inf entries give -inf. `out` may equal `x`. */
LSC_API void lsc_log_softmax(const float *x, size_t n, float *out);

/* log(sum_i exp(x[i])), computed stably in double; -inf for an all -inf row.
 * These three give the same bits at every SIMD level and on every CPU. */
LSC_API double lsc_logsumexp(const float *x, size_t n);

/* Index of the largest value (the first on ties, as torch.argmax); 0 when n
 * is 0. */
LSC_API size_t lsc_argmax(const float *x, size_t n);

/* Writes into indices[min(k, n)] the indices of the k largest values in
 * descending order, as torch.topk(x, k) on CPU, tied values included: torch
 * leaves ties in the order its std::partial_sort / std::nth_element leaves
 * them (not always the lower index first), and so does this. Needs O(n)
 * scratch memory (LSC_ERR_NOMEM without it). */
LSC_API lsc_status lsc_top_k(const float *x, size_t n, size_t k, int32_t *indices, lsc_error *err);

/* *rank = the position of `id` in torch.argsort(x, descending=True) on CPU
 * (0 = highest): the number of larger values when x[id] ties with no other;
 * with ties, the position torch's sort gives it (O(n log n) and O(n) memory).
 * id >= n is LSC_ERR_INVALID_ARG. */
LSC_API lsc_status lsc_rank(const float *x, size_t n, size_t id, size_t *rank, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                  */
/* ------------------------------------------------------------------------ */

/* A seeded random number generator (xoshiro256**, seeded through splitmix64);
 * deterministic for a seed on every platform and thread count. A plain value:
 * copy it to fork a stream. */
typedef struct lsc_rng {
    uint64_t state[4];
} lsc_rng;

LSC_API void lsc_rng_seed(lsc_rng *rng, uint64_t seed);
LSC_API uint64_t lsc_rng_next(lsc_rng *rng); /* 64 random bits */
LSC_API double lsc_rng_uniform(lsc_rng *rng); /* [0, 1), 53 random bits */

/* Draws `n_draws` indices into out[n_draws] from the (unnormalised,
 * non-negative, finite) weights `probs[n]`, with or without replacement, as
 * torch.multinomial: with replacement each draw is independent; without
 * replacement the draws are distributed as drawing one at a time and removing
 * the drawn index (in draw order), so n_draws must not exceed the number of
 * non-zero weights. Negative, NaN or infinite weights, or an all-zero row, are
 * LSC_ERR_INVALID_ARG. The same rng state gives the same draws. */
LSC_API lsc_status lsc_multinomial(const float *probs, size_t n, size_t n_draws, int replacement,
                           lsc_rng *rng, int32_t *out, lsc_error *err);

typedef struct lsc_sampler lsc_sampler;

/* How the next token is picked, with transformers' names and meanings. */
typedef struct lsc_sampler_params {
    int do_sample;            /* 0 = greedy (argmax); the warpers below then do nothing */
    float temperature;        /* >= 0; 1 = unchanged; 0 = greedy (transformers rejects 0) */
    int top_k;                /* >= 0; keep the k highest (and ties with the k-th); 0 = off */
    double top_p;             /* in (0, 1]; keep the smallest set of highest tokens whose
                                 probability sums to >= top_p; 1 = off (double, as the
                                 Python float transformers compares 1 - top_p with) */
    float min_p;              /* in [0, 1]; drop tokens below min_p * the top probability; 0 = off */
    float repetition_penalty; /* > 0; 1 = off; applied when greedy too */
    uint64_t seed;            /* seeds the sampler's own rng */
} lsc_sampler_params;

/* transformers' generate() defaults when sampling: temperature 1, top_k 50,
 * top_p 1, min_p 0, repetition_penalty 1; do_sample = 0 (greedy), seed 0. */
LSC_API lsc_sampler_params lsc_sampler_default_params(void);

/* Checks `params` (a value out of range is LSC_ERR_INVALID_ARG naming it) and
 * creates a sampler that owns an rng seeded with params.seed and its scratch
 * buffers. Free with lsc_sampler_free(). One sampler is not thread-safe. */
LSC_API lsc_status lsc_sampler_new(lsc_sampler_params params, lsc_sampler **out, lsc_error *err);
LSC_API void lsc_sampler_free(lsc_sampler *s);

/* The parameters the sampler was made with. */
LSC_API lsc_sampler_params lsc_sampler_get_params(const lsc_sampler *s);

/* Writes into out[n_vocab] the logits as transformers processes them before
 * choosing: the repetition penalty over the ids seen so far (prev[n_prev]; may
 * be NULL when n_prev is 0: a seen token's logit is divided by the penalty when
 * positive and multiplied when negative), then, when sampling, temperature
 * (logit / t), top-k, top-p and min-p, in that order; removed tokens are
 * -inf. softmax(out) is the distribution the sampler draws from. `out` may
 * equal `logits`. Ids in prev outside [0, n_vocab) are LSC_ERR_INVALID_ARG. */
LSC_API lsc_status lsc_sampler_apply(lsc_sampler *s, const float *logits, size_t n_vocab,
                             const int32_t *prev, size_t n_prev, float *out, lsc_error *err);

/* Picks the next token from a row of logits [n_vocab]: lsc_sampler_apply, then
 * the argmax when greedy (or temperature 0), else one draw from
 * softmax(processed logits) with the sampler's rng. */
LSC_API lsc_status lsc_sampler_sample(lsc_sampler *s, const float *logits, size_t n_vocab,
                              const int32_t *prev, size_t n_prev, int32_t *out,
                              lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

typedef struct lsc_generate_params {
    int max_new_tokens; /* > 0; prompt + new tokens must fit in the context */
    int32_t eos_id;     /* stop after generating this id (it is kept); -1 = never stop */
} lsc_generate_params;

/* max_new_tokens 20, eos_id -1 (set it from lsc_tokenizer_eos_id to stop at
 * <|endoftext|>, as transformers does). */
LSC_API lsc_generate_params lsc_generate_default_params(void);

/* Called after each new token with its id and the 0-based step; return 0 to
 * go on, non-zero to stop generating (not an error). */
typedef int (*lsc_token_fn)(int32_t id, size_t step, void *user_data);

/* Generates up to params.max_new_tokens tokens after prompt[n_prompt] (n_prompt
 * >= 1): resets `ctx`, runs the prompt once, then feeds each new token alone
 * through the KV cache, choosing it with `sampler` (whose repetition penalty
 * sees the prompt and the tokens so far). Fails with LSC_ERR_CONTEXT_FULL
 * before running anything when n_prompt + max_new_tokens exceeds the
 * context's n_ctx. `fn` (may be NULL) sees each token as it comes. On success
 * *new_ids (free with lsc_free) holds the *n_new generated ids, the eos
 * included when it stopped there; on failure *new_ids is NULL. `new_ids` may
 * be NULL when only the callback is wanted. */
LSC_API lsc_status lsc_generate(lsc_ctx *ctx, lsc_sampler *sampler, const int32_t *prompt,
                        size_t n_prompt, lsc_generate_params params, lsc_token_fn fn,
                        void *user_data, int32_t **new_ids, size_t *n_new, lsc_error *err);

/* One sequence of lsc_generate_batch: its own context, sampler, prompt,
 * limits and callback in; its new tokens and status out. */
typedef struct lsc_generate_seq {
    lsc_ctx *ctx;               /* its context (reset by the call); one per sequence */
    lsc_sampler *sampler;       /* its sampler (its rng advances as when alone) */
    const int32_t *prompt;      /* [n_prompt], n_prompt >= 1 */
    size_t n_prompt;
    lsc_generate_params params; /* its max_new_tokens and eos_id */
    lsc_token_fn fn;            /* may be NULL; sees its tokens as they come */
    void *user_data;            /* passed to fn */
    int32_t *new_ids;           /* out: its generated ids (free with lsc_free), NULL on failure */
    size_t n_new;               /* out: how many */
    lsc_error err;              /* out: its status (LSC_OK when it finished) and message */
} lsc_generate_seq;

/* Generates for n_seqs sequences at once, as lsc_generate would for each
 * alone and with the same tokens (greedy or seeded: each sequence's logits
 * are the same bits in the batch, lsc_batch_forward): the prompts run in one
 * step, then every sequence still going adds its token in the next step, until
 * each stops (eos, max_new_tokens, or its callback returning non-zero).
 * Sequences whose input is bad (empty prompt, too long for its context, an id
 * outside the vocabulary) or whose sampling or hooks fail stop alone with
 * seqs[i].err set; the others go on. Returns LSC_OK when every sequence
 * finished, else the status of the first that failed (`err` naming its
 * index). The steps run on the thread pool of seqs[0].ctx (the other contexts
 * may be made with n_threads = 1); the contexts must share a model and
 * differ. Callbacks run on the calling thread, in sequence order per step. */
LSC_API lsc_status lsc_generate_batch(lsc_generate_seq *seqs, size_t n_seqs, lsc_error *err);

/* A model folder's generation_config.json, read as transformers'
 * model.generate(input_ids) reads it (GenerationConfig). */
typedef struct lsc_generation_config {
    int found;                  /* 1 when the folder has generation_config.json */
    lsc_sampler_params sampler; /* lsc_sampler_default_params() overridden by the file's
                                   do_sample, temperature, top_k, top_p, min_p,
                                   repetition_penalty */
    int max_new_tokens;         /* from the file; 0 = not set */
    int max_length;             /* prompt + new tokens, from the file; 0 = not set */
    int32_t eos_id;             /* the file's eos_token_id (an int or a one-element
                                   list); -1 when absent or null, or when not found */
} lsc_generation_config;

/* Reads dir/generation_config.json into *out. A missing file is not an error:
 * *out then holds the defaults with found = 0. A key of the wrong type or out
 * of range is LSC_ERR_FORMAT naming the file and the key; null counts as
 * absent; unknown keys are ignored. The library allocates nothing to free. */
LSC_API lsc_status lsc_generation_config_load(const char *dir, lsc_generation_config *out,
                                      lsc_error *err);

/* How many new tokens model.generate(input_ids) makes for a prompt of n_prompt
 * tokens on a model with n_ctx positions, with no length given: the config's
 * max_new_tokens when set; else max_length - n_prompt when max_length is set
 * (LSC_ERR_INVALID_ARG, as transformers' ValueError, when n_prompt >=
 * max_length); else 20, capped at n_ctx - n_prompt (transformers 5's default;
 * LSC_ERR_CONTEXT_FULL when the prompt fills the context). `cfg` may be NULL
 * (the defaults). */
LSC_API lsc_status lsc_generation_config_max_new(const lsc_generation_config *cfg, size_t n_prompt,
                                         size_t n_ctx, int *max_new, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Scoring: log-probabilities of the actual next tokens, perplexity          */
/* ------------------------------------------------------------------------ */

typedef struct lsc_score_params {
    int max_length; /* tokens per window; 0 = the context's n_ctx */
    int stride;     /* how far each window moves on; 0 = max_length / 2 (HF's guide: 512 for 1024) */
} lsc_score_params;

LSC_API lsc_score_params lsc_score_default_params(void);

typedef struct lsc_score_result {
    size_t n_scored;   /* tokens predicted: n - 1 */
    size_t n_windows;  /* forward windows run */
    double nll;        /* total negative log-likelihood, sum over the n - 1 tokens */
    double mean_nll;   /* nll / n_scored: transformers' model(ids, labels=ids).loss */
    double perplexity; /* exp(mean_nll) */
} lsc_score_result;

/* Scores ids[n] (n >= 2): logprobs[t - 1] (may be NULL; else n - 1 floats) is
 * log p(ids[t] | ids[..t]) for t = 1 .. n - 1. Texts longer than max_length
 * are scored as in Hugging Face's perplexity guide: windows start at 0,
 * stride, 2 stride, ... and each covers max_length tokens; a window scores
 * only the tokens after the previous window's end, so every token is scored
 * once, with up to max_length - stride tokens of earlier context. Uses (and
 * resets) `ctx`. */
LSC_API lsc_status lsc_score(lsc_ctx *ctx, const int32_t *ids, size_t n, lsc_score_params params,
                     float *logprobs, lsc_score_result *result, lsc_error *err);

/* One text of lsc_score_batch: its ids in; its result, log-probabilities
 * and status out. */
typedef struct lsc_score_seq {
    const int32_t *ids;      /* [n], n >= 2 */
    size_t n;
    float *logprobs;         /* NULL, or n - 1 floats the call fills as lsc_score's */
    lsc_score_result result; /* out */
    lsc_error err;           /* out: its status (LSC_OK when scored) and message */
} lsc_score_seq;

/* Scores n_seqs texts with the numbers lsc_score gives each alone (the same
 * bits: lsc_batch_forward), n_ctxs of them at a time: each context scores
 * one text, window and chunk as lsc_score does, and takes the next text in
 * order when it is done; the texts in flight advance together, one chunk
 * each per lsc_batch_forward step, so short texts share the weight products
 * with no padding. A text that cannot be scored (fewer than 2 tokens, an id
 * outside the vocabulary) fails alone in seqs[i].err. The window comes from
 * `params` and the smallest n_ctx of the contexts (a bad one fails the whole
 * call). Returns LSC_OK when every text was scored, else the status of the
 * first that failed (`err` naming its index). Resets the contexts; the
 * steps run on ctxs[0]'s thread pool. Memory: each step holds up to
 * 128 n_ctxs rows of logits twice (the step's and each context's). */
LSC_API lsc_status lsc_score_batch(lsc_ctx *const *ctxs, size_t n_ctxs, lsc_score_seq *seqs,
                           size_t n_seqs, lsc_score_params params, lsc_error *err);

/* ------------------------------------------------------------------------ */
/* Hub: model names, the Hugging Face cache, downloads                       */
/* ------------------------------------------------------------------------ */
/*
 * A model is named by a local folder or a Hub repo id ("gpt2",
 * "openai-community/gpt2", "user/finetune"). Repo ids live in the Hugging Face
 * hub cache with huggingface_hub's exact layout, so transformers and
 * logitscope share downloads:
 *
 *   {cache}/models--{org}--{name}/blobs/{etag}        file contents
 *   {cache}/models--{org}--{name}/snapshots/{commit}/{file} -> ../../blobs/{etag}
 *   {cache}/models--{org}--{name}/refs/{revision}     the commit of a branch/tag
 *   {cache}/models--{org}--{name}/.no_exist/{commit}/{file}  absent on the Hub
 *
 * Files fetched: config.json and model.safetensors (required), and when the
 * repo has them generation_config.json, vocab.json, merges.txt, tokenizer.json.
 * Downloads go to blobs/{etag}.incomplete (resumed with a Range request when
 * interrupted), are checked against the ETag (sha256 for LFS files, git's
 * blob sha1 for the others) and renamed into blobs/ before the snapshot links
 * and the ref are written, so a partial or corrupt file never looks complete.
 */

/* Download progress: `file` is the file's name in the repo, `done` the bytes
 * it has on disk so far, `total` its size (0 when unknown). Called at the start
 * of each transfer, as bytes arrive, and once with done == total at its end.
 * Return non-zero to cancel the download (LSC_ERR_NETWORK). */
typedef int (*lsc_hub_progress_fn)(const char *file, uint64_t done, uint64_t total,
                                   void *user_data);

typedef struct lsc_hub_params {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, else "https://huggingface.co" */
    const char *token;     /* NULL: $HF_TOKEN when set and not empty; "" = none */
    const char *cache_dir; /* NULL: $HF_HUB_CACHE, else $HF_HOME/hub, else
                              $XDG_CACHE_HOME/huggingface/hub, else
                              ~/.cache/huggingface/hub */
    const char *revision;  /* branch, tag or commit; NULL: "main" */
    int offline;           /* -1: $HF_HUB_OFFLINE / $TRANSFORMERS_OFFLINE ("1",
                              "ON", "YES", "TRUE"); 0: network allowed; 1: cache only */
    lsc_hub_progress_fn progress; /* NULL: silent */
    void *user_data;              /* passed to `progress` */
} lsc_hub_params;

/* Everything from the environment, revision "main", no progress callback. */
LSC_API lsc_hub_params lsc_hub_default_params(void);

/* Resolves a model name to a folder holding its files. An existing folder is
 * returned as given (a folder with pytorch_model.bin but no model.safetensors
 * is LSC_ERR_UNSUPPORTED with the command that converts it). Otherwise `name`
 * must be a valid repo id; when the cache holds a complete snapshot of the
 * revision it is used without touching the network, else the missing files
 * are downloaded (see lsc_hub_download). Offline and not cached is
 * LSC_ERR_NOT_FOUND with a message saying what to run. On success *dir is a
 * new string (free with lsc_free). */
LSC_API lsc_status lsc_hub_resolve(const char *name, lsc_hub_params params, char **dir,
                           lsc_error *err);

/* Asks the Hub for the revision's current commit and fetches every file of
 * it that the cache lacks (files already in the snapshot are not fetched
 * again), then writes refs/{revision}. Errors: LSC_ERR_INVALID_ARG (repo id
 * or revision malformed), LSC_ERR_AUTH (401/403: private or gated),
 * LSC_ERR_NOT_FOUND (repo, revision or a required file absent),
 * LSC_ERR_UNSUPPORTED (only pytorch_model.bin), LSC_ERR_FORMAT (content does
 * not match the ETag; the file is discarded), LSC_ERR_NETWORK, LSC_ERR_IO (the
 * cache is not writable or full). With offline set it only checks the cache.
 * On success *dir is the snapshot folder (free with lsc_free). */
LSC_API lsc_status lsc_hub_download(const char *repo_id, lsc_hub_params params, char **dir,
                            lsc_error *err);

/* LSC_OK when `repo_id` is a well-formed Hub repo id ("name" or
 * "namespace/name": letters, digits, '-', '_', '.', at most 96 characters
 * each, not starting or ending with '-' or '.', no "--" or "..", no ".git"
 * ending), else LSC_ERR_INVALID_ARG naming the fault. */
LSC_API lsc_status lsc_hub_check_repo_id(const char *repo_id, lsc_error *err);

#ifdef __cplusplus
}
#endif

#endif /* LOGITSCOPE_H */
