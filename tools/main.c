/* main.c - the logitscope command: finds the command named by argv[1] in the
 * table below and runs it. Adding a command: write tools/cmd_NAME.c defining
 * `const cli_command cli_cmd_NAME` (args.h) and add X(NAME) to COMMANDS. */
#include "cli.h"

#include <errno.h>
#include <string.h>

/* Every command, in the order `logitscope --help` lists them. */
#define COMMANDS(X)                                                            \
    X(tokenize) X(detokenize) X(logits) X(next) X(rank) X(softmax) X(sample)  \
    X(generate) X(score) X(lens) X(plot) X(arch) X(download) X(tour) X(serve)

#define DECLARE(name) extern const cli_command cli_cmd_##name;
COMMANDS(DECLARE)
#define ENTRY(name) &cli_cmd_##name,
static const cli_command *const commands[] = {COMMANDS(ENTRY)};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out, "logitscope %s - next-token prediction with GPT-2\n\n"
                 "usage: logitscope COMMAND [options]   (logitscope COMMAND --help,\n"
                 "                                       logitscope help COMMAND)\n\ncommands:\n",
            LSC_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\nExit status: 0 done, 1 a runtime error, 2 a usage error (unknown option,\n"
          "missing or bad value, stray argument). Ranks count from 0 (the most likely).\n",
          out);
}

static const cli_command *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i]->name)) return commands[i];
    return NULL;
}

/* A command's exit status, made 1 (with a one-line error) when the command
 * succeeded but its standard output could not be written in full (a full
 * disk, say). A command that failed has printed its own error. */
static int finish(int rc) {
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        cli_error("cannot write the standard output%s%s", errno ? ": " : "",
                  errno ? strerror(errno) : "");
        return 1;
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc > 2 && !strcmp(argv[1], "help")) {
            const cli_command *cmd = find(argv[2]);
            if (!cmd)
                return cli_usage_error("help: unknown command '%s' (run 'logitscope --help' for "
                                       "the list)",
                                       argv[2]);
            cli_print_usage(stdout, cmd);
            return finish(0);
        }
        usage(stdout);
        return finish(0);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("logitscope %s\n", LSC_VERSION);
        return finish(0);
    }
    const cli_command *cmd = find(argv[1]);
    if (cmd) return finish(cmd->run(argc - 1, argv + 1));
    return cli_usage_error("unknown command '%s' (run 'logitscope --help' for the list)", argv[1]);
}
