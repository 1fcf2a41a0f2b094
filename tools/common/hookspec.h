/* hookspec.h - the text of a --hook intervention, parsed without touching a
 * model or a file (so a fuzz target can call hookspec_parse on any bytes).
 *
 *   SPEC      := POINT [ '[' HEADS ']' ] [ '@' POSITIONS ] ':' OP
 *   POINT     := a hook point name or glob: letters, digits, '_', '.', '*'
 *   HEADS     := INT (',' INT)*   heads to touch (points with a head axis:
 *                                 hook_q/k/v/z, hook_attn_scores, hook_pattern)
 *   POSITIONS := POS (',' POS)*     POS := INT | [INT] ':' [INT]
 *                (a Python-style index or slice; negative counts from the end
 *                of the positions run so far, slices exclude their stop)
 *   OP        := zero | scale:F | add:FILE[*F] | patch:FILE
 *              | set:TOKEN=VALUE   VALUE := NUMBER | max | min | max+F | max-F
 *                                           | min+F | min-F
 */
#ifndef LSC_HOOKSPEC_H
#define LSC_HOOKSPEC_H

#include <stdbool.h>
#include <stddef.h>

#define HOOKSPEC_MAX_LEN 4096   /* longest spec accepted */
#define HOOKSPEC_MAX_RANGES 16  /* positions listed after '@' */

typedef enum hook_op {
    HOOK_OP_ZERO,  /* set the activation to 0 */
    HOOK_OP_SCALE, /* multiply it by factor */
    HOOK_OP_ADD,   /* add factor * the .npy vector in arg */
    HOOK_OP_PATCH, /* replace it by the same point's activation in the .npz in arg */
    HOOK_OP_SET    /* set the logit of token arg to base + value */
} hook_op;

typedef enum hook_base {
    HOOK_BASE_NONE, /* VALUE is a number */
    HOOK_BASE_MAX,  /* relative to the row's largest logit */
    HOOK_BASE_MIN   /* relative to the row's smallest logit */
} hook_base;

/* One index (is_slice false: start) or slice [start, stop) of positions. */
typedef struct hook_range {
    bool is_slice, has_start, has_stop;
    long start, stop;
} hook_range;

typedef struct hookspec {
    char point[HOOKSPEC_MAX_LEN + 1]; /* the point name or glob */
    int n_heads;                      /* 0: every head */
    int heads[HOOKSPEC_MAX_RANGES];
    int n_ranges;                     /* 0: every position */
    hook_range ranges[HOOKSPEC_MAX_RANGES];
    hook_op op;
    double factor;                  /* scale:F, add:FILE*F (1 when absent) */
    char arg[HOOKSPEC_MAX_LEN + 1]; /* FILE for add/patch, TOKEN for set */
    hook_base base;                 /* set: what VALUE is relative to */
    double value;                   /* set: the number (the offset with a base) */
} hookspec;

/* Parses `spec` (NUL-terminated) into *out. Returns true on success; on
 * failure writes a one-line message naming the fault into err[err_len]. Pure:
 * no allocation, no I/O. */
bool hookspec_parse(const char *spec, hookspec *out, char *err, size_t err_len);

/* True when absolute position `p` is selected by the spec's positions, where
 * `end` is the number of positions run so far (negative indices count back
 * from it). */
bool hookspec_selects(const hookspec *hs, long p, long end);

/* True when head `h` is selected (always, when no heads were given). */
bool hookspec_selects_head(const hookspec *hs, int h);

#endif
