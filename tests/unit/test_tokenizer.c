/* test_tokenizer.c - the GPT-2 tokenizer on the real vocab.json/merges.txt
 * (tests/data): known ids, special token, NUL, invalid UTF-8, decode of split
 * characters against hand-worked Python results, the heap BPE against the
 * plain scan, the cache against no cache, and bad files. */
#include "check.h"
#include "internal.h"

#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA "tests/data"

static lsc_tokenizer *tok;

/* Encodes a NUL-terminated string; returns the count (ids in *out). */
static size_t enc(const char *s, int flags, int32_t **out) {
    size_t n = 0;
    lsc_error err;
    lsc_status st = lsc_tokenizer_encode(tok, s, strlen(s), flags, out, &n, &err);
    CHECK(st == LSC_OK);
    if (st) fprintf(stderr, "  %s\n", err.message);
    return n;
}

/* True when encoding s gives exactly the ids want[0..n). */
static bool enc_is(const char *s, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t got = enc(s, 0, &ids);
    bool ok = got == n && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\") =", s);
        for (size_t i = 0; i < got; i++) fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "\n");
    }
    lsc_free(ids);
    return ok;
}

/* Decodes ids and compares with the expected bytes. */
static bool dec_is(const int32_t *ids, size_t n, const char *want) {
    char *s = NULL;
    size_t len = 0;
    if (lsc_tokenizer_decode(tok, ids, n, &s, &len, NULL)) return false;
    bool ok = len == strlen(want) && !memcmp(s, want, len) && s[len] == '\0';
    lsc_free(s);
    return ok;
}

/* The id of the single-byte token for byte b. */
static int32_t byte_tok(unsigned b) {
    for (int32_t id = 0; id < 256; id++) {
        size_t len;
        const char *p = lsc_tokenizer_token_bytes(tok, id, &len);
        if (len == 1 && (unsigned char)p[0] == b) return id;
    }
    return -1;
}

static void test_load(void) {
    CHECK(lsc_tokenizer_n_vocab(tok) == 50257);
    CHECK(lsc_tokenizer_eos_id(tok) == 50256);
    size_t len;
    const char *p = lsc_tokenizer_token_bytes(tok, 6891, &len);
    CHECK(p && len == 7 && !memcmp(p, " coffee", 7));
    p = lsc_tokenizer_token_bytes(tok, 0, &len);
    CHECK(p && len == 1 && p[0] == '!'); /* id 0 is '!' (bytes_to_unicode order) */
    CHECK(byte_tok(0x00) == 188);
    CHECK(lsc_tokenizer_token_bytes(tok, -1, &len) == NULL && len == 0);
    CHECK(lsc_tokenizer_token_bytes(tok, 50257, NULL) == NULL);
}

static void test_known_ids(void) {
    CHECK(enc_is(" coffee", (int32_t[]){6891}, 1));
    CHECK(enc_is("Hello world", (int32_t[]){15496, 995}, 2));
    CHECK(enc_is(" Hello world", (int32_t[]){18435, 995}, 2));
    CHECK(enc_is("", NULL, 0));
    CHECK(enc_is("I think more people would eat tumeric if it were purple.",
                 (int32_t[]){40, 892, 517, 661, 561, 4483, 256, 39223, 611, 340, 547, 14032, 13}, 13));
    /* contractions are lower-case only: 'S is punctuation + letters */
    CHECK(enc_is("it's", (int32_t[]){270, 338}, 2));
    /* trailing spaces: \s+(?!\S) leaves the last space to the word */
    CHECK(enc_is("a  b", (int32_t[]){64, 220, 275}, 3));
    /* a NUL byte is a character like any other: byte 0x00 is id 188 */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(lsc_tokenizer_encode(tok, "a\0b", 3, 0, &ids, &n, NULL) == LSC_OK);
    CHECK(n == 3 && ids[0] == 64 && ids[1] == 188 && ids[2] == 65);
    lsc_free(ids);
}

static void test_special(void) {
    CHECK(enc_is("<|endoftext|>", (int32_t[]){50256}, 1));
    CHECK(enc_is("a<|endoftext|>b", (int32_t[]){64, 50256, 65}, 3));
    int32_t *ids = NULL;
    size_t n = enc("<|endoftext|>", LSC_ENCODE_NO_SPECIAL, &ids);
    CHECK(n > 1);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] != 50256);
    lsc_free(ids);
    CHECK(dec_is((int32_t[]){50256}, 1, "<|endoftext|>"));
}

/* The pieces of a text as byte end offsets, worked out by hand. */
static void test_split(void) {
    static const char text[] = "Hello  world's <|endoftext|>ok";
    size_t *ends = NULL, n = 0;
    CHECK(lsc_tokenizer_split(tok, text, sizeof text - 1, 0, &ends, &n, NULL) == LSC_OK);
    static const size_t want[] = {5, 6, 12, 14, 15, 28, 30}; /* Hello|_|_world|'s|_|<|endoftext|>|ok */
    CHECK(n == 7 && !memcmp(ends, want, sizeof want));
    lsc_free(ends);
    CHECK(lsc_tokenizer_split(tok, text, sizeof text - 1, LSC_ENCODE_NO_SPECIAL, &ends, &n, NULL) == LSC_OK);
    /* ...|'s|_<||endoftext||>|ok: the space joins the punctuation run */
    static const size_t want_plain[] = {5, 6, 12, 14, 17, 26, 28, 30};
    CHECK(n == 8 && !memcmp(ends, want_plain, sizeof want_plain));
    lsc_free(ends);
    /* U+1C89 (Cyrillic TJE, Unicode 16) is a letter for the oracle, though
     * unassigned in PCRE2 10.42's Unicode 14: the supplement makes it one */
    CHECK(lsc_tokenizer_split(tok, "x\xE1\xB2\x89y !", 7, 0, &ends, &n, NULL) == LSC_OK);
    CHECK(n == 2 && ends[0] == 5 && ends[1] == 7);
    lsc_free(ends);
    CHECK(lsc_tokenizer_split(tok, "", 0, 0, &ends, &n, NULL) == LSC_OK && n == 0);
    lsc_free(ends);
    CHECK(lsc_tokenizer_split(tok, "\xff", 1, 0, &ends, &n, NULL) == LSC_ERR_INVALID_ARG && ends == NULL);
}

static void test_invalid_utf8(void) {
    static const char *bad[] = {"\xff", "ab\xc3", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80",
                                "\xe2\x82", "x\x80y", "\xf8\x88\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int32_t *ids = (int32_t *)1;
        size_t n = 99;
        lsc_error err = {0};
        CHECK(lsc_tokenizer_encode(tok, bad[i], strlen(bad[i]), 0, &ids, &n, &err) == LSC_ERR_INVALID_ARG);
        CHECK(ids == NULL && n == 0);
        CHECK(strstr(err.message, "UTF-8") != NULL);
    }
}

/* Expected results worked out with Python:
 * bytes([...]).decode("utf-8", errors="replace"). */
static void test_decode_replace(void) {
    const char *R = "\xEF\xBF\xBD"; /* U+FFFD */
    char want[64];
    int32_t e2 = byte_tok(0xE2), x82 = byte_tok(0x82), xac = byte_tok(0xAC), A = byte_tok('A');
    CHECK(dec_is((int32_t[]){e2, x82, xac}, 3, "\xE2\x82\xAC")); /* b'\xe2\x82\xac' -> '€' */
    CHECK(dec_is((int32_t[]){e2, x82}, 2, R));                    /* -> '\ufffd' */
    snprintf(want, sizeof want, "%sA", R);
    CHECK(dec_is((int32_t[]){e2, A}, 2, want)); /* -> '\ufffdA' */
    snprintf(want, sizeof want, "%s%s", R, R);
    CHECK(dec_is((int32_t[]){byte_tok(0xF0), byte_tok(0x80)}, 2, want)); /* F0 80: 2 */
    CHECK(dec_is((int32_t[]){byte_tok(0xF4), byte_tok(0x90)}, 2, want)); /* F4 90: 2 */
    CHECK(dec_is((int32_t[]){byte_tok(0xC0), byte_tok(0xAF)}, 2, want)); /* overlong: 2 */
    snprintf(want, sizeof want, "%s%s%s", R, R, R);
    CHECK(dec_is((int32_t[]){byte_tok(0xED), byte_tok(0xA0), byte_tok(0x80)}, 3, want)); /* surrogate: 3 */
    CHECK(dec_is((int32_t[]){byte_tok(0xF0), byte_tok(0x9F), byte_tok(0x98)}, 3, R));   /* cut emoji: 1 */
    snprintf(want, sizeof want, "%s%s", R, R);
    CHECK(dec_is((int32_t[]){xac, x82}, 2, want)); /* lone continuations: 1 each */
    /* a split multi-byte character decodes whole when the pieces meet */
    int32_t *ids = NULL;
    size_t n = enc("日本語 😀👍🏽", 0, &ids);
    CHECK(dec_is(ids, n, "日本語 😀👍🏽"));
    lsc_free(ids);
    CHECK(dec_is(NULL, 0, ""));
}

static void test_decode_out_of_range(void) {
    char *s = (char *)1;
    lsc_error err;
    CHECK(lsc_tokenizer_decode(tok, (int32_t[]){15496, 50257}, 2, &s, NULL, &err) == LSC_ERR_INVALID_ARG);
    CHECK(s == NULL && strstr(err.message, "50257") != NULL);
    CHECK(lsc_tokenizer_decode(tok, (int32_t[]){-1}, 1, &s, NULL, &err) == LSC_ERR_INVALID_ARG);
}

/* xorshift for test strings */
static uint32_t rnd(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Encodes `text` with the given BPE threshold and cache setting. */
static int32_t *enc_mode(const char *text, size_t len, int threshold, bool cache, size_t *n) {
    lsc_tokenizer_set_bpe_heap_threshold(tok, threshold);
    lsc_tokenizer_set_cache(tok, cache);
    int32_t *ids = NULL;
    CHECK(lsc_tokenizer_encode(tok, text, len, 0, &ids, n, NULL) == LSC_OK);
    return ids;
}

/* The heap BPE (fast for long pieces) gives the same ids as the plain scan,
 * with and without the piece cache, on random words of every length. */
static void test_bpe_heap_vs_scan(void) {
    static const char *alphabet[] = {"a", "b", "e", "n", "t", "s", " ", "th", "in", "é", "日", "😀", "1", "!", "\n"};
    uint32_t seed = 12345;
    size_t cap = 20000;
    char *text = malloc(cap);
    int mism = 0, total = 0;
    for (int iter = 0; iter < 300; iter++) {
        size_t words = iter < 280 ? 1 + rnd(&seed) % 40 : 1;
        size_t k = 0;
        for (size_t w = 0; w < words; w++) {
            size_t len = iter < 280 ? 1 + rnd(&seed) % 60 : 2000 + rnd(&seed) % 2000;
            size_t alpha = 2 + rnd(&seed) % 14; /* 2..15 letters of the alphabet */
            for (size_t i = 0; i < len && k + 8 < cap; i++) {
                const char *a = alphabet[rnd(&seed) % alpha];
                memcpy(text + k, a, strlen(a));
                k += strlen(a);
            }
            if (k + 1 < cap) text[k++] = ' ';
        }
        size_t n1, n2, n3;
        int32_t *a = enc_mode(text, k, INT_MAX, false, &n1);
        int32_t *b = enc_mode(text, k, 0, false, &n2);
        int32_t *c = enc_mode(text, k, 48, true, &n3);
        int32_t *d = enc_mode(text, k, 48, true, &n3); /* second time: from the cache */
        total++;
        if (n1 != n2 || n1 != n3 || memcmp(a, b, n1 * sizeof *a) || memcmp(a, c, n1 * sizeof *a) ||
            memcmp(a, d, n1 * sizeof *a))
            mism++;
        lsc_free(a);
        lsc_free(b);
        lsc_free(c);
        lsc_free(d);
    }
    printf("  heap vs scan vs cache: %d texts, %d mismatches\n", total, mism);
    CHECK(mism == 0);
    lsc_tokenizer_set_bpe_heap_threshold(tok, 48);
    lsc_tokenizer_set_cache(tok, true);
    free(text);
}

/* Writes `data` to dir/name. */
static void write_file(const char *dir, const char *name, const char *data) {
    char *p = lsc_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    fputs(data, f);
    fclose(f);
    free(p);
}

/* Loading `dir` fails with `status` and a message containing `part`. */
static bool load_fails(const char *dir, lsc_status status, const char *part) {
    lsc_tokenizer *t = (lsc_tokenizer *)1;
    lsc_error err = {0};
    lsc_status st = lsc_tokenizer_load(dir, &t, &err);
    bool ok = st == status && t == NULL && strstr(err.message, part) != NULL;
    if (!ok) fprintf(stderr, "  load(%s): status %d, \"%s\"\n", dir, st, err.message);
    return ok;
}

/* Bad files: each is caught with a message naming the problem. (The Python
 * CLI tests cover variants of the real files.) */
static void test_bad_files(void) {
    char dir[] = "/tmp/lsc_tok_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(load_fails(dir, LSC_ERR_NOT_FOUND, "no vocab.json + merges.txt and no tokenizer.json"));
    CHECK(load_fails("/nonexistent/dir", LSC_ERR_NOT_FOUND, "tokenizer.json"));
    /* a byte-level vocab needs all 256 bytes */
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 1}");
    write_file(dir, "merges.txt", "#version: 0.2\n");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "single byte"));
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 1");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "invalid JSON"));
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 0}");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "id 0 is given to both"));
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": 7}");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "outside 0..1"));
    write_file(dir, "vocab.json", "{\"a\": 0, \"b\": \"1\"}");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "not a number"));
    write_file(dir, "vocab.json", "{\"a\": 0, \"\\u4e00\": 1}");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "U+4E00"));
    write_file(dir, "vocab.json", "[1, 2]");
    CHECK(load_fails(dir, LSC_ERR_FORMAT, "not a JSON object"));
    char *p = lsc_path_join(dir, "vocab.json");
    unlink(p);
    free(p);
    CHECK(load_fails(dir, LSC_ERR_NOT_FOUND, "no vocab.json"));
    p = lsc_path_join(dir, "merges.txt");
    unlink(p);
    free(p);
    rmdir(dir);
}

int main(void) {
    lsc_error err;
    if (lsc_tokenizer_load(DATA, &tok, &err) != LSC_OK) {
        fprintf(stderr, "cannot load %s: %s\n", DATA, err.message);
        return 1;
    }
    RUN(test_load);
    RUN(test_known_ids);
    RUN(test_special);
    RUN(test_split);
    RUN(test_invalid_utf8);
    RUN(test_decode_replace);
    RUN(test_decode_out_of_range);
    RUN(test_bpe_heap_vs_scan);
    RUN(test_bad_files);
    lsc_tokenizer_free(tok);
    lsc_tokenizer_free(NULL);
    return CHECK_DONE();
}
