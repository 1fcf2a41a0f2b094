/* plot_draw.c - the notebook's figures drawn with PLplot's cairo drivers
 * (pngcairo, svgcairo, pdfcairo), written atomically. See plot_draw.h.
 *
 * Layout is computed in points (1/72 inch) and converted to device units:
 * the cairo drivers take line widths in device units (pixels for PNG, points
 * for SVG/PDF) and character heights in millimetres of a 72-unit-per-inch page,
 * so `unit` (device units per point) scales both. */
#include "plot_draw.h"

#include "cli.h"
#include "npy.h"

#include <cjson/cJSON.h>
#include <plplot.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Sizes in points, after matplotlib's defaults. */
#define PT_TITLE 12.0
#define PT_LABEL 10.0
#define PT_TICKS 9.0
#define PT_LEGEND 9.0
#define PT_DOT 3.0    /* diameter of a vocabulary entry's marker */
#define PT_SQUARE 6.0 /* side of the marked token's red square */
#define PT_FRAME 0.8  /* axes frame and tick width */
#define PT_LINE 1.5   /* a panel's joining line */
#define PT_POINT 6.0  /* marker diameter on a panel with a line (few points) */
#define PT_POINT_LABEL 7.0 /* text above the points */

/* Figure margins around each panel's axes, in points. */
#define MARGIN_LEFT 62.0
#define MARGIN_RIGHT 14.0
#define MARGIN_BOTTOM 38.0
#define MARGIN_TOP 24.0

typedef struct rgba {
    int r, g, b;
    double a;
} rgba;

typedef struct theme_colors {
    rgba bg, fg, dots, mark, legend_bg, legend_edge, line;
} theme_colors;

/* The light theme is matplotlib's default style; the dark one its
 * 'dark_background' style. */
static const theme_colors themes[2] = {
    [PLOT_LIGHT] = {{255, 255, 255, 1}, {0, 0, 0, 1}, {31, 119, 180, 0.45}, {255, 0, 0, 1},
                    {255, 255, 255, 0.8}, {204, 204, 204, 1}, {31, 119, 180, 1}},
    [PLOT_DARK] = {{0, 0, 0, 1}, {255, 255, 255, 1}, {141, 211, 199, 0.45}, {255, 0, 0, 1},
                   {0, 0, 0, 0.8}, {128, 128, 128, 1}, {141, 211, 199, 1}},
};

/* cmap0 slots used while drawing. */
enum { COL_BG = 0, COL_FG = 1, COL_DOTS = 2, COL_MARK = 3, COL_LEGEND_BG = 4, COL_LEGEND_EDGE = 5, COL_LINE = 6 };

bool plot_format_from_path(const char *path, plot_format *out) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash) || dot == path || (slash && dot == slash + 1)) return false;
    if (!strcasecmp(dot, ".png")) *out = PLOT_PNG;
    else if (!strcasecmp(dot, ".svg")) *out = PLOT_SVG;
    else if (!strcasecmp(dot, ".pdf")) *out = PLOT_PDF;
    else return false;
    return true;
}

/* Parses "WxH" in inches. */
static bool parse_size(const char *s, double *w, double *h) {
    char buf[64];
    const char *x = strchr(s, 'x');
    if (!x || (size_t)(x - s) >= sizeof buf) return false;
    memcpy(buf, s, (size_t)(x - s));
    buf[x - s] = '\0';
    return cli_parse_float(buf, w) && cli_parse_float(x + 1, h) && *w >= 1 && *w <= 100 &&
           *h >= 1 && *h <= 100;
}

/* Writes token `id` for display as "text" in quotes: printable UTF-8 kept,
 * control bytes and invalid UTF-8 escaped as \n, \t, \xNN. With no tokenizer,
 * "id N". */
void plot_token_label(const lsc_tokenizer *tok, int32_t id, char *out, size_t size) {
    size_t len = 0;
    const char *b = tok ? lsc_tokenizer_token_bytes(tok, id, &len) : NULL;
    if (!b) {
        snprintf(out, size, "id %d", (int)id);
        return;
    }
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < len && k + 8 < size;) {
        unsigned char c = (unsigned char)b[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool valid = n > 0 && i + n <= len;
        for (size_t j = 1; valid && j < n; j++) valid = ((unsigned char)b[i + j] >> 6) == 2;
        if (valid && n == 1 && c >= 0x20 && c != 0x7f) {
            if (c == '"' || c == '\\') out[k++] = '\\';
            out[k++] = (char)c;
        } else if (valid && n > 1) {
            memcpy(out + k, b + i, n);
            k += n;
        } else {
            k += (size_t)snprintf(out + k, size - k, c == '\n' ? "\\n" : c == '\t' ? "\\t" : "\\x%02x", c);
            n = 1;
        }
        i += n;
    }
    out[k++] = '"';
    out[k] = '\0';
}

/* Seconds on a monotonic clock. */
double plot_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}


int plot_figure_option(plot_figure *fig, int opt, const char *arg) {
    long v;
    switch (opt) {
    case PLOT_OPT_THEME:
        if (!strcmp(arg, "light")) fig->theme = PLOT_LIGHT;
        else if (!strcmp(arg, "dark")) fig->theme = PLOT_DARK;
        else {
            cli_error("--theme: '%s' is not light or dark", arg);
            return -1;
        }
        return 1;
    case PLOT_OPT_SIZE:
        if (!parse_size(arg, &fig->width_in, &fig->height_in)) {
            cli_error("--size: '%s' is not WxH in inches, each from 1 to 100", arg);
            return -1;
        }
        return 1;
    case PLOT_OPT_DPI:
        if (!cli_parse_int(arg, 10, 1200, &v)) {
            cli_error("--dpi: '%s' is not a number from 10 to 1200", arg);
            return -1;
        }
        fig->dpi = (int)v;
        return 1;
    default: return 0;
    }
}

cJSON *plot_info_json(const char *path, const plot_info *info, int n_panels, double seconds) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddNumberToObject(o, "width", info->width);
    cJSON_AddNumberToObject(o, "height", info->height);
    cJSON_AddNumberToObject(o, "seconds", seconds);
    cJSON *arr = cJSON_AddArrayToObject(o, "panels");
    for (int k = 0; k < n_panels; k++) {
        cJSON *p = cJSON_CreateObject();
        double box[4] = {info->panels[k].left, info->panels[k].top, info->panels[k].right,
                         info->panels[k].bottom};
        double xl[2] = {info->panels[k].xmin, info->panels[k].xmax};
        double yl[2] = {info->panels[k].ymin, info->panels[k].ymax};
        cJSON_AddItemToObject(p, "box", cJSON_CreateDoubleArray(box, 4));
        cJSON_AddItemToObject(p, "xlim", cJSON_CreateDoubleArray(xl, 2));
        cJSON_AddItemToObject(p, "ylim", cJSON_CreateDoubleArray(yl, 2));
        cJSON_AddNumberToObject(p, "points", (double)info->panels[k].n_drawn);
        cJSON_AddNumberToObject(p, "markers", (double)info->panels[k].n_markers);
        cJSON_AddItemToArray(arr, p);
    }
    return o;
}

/* The folder part of `path` ("." when none), in a new string (free()). */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

bool plot_check_output(const char *path) {
    plot_format fmt;
    if (!*path) {
        cli_error("the output file name is empty");
        return false;
    }
    if (!plot_format_from_path(path, &fmt)) {
        cli_error("%s: unknown image format (the name must end in .png, .svg or .pdf)", path);
        return false;
    }
    char *dir = dir_of(path);
    if (!dir) {
        cli_error("out of memory");
        return false;
    }
    struct stat st;
    bool ok = false;
    if (stat(dir, &st) != 0)
        cli_error("%s: cannot write: folder '%s': %s", path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        cli_error("%s: cannot write: '%s' is not a folder", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        cli_error("%s: cannot write: folder '%s': %s", path, dir, strerror(errno));
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        cli_error("%s: cannot write: it is a folder", path);
    else
        ok = true;
    free(dir);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* PLplot error handling: plexit() would print and exit(); its handler jumps */
/* back into plot_render instead. plabort() warnings are recorded as errors. */
/* ------------------------------------------------------------------------ */

static jmp_buf pl_jump;
static char pl_message[256];
static bool pl_failed;

/* PLplot's exit handler: records the message and returns to plot_render. */
static int pl_exit_handler(const char *msg) {
    snprintf(pl_message, sizeof pl_message, "%s", msg ? msg : "fatal error");
    pl_failed = true;
    longjmp(pl_jump, 1);
}

/* PLplot's abort (warning) handler: records the first message. */
static void pl_abort_handler(const char *msg) {
    if (!pl_failed) snprintf(pl_message, sizeof pl_message, "%s", msg ? msg : "error");
    pl_failed = true;
}

/* True when PLplot knows the device `name` (its driver is installed). */
static bool device_available(const char *name) {
    enum { MAX_DEVS = 128 };
    const char *menus[MAX_DEVS], *names[MAX_DEVS];
    const char **pm = menus, **pn = names;
    int n = MAX_DEVS;
    plgDevs(&pm, &pn, &n);
    for (int i = 0; i < n; i++)
        if (pn[i] && !strcmp(pn[i], name)) return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Drawing                                                                   */
/* ------------------------------------------------------------------------ */

/* The state of one render: page size and unit conversions. */
typedef struct canvas {
    double w_pt, h_pt; /* page size in points */
    double unit;       /* device units per point */
} canvas;

static void set_color(int slot, rgba c) { plscol0a(slot, c.r, c.g, c.b, c.a); }

/* Sets the character height to `pt` points. */
static void font_pt(const canvas *cv, double pt) { plschr(pt * cv->unit * 25.4 / 72.0 * 0.75, 1.0); }

/* Copies `s` into buf with PLplot's escape character '#' doubled, so the
 * text is drawn literally. */
static const char *pl_text(const char *s, char *buf, size_t size) {
    size_t k = 0;
    for (; *s && k + 2 < size; s++) {
        if (*s == '#') buf[k++] = '#';
        buf[k++] = *s;
    }
    buf[k] = '\0';
    return buf;
}

/* Data limits with matplotlib's 5% margins; a flat range gets +-0.5 or +-5%. */
static void limits(const double *v, size_t n, double *lo, double *hi) {
    double mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < mn) mn = v[i];
        if (v[i] > mx) mx = v[i];
    }
    if (mn > mx) mn = 0, mx = 1; /* nothing finite */
    double span = mx - mn;
    if (span <= 0) span = fabs(mx) > 0 ? fabs(mx) * 0.1 : 1.0;
    *lo = (mx - mn > 0 ? mn : mn - span / 2) - 0.05 * (mx - mn > 0 ? span : 0);
    *hi = (mx - mn > 0 ? mx : mx + span / 2) + 0.05 * (mx - mn > 0 ? span : 0);
}

/* Draws the legend (a red square and its text) in the corner of the axes
 * that covers the fewest points and never the marked one (mx, my), as
 * matplotlib's loc='best' does. World limits and the axes size in points
 * are given. */
static void draw_legend(const canvas *cv, const char *text, const double *xs, const double *ys,
                        size_t n, double mx, double my, double x0, double x1, double y0,
                        double y1, double aw_pt, double ah_pt) {
    char buf[512];
    pl_text(text, buf, sizeof buf);
    size_t chars = 0;
    for (const char *p = text; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    double pad = 5, sq = PT_SQUARE, gap = 6;
    double w = pad + sq + gap + chars * PT_LEGEND * 0.6 + pad; /* points */
    double h = PT_LEGEND * 2.0;
    double inset = 6;
    /* corners: upper right, upper left, lower left, lower right */
    double best_cost = INFINITY, bx = 0, by = 0;
    for (int c = 0; c < 4; c++) {
        double lx = (c == 1 || c == 2) ? inset : aw_pt - inset - w;
        double ly = (c == 2 || c == 3) ? inset : ah_pt - inset - h;
        double wx0 = x0 + lx / aw_pt * (x1 - x0), wx1 = x0 + (lx + w) / aw_pt * (x1 - x0);
        double wy0 = y0 + ly / ah_pt * (y1 - y0), wy1 = y0 + (ly + h) / ah_pt * (y1 - y0);
        size_t cost = 0;
        for (size_t i = 0; i < n; i++)
            cost += xs[i] >= wx0 && xs[i] <= wx1 && ys[i] >= wy0 && ys[i] <= wy1;
        double hx = PT_SQUARE / aw_pt * (x1 - x0), hy = PT_SQUARE / ah_pt * (y1 - y0);
        if (mx >= wx0 - hx && mx <= wx1 + hx && my >= wy0 - hy && my <= wy1 + hy) cost += n + 1;
        if (cost < best_cost) best_cost = (double)cost, bx = lx, by = ly;
    }
    /* points -> world */
#define WX(p) (x0 + (p) / aw_pt * (x1 - x0))
#define WY(p) (y0 + (p) / ah_pt * (y1 - y0))
    PLFLT rx[4] = {WX(bx), WX(bx + w), WX(bx + w), WX(bx)};
    PLFLT ry[4] = {WY(by), WY(by), WY(by + h), WY(by + h)};
    plcol0(COL_LEGEND_BG);
    plfill(4, rx, ry);
    PLFLT ex[5] = {rx[0], rx[1], rx[2], rx[3], rx[0]}, ey[5] = {ry[0], ry[1], ry[2], ry[3], ry[0]};
    plcol0(COL_LEGEND_EDGE);
    plwidth(PT_FRAME * cv->unit);
    plline(5, ex, ey);
    double cy = by + h / 2;
    PLFLT qx[4] = {WX(bx + pad), WX(bx + pad + sq), WX(bx + pad + sq), WX(bx + pad)};
    PLFLT qy[4] = {WY(cy - sq / 2), WY(cy - sq / 2), WY(cy + sq / 2), WY(cy + sq / 2)};
    plcol0(COL_MARK);
    plfill(4, qx, qy);
    plcol0(COL_FG);
    font_pt(cv, PT_LEGEND);
    plptex(WX(bx + pad + sq + gap), WY(cy), 1.0, 0.0, 0.0, buf);
#undef WX
#undef WY
}

/* Dots closer than this (in device units: pixels for PNG, points for
 * SVG/PDF) are drawn as one: a quarter of a pixel moves nothing visibly. */
#define DOT_GRID 0.25
/* A cell holding k dots gets one dot of the opacity k stacked dots have,
 * 1 - (1 - a)^k, counted up to this k (beyond it the change is < 1%). */
#define DOT_MAX_STACK 8

typedef struct dot_cell {
    uint64_t key; /* the grid cell, row-major */
    size_t i;     /* the first point in it (ties broken by index: deterministic) */
} dot_cell;

static int dot_cell_cmp(const void *a, const void *b) {
    const dot_cell *p = a, *q = b;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    return p->i < q->i ? -1 : p->i > q->i;
}

static int dot_index_cmp(const void *a, const void *b) {
    const dot_cell *p = a, *q = b;
    return p->i < q->i ? -1 : p->i > q->i;
}

/* Draws the n dots (world coordinates, limits x0..x1, y0..y1 over an axes box
 * aw x ah points) in colour `c`. A panel of 50,257 entries puts thousands
 * of dots on the same spot, and cairo strokes each one (most of a figure's
 * time): dots in the same DOT_GRID cell become one dot whose opacity is that
 * of the stack, so the picture stays the same (edge pixels of a stack may
 * differ by a few levels). The dots all have one colour, so their order does
 * not matter. Returns the number of markers drawn. */
static size_t draw_dots(const canvas *cv, const double *xs, const double *ys, size_t n, rgba c,
                        double x0, double x1, double y0, double y1, double aw, double ah) {
    dot_cell *cells = n ? malloc(n * sizeof *cells) : NULL;
    PLFLT *px = n ? malloc(n * sizeof *px) : NULL, *py = n ? malloc(n * sizeof *py) : NULL;
    size_t *stack = n ? malloc(n * sizeof *stack) : NULL;
    if (!cells || !px || !py || !stack) { /* no memory for the merge: draw every dot */
        free(cells), free(px), free(py), free(stack);
        set_color(COL_DOTS, c);
        plcol0(COL_DOTS);
        if (n) plpoin((PLINT)n, (PLFLT *)xs, (PLFLT *)ys, -1);
        return n;
    }
    double sx = aw * cv->unit / DOT_GRID / (x1 - x0), sy = ah * cv->unit / DOT_GRID / (y1 - y0);
    for (size_t i = 0; i < n; i++) {
        /* the limits hold every point, so each cell index fits in 32 bits */
        uint64_t cx = (uint64_t)floor((xs[i] - x0) * sx), cy = (uint64_t)floor((ys[i] - y0) * sy);
        cells[i] = (dot_cell){cy << 32 | cx, i};
    }
    qsort(cells, n, sizeof *cells, dot_cell_cmp);
    size_t m = 0; /* distinct cells */
    for (size_t i = 0; i < n; m++) {
        size_t j = i + 1;
        while (j < n && cells[j].key == cells[i].key) j++;
        cells[m] = cells[i];
        stack[m] = j - i < DOT_MAX_STACK ? j - i : DOT_MAX_STACK;
        i = j;
    }
    for (size_t u = 0; u < m; u++) cells[u].key = stack[u]; /* draw order: by first point */
    qsort(cells, m, sizeof *cells, dot_index_cmp);
    for (size_t k = 1; k <= DOT_MAX_STACK; k++) { /* one PLplot call per opacity */
        PLINT cnt = 0;
        for (size_t u = 0; u < m; u++)
            if (cells[u].key == k) px[cnt] = xs[cells[u].i], py[cnt] = ys[cells[u].i], cnt++;
        if (!cnt) continue;
        rgba ck = c;
        ck.a = 1.0 - pow(1.0 - c.a, (double)k);
        set_color(COL_DOTS, ck);
        plcol0(COL_DOTS);
        plpoin(cnt, px, py, -1);
    }
    free(cells), free(px), free(py), free(stack);
    return m;
}

/* A text's box in points (page coordinates, y up). */
typedef struct box_pt {
    double x0, x1, y0, y1;
} box_pt;

static bool boxes_overlap(box_pt a, box_pt b) {
    return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;
}

/* Draws p->labels[i] next to point i, inside the axes box [l, r] x [b, t]
 * (points) whose world limits are x0..x1, y0..y1: above the marker, else
 * below, else beside it, wherever it covers no marker and no label placed
 * before it (the last point's first: the final layer matters most); a label
 * that fits nowhere is left out (the JSON report has every value). xs/ys are the n finite points, the markers to keep clear. */
static void draw_point_labels(const canvas *cv, const plot_panel *p, const double *xs,
                              const double *ys, size_t n, double x0, double x1, double y0,
                              double y1, double l, double r, double b, double t) {
    double sx = (r - l) / (x1 - x0), sy = (t - b) / (y1 - y0);
    double h = PT_POINT_LABEL * 0.8, gap = PT_POINT / 2 + 1; /* text height; marker radius + 1 */
    box_pt *placed = malloc((p->n + 1) * sizeof *placed);
    if (!placed) return; /* labels are an extra: the figure stays right without them */
    size_t n_placed = 0;
    char buf[512];
    plcol0(COL_FG);
    font_pt(cv, PT_POINT_LABEL);
    for (size_t k = 0; k < p->n; k++) {
        size_t i = k == 0 ? p->n - 1 : k - 1; /* the last point (the final layer) first */
        double x = p->x ? p->x[i] : (double)i, y = p->y[i];
        if (!p->labels[i] || !isfinite(x) || !isfinite(y)) continue;
        size_t chars = 0;
        for (const char *c = p->labels[i]; *c; c++) chars += ((unsigned char)*c & 0xC0) != 0x80;
        double w = chars * PT_POINT_LABEL * 0.62; /* DejaVu Sans' digits are 0.64 em */
        double px = l + (x - x0) * sx, py = b + (y - y0) * sy;
        /* centres tried: above, below, right, left of the marker */
        double cx[4] = {px, px, px + gap + w / 2, px - gap - w / 2};
        double cy[4] = {py + gap + h / 2, py - gap - h / 2, py, py};
        bool done = false;
        for (int e = 0; e < 4 && !done; e++) {
            double c = cx[e]; /* slide along x to stay inside the frame */
            if (c - w / 2 < l + 1) c = l + 1 + w / 2;
            if (c + w / 2 > r - 1) c = r - 1 - w / 2;
            box_pt bx = {c - w / 2, c + w / 2, cy[e] - h / 2, cy[e] + h / 2};
            bool free_spot = bx.y0 >= b + 1 && bx.y1 <= t - 1;
            for (size_t j = 0; free_spot && j < n_placed; j++)
                free_spot = !boxes_overlap(bx, placed[j]);
            for (size_t j = 0; free_spot && j < n; j++) {
                double mx = l + (xs[j] - x0) * sx, my = b + (ys[j] - y0) * sy, rr = PT_POINT / 2;
                free_spot = !boxes_overlap(bx, (box_pt){mx - rr, mx + rr, my - rr, my + rr});
            }
            if (!free_spot) continue;
            placed[n_placed++] = bx;
            plptex(x0 + (c - l) / sx, y0 + (cy[e] - b) / sy, 1.0, 0.0, 0.5,
                   pl_text(p->labels[i], buf, sizeof buf));
            done = true;
        }
    }
    free(placed);
}

/* Draws one panel into the axes box [l, r] x [b, t] (points from the page's
 * bottom-left). xs/ys are the finite points (world coordinates). */
static void draw_panel(const canvas *cv, const plot_panel *p, const double *xs, const double *ys,
                       size_t n, double mx, double my, bool has_mark, double l, double r,
                       double b, double t, double lim[4], rgba dots, size_t *n_markers) {
    double x0, x1, y0, y1;
    limits(xs, n, &x0, &x1);
    limits(ys, n, &y0, &y1); /* the mark is one of the points, so it is inside */
    if (p->labels) { /* room for the text above the top point and beside the end ones */
        double dx = 0.025 * (x1 - x0);
        y1 += 0.12 * (y1 - y0);
        x0 -= dx, x1 += dx;
    }
    lim[0] = x0, lim[1] = x1, lim[2] = y0, lim[3] = y1;
    plvpor(l / cv->w_pt, r / cv->w_pt, b / cv->h_pt, t / cv->h_pt);
    plwind(x0, x1, y0, y1);

    if (p->line && n > 1) {
        plcol0(COL_LINE);
        plwidth(PT_LINE * cv->unit);
        plline((PLINT)n, (PLFLT *)xs, (PLFLT *)ys);
    }
    /* every entry: a zero-length round-capped stroke, i.e. a dot */
    plwidth((p->line ? PT_POINT : PT_DOT) * cv->unit);
    *n_markers = draw_dots(cv, xs, ys, n, dots, x0, x1, y0, y1, r - l, t - b);
    char buf[512];
    if (p->labels) draw_point_labels(cv, p, xs, ys, n, x0, x1, y0, y1, l, r, b, t);

    if (has_mark) {
        double hx = PT_SQUARE / 2 / (r - l) * (x1 - x0), hy = PT_SQUARE / 2 / (t - b) * (y1 - y0);
        PLFLT qx[4] = {mx - hx, mx + hx, mx + hx, mx - hx};
        PLFLT qy[4] = {my - hy, my - hy, my + hy, my + hy};
        plcol0(COL_MARK);
        plfill(4, qx, qy);
    }

    /* frame, ticks outside on the bottom and left only, labels */
    plcol0(COL_FG);
    plwidth(PT_FRAME * cv->unit);
    font_pt(cv, PT_TICKS);
    plsmaj(0.0, 0.6);
    plbox("bc", 0, 0, "bc", 0, 0);
    /* a given tick spacing is widened (doubled: still whole layers) until the
     * labels (2 digits and half a space) have room on a narrow figure */
    double xtick = p->xtick;
    while (xtick > 0 && (r - l) * xtick / (x1 - x0) < PT_TICKS * 0.64 * 2.5) xtick *= 2;
    plbox("bint", xtick, 0, "bintv", 0, 0);
    if (p->xlabel) {
        font_pt(cv, PT_LABEL);
        plmtex("b", 3.2, 0.5, 0.5, pl_text(p->xlabel, buf, sizeof buf));
    }
    if (p->ylabel) {
        font_pt(cv, PT_LABEL);
        plmtex("l", 5.0, 0.5, 0.5, pl_text(p->ylabel, buf, sizeof buf));
    }
    if (p->title) {
        font_pt(cv, PT_TITLE);
        plmtex("t", 1.0, 0.5, 0.5, pl_text(p->title, buf, sizeof buf));
    }
    if (has_mark && p->legend)
        draw_legend(cv, p->legend, xs, ys, n, mx, my, x0, x1, y0, y1, r - l, t - b);
}

/* Checks that the finished file is complete: its signature, and its trailer
 * (PNG IEND chunk, PDF %%EOF, SVG closing tag). */
static bool file_complete(const char *path, plot_format fmt) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error("%s: cannot reopen the temporary file: %s", path, strerror(errno));
        return false;
    }
    unsigned char head[16] = {0}, tail[64] = {0};
    size_t nh = fread(head, 1, sizeof head, f);
    long size = (fseek(f, 0, SEEK_END) == 0) ? ftell(f) : -1;
    size_t nt = 0;
    if (size >= (long)sizeof tail && fseek(f, size - (long)sizeof tail, SEEK_SET) == 0)
        nt = fread(tail, 1, sizeof tail, f);
    fclose(f);
    bool ok = false;
    if (nh == sizeof head && nt == sizeof tail) {
        if (fmt == PLOT_PNG)
            ok = !memcmp(head, "\x89PNG\r\n\x1a\n", 8) && !memcmp(tail + sizeof tail - 8, "IEND", 4);
        else if (fmt == PLOT_PDF)
            ok = !memcmp(head, "%PDF-", 5) && memmem(tail, sizeof tail, "%%EOF", 5);
        else
            ok = !memcmp(head, "<?xml", 5) && memmem(tail, sizeof tail, "</svg>", 6);
    }
    if (!ok) cli_error("%s: the plotting library wrote an incomplete file", path);
    return ok;
}

/* Everything one render needs, passed through pl_guarded(). */
typedef struct render_job {
    const plot_figure *fig;
    plot_format fmt;
    const char *device;
    FILE *stream; /* PLplot writes here and closes it at plend() */
    double *xs[PLOT_MAX_PANELS], *ys[PLOT_MAX_PANELS]; /* finite points per panel */
    size_t counts[PLOT_MAX_PANELS];
    double mark_x[PLOT_MAX_PANELS], mark_y[PLOT_MAX_PANELS];
    bool has_mark[PLOT_MAX_PANELS];
    bool have_device;
    plot_info info;
} render_job;

/* Runs fn(job) with PLplot's exit and abort handlers installed; returns false
 * (message in pl_message) when PLplot reported an error. setjmp lives here,
 * in a frame with no locals to clobber. */
static bool pl_guarded(void (*fn)(render_job *), render_job *job) {
    /* plabort() writes into this buffer instead of stderr (it strcats
     * unbounded, so the buffer is generous). */
    static char pl_errmsg[8192];
    static PLINT pl_errcode;
    pl_failed = false;
    pl_message[0] = '\0';
    pl_errmsg[0] = '\0';
    pl_errcode = 0;
    plsexit(pl_exit_handler);
    plsabort(pl_abort_handler);
    plsError(&pl_errcode, pl_errmsg);
    if (setjmp(pl_jump) == 0) fn(job);
    plsError(NULL, NULL);
    plsexit(NULL);
    plsabort(NULL);
    if (pl_errcode != 0 && !pl_message[0]) {
        const char *m = pl_errmsg;
        while (*m == '\n' || *m == '*' || *m == ' ') m++; /* skip PLplot's banner line */
        if (!m[0]) m = "error";
        size_t k = strcspn(m, "\n"); /* the first line, truncated to fit */
        if (k >= sizeof pl_message) k = sizeof pl_message - 1;
        memcpy(pl_message, m, k);
        pl_message[k] = '\0';
    }
    return !pl_failed && pl_errcode == 0;
}

/* Looks the job's device up among PLplot's installed drivers. */
static void job_find_device(render_job *job) { job->have_device = device_available(job->device); }

/* Draws the whole figure into job->file with PLplot. */
static void job_draw(render_job *job) {
    const plot_figure *fig = job->fig;
    const theme_colors *tc = &themes[fig->theme == PLOT_DARK];
    canvas cv;
    cv.w_pt = fig->width_in * 72.0;
    cv.h_pt = fig->height_in * 72.0;
    cv.unit = job->fmt == PLOT_PNG ? fig->dpi / 72.0 : 1.0;
    job->info.width = round(cv.w_pt * cv.unit);
    job->info.height = round(cv.h_pt * cv.unit);
    plsdev(job->device);
    plsfile(job->stream);
    plspage(72.0 * cv.unit, 72.0 * cv.unit, (PLINT)job->info.width, (PLINT)job->info.height, 0, 0);
    plscolbg(tc->bg.r, tc->bg.g, tc->bg.b);
    plscmap0n(8);
    set_color(COL_BG, tc->bg);
    set_color(COL_FG, tc->fg);
    set_color(COL_DOTS, tc->dots);
    set_color(COL_MARK, tc->mark);
    set_color(COL_LEGEND_BG, tc->legend_bg);
    set_color(COL_LEGEND_EDGE, tc->legend_edge);
    set_color(COL_LINE, tc->line);
    plinit();
    pladv(0);
    plsxax(6, 0);
    plsyax(5, 0);
    double col = cv.w_pt / fig->n_panels;
    for (int k = 0; k < fig->n_panels; k++) {
        double l = k * col + MARGIN_LEFT, r = (k + 1) * col - MARGIN_RIGHT;
        double b = MARGIN_BOTTOM, t = cv.h_pt - (fig->panels[k].title ? MARGIN_TOP : 10.0);
        double lim[4];
        draw_panel(&cv, &fig->panels[k], job->xs[k], job->ys[k], job->counts[k], job->mark_x[k],
                   job->mark_y[k], job->has_mark[k], l, r, b, t, lim, tc->dots,
                   &job->info.panels[k].n_markers);
        job->info.panels[k].left = l * cv.unit;
        job->info.panels[k].right = r * cv.unit;
        job->info.panels[k].top = (cv.h_pt - t) * cv.unit;
        job->info.panels[k].bottom = (cv.h_pt - b) * cv.unit;
        job->info.panels[k].xmin = lim[0], job->info.panels[k].xmax = lim[1];
        job->info.panels[k].ymin = lim[2], job->info.panels[k].ymax = lim[3];
        job->info.panels[k].n_drawn = job->counts[k];
    }
    plend();
}

bool plot_render(const plot_figure *fig, const char *path, plot_info *info) {
    static const char *devices[] = {[PLOT_PNG] = "pngcairo", [PLOT_SVG] = "svgcairo",
                                    [PLOT_PDF] = "pdfcairo"};
    render_job job = {0};
    job.fig = fig;
    if (!plot_check_output(path)) return false;
    plot_format_from_path(path, &job.fmt);
    job.device = devices[job.fmt];
    if (fig->n_panels < 1 || fig->n_panels > PLOT_MAX_PANELS || !(fig->width_in >= 1) ||
        !(fig->height_in >= 1) || fig->width_in > 100 || fig->height_in > 100 ||
        (job.fmt == PLOT_PNG && (fig->dpi < 10 || fig->dpi > 1200 ||
                                 fig->width_in * fig->dpi > 20000 ||
                                 fig->height_in * fig->dpi > 20000))) {
        cli_error("%s: invalid figure size or resolution", path);
        return false;
    }
    if (!pl_guarded(job_find_device, &job)) {
        cli_error("PLplot: %s", pl_message);
        return false;
    }
    if (!job.have_device) {
        cli_error("PLplot has no '%s' device: install its cairo driver (plplot-driver-cairo)",
                  job.device);
        return false;
    }

    bool ok = false;
    char *tmp = NULL;
    FILE *f = NULL;
    for (int k = 0; k < fig->n_panels; k++) {
        const plot_panel *p = &fig->panels[k];
        job.xs[k] = malloc((p->n ? p->n : 1) * sizeof(double));
        job.ys[k] = malloc((p->n ? p->n : 1) * sizeof(double));
        if (!job.xs[k] || !job.ys[k]) {
            cli_error("out of memory");
            goto cleanup;
        }
        size_t m = 0;
        for (size_t i = 0; i < p->n; i++) {
            double x = p->x ? p->x[i] : (double)i, y = p->y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            job.xs[k][m] = x, job.ys[k][m] = y, m++;
            if ((long)i == p->mark) job.has_mark[k] = true, job.mark_x[k] = x, job.mark_y[k] = y;
        }
        job.counts[k] = m;
    }
    /* PLplot gets its own stream on a duplicate of the temporary file's
     * descriptor (it closes that stream itself); the original is committed. */
    if (!(f = atomic_open(path, &tmp))) goto cleanup;
    int fd = dup(fileno(f));
    if (fd < 0 || !(job.stream = fdopen(fd, "wb"))) {
        cli_error("%s: cannot write: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        goto cleanup;
    }
    if (!pl_guarded(job_draw, &job)) {
        cli_error("%s: PLplot: %s", path, pl_message);
        goto cleanup;
    }
    if (!file_complete(tmp, job.fmt)) goto cleanup;
    ok = atomic_commit(f, tmp, path); /* frees tmp, removes it on failure */
    f = NULL;
    tmp = NULL;
    if (ok && info) *info = job.info;
cleanup:
    if (f) atomic_abort(f, tmp);
    for (int k = 0; k < PLOT_MAX_PANELS; k++) free(job.xs[k]), free(job.ys[k]);
    return ok;
}
