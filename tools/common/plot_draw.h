/* plot_draw.h - draws the notebook's figures (rows of scatter panels) with
 * PLplot's cairo drivers into a PNG, SVG or PDF file, written atomically.
 * Knows nothing about models: it takes float arrays. */
#ifndef LSC_PLOT_DRAW_H
#define LSC_PLOT_DRAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <getopt.h>

typedef enum plot_format { PLOT_PNG, PLOT_SVG, PLOT_PDF } plot_format;
typedef enum plot_theme { PLOT_LIGHT, PLOT_DARK } plot_theme;

#define PLOT_MAX_PANELS 4

/* One scatter panel: a marker per point (x[i], y[i]); non-finite points are
 * not drawn. The arrays are borrowed for the duration of plot_render(). */
typedef struct plot_panel {
    const float *x; /* [n], or NULL for the index 0..n-1 */
    const float *y; /* [n] */
    size_t n;
    const char *title, *xlabel, *ylabel; /* UTF-8; NULL for none */
    long mark;          /* index drawn as a red square, or -1 */
    const char *legend; /* legend text for the red square; NULL for no legend */
    bool line;          /* also join the points, in order, with a line */
    double xtick;       /* spacing of the x axis's major ticks; 0 for automatic */
    const char *const *labels; /* [n] small text above each point (NULL entries
                                  skipped), or NULL for none; borrowed */
} plot_panel;

typedef struct plot_figure {
    plot_panel panels[PLOT_MAX_PANELS]; /* drawn side by side, left to right */
    int n_panels;
    double width_in, height_in; /* figure size in inches (the notebook's 10x3, 12x3.3) */
    int dpi;                    /* PNG pixels per inch (SVG/PDF are vector, 72 pt/in) */
    plot_theme theme;
} plot_figure;

/* What plot_render drew, for reports and tests: per panel the axes box in
 * output units (pixels for PNG, points for SVG/PDF; origin top-left) and the
 * data limits mapped to it. */
typedef struct plot_info {
    double width, height; /* page size in output units */
    struct {
        double left, right, top, bottom;
        double xmin, xmax, ymin, ymax;
        size_t n_drawn;   /* finite points drawn */
        size_t n_markers; /* dots the file holds: points on the same spot share one */
    } panels[PLOT_MAX_PANELS];
} plot_info;

/* Options shared by every figure command: --theme light|dark, --size WxH
 * (inches), --dpi N. Put PLOT_FIGURE_OPTIONS in the command's cli_opt table and
 * pass each option to plot_figure_option(). */
enum { PLOT_OPT_THEME = 2900, PLOT_OPT_SIZE, PLOT_OPT_DPI };
#define PLOT_FIGURE_OPTIONS                                                          \
    {"theme", 0, "light|dark", PLOT_OPT_THEME, "the figure's colours (default light)"},     \
        {"size", 0, "WxH", PLOT_OPT_SIZE, "the figure's size in inches, e.g. 12x3.3"},       \
        {"dpi", 0, "N", PLOT_OPT_DPI, "pixels per inch of a PNG (default 100)"}

/* Applies a PLOT_FIGURE_OPTIONS option to `fig`: 1 when handled, 0 when
 * `opt` is not one of them, -1 after printing an error for a bad value. */
int plot_figure_option(plot_figure *fig, int opt, const char *arg);

/* Writes token `id` for display as "text" in quotes into out[size]: printable
 * UTF-8 kept, control bytes and invalid UTF-8 escaped as \n, \t, \xNN. With
 * no tokenizer (NULL), "id N". */
struct lsc_tokenizer;
void plot_token_label(const struct lsc_tokenizer *tok, int32_t id, char *out, size_t size);

/* What was drawn, as a new cJSON object (cJSON_Delete; NULL when out of
 * memory): file, width, height, seconds and per panel its box, limits,
 * number of points and of markers. */
struct cJSON;
struct cJSON *plot_info_json(const char *path, const plot_info *info, int n_panels,
                             double seconds);

/* Seconds on a monotonic clock (for render times). */
double plot_now(void);

/* The format for a file name's extension (.png, .svg, .pdf; any case);
 * false for anything else. */
bool plot_format_from_path(const char *path, plot_format *out);

/* Checks that `path` can be written: a known extension, an existing writable
 * folder, and not a folder itself. On failure prints a one-line error
 * (cli_error) and returns false. Cheap: call it before expensive work. */
bool plot_check_output(const char *path);

/* Draws `fig` into `path`, through a temporary file in the same folder
 * (atomic_open) that is checked for completeness and renamed over `path` only
 * then; on any failure no file is left behind and `path` is untouched. PLplot's
 * errors, which it would print and exit() on, are caught and reported. `info`
 * may be NULL. Prints a one-line error and returns false on failure. Not
 * thread-safe (PLplot keeps global state). */
bool plot_render(const plot_figure *fig, const char *path, plot_info *info);

#endif
