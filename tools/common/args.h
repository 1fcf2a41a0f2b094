/* args.h - the CLI's one option layer. Each command describes itself in a
 * cli_command: the option groups it takes and its own options, in one table
 * from which both the parser and --help are made, so the help lists exactly
 * what the parser accepts. The rules are the same for every command:
 *   -h/--help prints the command's usage on stdout and exits 0;
 *   an unknown option, a missing value, a bad value or a stray argument
 *   prints one line naming it and exits 2 (a usage error);
 *   runtime errors (a missing file, a model that does not load) exit 1.
 * A command adds itself with one file (tools/cmd_NAME.c, defining
 * `const cli_command cli_cmd_NAME`) and one line in tools/main.c. */
#ifndef LSC_CLI_ARGS_H
#define LSC_CLI_ARGS_H

#include "logitscope.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/* Option groups a command may take (cli_command.groups). */
enum {
    CLI_MODEL = 1 << 0,   /* --model --revision: which model folder or Hub repo */
    CLI_RUN = 1 << 1,     /* --threads --weights --no-mmap: how the model runs */
    CLI_INPUT = 1 << 2,   /* --text (or TEXT as a bare argument) --ids --no-special */
    CLI_HOOKS = 1 << 3,   /* --hook --cache --cache-out */
    CLI_SAMPLER = 1 << 4, /* --temperature --top-k --top-p --min-p --repetition-penalty --seed */
    CLI_OUTPUT = 1 << 5,  /* --json */
};

/* The codes of the groups' options (a command's own start at 2000). A
 * command may also list one of these in its own table to take that single
 * option without its whole group (e.g. tour's --seed); the parser handles it
 * as the group does. */
enum {
    OPT_MODEL = 1000,
    OPT_REVISION,
    OPT_THREADS,
    OPT_WEIGHTS,
    OPT_NO_MMAP,
    OPT_TEXT,
    OPT_IDS,
    OPT_NO_SPECIAL,
    OPT_HOOK,
    OPT_CACHE,
    OPT_CACHE_OUT,
    OPT_JSON,
    OPT_TEMPERATURE = 1100, /* the sampler's, in this order (cli_args.sampler_given) */
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPETITION_PENALTY,
    OPT_SEED,
};

/* One option of a command's table. */
typedef struct cli_opt {
    const char *name;  /* the long name, without "--" */
    char short_name;   /* 'n' for -n; 0 for none */
    const char *value; /* the value's name in the help ("N", "FILE"); NULL: a flag */
    int code;          /* what cli_args_next returns for it */
    const char *help;  /* its help; '\n' starts another line */
} cli_opt;

typedef struct cli_command {
    const char *name;
    const char *summary;    /* its line in `logitscope --help` */
    const char *synopsis;   /* the usage line after "logitscope NAME " */
    const char *about;      /* what it does, printed after the usage line */
    unsigned groups;        /* CLI_MODEL | ... */
    const cli_opt *opts;    /* its own options, ended by an entry with name NULL */
    const char *json;       /* the fields of its --json output, or NULL */
    const char *positional; /* the name of the bare argument it takes itself (NULL:
                               none, or the text when it takes CLI_INPUT) */
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} cli_command;

#define CLI_MAX_HOOKS 64 /* --hook and --cache given at most this often each */

/* What the groups' options set. */
typedef struct cli_common {
    const char *model;    /* --model: a folder or a Hub repo id (default gpt2) */
    const char *revision; /* --revision */
    const char *text;     /* --text, or the bare TEXT argument */
    const char *ids;      /* --ids 1,2,3 */
    bool json;            /* --json: one JSON object on stdout */
    int threads;          /* --threads, 0 = all cores */
    bool no_special;      /* --no-special: "<|endoftext|>" is plain text */
    lsc_weight_type weights; /* --weights f32|bf16|q8 (default f32) */
    bool no_mmap;         /* --no-mmap: read the weights into memory */
    const char *hooks[CLI_MAX_HOOKS]; /* --hook specs, in order */
    int n_hooks;
    const char *cache[CLI_MAX_HOOKS]; /* --cache patterns */
    int n_cache;
    const char *cache_out; /* --cache-out FILE.npz */
} cli_common;

/* The parser's state: begin, then call next until it returns 0 or -1. */
typedef struct cli_args {
    cli_common c;                /* the groups' options */
    lsc_sampler_params sampler;  /* CLI_SAMPLER; the command sets its defaults after begin */
    unsigned sampler_given;      /* bit (code - OPT_TEMPERATURE) for each sampler flag given */
    const char *warper_flag;     /* the first flag given that only applies when sampling
                                    (--temperature, --top-k, --top-p, --min-p), or NULL */
    const char *val;             /* the value of the option just returned (NULL: a flag) */
    const char *flag;            /* that option as typed, without its value ("--pos") */
    int status;                  /* after next returned -1: the exit status */
    const cli_command *cmd;
    int argc, i;
    char **argv;
    bool no_more_options; /* after "--" */
    char flagbuf[64];
} cli_args;

/* The code cli_args_next returns for a bare argument when the command takes
 * one itself (cli_command.positional). */
#define CLI_ARG 1

void cli_args_begin(cli_args *a, const cli_command *cmd, int argc, char **argv);

/* The next of the command's own options (its code, a->val its value), or
 * CLI_ARG; 0 when the arguments are done; -1 when the command must exit
 * with a->status (after --help: 0; after a usage error, printed as one line:
 * 2). The groups' options are handled here and never returned. */
int cli_args_next(cli_args *a);

/* Prints the command's usage, from its table. */
void cli_print_usage(FILE *out, const cli_command *cmd);

/* Prints "logitscope: error: <message>" as one line on stderr and returns 2:
 * for a bad value or a wrong combination of options. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value parsers every command shares, each with one message. They print
 * the error (naming `flag`) and return false. */
bool cli_parse_int(const char *s, long min, long max, long *out); /* silent */
bool cli_parse_float(const char *s, double *out);                /* silent */
/* --top-k K everywhere: how many of the most likely tokens to keep; 0 = no
 * cut (all of them). */
bool cli_parse_top_k(const char *flag, const char *s, long *k);

#endif
