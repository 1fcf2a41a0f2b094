/* fuzz_config.c - libFuzzer target for the config.json reader: parsing must
 * either succeed with values inside the documented limits, or fail with a
 * status and a message, never crash. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lsc_config c;
    lsc_act act;
    lsc_error err = {0};
    lsc_status st = lsc_config_parse("config.json", (const char *)data, size, &c, &act, &err);
    if (st != LSC_OK) {
        if (err.message[0] == '\0' || err.status != st) abort();
        return 0;
    }
    if (c.n_layer < 1 || c.n_head < 1 || c.n_embd < 1 || c.n_embd % c.n_head || c.n_ctx < 1 ||
        c.n_vocab < 1 || c.n_inner < 1 || !(c.layer_norm_epsilon >= 0) ||
        !memchr(c.activation_function, '\0', sizeof c.activation_function))
        abort();
    return 0;
}
