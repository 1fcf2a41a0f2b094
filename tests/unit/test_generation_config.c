/* test_generation_config.c - generation_config.json reading (defaults when absent,
 * the keys read, null as absent, bad files rejected with the defaults left)
 * and the number of new tokens model.generate(input_ids) makes. */
#include "check.h"
#include "logitscope.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

/* Writes `text` as dir/generation_config.json. */
static void write_config(const char *text) {
    char path[128];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_absent_file_gives_defaults(void) {
    lsc_generation_config g;
    lsc_error err;
    CHECK(lsc_generation_config_load(dir, &g, &err) == LSC_OK);
    CHECK(g.found == 0 && g.max_new_tokens == 0 && g.max_length == 0 && g.eos_id == -1);
    CHECK(g.sampler.do_sample == 0 && g.sampler.top_k == 50 && g.sampler.temperature == 1.0f);
    CHECK(g.sampler.top_p == 1.0 && g.sampler.repetition_penalty == 1.0f);
}

static void test_keys_read(void) {
    write_config("{\"do_sample\": true, \"temperature\": 0.7, \"top_k\": 5, \"top_p\": 0.9,"
                 " \"min_p\": null, \"repetition_penalty\": 1.3, \"max_new_tokens\": 7,"
                 " \"max_length\": 50, \"eos_token_id\": [42], \"transformers_version\": \"5\"}");
    lsc_generation_config g;
    lsc_error err;
    CHECK(lsc_generation_config_load(dir, &g, &err) == LSC_OK);
    CHECK(g.found == 1 && g.sampler.do_sample == 1 && g.sampler.top_k == 5);
    CHECK_NEAR(g.sampler.temperature, 0.7, 1e-7);
    CHECK(g.sampler.top_p == 0.9 && g.sampler.min_p == 0.0f);
    CHECK_NEAR(g.sampler.repetition_penalty, 1.3, 1e-7);
    CHECK(g.max_new_tokens == 7 && g.max_length == 50 && g.eos_id == 42);
    write_config("{\"eos_token_id\": null}");
    CHECK(lsc_generation_config_load(dir, &g, &err) == LSC_OK && g.found && g.eos_id == -1);
}

static void test_bad_file(void) {
    write_config("{\"top_k\": 2.5, \"max_new_tokens\": 3}");
    lsc_generation_config g;
    lsc_error err;
    CHECK(lsc_generation_config_load(dir, &g, &err) == LSC_ERR_FORMAT);
    CHECK(strstr(err.message, "generation_config.json") && strstr(err.message, "\"top_k\""));
    CHECK(g.found == 0 && g.max_new_tokens == 0 && g.sampler.top_k == 50);
    write_config("{\"eos_token_id\": [1, 2]}");
    CHECK(lsc_generation_config_load(dir, &g, &err) == LSC_ERR_UNSUPPORTED);
}

static void test_max_new(void) {
    lsc_error err;
    int n;
    CHECK(lsc_generation_config_max_new(NULL, 14, 1024, &n, &err) == LSC_OK && n == 20);
    CHECK(lsc_generation_config_max_new(NULL, 50, 64, &n, &err) == LSC_OK && n == 14);
    CHECK(lsc_generation_config_max_new(NULL, 64, 64, &n, &err) == LSC_ERR_CONTEXT_FULL);
    lsc_generation_config g = {0};
    g.max_length = 17;
    CHECK(lsc_generation_config_max_new(&g, 14, 1024, &n, &err) == LSC_OK && n == 3);
    CHECK(lsc_generation_config_max_new(&g, 17, 1024, &n, &err) == LSC_ERR_INVALID_ARG);
    CHECK(strstr(err.message, "max_length is 17") != NULL);
    g.max_new_tokens = 7; /* wins over max_length, as in transformers */
    CHECK(lsc_generation_config_max_new(&g, 17, 1024, &n, &err) == LSC_OK && n == 7);
}

int main(void) {
    strcpy(dir, "/tmp/lsc_genconfig_XXXXXX");
    if (!mkdtemp(dir)) return EXIT_FAILURE;
    RUN(test_absent_file_gives_defaults);
    RUN(test_keys_read);
    RUN(test_bad_file);
    RUN(test_max_new);
    char path[128];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    remove(path);
    rmdir(dir);
    return CHECK_DONE();
}
