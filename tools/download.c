/* download.c - `logitscope download NAME [--revision R]`: fetch a Hub repo into
 * the Hugging Face cache; also the progress bar and the hub parameters every
 * command uses when --model names a repo. */
#include "cli.h"

#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* The progress bar's state for the file being downloaded (the CLI is single
 * threaded, one transfer at a time). */
static struct {
    char file[128];
    double t0, last; /* start of this transfer, last redraw (seconds) */
    uint64_t done0;  /* bytes already on disk when it started (a resume) */
    bool finished;   /* its last line is drawn */
} bar;

/* Seconds since an arbitrary origin. */
static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* Formats a byte count as "523.7 MB". */
static void fmt_bytes(char *out, size_t cap, double b) {
    const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) b /= 1000, u++;
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

/* lsc_hub_progress_fn drawing one line on stderr: name, bar, percentage,
 * size, rate and time left; redrawn at most 10 times a second. */
static int draw_progress(const char *file, uint64_t done, uint64_t total, void *user_data) {
    double t = now_s();
    if (total == 0 && done == 0) return 0; /* nothing to show yet */
    if (strcmp(bar.file, file) != 0 || done < bar.done0 || (bar.finished && done < total)) {
        snprintf(bar.file, sizeof bar.file, "%s", file);
        bar.t0 = t;
        bar.last = 0;
        bar.done0 = done;
        bar.finished = false;
    }
    bool finished = total > 0 && done == total;
    if (bar.finished || (!finished && t - bar.last < 0.1)) return 0;
    bar.finished = finished;
    bar.last = t;
    double rate = t > bar.t0 ? (double)(done - bar.done0) / (t - bar.t0) : 0;
    char sdone[32], stotal[32], srate[32], left[32] = "";
    fmt_bytes(sdone, sizeof sdone, (double)done);
    fmt_bytes(stotal, sizeof stotal, (double)total);
    fmt_bytes(srate, sizeof srate, rate);
    char cells[21];
    double frac = total ? (double)done / (double)total : 0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) cells[i] = i < fill ? '#' : '-';
    cells[20] = '\0';
    if (!finished && rate > 0 && total > done) {
        long s = (long)((double)(total - done) / rate);
        snprintf(left, sizeof left, "  %ld:%02ld left", s / 60, s % 60);
    }
    fprintf(stderr, "\r%-24.24s [%s] %3d%%  %s / %s  %s/s%s\033[K", file, cells,
            (int)(frac * 100), sdone, total ? stotal : "?", srate, left);
    if (finished) fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

lsc_hub_params cli_hub_params(const char *revision) {
    lsc_hub_params p = lsc_hub_default_params();
    p.revision = revision;
    if (isatty(STDERR_FILENO)) p.progress = draw_progress;
    return p;
}

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
