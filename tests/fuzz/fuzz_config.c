/* fuzz_config.c - libFuzzer target for the config.json reader
 * (lsc_config_parse on the raw bytes). It must either fail with a status and
 * a one-line message, or give hyper-parameters inside the documented limits
 * that fit together (n_embd a multiple of n_head, n_inner set). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lsc_config cfg;
    memset(&cfg, 0xa5, sizeof cfg);
    lsc_act act;
    lsc_error err = {0};
    lsc_status st = lsc_config_parse("config.json", (const char *)data, size, &cfg, &act, &err);
    if (st != LSC_OK) {
        require(err.status == st && err.message[0] && !strchr(err.message, '\n'));
        return 0;
    }
    require(cfg.n_layer >= 1 && cfg.n_layer <= 1024);
    require(cfg.n_head >= 1 && cfg.n_embd >= 1 && cfg.n_embd % cfg.n_head == 0);
    require(cfg.n_ctx >= 1 && cfg.n_vocab >= 1 && cfg.n_inner >= 1);
    require(cfg.layer_norm_epsilon >= 0 && cfg.layer_norm_epsilon < 1);
    require(memchr(cfg.activation_function, 0, sizeof cfg.activation_function) != NULL);
    return 0;
}
