/* test_hookspec.c - the --hook spec parser (tools/common/hookspec.c, from the
 * CLI's library build/libcli.a): every form of point, heads, positions and op, and the errors. */
#include "check.h"

#include "hookspec.h"

#include <string.h>

static hookspec hs;
static char err[256];

static bool parse(const char *s) { return hookspec_parse(s, &hs, err, sizeof err); }

static void test_ops(void) {
    CHECK(parse("blocks.0.hook_mlp_out:zero") && hs.op == HOOK_OP_ZERO && hs.n_ranges == 0);
    CHECK(!strcmp(hs.point, "blocks.0.hook_mlp_out"));
    CHECK(parse("blocks.*.hook_z:scale:-0.5") && hs.op == HOOK_OP_SCALE && hs.factor == -0.5);
    CHECK(parse("x:add:v.npy") && hs.op == HOOK_OP_ADD && !strcmp(hs.arg, "v.npy") && hs.factor == 1);
    CHECK(parse("x:add:dir/v.npy*2.5") && !strcmp(hs.arg, "dir/v.npy") && hs.factor == 2.5);
    CHECK(parse("x:add:a*b.npy") && !strcmp(hs.arg, "a*b.npy") && hs.factor == 1);
    CHECK(parse("x:patch:c:\\a.npz") && hs.op == HOOK_OP_PATCH && !strcmp(hs.arg, "c:\\a.npz"));
    CHECK(parse("lm_head:set: coffee=max+10") && hs.op == HOOK_OP_SET);
    CHECK(!strcmp(hs.arg, " coffee") && hs.base == HOOK_BASE_MAX && hs.value == 10);
    CHECK(parse("lm_head:set:a=b=min-2") && !strcmp(hs.arg, "a=b") && hs.base == HOOK_BASE_MIN &&
          hs.value == -2);
    CHECK(parse("lm_head:set:123=-7.5") && !strcmp(hs.arg, "123") && hs.base == HOOK_BASE_NONE &&
          hs.value == -7.5);
    CHECK(parse("lm_head:set:x=max") && hs.base == HOOK_BASE_MAX && hs.value == 0);
}

static void test_positions_and_heads(void) {
    CHECK(parse("p@-1:zero") && hs.n_ranges == 1 && !hs.ranges[0].is_slice && hs.ranges[0].start == -1);
    CHECK(hookspec_selects(&hs, 9, 10) && !hookspec_selects(&hs, 8, 10));
    CHECK(parse("p@0:5:zero") && hs.n_ranges == 1 && hs.ranges[0].is_slice);
    CHECK(hookspec_selects(&hs, 4, 10) && !hookspec_selects(&hs, 5, 10));
    CHECK(parse("p@3::scale:2") && hs.ranges[0].is_slice && !hs.ranges[0].has_stop && hs.factor == 2);
    CHECK(hookspec_selects(&hs, 9, 10) && !hookspec_selects(&hs, 2, 10));
    CHECK(parse("p@:-2:zero") && !hs.ranges[0].has_start && hs.ranges[0].stop == -2);
    CHECK(hookspec_selects(&hs, 7, 10) && !hookspec_selects(&hs, 8, 10));
    CHECK(parse("p@1,4,-1:zero") && hs.n_ranges == 3);
    CHECK(hookspec_selects(&hs, 4, 10) && hookspec_selects(&hs, 9, 10) && !hookspec_selects(&hs, 2, 10));
    CHECK(parse("p@3:zero") && hs.n_ranges == 1 && !hs.ranges[0].is_slice);
    CHECK(parse("blocks.1.attn.hook_z[2,0]@-1:patch:a.npz") && hs.n_heads == 2);
    CHECK(hookspec_selects_head(&hs, 0) && hookspec_selects_head(&hs, 2) && !hookspec_selects_head(&hs, 1));
    CHECK(parse("p:zero") && hookspec_selects_head(&hs, 7) && hookspec_selects(&hs, 0, 1));
}

static void test_errors(void) {
    struct {
        const char *spec, *msg;
    } bad[] = {
        {"", "point is empty"},
        {":zero", "point is empty"},
        {"p", "expected ':'"},
        {"p:", "unknown op ''"},
        {"p:zap", "unknown op 'zap'"},
        {"p:zero:1", "unknown op 'zero'"},
        {"p:scale:", "not a finite number"},
        {"p:scale:nan", "not a finite number"},
        {"p:scale:1e999", "not a finite number"},
        {"p:scale: 1", "not a finite number"},
        {"p:add:", "file name is empty"},
        {"p:add:*2", "file name is empty"},
        {"p:set:x", "expected TOKEN=VALUE"},
        {"p:set:=1", "token before '=' is empty"},
        {"p:set:x=", "bad value"},
        {"p:set:x=max+", "bad value"},
        {"p:set:x=max+-1", "bad value"},
        {"p:set:x=mean", "bad value"},
        {"p@:zero", "expected ':'"},
        {"p@x:zero", "bad positions"},
        {"p@99999999999:zero", "out of range"},
        {"p[:zero", "bad head list"},
        {"p[1:zero", "expected ']'"},
        {"p[-1]:zero", "bad head list"},
        {"p q:zero", "bad character ' '"},
        {"p\x01:zero", "bad character '?'"},
        {"p@1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17:zero", "more than 16"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = parse(bad[i].spec);
        CHECK(!ok);
        if (ok || !strstr(err, bad[i].msg))
            fprintf(stderr, "  spec '%s': got '%s', want '%s'\n", bad[i].spec, ok ? "(ok)" : err,
                    bad[i].msg);
        CHECK(!ok && strstr(err, bad[i].msg));
    }
    char *long_spec = malloc(HOOKSPEC_MAX_LEN + 10);
    memset(long_spec, 'a', HOOKSPEC_MAX_LEN + 9);
    long_spec[HOOKSPEC_MAX_LEN + 9] = '\0';
    CHECK(!parse(long_spec) && strstr(err, "longer than"));
    free(long_spec);
    CHECK(!hookspec_parse(NULL, &hs, err, sizeof err));
    /* messages stay one line whatever the spec holds (found by fuzz_hookspec) */
    const char *nl[] = {"hook\n", "p:set:x\ny", "p:scale:1\r\n", "a\nb:zero", "p:bogus\n"};
    for (size_t i = 0; i < sizeof nl / sizeof nl[0]; i++)
        CHECK(!parse(nl[i]) && err[0] && !strchr(err, '\n') && !strchr(err, '\r'));
}

int main(void) {
    RUN(test_ops);
    RUN(test_positions_and_heads);
    RUN(test_errors);
    return CHECK_DONE();
}
