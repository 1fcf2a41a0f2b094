/* args.c - the option layer of every command (see args.h): the groups'
 * tables, the parser, the usage made from the same tables, and the value
 * parsers shared by all commands. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt model_opts[] = {
    {"model", 0, "DIR|REPO", OPT_MODEL,
     "a model folder, or a Hub repo id found in (or downloaded into) the\n"
     "Hugging Face cache (default gpt2; offline: a folder, see docs/hub.md)"},
    {"revision", 0, "R", OPT_REVISION, "the branch, tag or commit of a Hub repo id"},
    {0},
};
static const cli_opt run_opts[] = {
    {"threads", 0, "N", OPT_THREADS, "worker threads (0 = all cores; at most 1024)"},
    {"weights", 0, "f32|bf16|q8", OPT_WEIGHTS,
     "how the matrix weights are held: f32 (default, exact), bf16 or q8"},
    {"no-mmap", 0, NULL, OPT_NO_MMAP,
     "read the weights file into memory (huge pages) instead of mapping it:\n"
     "a slower load, faster batched products (docs/performance.md)"},
    {0},
};
static const cli_opt input_opts[] = {
    {"text", 0, "T", OPT_TEXT, "the input text (also accepted as the bare argument TEXT)"},
    {"ids", 0, "1,2,3", OPT_IDS, "the input as token ids instead of a text"},
    {"no-special", 0, NULL, OPT_NO_SPECIAL, "\"<|endoftext|>\" in the text is plain text, not id 50256"},
    {0},
};
static const cli_opt hook_opts[] = {
    {"hook", 0, "SPEC", OPT_HOOK,
     "rewrite an activation (repeatable); SPEC is POINT[[HEADS]][@POS]:OP\n"
     "POINT: a hook point or glob (logitscope arch lists them); HEADS: 0,3;\n"
     "POS: -1, 3, 0:5 (Python indices); OP: zero, scale:F, add:FILE.npy[*F],\n"
     "patch:FILE.npz, or on lm_head set:TOKEN=VALUE (TOKEN a text or an id,\n"
     "e.g. set:' coffee'=max+10; VALUE a number, max+F, min-F...)"},
    {"cache", 0, "PATTERN", OPT_CACHE, "save the activations of matching points (repeatable)"},
    {"cache-out", 0, "FILE.npz", OPT_CACHE_OUT, "where --cache writes them"},
    {0},
};
static const cli_opt sampler_opts[] = {
    {"temperature", 0, "X", OPT_TEMPERATURE, "divide the logits by X (0 = greedy, the argmax)"},
    {"top-k", 0, "K", OPT_TOP_K, "keep the K most likely tokens (0 = no cut)"},
    {"top-p", 0, "P", OPT_TOP_P, "keep the most likely tokens up to probability P (1 = no cut)"},
    {"min-p", 0, "P", OPT_MIN_P, "drop tokens below P x the top probability (0 = off)"},
    {"repetition-penalty", 0, "R", OPT_REPETITION_PENALTY,
     "divide (or multiply, when negative) the logits of seen tokens by R (1 = off)"},
    {"seed", 0, "S", OPT_SEED, "the rng seed (default 0): the same seed, the same draws"},
    {0},
};
static const cli_opt output_opts[] = {
    {"json", 0, NULL, OPT_JSON, "print one JSON object (docs/cli.md: the schema)"},
    {0},
};
static const cli_opt help_opt[] = {
    {"help", 'h', NULL, 'h', "print this help and exit"},
    {0},
};

static const struct {
    unsigned bit;
    const char *title;
    const cli_opt *opts;
} groups[] = {
    {CLI_INPUT, "input", input_opts},     {CLI_MODEL, "model", model_opts},
    {CLI_RUN, "run", run_opts},           {CLI_SAMPLER, "sampler", sampler_opts},
    {CLI_HOOKS, "hooks", hook_opts},      {CLI_OUTPUT, "output", output_opts},
};
#define N_GROUPS (sizeof groups / sizeof groups[0])

/* The capture buffer of this thread (cli_error_capture), NULL: stderr. */
static __thread char *capture_buf;
static __thread size_t capture_size;

void cli_error_capture(char *buf, size_t size) {
    capture_buf = size ? buf : NULL;
    capture_size = size;
    if (capture_buf) capture_buf[0] = '\0';
}

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (capture_buf) {
        vsnprintf(capture_buf, capture_size, fmt, ap);
        va_end(ap);
        return CLI_EXIT_FAIL;
    }
    fputs("logitscope: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("logitscope: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
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

bool cli_parse_top_k(const char *flag, const char *s, long *k) {
    if (cli_parse_int(s, 0, INT_MAX, k)) return true;
    cli_error("%s: '%s' is not a whole number >= 0 (0 = no cut: all tokens)", flag, s);
    return false;
}

/* Prints one table's lines: "  --name VALUE   help", help lines aligned. */
static void print_opts(FILE *out, const cli_opt *o) {
    for (; o->name; o++) {
        char head[64];
        if (o->short_name)
            snprintf(head, sizeof head, "-%c, --%s%s%s", o->short_name, o->name, o->value ? " " : "",
                     o->value ? o->value : "");
        else
            snprintf(head, sizeof head, "--%s%s%s", o->name, o->value ? " " : "",
                     o->value ? o->value : "");
        fprintf(out, "  %-26s", head);
        if (strlen(head) > 26) fprintf(out, "\n  %-26s", "");
        for (const char *h = o->help; *h;) {
            const char *nl = strchr(h, '\n');
            int len = nl ? (int)(nl - h) : (int)strlen(h);
            fprintf(out, " %.*s\n", len, h);
            if (!nl) break;
            h = nl + 1;
            fprintf(out, "  %-26s", "");
        }
    }
}

void cli_print_usage(FILE *out, const cli_command *cmd) {
    fprintf(out, "usage: logitscope %s %s\n", cmd->name, cmd->synopsis);
    if (cmd->about) fprintf(out, "%s", cmd->about);
    fprintf(out, "\noptions:\n");
    if (cmd->opts) print_opts(out, cmd->opts);
    print_opts(out, help_opt);
    for (size_t g = 0; g < N_GROUPS; g++) {
        if (!(cmd->groups & groups[g].bit)) continue;
        fprintf(out, "%s:\n", groups[g].title);
        print_opts(out, groups[g].opts);
    }
    if (cmd->json && (cmd->groups & CLI_OUTPUT)) fprintf(out, "--json fields:\n%s", cmd->json);
}

void cli_args_begin(cli_args *a, const cli_command *cmd, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->argc = argc;
    a->argv = argv;
    a->i = 1;
    a->sampler = lsc_sampler_default_params();
}

/* The entry for `name` (a long name of `len` bytes, or the short option
 * `shrt` when name is NULL) among the command's options. */
static const cli_opt *find(const cli_command *cmd, const char *name, size_t len, char shrt) {
    const cli_opt *tables[N_GROUPS + 2];
    size_t n = 0;
    if (cmd->opts) tables[n++] = cmd->opts;
    tables[n++] = help_opt;
    for (size_t g = 0; g < N_GROUPS; g++)
        if (cmd->groups & groups[g].bit) tables[n++] = groups[g].opts;
    for (size_t t = 0; t < n; t++)
        for (const cli_opt *o = tables[t]; o->name; o++) {
            if (name ? strlen(o->name) == len && !strncmp(o->name, name, len)
                     : o->short_name && o->short_name == shrt)
                return o;
        }
    return NULL;
}

/* Handles one option of a group (or one a command took from a group) into
 * a; false after printing the error for a bad value. */
static bool group_option(cli_args *a, int code, const char *v) {
    cli_common *c = &a->c;
    lsc_sampler_params *p = &a->sampler;
    const char *f = a->flag;
    double x;
    long k;
    switch (code) {
    case OPT_MODEL: c->model = v; return true;
    case OPT_REVISION: c->revision = v; return true;
    case OPT_IDS: c->ids = v; return true;
    case OPT_JSON: c->json = true; return true;
    case OPT_NO_SPECIAL: c->no_special = true; return true;
    case OPT_NO_MMAP: c->no_mmap = true; return true;
    case OPT_CACHE_OUT: c->cache_out = v; return true;
    case OPT_TEXT:
        if (c->text) return !cli_error("give the text once (as --text or as the bare argument)");
        c->text = v;
        return true;
    case OPT_HOOK:
    case OPT_CACHE: {
        const char **list = code == OPT_HOOK ? c->hooks : c->cache;
        int *n = code == OPT_HOOK ? &c->n_hooks : &c->n_cache;
        if (*n == CLI_MAX_HOOKS) return !cli_error("%s given more than %d times", f, CLI_MAX_HOOKS);
        list[(*n)++] = v;
        return true;
    }
    case OPT_THREADS:
        if (!cli_parse_int(v, 0, LSC_MAX_THREADS, &k))
            return !cli_error("%s: '%s' is not a number from 0 to %d", f, v, LSC_MAX_THREADS);
        c->threads = (int)k;
        return true;
    case OPT_WEIGHTS:
        if (!strcmp(v, "f32")) c->weights = LSC_WEIGHTS_F32;
        else if (!strcmp(v, "bf16")) c->weights = LSC_WEIGHTS_BF16;
        else if (!strcmp(v, "q8")) c->weights = LSC_WEIGHTS_Q8;
        else return !cli_error("%s: '%s' is not one of f32, bf16, q8", f, v);
        return true;
    case OPT_TEMPERATURE:
        if (!cli_parse_float(v, &x) || x < 0)
            return !cli_error("%s: '%s' is not a number >= 0 (0 = greedy)", f, v);
        p->temperature = (float)x;
        break;
    case OPT_TOP_K:
        if (!cli_parse_top_k(f, v, &k)) return false;
        p->top_k = (int)k;
        break;
    case OPT_TOP_P:
        if (!cli_parse_float(v, &x) || !(x > 0 && x <= 1))
            return !cli_error("%s: '%s' is not a number in (0, 1] (1 = off)", f, v);
        p->top_p = x;
        break;
    case OPT_MIN_P:
        if (!cli_parse_float(v, &x) || !(x >= 0 && x <= 1))
            return !cli_error("%s: '%s' is not a number in [0, 1] (0 = off)", f, v);
        p->min_p = (float)x;
        break;
    case OPT_REPETITION_PENALTY:
        if (!cli_parse_float(v, &x) || !(x > 0))
            return !cli_error("%s: '%s' is not a number > 0 (1 = off)", f, v);
        p->repetition_penalty = (float)x;
        break;
    case OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (!*v || *v == '-' || *end || errno)
            return !cli_error("%s: '%s' is not a whole number from 0 to 2^64-1", f, v);
        p->seed = (uint64_t)s;
        break;
    }
    }
    a->sampler_given |= 1u << (code - OPT_TEMPERATURE);
    if (code != OPT_REPETITION_PENALTY && code != OPT_SEED && !a->warper_flag) a->warper_flag = f;
    return true;
}

/* Stops the parse with status `st`. */
static int stop(cli_args *a, int st) {
    a->status = st;
    return -1;
}

int cli_args_next(cli_args *a) {
    const cli_command *cmd = a->cmd;
    while (a->i < a->argc) {
        const char *arg = a->argv[a->i++];
        a->val = NULL;
        bool is_opt = !a->no_more_options && arg[0] == '-' && arg[1] != '\0';
        if (is_opt && !strcmp(arg, "--")) {
            a->no_more_options = true;
            continue;
        }
        if (!is_opt) { /* a bare argument */
            a->val = arg;
            a->flag = arg;
            if (cmd->positional) return CLI_ARG;
            if (find(cmd, "text", 4, 0)) { /* the text, where --text is taken */
                if (a->c.text) {
                    cli_usage_error("%s: unexpected argument '%s' (the text is given already; "
                                    "quote a text of several words)",
                                    cmd->name, arg);
                    return stop(a, CLI_EXIT_USAGE);
                }
                a->c.text = arg;
                continue;
            }
            cli_usage_error("%s: unexpected argument '%s' (see logitscope %s --help)", cmd->name,
                            arg, cmd->name);
            return stop(a, CLI_EXIT_USAGE);
        }
        const cli_opt *o;
        const char *inline_val = NULL;
        if (arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            o = find(cmd, name, len, 0);
            if (eq) inline_val = eq + 1;
            snprintf(a->flagbuf, sizeof a->flagbuf, "--%.*s", (int)(len < 48 ? len : 48), name);
        } else {
            o = find(cmd, NULL, 0, arg[1]);
            if (arg[2]) inline_val = arg + 2;
            snprintf(a->flagbuf, sizeof a->flagbuf, "-%c", arg[1]);
        }
        a->flag = a->flagbuf;
        if (!o) {
            cli_usage_error("%s: unknown option '%s' (see logitscope %s --help)", cmd->name,
                            a->flagbuf, cmd->name);
            return stop(a, CLI_EXIT_USAGE);
        }
        if (o->value) {
            if (inline_val) a->val = inline_val;
            else if (a->i < a->argc) a->val = a->argv[a->i++];
            else {
                cli_usage_error("%s: option '%s' needs a value (%s)", cmd->name, a->flagbuf, o->value);
                return stop(a, CLI_EXIT_USAGE);
            }
        } else if (inline_val) {
            cli_usage_error("%s: option '%s' takes no value", cmd->name, a->flagbuf);
            return stop(a, CLI_EXIT_USAGE);
        }
        if (o->code == 'h') {
            cli_print_usage(stdout, cmd);
            return stop(a, CLI_EXIT_OK);
        }
        if (o->code >= OPT_MODEL && o->code < 2000) {
            if (!group_option(a, o->code, a->val)) return stop(a, CLI_EXIT_USAGE);
            continue;
        }
        return o->code;
    }
    return 0;
}
