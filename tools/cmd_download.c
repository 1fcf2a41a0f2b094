/* cmd_download.c - `logitscope download NAME [--revision R]`: fetch a Hub repo
 * into the Hugging Face cache (progress bar: common/progress.c). */
#include "cli.h"

#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static int run(int argc, char **argv);

static const cli_opt opts[] = {
    {"revision", 0, "R", OPT_REVISION, "the branch, tag or commit (default main)"},
    {0},
};

const cli_command cli_cmd_download = {
    .name = "download",
    .summary = "fetch a Hub repo (NAME [--revision R]) into the Hugging Face cache",
    .synopsis = "NAME [--revision R]",
    .about = "Fetches config.json, generation_config.json, model.safetensors, vocab.json,\n"
             "merges.txt and tokenizer.json (when present) of the Hub repo NAME (e.g. gpt2,\n"
             "openai-community/gpt2-medium) into the Hugging Face cache ($HF_HUB_CACHE,\n"
             "$HF_HOME/hub or ~/.cache/huggingface/hub) and prints the snapshot folder.\n"
             "Environment: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1 (check the cache only).\n"
             "Without network, use --model DIR with a local folder instead (docs/hub.md).\n",
    .opts = opts,
    .positional = "NAME",
    .run = run,
};

static int run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_download, argc, argv);
    const char *name = NULL;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == CLI_ARG) {
            if (name)
                return cli_usage_error("download: unexpected argument '%s' (give exactly one repo id)",
                                       a.val);
            name = a.val;
        }
    }
    if (opt < 0) return a.status;
    if (!name) return cli_usage_error("download: give exactly one repo id, e.g. logitscope download gpt2");
    const char *revision = a.c.revision; /* the option is the MODEL group's */
    if (access(name, F_OK) == 0)
        return cli_error("download: %s is a local folder or file, not a Hub repo id", name);
    char *dir = NULL;
    lsc_error err;
    if (lsc_hub_download(name, cli_hub_params(revision), &dir, &err) != LSC_OK)
        return cli_error("%s", err.message);
    printf("%s\n", dir);
    lsc_free(dir);
    return 0;
}
