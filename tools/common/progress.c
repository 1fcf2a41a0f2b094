/* progress.c - the download progress bar on stderr, and the Hub parameters
 * every command uses when --model names a repo (the bar only on a terminal). */
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
