/* cli.h - what the logitscope commands share (tools/common, build/libcli.a):
 * the option layer (args.h), loading the model and tokenizer, turning
 * --text/--ids into ids, hooks, JSON output, and reporting errors as one line
 * on stderr. Built only on the public header. */
#ifndef LSC_CLI_H
#define LSC_CLI_H

#include "logitscope.h"

#include "args.h"

#include <stdbool.h>
#include <stdio.h>

/* Prints "logitscope: error: <message>" as one line on stderr; returns 1 so a
 * command can `return cli_error(...)`. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* While a buffer is set on the calling thread, cli_error writes its message
 * there (the last one wins) instead of stderr, so the server can hand the
 * CLI's messages (--hook specs checked by cli_hooks_attach) to its client.
 * NULL restores stderr. */
void cli_error_capture(char *buf, size_t size);

/* True when a JSON text holds the escape \u0000, which cJSON would silently
 * cut a string at (the --jsonl readers refuse such lines). */
bool cli_json_has_nul_escape(const char *s);

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

/* Encodes `text` (given with `flag`: --token, --mark, a --hook set:) and
 * checks it is exactly one token; otherwise prints the one message every
 * command uses (how many tokens it is, which, and the spaced form when that
 * is one token) and returns false. */
bool cli_single_token(lsc_tokenizer *tok, const char *flag, const char *text, bool no_special,
                      int32_t *id);

/* Prints tokenizer.decode([id]) as Python's repr. */
void cli_print_token(FILE *out, const lsc_tokenizer *tok, int32_t id);

/* ---- JSON output: json.c ---- */

/* Prints a cJSON value as one compact line on stdout and frees it; returns 0,
 * or 1 after an error when it is NULL (an allocation failed while building
 * it) or stdout cannot be written. */
struct cJSON;
int cli_print_json(struct cJSON *obj);

/* Prints s[0..n) as a JSON string literal (escaped as cJSON does; U+0000 as
 * \u0000); false when out of memory. */
bool cli_json_string(FILE *out, const char *s, size_t n);

/* Prints ids[0..n) as a compact JSON array: [1,2,3]. */
void cli_json_ids(FILE *out, const int32_t *ids, size_t n);

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

/* Reports (and returns false for) a --hook whose positions select nothing in
 * the run a command is about to make, so that it is said before any output:
 * prefills[i] is a forward of positions [0, prefills[i]) keeping the logits of
 * its last position only (ln_final and hook_logits see only that one), and
 * `steps` one-position forwards follow the last prefill (generation). A run
 * that stops early (at eos) is still checked afterwards by cli_hooks_finish. */
bool cli_hooks_check_plan(const cli_hooks *h, const long *prefills, int n_prefills, long steps);

/* Removes the hooks from the context (which must still exist) and frees
 * everything. NULL is fine. */
void cli_hooks_free(cli_hooks *h);

/* Checks that logits [rows, n_vocab] (rows from position pos0 on) are all
 * finite. Otherwise prints one error line naming the first position with a
 * NaN/Inf and, when the weights hold one, the tensor (lsc_model_check_finite),
 * and returns false: no command prints or saves non-finite logits. */
bool cli_check_logits(const lsc_model *m, const float *logits, size_t rows, size_t n_vocab,
                      size_t pos0);

/* `plot lens`: the lens command drawing its figure (cmd_lens.c). */
int cli_plot_lens(int argc, char **argv);

#endif
