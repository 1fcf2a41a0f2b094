/* fuzz_tokenizer.c - libFuzzer target for encode and decode on the real GPT-2
 * files (tests/data, run from the repository root).
 *   first byte even: the rest is text; encode must succeed exactly when the
 *                    text is valid UTF-8, and then decode(encode(x)) == x;
 *   first byte odd:  the rest is int32 ids; decode must fail exactly when an
 *                    id is out of range, else give valid UTF-8 (checked by
 *                    encoding it again). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static lsc_tokenizer *tok;

/* Aborts (a fuzzer finding) when cond is false. */
static void require(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok && lsc_tokenizer_load("tests/data", &tok, NULL) != LSC_OK) abort();
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    if (!(data[0] & 1)) {
        int32_t *ids;
        size_t n_ids;
        lsc_status st = lsc_tokenizer_encode(tok, text, n, (data[0] >> 1) & LSC_ENCODE_NO_SPECIAL, &ids, &n_ids, NULL);
        if (st != LSC_OK) {
            require(st == LSC_ERR_INVALID_ARG && ids == NULL);
            return 0;
        }
        char *back;
        size_t len;
        require(lsc_tokenizer_decode(tok, ids, n_ids, &back, &len, NULL) == LSC_OK);
        require(len == n && !memcmp(back, text, n));
        lsc_free(back);
        lsc_free(ids);
        return 0;
    }
    size_t n_ids = n / 4;
    int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    int bad = 0;
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t v;
        memcpy(&v, text + 4 * i, 4);
        ids[i] = (v & 0x80000000u) ? (int32_t)v : (int32_t)(v % 50300); /* mostly in range */
        bad |= ids[i] < 0 || ids[i] >= lsc_tokenizer_n_vocab(tok);
    }
    char *s;
    size_t len;
    lsc_status st = lsc_tokenizer_decode(tok, ids, n_ids, &s, &len, NULL);
    require((st != LSC_OK) == bad);
    if (st == LSC_OK) {
        int32_t *again;
        size_t n_again;
        require(strlen(s) <= len && s[len] == '\0');
        require(lsc_tokenizer_encode(tok, s, len, 0, &again, &n_again, NULL) == LSC_OK);
        lsc_free(again);
        lsc_free(s);
    }
    free(ids);
    return 0;
}
