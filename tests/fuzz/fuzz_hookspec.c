/* fuzz_hookspec.c - libFuzzer target for the --hook spec parser
 * (tools/common/hookspec.c): any bytes, cut at the first NUL, must parse or fail with
 * a one-line message, never crash; a spec that parses holds together (point
 * non-empty, counts within their limits, an argument for add/patch/set), and
 * its position and head selectors answer for any position without trouble. */
#include "hookspec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *spec = malloc(size + 1);
    require(spec != NULL);
    memcpy(spec, data, size);
    spec[size] = '\0';
    static hookspec hs; /* two 4 KB buffers: keep them off the stack */
    char err[256] = "";
    memset(&hs, 0xa5, sizeof hs);
    if (!hookspec_parse(spec, &hs, err, sizeof err)) {
        require(err[0] != '\0' && memchr(err, '\0', sizeof err) && !strchr(err, '\n'));
        free(spec);
        return 0;
    }
    require(memchr(hs.point, '\0', sizeof hs.point) && hs.point[0] != '\0');
    require(memchr(hs.arg, '\0', sizeof hs.arg) != NULL);
    require(hs.n_heads >= 0 && hs.n_heads <= HOOKSPEC_MAX_RANGES);
    require(hs.n_ranges >= 0 && hs.n_ranges <= HOOKSPEC_MAX_RANGES);
    require(hs.op >= HOOK_OP_ZERO && hs.op <= HOOK_OP_SET);
    if (hs.op == HOOK_OP_ADD || hs.op == HOOK_OP_PATCH || hs.op == HOOK_OP_SET)
        require(hs.arg[0] != '\0');
    static const long ends[] = {0, 1, 7, 1024, 1L << 40};
    for (size_t e = 0; e < sizeof ends / sizeof ends[0]; e++)
        for (long p = 0; p < 9; p++) (void)hookspec_selects(&hs, p, ends[e] > p ? ends[e] : p + 1);
    (void)hookspec_selects(&hs, (1L << 40) - 1, 1L << 40);
    for (int h = 0; h < 70; h++) (void)hookspec_selects_head(&hs, h);
    free(spec);
    return 0;
}
