/* hookspec.c - parsing --hook specs (see hookspec.h). */
#include "hookspec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes a formatted message into err and returns false. */
static bool fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail(char *err, size_t err_len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && err_len) vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    /* one line: a spec may hold a newline (the fuzzer found "hook\n") */
    for (char *q = err; err && *q; q++)
        if (*q == '\n' || *q == '\r') *q = ' ';
    return false;
}

/* Parses a finite number filling all of s[0..len); false otherwise. */
static bool parse_number(const char *s, size_t len, double *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n') return false;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* Parses an optional signed decimal integer at *p (advancing it); returns
 * 1 when one was read, 0 when none starts there, -1 when it is out of range. */
static int parse_long(const char **p, long *out) {
    const char *s = *p;
    if (!(*s >= '0' && *s <= '9') && !(*s == '-' && s[1] >= '0' && s[1] <= '9')) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || v < -1000000000L || v > 1000000000L) return -1;
    *out = v;
    *p = end;
    return 1;
}

static const char op_help[] =
    "zero, scale:F, add:FILE.npy[*F], patch:FILE.npz or set:TOKEN=VALUE";

/* Parses OP (the text after the point and positions) into hs. */
static bool parse_op(const char *op, hookspec *hs, char *err, size_t err_len) {
    hs->factor = 1;
    if (!strcmp(op, "zero")) {
        hs->op = HOOK_OP_ZERO;
        return true;
    }
    if (!strncmp(op, "scale:", 6)) {
        hs->op = HOOK_OP_SCALE;
        if (!parse_number(op + 6, strlen(op + 6), &hs->factor))
            return fail(err, err_len, "scale: '%s' is not a finite number", op + 6);
        return true;
    }
    if (!strncmp(op, "add:", 4) || !strncmp(op, "patch:", 6)) {
        bool add = op[0] == 'a';
        const char *file = op + (add ? 4 : 6);
        size_t len = strlen(file);
        const char *star = add ? strrchr(file, '*') : NULL;
        if (star && parse_number(star + 1, strlen(star + 1), &hs->factor)) len = (size_t)(star - file);
        if (len == 0) return fail(err, err_len, "%s: the file name is empty", add ? "add" : "patch");
        memcpy(hs->arg, file, len);
        hs->arg[len] = '\0';
        hs->op = add ? HOOK_OP_ADD : HOOK_OP_PATCH;
        return true;
    }
    if (!strncmp(op, "set:", 4)) {
        const char *tok = op + 4, *eq = strrchr(tok, '=');
        if (!eq) return fail(err, err_len, "set: expected TOKEN=VALUE, got '%s'", tok);
        size_t tlen = (size_t)(eq - tok);
        if (tlen == 0) return fail(err, err_len, "set: the token before '=' is empty");
        memcpy(hs->arg, tok, tlen);
        hs->arg[tlen] = '\0';
        const char *v = eq + 1;
        hs->op = HOOK_OP_SET;
        hs->base = HOOK_BASE_NONE;
        hs->value = 0;
        if (!strncmp(v, "max", 3) || !strncmp(v, "min", 3)) {
            hs->base = v[1] == 'a' ? HOOK_BASE_MAX : HOOK_BASE_MIN;
            v += 3;
            if (!*v) return true;
            if ((*v == '+' || *v == '-') && parse_number(v + 1, strlen(v + 1), &hs->value) &&
                v[1] != '+' && v[1] != '-') {
                if (*v == '-') hs->value = -hs->value;
                return true;
            }
            return fail(err, err_len, "set: bad value '%s' (a number, max, min, max+F, max-F, min+F or min-F)",
                        eq + 1);
        }
        if (!parse_number(v, strlen(v), &hs->value))
            return fail(err, err_len, "set: bad value '%s' (a number, max, min, max+F, max-F, min+F or min-F)", v);
        return true;
    }
    const char *colon = strchr(op, ':');
    int n = colon ? (int)(colon - op) : (int)strlen(op);
    if (n > 40) n = 40;
    return fail(err, err_len, "unknown op '%.*s' (expected %s)", n, op, op_help);
}

bool hookspec_parse(const char *spec, hookspec *hs, char *err, size_t err_len) {
    memset(hs, 0, sizeof *hs);
    if (!spec) return fail(err, err_len, "no hook spec");
    size_t len = strnlen(spec, HOOKSPEC_MAX_LEN + 1);
    if (len > HOOKSPEC_MAX_LEN)
        return fail(err, err_len, "hook spec is longer than %d bytes", HOOKSPEC_MAX_LEN);
    /* the point: up to '@' or ':' */
    size_t n = strcspn(spec, "@:[");
    if (n == 0) return fail(err, err_len, "expected POINT[@POSITIONS]:OP, but the point is empty");
    for (size_t i = 0; i < n; i++) {
        char ch = spec[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '*'))
            return fail(err, err_len,
                        "bad character '%c' (byte %zu) in the point name '%.*s' (expected "
                        "POINT[@POSITIONS]:OP)",
                        ch >= 32 && ch < 127 ? ch : '?', i, (int)(n > 80 ? 80 : n), spec);
    }
    memcpy(hs->point, spec, n);
    hs->point[n] = '\0';
    const char *p = spec + n;
    if (*p == '[') {
        p++;
        for (;;) {
            long h;
            if (hs->n_heads == HOOKSPEC_MAX_RANGES)
                return fail(err, err_len, "more than %d heads in [...]", HOOKSPEC_MAX_RANGES);
            if (parse_long(&p, &h) != 1 || h < 0 || h > 65535)
                return fail(err, err_len, "bad head list in [...] (expected e.g. [0] or [1,3])");
            hs->heads[hs->n_heads++] = (int)h;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p++ != ']') return fail(err, err_len, "expected ']' after the heads");
            break;
        }
    }
    if (*p == '@') {
        p++;
        for (;;) {
            if (hs->n_ranges == HOOKSPEC_MAX_RANGES)
                return fail(err, err_len, "more than %d positions after '@'", HOOKSPEC_MAX_RANGES);
            hook_range *r = &hs->ranges[hs->n_ranges];
            int got = parse_long(&p, &r->start);
            if (got < 0) return fail(err, err_len, "position out of range after '@'");
            r->has_start = got == 1;
            /* ':' continues a slice when it is followed by a number, ',', or ':' */
            if (*p == ':' && ((p[1] >= '0' && p[1] <= '9') || p[1] == '-' || p[1] == ',' ||
                              p[1] == ':' || !got)) {
                p++;
                r->is_slice = true;
                got = parse_long(&p, &r->stop);
                if (got < 0) return fail(err, err_len, "position out of range after '@'");
                r->has_stop = got == 1;
            } else if (!got) {
                return fail(err, err_len,
                            "bad positions after '@' (expected e.g. @-1, @3, @0:5 or @1,4)");
            }
            hs->n_ranges++;
            if (*p == ',') {
                p++;
                continue;
            }
            break;
        }
    }
    if (*p != ':')
        return fail(err, err_len, "expected ':' and an op after '%.*s' (POINT[@POSITIONS]:OP)",
                    (int)((size_t)(p - spec) > 80 ? 80 : (size_t)(p - spec)), spec);
    return parse_op(p + 1, hs, err, err_len);
}

/* An index relative to `end` when negative. */
static long resolve(long i, long end) { return i < 0 ? end + i : i; }

bool hookspec_selects(const hookspec *hs, long p, long end) {
    if (hs->n_ranges == 0) return true;
    for (int i = 0; i < hs->n_ranges; i++) {
        const hook_range *r = &hs->ranges[i];
        if (!r->is_slice) {
            if (p == resolve(r->start, end)) return true;
            continue;
        }
        long a = r->has_start ? resolve(r->start, end) : 0;
        long b = r->has_stop ? resolve(r->stop, end) : end;
        if (p >= a && p < b) return true;
    }
    return false;
}

bool hookspec_selects_head(const hookspec *hs, int h) {
    if (hs->n_heads == 0) return true;
    for (int i = 0; i < hs->n_heads; i++)
        if (hs->heads[i] == h) return true;
    return false;
}
