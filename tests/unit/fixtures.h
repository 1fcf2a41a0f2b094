/* fixtures.h - loading the checkpoints tests/gen_fixtures.py writes
 * (make fixtures), for the C unit tests that run a model. */
#ifndef LSC_TEST_FIXTURES_H
#define LSC_TEST_FIXTURES_H

#include "logitscope.h"

#include <stdio.h>
#include <stdlib.h>

/* The fixture `name` under $LSC_FIXTURES (default build/fixtures); a test
 * cannot go on without it, so a missing one ends the test run. */
static inline lsc_model *load_fixture_with(const char *name, lsc_model_params p) {
    const char *root = getenv("LSC_FIXTURES");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root ? root : "build/fixtures", name);
    lsc_model *m = NULL;
    lsc_error err;
    if (lsc_model_load(dir, p, &m, &err)) {
        fprintf(stderr, "cannot load %s: %s (run 'make fixtures')\n", dir, err.message);
        exit(EXIT_FAILURE);
    }
    return m;
}

static inline lsc_model *load_fixture(const char *name) {
    return load_fixture_with(name, lsc_model_default_params());
}

#endif
