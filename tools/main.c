/* main.c - the logitscope command: dispatches to one file per command. */
#include "cli.h"

#include <errno.h>
#include <string.h>

int serve_main(int argc, char **argv); /* server/serve.c */

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"arch", cmd_arch, "the module tree as PyTorch prints it, parameter counts, file, hook points"},
    {"download", cmd_download, "fetch a Hub repo (NAME [--revision R]) into the Hugging Face cache"},
    {"lens", cmd_lens, "logit lens: each layer's top tokens at a position (--pos, --top-k)"},
    {"logits", cmd_logits, "logits at every position of --ids/--text (shape, argmax, row sums, --npy)"},
    {"tokenize", cmd_tokenize, "text -> token ids, with a table of the tokens (--jsonl for batches)"},
    {"detokenize", cmd_detokenize, "token ids -> text (--jsonl for batches)"},
    {"next", cmd_next, "the most likely next token and the top-k table (logit, prob, logprob)"},
    {"rank", cmd_rank, "rank, logit and probability of one --token among all next tokens"},
    {"sample", cmd_sample, "n draws of the next token (torch.multinomial), with or without replacement"},
    {"generate", cmd_generate, "continue a text (greedy or sampled), streamed, with the KV cache"},
    {"score", cmd_score, "log-probability of each actual next token, NLL and perplexity"},
    {"tour", cmd_tour, "the notebook end to end: tokens, softmax, top-10, rank, sampling, generation"},
    {"serve", serve_main, "an OpenAI-compatible completions server (echo, logprobs, streaming, batching)"},
    {"plot", cmd_plot, "the notebook's figures: plot logits|softmax|logsoftmax|lens -o FILE.png|svg|pdf"},
};

static void usage(FILE *out) {
    fprintf(out, "logitscope %s - next-token prediction with GPT-2\n\n"
                 "usage: logitscope COMMAND [options]   (logitscope COMMAND --help)\n\ncommands:\n",
            LSC_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
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
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("logitscope %s\n", LSC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return finish(commands[i].run(argc - 1, argv + 1));
    cli_error("unknown command '%s' (run 'logitscope --help' for the list)", argv[1]);
    return 2;
}
