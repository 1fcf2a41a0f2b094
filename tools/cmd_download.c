/* cmd_download.c - `logitscope download NAME [--revision R]`: fetch a Hub repo
 * into the Hugging Face cache (progress bar: common/progress.c). */
#include "cli.h"

#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static void usage(FILE *out) {
    fputs("usage: logitscope download NAME [--revision R]\n"
          "Fetches config.json, generation_config.json, model.safetensors, vocab.json,\n"
          "merges.txt and tokenizer.json (when present) of the Hub repo NAME (e.g. gpt2,\n"
          "openai-community/gpt2-medium) into the Hugging Face cache ($HF_HUB_CACHE,\n"
          "$HF_HOME/hub or ~/.cache/huggingface/hub) and prints the snapshot folder.\n"
          "Environment: HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE=1 (check the cache only).\n",
          out);
}

int cmd_download(int argc, char **argv) {
    static const struct option opts[] = {
        {"revision", required_argument, 0, OPT_REVISION},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *revision = NULL;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (opt == OPT_REVISION) revision = optarg;
        else if (opt == 'h') {
            usage(stdout);
            return 0;
        } else if (opt == ':') {
            return cli_error("download: %s needs a value", argv[optind - 1]);
        } else {
            return cli_error("download: unknown option '%s' (see logitscope download --help)",
                             argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_error("download: give exactly one repo id, e.g. logitscope download gpt2");
    const char *name = argv[optind];
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
