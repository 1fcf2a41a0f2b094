/* test_util.c - the shared helpers: error messages and size arithmetic. */
#include "check.h"
#include "internal.h"

#include <string.h>

static void test_fail_fills_error(void) {
    lsc_error err;
    lsc_status s = lsc_fail(&err, LSC_ERR_FORMAT, "%s: bad\nline %d", "x.json", 3);
    CHECK(s == LSC_ERR_FORMAT);
    CHECK(err.status == LSC_ERR_FORMAT);
    CHECK(strcmp(err.message, "x.json: bad line 3") == 0);
    CHECK(lsc_fail(NULL, LSC_ERR_IO, "ignored") == LSC_ERR_IO);
}

static void test_size_overflow(void) {
    size_t r;
    CHECK(lsc_mul_size(1000, 1000, &r) && r == 1000000);
    CHECK(!lsc_mul_size(SIZE_MAX / 2 + 1, 2, &r));
    CHECK(!lsc_add_size(SIZE_MAX, 1, &r));
}

static void test_status_str(void) {
    CHECK(strcmp(lsc_status_str(LSC_OK), "ok") == 0);
    CHECK(strcmp(lsc_status_str((lsc_status)999), "unknown status") == 0);
}

int main(void) {
    RUN(test_fail_fills_error);
    RUN(test_size_overflow);
    RUN(test_status_str);
    return CHECK_DONE();
}
