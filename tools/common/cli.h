/* cli.h - what the logitscope commands share: option parsing for the common
 * flags, loading the model and tokenizer, turning --text/--ids into ids, and
 * reporting errors as one line on stderr. Built only on the public header. */
#ifndef LSC_CLI_H
#define LSC_CLI_H

#include "logitscope.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* Options every model-running command accepts. Long-only options get codes
 * from 1000 up; commands number their own from 2000 up. */
enum {
    OPT_MODEL = 1000,
    OPT_TEXT,
    OPT_IDS,
    OPT_JSON,
    OPT_THREADS,
    OPT_REVISION,
    OPT_NO_SPECIAL,
    OPT_WEIGHTS,
    OPT_HOOK,
    OPT_CACHE,
    OPT_CACHE_OUT,
};

#define CLI_COMMON_OPTIONS                                                      \
    {"model", required_argument, 0, OPT_MODEL},                                 \
    {"text", required_argument, 0, OPT_TEXT},                                   \
    {"ids", required_argument, 0, OPT_IDS},                                     \
    {"json", no_argument, 0, OPT_JSON},                                         \
    {"threads", required_argument, 0, OPT_THREADS},                             \
    {"revision", required_argument, 0, OPT_REVISION},                           \
    {"no-special", no_argument, 0, OPT_NO_SPECIAL},                             \
    {"weights", required_argument, 0, OPT_WEIGHTS}

/* Interventions and the activation cache (tools/hooks.c): every command that
 * runs the model adds these to its option table and calls cli_hooks_attach
 * once its context exists. */
#define CLI_HOOK_OPTIONS                                                        \
    {"hook", required_argument, 0, OPT_HOOK},                                   \
    {"cache", required_argument, 0, OPT_CACHE},                                 \
    {"cache-out", required_argument, 0, OPT_CACHE_OUT}

/* Their lines for a command's --help. */
#define CLI_HOOK_USAGE                                                          \
    "  --hook POINT[@POS]:OP  rewrite an activation (repeatable): OP is zero,\n"  \
    "      scale:F, add:FILE.npy[*F], patch:FILE.npz or (on lm_head)\n"          \
    "      set:TOKEN=VALUE (VALUE: a number, max+F, min-F...); POS: -1, 3, 0:5\n" \
    "  --cache PATTERN --cache-out FILE.npz  save activations (repeatable)\n"

#define CLI_MAX_HOOKS 64 /* --hook and --cache given at most this often each */

typedef struct cli_common {
    const char *model;    /* --model: a folder or a Hub repo id (default gpt2) */
    const char *revision; /* --revision */
    const char *text;     /* --text */
    const char *ids;      /* --ids 1,2,3 */
    bool json;            /* --json: one JSON object on stdout */
    int threads;          /* --threads, 0 = all cores */
    bool no_special;      /* --no-special: "<|endoftext|>" is plain text */
    lsc_weight_type weights; /* --weights f32|bf16|q8 (default f32) */
    const char *hooks[CLI_MAX_HOOKS]; /* --hook specs, in order */
    int n_hooks;
    const char *cache[CLI_MAX_HOOKS]; /* --cache patterns */
    int n_cache;
    const char *cache_out; /* --cache-out FILE.npz */
} cli_common;

/* Prints "logitscope: error: <message>" as one line on stderr; returns 1 so a
 * command can `return cli_error(...)`. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* While a buffer is set on the calling thread, cli_error writes its message
 * there (the last one wins) instead of stderr, so the server can hand the
 * CLI's messages (--hook specs checked by cli_hooks_attach) to its client.
 * NULL restores stderr. */
void cli_error_capture(char *buf, size_t size);

/* Handles a common option; returns 1 when `opt` was one (0 otherwise), and -1
 * after printing an error for a malformed value. */
int cli_common_option(cli_common *c, int opt, const char *arg);

/* Strict number parsing: the whole string must be a number in range. */
bool cli_parse_int(const char *s, long min, long max, long *out);
bool cli_parse_float(const char *s, double *out);

/* Parses "464,2068,7586" into a new array (free with free()). */
bool cli_parse_id_list(const char *s, int32_t **ids, size_t *n);

/* The folder holding the model's files for --model (default "gpt2") and
 * --revision: an existing folder as given, or a Hub repo id resolved through
 * the Hugging Face cache, downloading what is missing (lsc_hub_resolve). The
 * result is kept for the rest of the process. Prints the error and returns
 * NULL on failure. */
const char *cli_model_dir(const cli_common *c);

/* Hub parameters for the CLI: the environment, `revision` (may be NULL), and
 * a progress bar on stderr when stderr is a terminal. */
lsc_hub_params cli_hub_params(const char *revision);

/* Loads the model / tokenizer named by --model; prints the error and returns
 * NULL on failure. */
lsc_model *cli_load_model(const cli_common *c);
lsc_tokenizer *cli_load_tokenizer(const cli_common *c);

/* The ids to run: --ids as given, or --text encoded by `tok` (which may be
 * NULL when --ids is used). Exactly one of the two must be given, and the
 * result must not be empty. Prints the error and returns false on failure. */
bool cli_input_ids(const cli_common *c, lsc_tokenizer *tok, int32_t **ids, size_t *n);

/* Writes `s` (valid UTF-8, n bytes) the way Python's repr() writes a str:
 * quotes chosen as Python does, backslash escapes for \\ \t \n \r and for
 * every character Python does not call printable (categories C* and Z*
 * except the space). */
void cli_print_repr(FILE *out, const char *s, size_t n);

/* ---- The model commands (next, rank, sample, generate, score, tour):
 * cli_lm.c ---- */

/* Sampler options, shared by sample and generate (codes 1100 up). */
enum {
    OPT_TEMPERATURE = 1100,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPETITION_PENALTY,
    OPT_SEED,
};

#define CLI_SAMPLER_OPTIONS                                                     \
    {"temperature", required_argument, 0, OPT_TEMPERATURE},                     \
    {"top-k", required_argument, 0, OPT_TOP_K},                                 \
    {"top-p", required_argument, 0, OPT_TOP_P},                                 \
    {"min-p", required_argument, 0, OPT_MIN_P},                                 \
    {"repetition-penalty", required_argument, 0, OPT_REPETITION_PENALTY},       \
    {"seed", required_argument, 0, OPT_SEED}

/* Handles a sampler option into `p` (checking its range, with the flag's
 * name in the error); returns 1 when `opt` was one, 0 otherwise, -1 after
 * printing an error. */
int cli_sampler_option(lsc_sampler_params *p, int opt, const char *arg);

typedef struct cli_hooks cli_hooks;

/* What a model command holds: the model, its tokenizer, a context (with the
 * --hook and --cache hooks registered) and the input ids. */
typedef struct cli_lm {
    lsc_model *model;
    lsc_tokenizer *tok;
    lsc_ctx *ctx;
    cli_hooks *hooks; /* --hook/--cache (cli_hooks_attach); NULL when none */
    int32_t *ids; /* [n] from --text or --ids, checked against n_vocab */
    size_t n;
    size_t n_vocab;
} cli_lm;

/* Loads the model, tokenizer and a context (--threads), registers the --hook
 * and --cache hooks on it (commands call cli_hooks_finish(lm->hooks) after
 * their run to write --cache-out), and reads the input
 * ids (--text or --ids, not empty, every id in the vocabulary; with
 * `need_input` false, no input is read). Prints the error and returns false
 * on failure (cli_lm_close then frees what was loaded). */
bool cli_lm_open(const cli_common *c, bool need_input, cli_lm *lm);
void cli_lm_close(cli_lm *lm);

/* Parses --pos: an index into n tokens, negative counting from the end.
 * Prints the error and returns false when it is not a number in range. */
bool cli_parse_pos(const char *arg, size_t n, size_t *pos);

/* Runs ids[0..pos] and returns the logits row predicting the token after
 * position pos ([n_vocab], owned by lm->ctx until its next forward). Prints
 * the error and returns NULL on failure. */
const float *cli_lm_row(cli_lm *lm, size_t pos);

/* tokenizer.decode([id]) as a new string (free with lsc_free); "" when the
 * id cannot be decoded. *len (may be NULL) gets its length. */
char *cli_token_text(const lsc_tokenizer *tok, int32_t id, size_t *len);

/* Encodes --token `text` and checks it is exactly one token; prints the
 * error (saying how many tokens it is, and which) and returns false
 * otherwise. */
bool cli_single_token(lsc_tokenizer *tok, const char *text, bool no_special, int32_t *id);

/* Prints tokenizer.decode([id]) as Python's repr. */
void cli_print_token(FILE *out, const lsc_tokenizer *tok, int32_t id);

/* Prints a cJSON value as one line on stdout and frees it; returns 0, or 1
 * after an error when it is NULL (an allocation failed while building it)
 * or stdout cannot be written. */
struct cJSON;
int cli_print_json(struct cJSON *obj);

/* ---- Interventions and the activation cache: hooks.c ---- */

/* Parses every --hook, checks it against the model (the point pattern
 * matches, set names one token of `tok` or an id, add/patch files exist and
 * fit the points) and registers it on `ctx`, then registers the --cache
 * hooks. `tok` may be NULL (one is loaded when a set names a token by its
 * text). Prints the error and returns false on failure; *out (free with
 * cli_hooks_free, also after a failure) is NULL when no option was given. */
bool cli_hooks_attach(const cli_common *c, lsc_ctx *ctx, lsc_tokenizer *tok, cli_hooks **out);

/* After the run: fails (printing which) when a --hook selected no position,
 * and writes --cache-out. NULL is fine (nothing to do). */
bool cli_hooks_finish(cli_hooks *h);

/* Removes the hooks from the context (which must still exist) and frees
 * everything. NULL is fine. */
void cli_hooks_free(cli_hooks *h);

/* Checks that logits [rows, n_vocab] (rows from position pos0 on) are all
 * finite. Otherwise prints one error line naming the first position with a
 * NaN/Inf and, when the weights hold one, the tensor (lsc_model_check_finite),
 * and returns false: no command prints or saves non-finite logits. */
bool cli_check_logits(const lsc_model *m, const float *logits, size_t rows, size_t n_vocab,
                      size_t pos0);

/* Each command: argv[0] is the command's name. Returns the exit status. */
int cmd_logits(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_download(int argc, char **argv);
int cmd_arch(int argc, char **argv);
int cmd_next(int argc, char **argv);
int cmd_rank(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tour(int argc, char **argv);
int cmd_lens(int argc, char **argv);
int cmd_plot_lens(int argc, char **argv); /* `plot lens`: lens.c */
int cmd_plot(int argc, char **argv);

#endif
