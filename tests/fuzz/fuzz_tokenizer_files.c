/* fuzz_tokenizer_files.c - libFuzzer target for the vocab.json / merges.txt /
 * tokenizer.json readers. The input is split at its first "\n@@\n" into a
 * vocab.json and a merges.txt (or, with no split, used as a tokenizer.json),
 * written to a temporary folder and loaded: loading must either succeed or
 * fail with a status and a message, never crash. On success a short text is
 * encoded and decoded. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/lsc_fuzz_tok_XXXXXX";

/* Writes n bytes to dir/name, or removes it when data is NULL. */
static void put(const char *name, const uint8_t *data, size_t n) {
    char *p = lsc_path_join(dir, name);
    if (!data) {
        unlink(p);
    } else {
        FILE *f = fopen(p, "wb");
        if (!f) abort();
        fwrite(data, 1, n, f);
        fclose(f);
    }
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = 0;
    if (!ready && !(ready = mkdtemp(dir) != NULL)) abort();
    const uint8_t *sep = memmem(data, size, "\n@@\n", 4);
    if (sep) {
        put("vocab.json", data, (size_t)(sep - data));
        put("merges.txt", sep + 4, size - (size_t)(sep - data) - 4);
        put("tokenizer.json", NULL, 0);
    } else {
        put("vocab.json", NULL, 0);
        put("merges.txt", NULL, 0);
        put("tokenizer.json", data, size);
    }
    lsc_tokenizer *tok;
    lsc_error err = {0};
    lsc_status st = lsc_tokenizer_load(dir, &tok, &err);
    if (st != LSC_OK) {
        if (tok != NULL || err.message[0] == '\0' || err.status != st) abort();
        return 0;
    }
    int32_t *ids;
    size_t n;
    char *text;
    size_t len;
    static const char s[] = "Hello, world! 日本 <|endoftext|>  x";
    if (lsc_tokenizer_encode(tok, s, sizeof s - 1, 0, &ids, &n, NULL) != LSC_OK) abort();
    if (lsc_tokenizer_decode(tok, ids, n, &text, &len, NULL) != LSC_OK) abort();
    if (len != sizeof s - 1 || memcmp(text, s, len)) abort();
    lsc_free(text);
    lsc_free(ids);
    lsc_tokenizer_free(tok);
    return 0;
}
