/* plot_draw.h - draws the notebook's figures (rows of scatter panels) with
 * PLplot's cairo drivers into a PNG, SVG or PDF file, written atomically.
 * Knows nothing about models: it takes float arrays. */
#ifndef LSC_PLOT_DRAW_H
#define LSC_PLOT_DRAW_H

#include <stdbool.h>
#include <stddef.h>

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
        size_t n_drawn; /* finite points drawn */
    } panels[PLOT_MAX_PANELS];
} plot_info;

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
