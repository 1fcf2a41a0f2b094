/* fuzz_args.c - libFuzzer target for the CLI's option layer
 * (tools/common/args.c): the bytes, cut at NULs, are a command line for a
 * command that takes every option group and options of its own (a flag, a
 * valued option with a short name, a bare argument of its own when the first
 * byte is odd). Parsing must never crash, must return only the command's own
 * codes, and must end with 0 (done) or -1 with status 0 (help) or 2 (usage
 * error). The parser's own output is silenced with libFuzzer's
 * -close_fd_mask=3 (added to the fuzzer's arguments here), so the log keeps
 * only libFuzzer's lines. */
#include "cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_FLAG = 2000, OPT_VAL };

static int run(int argc, char **argv) { return argc > 0 && argv ? 0 : 1; }

static const cli_opt opts[] = {
    {"flag", 0, NULL, OPT_FLAG, "a flag"},
    {"val", 'v', "V", OPT_VAL, "a value"},
    {0},
};

static const cli_command cmds[2] = {
    {.name = "fz", .summary = "s", .synopsis = "[options]", .about = "a\n",
     .groups = CLI_MODEL | CLI_RUN | CLI_INPUT | CLI_HOOKS | CLI_SAMPLER | CLI_OUTPUT,
     .opts = opts, .json = "  {}\n", .run = run},
    {.name = "fz", .summary = "s", .synopsis = "NAME", .groups = CLI_MODEL, .opts = opts,
     .positional = "NAME", .run = run},
};

static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static char *args[256];
    static char mask[] = "-close_fd_mask=3";
    int n = *argc < 254 ? *argc : 254;
    memcpy(args, *argv, (size_t)n * sizeof *args);
    args[n++] = mask;
    args[n] = NULL;
    *argc = n;
    *argv = args;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const cli_command *cmd = &cmds[data[0] & 1];
    char *buf = malloc(size);
    require(buf != NULL);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    char *argv[66];
    int argc = 0;
    argv[argc++] = "fz";
    for (size_t i = 0; i < size - 1 && argc < 65;) { /* NUL-separated arguments */
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    cli_args a;
    cli_args_begin(&a, cmd, argc, argv);
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        require(opt == OPT_FLAG || opt == OPT_VAL || (opt == CLI_ARG && cmd->positional));
        require(opt != OPT_VAL || a.val != NULL);
        require(a.i <= argc);
    }
    require(opt == 0 || (opt == -1 && (a.status == 0 || a.status == 2)));
    require(a.c.n_hooks <= CLI_MAX_HOOKS && a.c.n_cache <= CLI_MAX_HOOKS);
    require(a.c.threads >= 0 && a.c.threads <= LSC_MAX_THREADS);
    free(buf);
    return 0;
}
