/* tokenizer.c - GPT-2 byte-level BPE: load vocab.json + merges.txt (or
 * tokenizer.json), encode UTF-8 text to ids, decode ids to text.
 *
 * Encode = split "<|endoftext|>" out of the text (unless LSC_ENCODE_NO_SPECIAL),
 * cut each remaining segment into pieces with the GPT-2 pattern (PCRE2, JIT),
 * and turn each piece's bytes into ids by applying the BPE merges in rank
 * order. Pieces already seen come from a bounded hash cache.
 *
 * The pattern. GPT2Tokenizer in transformers 5 is a thin wrapper over the
 * Rust `tokenizers` library (ByteLevel pre-tokenizer, whose regex engine is
 * Oniguruma); GPT-2's original encoder.py and tiktoken use Python's `regex`
 * module and Rust fancy-regex. The pattern is
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and the engines agree on \p{L} and \p{N} (general categories, here all at
 * Unicode 14.0: PCRE2 10.42, Python 3.11; the oracle test checks them). They
 * differ on \s:
 *   - Oniguruma, `regex` and fancy-regex: \s is Unicode White_Space, i.e.
 *     U+0009..U+000D, U+0085 (NEL) and every Zs/Zl/Zp character.
 *   - PCRE2 with PCRE2_UCP: \s lacks U+0085 and has U+180E (Mongolian vowel
 *     separator, Zs until Unicode 6.3, Cf since).
 *   - Python's `re` and str.isspace() also count U+001C..U+001F; none of the
 *     others do (nor U+200B or U+FEFF, which are Cf).
 *   So we write \s as \p{White_Space} (and \S as \P{White_Space}).
 * tests/test_tokenizer_oracle.py checks every code point against the oracle.
 */
#include "internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOK_MAX_FILE (64u << 20)   /* vocab/merges/tokenizer.json size limit */
#define TOK_MAX_VOCAB (1 << 24)
#define CACHE_SLOTS (1u << 16)     /* power of two */
#define CACHE_MAX_ENTRIES (CACHE_SLOTS / 2)
#define CACHE_MAX_PIECE 256        /* longer pieces are not cached */
#define CACHE_KEY_ARENA (1u << 20) /* bytes of cached keys before a reset */
#define CACHE_ID_ARENA (1u << 18)  /* ids of cached values before a reset */
#define BPE_HEAP_THRESHOLD 48      /* pieces at least this long use the heap */

static const char ENDOFTEXT[] = "<|endoftext|>";

/* The GPT-2 pattern with \s written as \p{White_Space} (see the top comment). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+"
    "|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";

/* An open-addressing table from token bytes to id (slot holds id + 1). */
typedef struct vocab_map {
    uint32_t *slots;
    uint32_t mask;
} vocab_map;

/* An open-addressing table from an id pair to its merge rank and result. */
typedef struct merge_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    uint32_t rank;
    int32_t id;
} merge_slot;

/* One cached piece: its hash, where its bytes and ids live in the arenas. */
typedef struct cache_slot {
    uint64_t hash; /* 0 = empty */
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids;
} cache_slot;

struct lsc_tokenizer {
    int n_vocab;
    int eos_id;        /* "<|endoftext|>", or -1 */
    bool ignore_merges; /* tokenizer.json "ignore_merges": whole pieces in the vocab win */
    char *tok_data;    /* every token's bytes, back to back */
    uint32_t *tok_off; /* [n_vocab + 1] offsets into tok_data */
    vocab_map vocab;
    merge_slot *merges;
    uint32_t merges_mask;
    int n_merges;
    int32_t byte_id[256]; /* id of each single-byte token */
    int bpe_heap_threshold;
    /* regex */
    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;
    bool jit;
    /* piece cache */
    bool cache_off; /* testing: bypass the cache */
    cache_slot *cache;
    uint32_t cache_entries;
    char *cache_keys;
    uint32_t cache_keys_used;
    int32_t *cache_ids;
    uint32_t cache_ids_used;
    /* scratch for BPE, grown as needed */
    int32_t *sym;
    int32_t *prev, *next;
    uint64_t *heap; /* (rank << 32 | pos) */
    size_t scratch_cap;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* A fast 64-bit hash of a byte string (never 0, so 0 can mean "empty"). */
static uint64_t hash_bytes(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    }
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    return h ? h : 1;
}

/* Mixes an id pair into a slot index seed. */
static uint64_t hash_pair(uint64_t key) {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    return key;
}

/* Smallest power of two >= 2 * n (at least 16). */
static uint32_t table_size(size_t n) {
    uint32_t s = 16;
    while (s < 2 * n) s <<= 1;
    return s;
}

/* GPT-2's bytes_to_unicode(): the code point that stands for each byte. */
static void bytes_to_unicode(uint32_t b2u[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        b2u[b] = keep ? (uint32_t)b : 256u + (uint32_t)n++;
    }
}

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when it is not one
 * (strict: no overlongs, surrogates or code points above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp) {
    unsigned c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < 2 || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (i >= n || (p[i] & 0xC0) != 0x80) return 0;
    uint32_t v = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) v = (v << 6) | (p[i] & 0x3F);
    *cp = v;
    return len;
}

/* Offset of the first invalid UTF-8 byte of s[0..n), or n when all valid. */
static size_t utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_seq(p + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Vocabulary and merges                                                     */
/* ------------------------------------------------------------------------ */

/* Id of the token with these bytes, or -1. */
static int32_t vocab_find(const lsc_tokenizer *t, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & t->vocab.mask;
    for (;;) {
        uint32_t v = t->vocab.slots[i];
        if (!v) return -1;
        int32_t id = (int32_t)v - 1;
        size_t len = t->tok_off[id + 1] - t->tok_off[id];
        if (len == n && !memcmp(t->tok_data + t->tok_off[id], s, n)) return id;
        i = (i + 1) & t->vocab.mask;
    }
}

/* The merge of (a, b), or NULL. */
static inline const merge_slot *merge_find(const lsc_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)hash_pair(key) & t->merges_mask;
    for (;;) {
        const merge_slot *s = &t->merges[i];
        if (s->key == key) return s;
        if (!s->key) return NULL;
        i = (i + 1) & t->merges_mask;
    }
}

/* Converts a token string written in the bytes_to_unicode alphabet into raw
 * bytes in `out` (which has room for strlen(s) bytes); false when a character
 * is outside the alphabet or the string is not UTF-8. */
static bool unicode_to_bytes(const int16_t *u2b, const char *s, size_t n, char *out,
                             size_t *out_len, uint32_t *bad_cp) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_seq((const unsigned char *)s + i, n - i, &cp);
        if (!len) {
            *bad_cp = 0xFFFFFFFF;
            return false;
        }
        if (cp > 0x143 || u2b[cp] < 0) {
            *bad_cp = cp;
            return false;
        }
        out[k++] = (char)u2b[cp];
        i += len;
    }
    *out_len = k;
    return true;
}

/* Writes a short printable form of a token string for error messages. */
static const char *shorten(const char *s, char buf[64]) {
    size_t n = strlen(s);
    if (n < 60) return s;
    memcpy(buf, s, 56);
    memcpy(buf + 56, "...", 4);
    return buf;
}

/* Builds tok_data/tok_off/vocab from a parsed JSON object of token -> id.
 * `what` names the source in messages. */
static lsc_status build_vocab(lsc_tokenizer *t, const cJSON *obj, const int16_t *u2b,
                              const char *what, lsc_error *err) {
    char sb[64];
    if (!cJSON_IsObject(obj)) return lsc_fail(err, LSC_ERR_FORMAT, "%s: not a JSON object of token -> id", what);
    size_t n = 0, total = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        n++;
        total += strlen(c->string);
    }
    if (n == 0) return lsc_fail(err, LSC_ERR_FORMAT, "%s: the vocabulary is empty", what);
    if (n > TOK_MAX_VOCAB) return lsc_fail(err, LSC_ERR_FORMAT, "%s: %zu tokens is more than the limit of %d", what, n, TOK_MAX_VOCAB);
    t->n_vocab = (int)n;
    t->tok_data = malloc(total + 1);
    t->tok_off = calloc(n + 1, sizeof *t->tok_off);
    uint32_t *len = calloc(n, sizeof *len);
    const char **key = calloc(n, sizeof *key);
    uint32_t *tmp_off = calloc(n, sizeof *tmp_off);
    t->vocab.mask = table_size(n) - 1;
    t->vocab.slots = calloc((size_t)t->vocab.mask + 1, sizeof *t->vocab.slots);
    lsc_status st = LSC_OK;
    if (!t->tok_data || !t->tok_off || !len || !key || !tmp_off || !t->vocab.slots) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory for %zu tokens", what, n);
        goto done;
    }
    /* Decode every key into scratch (in file order), placing it by id. */
    char *scratch = t->tok_data;
    size_t used = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!cJSON_IsNumber(c)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: the id of token \"%s\" is not a number", what, shorten(c->string, sb));
            goto done;
        }
        double v = c->valuedouble;
        if (!(v >= 0 && v < (double)n) || v != (double)(int64_t)v) {
            st = lsc_fail(err, LSC_ERR_FORMAT,
                          "%s: token \"%s\" has id %.17g, outside 0..%zu (ids must be 0..n-1 for n = %zu tokens)",
                          what, shorten(c->string, sb), v, n - 1, n);
            goto done;
        }
        int32_t id = (int32_t)v;
        if (key[id]) {
            char sb2[64];
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: id %d is given to both \"%s\" and \"%s\"", what, id,
                          shorten(key[id], sb), shorten(c->string, sb2));
            goto done;
        }
        size_t blen;
        uint32_t bad;
        if (!unicode_to_bytes(u2b, c->string, strlen(c->string), scratch + used, &blen, &bad)) {
            if (bad == 0xFFFFFFFF)
                st = lsc_fail(err, LSC_ERR_FORMAT, "%s: token \"%s\" is not valid UTF-8", what, shorten(c->string, sb));
            else
                st = lsc_fail(err, LSC_ERR_FORMAT,
                              "%s: token \"%s\" has character U+%04X, outside GPT-2's byte-level alphabet",
                              what, shorten(c->string, sb), (unsigned)bad);
            goto done;
        }
        if (blen == 0) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: id %d is the empty token", what, id);
            goto done;
        }
        key[id] = c->string;
        tmp_off[id] = (uint32_t)used;
        len[id] = (uint32_t)blen;
        used += blen;
    }
    /* Reorder by id into a second buffer, then index. */
    char *data = malloc(used + 1);
    if (!data) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "%s: out of memory", what);
        goto done;
    }
    uint32_t off = 0;
    for (size_t id = 0; id < n; id++) {
        memcpy(data + off, scratch + tmp_off[id], len[id]);
        t->tok_off[id] = off;
        off += len[id];
    }
    t->tok_off[n] = off;
    free(t->tok_data);
    t->tok_data = data;
    for (size_t id = 0; id < n; id++) {
        const char *s = t->tok_data + t->tok_off[id];
        size_t l = len[id];
        if (vocab_find(t, s, l) >= 0) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: token \"%s\" appears twice", what, shorten(key[id], sb));
            goto done;
        }
        uint32_t i = (uint32_t)hash_bytes(s, l) & t->vocab.mask;
        while (t->vocab.slots[i]) i = (i + 1) & t->vocab.mask;
        t->vocab.slots[i] = (uint32_t)id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = vocab_find(t, &c, 1);
        if (t->byte_id[b] < 0) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: no token for the single byte 0x%02X (a byte-level vocabulary has all 256)", what, b);
            goto done;
        }
    }
    t->eos_id = vocab_find(t, ENDOFTEXT, sizeof ENDOFTEXT - 1);
done:
    free(len);
    free(key);
    free(tmp_off);
    return st;
}

/* Adds merge number `rank` of the strings a and b (token strings in the
 * byte-level alphabet). `where` names the file and line for messages. */
static lsc_status add_merge(lsc_tokenizer *t, const int16_t *u2b, const char *a, size_t na,
                            const char *b, size_t nb, const char *where, lsc_error *err) {
    char buf[2 * 1024];
    size_t la, lb;
    uint32_t bad;
    if (na + nb > sizeof buf || na == 0 || nb == 0)
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: a merge half is empty or too long", where);
    if (!unicode_to_bytes(u2b, a, na, buf, &la, &bad) || !unicode_to_bytes(u2b, b, nb, buf + la, &lb, &bad))
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: the merge \"%.*s %.*s\" names a token that is not in the vocabulary",
                        where, (int)(na > 100 ? 100 : na), a, (int)(nb > 100 ? 100 : nb), b);
    int32_t ia = vocab_find(t, buf, la), ib = vocab_find(t, buf + la, lb), im = vocab_find(t, buf, la + lb);
    if (ia < 0 || ib < 0 || im < 0) {
        const char *which = ia < 0 ? "its left half" : ib < 0 ? "its right half" : "the merged token";
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: the merge \"%.*s %.*s\": %s is not in the vocabulary", where,
                        (int)(na > 100 ? 100 : na), a, (int)(nb > 100 ? 100 : nb), b, which);
    }
    uint64_t key = ((uint64_t)(uint32_t)ia << 32 | (uint32_t)ib) + 1;
    uint32_t i = (uint32_t)hash_pair(key) & t->merges_mask;
    while (t->merges[i].key) {
        if (t->merges[i].key == key)
            return lsc_fail(err, LSC_ERR_FORMAT, "%s: the merge \"%.*s %.*s\" appears twice (first as merge %u)", where,
                            (int)(na > 100 ? 100 : na), a, (int)(nb > 100 ? 100 : nb), b, t->merges[i].rank);
        i = (i + 1) & t->merges_mask;
    }
    t->merges[i].key = key;
    t->merges[i].rank = (uint32_t)t->n_merges++;
    t->merges[i].id = im;
    return LSC_OK;
}

/* Allocates the merge table for up to n merges. */
static lsc_status alloc_merges(lsc_tokenizer *t, size_t n, lsc_error *err) {
    t->merges_mask = table_size(n) - 1;
    t->merges = calloc((size_t)t->merges_mask + 1, sizeof *t->merges);
    if (!t->merges) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for %zu merges", n);
    return LSC_OK;
}

/* Parses merges.txt: an optional "#version" line, then "A B" per line. */
static lsc_status parse_merges_txt(lsc_tokenizer *t, const int16_t *u2b, const char *path,
                                   const char *data, size_t len, lsc_error *err) {
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    lsc_status st = alloc_merges(t, lines, err);
    if (st) return st;
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        const char *line = data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r') n--;
        if (lineno == 1 && n >= 8 && !memcmp(line, "#version", 8)) continue;
        char where[600];
        snprintf(where, sizeof where, "%s line %zu", path, lineno);
        const char *sp = memchr(line, ' ', n);
        if (!sp || sp == line || sp == line + n - 1 || memchr(sp + 1, ' ', (size_t)(line + n - sp - 1)))
            return lsc_fail(err, LSC_ERR_FORMAT, "%s: expected two tokens separated by one space, got \"%.*s\"",
                            where, (int)(n > 100 ? 100 : n), line);
        st = add_merge(t, u2b, line, (size_t)(sp - line), sp + 1, (size_t)(line + n - sp - 1), where, err);
        if (st) return st;
    }
    return LSC_OK;
}

/* Parses the "merges" array of tokenizer.json: "a b" strings or [a, b] pairs. */
static lsc_status parse_merges_json(lsc_tokenizer *t, const int16_t *u2b, const char *path,
                                    const cJSON *arr, lsc_error *err) {
    if (!cJSON_IsArray(arr)) return lsc_fail(err, LSC_ERR_FORMAT, "%s: model.merges is not an array", path);
    lsc_status st = alloc_merges(t, (size_t)cJSON_GetArraySize(arr), err);
    if (st) return st;
    size_t k = 0;
    for (const cJSON *m = arr->child; m; m = m->next, k++) {
        char where[600];
        snprintf(where, sizeof where, "%s model.merges[%zu]", path, k);
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
                return lsc_fail(err, LSC_ERR_FORMAT, "%s: expected \"A B\", got \"%.100s\"", where, s);
            a = s;
            na = (size_t)(sp - s);
            b = sp + 1;
            nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring;
            na = strlen(a);
            b = m->child->next->valuestring;
            nb = strlen(b);
        } else
            return lsc_fail(err, LSC_ERR_FORMAT, "%s: a merge must be \"A B\" or [\"A\", \"B\"]", where);
        st = add_merge(t, u2b, a, na, b, nb, where, err);
        if (st) return st;
    }
    return LSC_OK;
}

/* Parses a whole JSON file; a clear message with the byte offset on error. */
static lsc_status parse_json(const char *path, const char *data, size_t len, cJSON **out,
                             lsc_error *err) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(data, len + 1, &end, 1); /* data[len] is the NUL */
    if (!*out) {
        size_t at = end && end >= data ? (size_t)(end - data) : 0;
        return lsc_fail(err, LSC_ERR_FORMAT, "%s: invalid JSON near byte %zu of %zu%s", path, at, len,
                        at + 16 >= len ? " (truncated?)" : "");
    }
    return LSC_OK;
}

/* Compiles the pattern and allocates the match data and JIT stack. */
static lsc_status setup_regex(lsc_tokenizer *t, lsc_error *err) {
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lsc_fail(err, LSC_ERR_INTERNAL, "cannot compile the GPT-2 pattern: %s at %zu", (char *)msg, (size_t)eo);
    }
    t->jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    t->mctx = pcre2_match_context_create(NULL);
    if (!t->md || !t->mctx) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for the regex");
    if (t->jit) {
        t->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 << 20, NULL);
        if (!t->jit_stack) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory for the regex JIT stack");
        pcre2_jit_stack_assign(t->mctx, NULL, t->jit_stack);
    }
    return LSC_OK;
}

/* True when `path` names an existing file. */
static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Frees the tokenizer and everything it owns (NULL is fine). */
void lsc_tokenizer_free(lsc_tokenizer *t) {
    if (!t) return;
    free(t->tok_data);
    free(t->tok_off);
    free(t->vocab.slots);
    free(t->merges);
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    pcre2_jit_stack_free(t->jit_stack);
    pcre2_code_free(t->re);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_ids);
    free(t->sym);
    free(t->prev);
    free(t->next);
    free(t->heap);
    free(t);
}

/* Loads vocab.json + merges.txt (or tokenizer.json) from `dir` into a new
 * tokenizer; the caller frees it with lsc_tokenizer_free(). */
lsc_status lsc_tokenizer_load(const char *dir, lsc_tokenizer **out, lsc_error *err) {
    *out = NULL;
    uint32_t b2u[256];
    int16_t u2b[0x144];
    bytes_to_unicode(b2u);
    for (int i = 0; i < 0x144; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) u2b[b2u[b]] = (int16_t)b;

    char *vpath = lsc_path_join(dir, "vocab.json"), *mpath = lsc_path_join(dir, "merges.txt"),
         *jpath = lsc_path_join(dir, "tokenizer.json");
    lsc_tokenizer *t = calloc(1, sizeof *t);
    char *vdata = NULL, *mdata = NULL;
    size_t vlen, mlen;
    cJSON *vjson = NULL;
    lsc_status st;
    if (!vpath || !mpath || !jpath || !t) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory");
        goto done;
    }
    t->eos_id = -1;
    t->bpe_heap_threshold = BPE_HEAP_THRESHOLD;
    bool have_v = file_exists(vpath), have_m = file_exists(mpath);
    if (have_v && have_m) {
        if ((st = lsc_read_file(vpath, TOK_MAX_FILE, &vdata, &vlen, err)) ||
            (st = parse_json(vpath, vdata, vlen, &vjson, err)) ||
            (st = build_vocab(t, vjson, u2b, vpath, err)) ||
            (st = lsc_read_file(mpath, TOK_MAX_FILE, &mdata, &mlen, err)) ||
            (st = parse_merges_txt(t, u2b, mpath, mdata, mlen, err)))
            goto done;
    } else if (file_exists(jpath)) {
        if ((st = lsc_read_file(jpath, TOK_MAX_FILE, &vdata, &vlen, err)) ||
            (st = parse_json(jpath, vdata, vlen, &vjson, err)))
            goto done;
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(vjson, "model");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
        if (!cJSON_IsObject(model)) {
            st = lsc_fail(err, LSC_ERR_FORMAT, "%s: no \"model\" object", jpath);
            goto done;
        }
        if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE"))) {
            st = lsc_fail(err, LSC_ERR_UNSUPPORTED, "%s: model.type is not \"BPE\"", jpath);
            goto done;
        }
        char what[600];
        snprintf(what, sizeof what, "%s model.vocab", jpath);
        if ((st = build_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), u2b, what, err)) ||
            (st = parse_merges_json(t, u2b, jpath, cJSON_GetObjectItemCaseSensitive(model, "merges"), err)))
            goto done;
        t->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    } else {
        st = lsc_fail(err, LSC_ERR_NOT_FOUND, "%s: no %s and no tokenizer.json", dir,
                      have_v ? "merges.txt" : have_m ? "vocab.json" : "vocab.json + merges.txt");
        goto done;
    }
    if ((st = setup_regex(t, err))) goto done;
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    t->cache_keys = malloc(CACHE_KEY_ARENA);
    t->cache_ids = malloc(CACHE_ID_ARENA * sizeof *t->cache_ids);
    if (!t->cache || !t->cache_keys || !t->cache_ids) {
        st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory for the tokenizer cache");
        goto done;
    }
    st = LSC_OK;
done:
    cJSON_Delete(vjson);
    free(vdata);
    free(mdata);
    free(vpath);
    free(mpath);
    free(jpath);
    if (st) {
        lsc_tokenizer_free(t);
        t = NULL;
    }
    *out = t;
    return st;
}

/* The number of tokens, and the id of "<|endoftext|>" (-1 when absent). */
int lsc_tokenizer_n_vocab(const lsc_tokenizer *tok) { return tok->n_vocab; }
int lsc_tokenizer_eos_id(const lsc_tokenizer *tok) { return tok->eos_id; }

/* A pointer into tok_data (owned by the tokenizer) and the length of the
 * token's raw bytes; NULL (and *len = 0) for an id out of range. */
const char *lsc_tokenizer_token_bytes(const lsc_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tok->tok_off[id + 1] - tok->tok_off[id];
    return tok->tok_data + tok->tok_off[id];
}

/* ------------------------------------------------------------------------ */
/* Encode                                                                    */
/* ------------------------------------------------------------------------ */

/* A growing array of ids. */
typedef struct id_vec {
    int32_t *v;
    size_t n, cap;
    bool oom;
} id_vec;

/* Makes room for `extra` more ids; false (and oom set) when out of memory. */
static bool vec_reserve(id_vec *v, size_t extra) {
    if (v->n + extra <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < v->n + extra) cap *= 2;
    int32_t *p = realloc(v->v, cap * sizeof *p);
    if (!p) {
        v->oom = true;
        return false;
    }
    v->v = p;
    v->cap = cap;
    return true;
}

/* Grows the BPE scratch arrays to hold n symbols. */
static bool scratch_reserve(lsc_tokenizer *t, size_t n) {
    if (n <= t->scratch_cap) return true;
    size_t cap = t->scratch_cap ? t->scratch_cap : 256;
    while (cap < n) cap *= 2;
    int32_t *s = realloc(t->sym, cap * sizeof *s);
    if (s) t->sym = s;
    int32_t *p = realloc(t->prev, cap * sizeof *p);
    if (p) t->prev = p;
    int32_t *q = realloc(t->next, cap * sizeof *q);
    if (q) t->next = q;
    uint64_t *h = realloc(t->heap, 3 * cap * sizeof *h);
    if (h) t->heap = h;
    if (!s || !p || !q || !h) return false;
    t->scratch_cap = cap;
    return true;
}

/* Rank of merging (a, b), or UINT32_MAX when they do not merge. */
static inline uint32_t pair_rank(const lsc_tokenizer *t, int32_t a, int32_t b, int32_t *id) {
    const merge_slot *m = merge_find(t, a, b);
    if (!m) return UINT32_MAX;
    *id = m->id;
    return m->rank;
}

/* BPE by repeated scan: merges the lowest-ranked adjacent pair (leftmost on
 * ties) until none merges. sym[0..n) in, returns the new count; rank[] and
 * id[] (room for n) hold each adjacent pair's merge, updated only around a
 * merge. O(n^2) in the worst case: the plain reference, and the fastest for
 * the short pieces that are nearly all of them. */
static size_t bpe_scan(const lsc_tokenizer *t, int32_t *sym, uint32_t *rank, int32_t *id, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) rank[i] = pair_rank(t, sym[i], sym[i + 1], &id[i]);
    while (n > 1) {
        uint32_t best = UINT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) {
                best = rank[i];
                at = i;
            }
        if (best == UINT32_MAX) break;
        sym[at] = id[at];
        n--;
        memmove(sym + at + 1, sym + at + 2, (n - at - 1) * sizeof *sym);
        if (at + 1 < n) {
            memmove(rank + at + 1, rank + at + 2, (n - at - 2) * sizeof *rank);
            memmove(id + at + 1, id + at + 2, (n - at - 2) * sizeof *id);
            rank[at] = pair_rank(t, sym[at], sym[at + 1], &id[at]);
        }
        if (at > 0) rank[at - 1] = pair_rank(t, sym[at - 1], sym[at], &id[at - 1]);
    }
    return n;
}

/* Adds key v to the min-heap h[0..*n) of (rank << 32 | pos) keys. */
static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

/* Removes and returns the smallest key of the heap h[0..*n). */
static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

/* Pushes the pair starting at symbol `pos` (if it merges) on the heap. */
static void heap_push_pair(const lsc_tokenizer *t, size_t *hn, int32_t pos) {
    int32_t q = t->next[pos], id;
    if (q < 0) return;
    uint32_t r = pair_rank(t, t->sym[pos], t->sym[q], &id);
    if (r != UINT32_MAX) heap_push(t->heap, hn, (uint64_t)r << 32 | (uint32_t)pos);
}

/* BPE with a heap over a linked list: the same merges in the same order as
 * bpe_scan (lowest rank first, leftmost on ties), in O(n log n). Works on
 * t->sym[0..n) (scratch must hold n); returns the new count, compacted. */
static size_t bpe_heap(lsc_tokenizer *t, size_t n) {
    int32_t *sym = t->sym, *prev = t->prev, *next = t->next;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) heap_push_pair(t, &hn, (int32_t)i);
    while (hn) {
        uint64_t top = heap_pop(t->heap, &hn);
        int32_t pos = (int32_t)(uint32_t)top, q = next[pos], id = 0;
        uint32_t rank = (uint32_t)(top >> 32);
        /* stale entry: pos was merged away, or its right neighbour changed */
        if (sym[pos] < 0 || q < 0 || pair_rank(t, sym[pos], sym[q], &id) != rank) continue;
        sym[pos] = id;
        sym[q] = -1;
        next[pos] = next[q];
        if (next[q] >= 0) prev[next[q]] = pos;
        if (prev[pos] >= 0) heap_push_pair(t, &hn, prev[pos]);
        heap_push_pair(t, &hn, pos);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (sym[i] >= 0) sym[k++] = sym[i];
    return k;
}

/* Empties the piece cache. */
static void cache_clear(lsc_tokenizer *t) {
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_entries = t->cache_keys_used = t->cache_ids_used = 0;
}

/* Encodes one piece (bytes p[0..n), n >= 1) and appends its ids. */
static void encode_piece(lsc_tokenizer *t, const char *p, size_t n, id_vec *out) {
    if (n == 1) {
        if (vec_reserve(out, 1)) out->v[out->n++] = t->byte_id[(unsigned char)p[0]];
        return;
    }
    if (t->ignore_merges) {
        int32_t id = vocab_find(t, p, n);
        if (id >= 0) {
            if (vec_reserve(out, 1)) out->v[out->n++] = id;
            return;
        }
    }
    uint64_t h = 0;
    uint32_t slot = 0;
    bool cacheable = n <= CACHE_MAX_PIECE && !t->cache_off;
    if (cacheable) {
        h = hash_bytes(p, n);
        slot = (uint32_t)h & (CACHE_SLOTS - 1);
        for (;;) {
            cache_slot *c = &t->cache[slot];
            if (!c->hash) break;
            if (c->hash == h && c->key_len == n && !memcmp(t->cache_keys + c->key_off, p, n)) {
                if (vec_reserve(out, c->n_ids)) {
                    memcpy(out->v + out->n, t->cache_ids + c->ids_off, c->n_ids * sizeof *out->v);
                    out->n += c->n_ids;
                }
                return;
            }
            slot = (slot + 1) & (CACHE_SLOTS - 1);
        }
    }
    if (!scratch_reserve(t, n)) {
        out->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) t->sym[i] = t->byte_id[(unsigned char)p[i]];
    size_t m = (int)n >= t->bpe_heap_threshold ? bpe_heap(t, n)
                                                : bpe_scan(t, t->sym, (uint32_t *)t->prev, t->next, n);
    if (!vec_reserve(out, m)) return;
    memcpy(out->v + out->n, t->sym, m * sizeof *out->v);
    out->n += m;
    if (!cacheable) return;
    if (t->cache_entries >= CACHE_MAX_ENTRIES || t->cache_keys_used + n > CACHE_KEY_ARENA ||
        t->cache_ids_used + m > CACHE_ID_ARENA) {
        cache_clear(t);
        slot = (uint32_t)h & (CACHE_SLOTS - 1);
    }
    cache_slot *c = &t->cache[slot];
    c->hash = h;
    c->key_off = t->cache_keys_used;
    c->key_len = (uint16_t)n;
    c->ids_off = t->cache_ids_used;
    c->n_ids = (uint16_t)m;
    memcpy(t->cache_keys + t->cache_keys_used, p, n);
    memcpy(t->cache_ids + t->cache_ids_used, t->sym, m * sizeof *t->sym);
    t->cache_keys_used += (uint32_t)n;
    t->cache_ids_used += (uint32_t)m;
    t->cache_entries++;
}

/* Splits s[0..n) (valid UTF-8, no special token) into pieces with the
 * pattern and encodes each. */
static lsc_status encode_segment(lsc_tokenizer *t, const char *s, size_t n, id_vec *out,
                                 lsc_error *err) {
    size_t pos = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    while (pos < n) {
        int rc = t->jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx)
                        : pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        size_t a, b;
        if (rc == PCRE2_ERROR_NOMATCH) {
            a = b = n;
        } else if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return lsc_fail(err, LSC_ERR_INTERNAL, "splitting the text at byte %zu: %s", pos, (char *)msg);
        } else {
            a = ov[0];
            b = ov[1];
        }
        if (a > pos) encode_piece(t, s + pos, a - pos, out); /* unmatched gap: its own piece */
        if (b > a) encode_piece(t, s + a, b - a, out);
        if (out->oom) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory encoding %zu bytes", n);
        pos = b > a ? b : a + 1; /* (no alternative matches empty; defensive) */
    }
    return LSC_OK;
}

/* Validates the UTF-8, splits out "<|endoftext|>" (unless flags say not to)
 * and encodes each segment; *ids is new (lsc_free), see logitscope.h. */
lsc_status lsc_tokenizer_encode(lsc_tokenizer *tok, const char *text, size_t len, int flags,
                                int32_t **ids, size_t *n_ids, lsc_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return lsc_fail(err, LSC_ERR_INVALID_ARG, "encode: text is NULL");
    size_t bad = utf8_invalid_at(text, len);
    if (bad < len)
        return lsc_fail(err, LSC_ERR_INVALID_ARG, "the text is not valid UTF-8: byte 0x%02X at offset %zu",
                        (unsigned char)text[bad], bad);
    id_vec out = {0};
    if (!vec_reserve(&out, len / 3 + 16)) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory encoding %zu bytes", len);
    bool special = !(flags & LSC_ENCODE_NO_SPECIAL) && tok->eos_id >= 0;
    size_t pos = 0;
    lsc_status st = LSC_OK;
    while (pos < len) {
        const char *hit = special ? memmem(text + pos, len - pos, ENDOFTEXT, sizeof ENDOFTEXT - 1) : NULL;
        size_t end = hit ? (size_t)(hit - text) : len;
        if (end > pos && (st = encode_segment(tok, text + pos, end - pos, &out, err))) break;
        if (!hit) break;
        if (!vec_reserve(&out, 1)) {
            st = lsc_fail(err, LSC_ERR_NOMEM, "out of memory encoding %zu bytes", len);
            break;
        }
        out.v[out.n++] = tok->eos_id;
        pos = end + sizeof ENDOFTEXT - 1;
    }
    if (st) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                    */
/* ------------------------------------------------------------------------ */

/* Length of the maximal prefix of an ill-formed sequence at p[0..n) that
 * CPython (and Unicode's "maximal subpart" practice) replaces with one U+FFFD:
 * the lead byte plus the continuation bytes that were still valid. */
static size_t utf8_bad_prefix(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t k = 1;
    if (k < n && p[k] >= lo && p[k] <= hi) {
        k++;
        while (k < len && k < n && (p[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

/* Joins the ids' bytes and, when they are not valid UTF-8, rewrites them with
 * U+FFFD as CPython does; *text is new (lsc_free), NUL-terminated. */
lsc_status lsc_tokenizer_decode(const lsc_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                char **text, size_t *len, lsc_error *err) {
    *text = NULL;
    if (len) *len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab)
            return lsc_fail(err, LSC_ERR_INVALID_ARG, "token id %d at position %zu is out of range 0..%d",
                            (int)ids[i], i, tok->n_vocab - 1);
        total += tok->tok_off[ids[i] + 1] - tok->tok_off[ids[i]];
    }
    char *raw = malloc(total + 1);
    if (!raw) return lsc_fail(err, LSC_ERR_NOMEM, "out of memory decoding %zu ids", n_ids);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        size_t l = tok->tok_off[ids[i] + 1] - tok->tok_off[ids[i]];
        memcpy(raw + k, tok->tok_data + tok->tok_off[ids[i]], l);
        k += l;
    }
    raw[total] = '\0';
    size_t bad = utf8_invalid_at(raw, total);
    if (bad == total) {
        *text = raw;
        if (len) *len = total;
        return LSC_OK;
    }
    /* Replace each maximal ill-formed subpart with U+FFFD (EF BF BD). */
    size_t cap;
    if (!lsc_mul_size(total, 3, &cap) || !(cap = cap + 1)) {
        free(raw);
        return lsc_fail(err, LSC_ERR_NOMEM, "decode: too long");
    }
    char *s = malloc(cap);
    if (!s) {
        free(raw);
        return lsc_fail(err, LSC_ERR_NOMEM, "out of memory decoding %zu ids", n_ids);
    }
    memcpy(s, raw, bad);
    size_t o = bad, i = bad;
    const unsigned char *p = (const unsigned char *)raw;
    while (i < total) {
        uint32_t cp;
        size_t l = p[i] < 0x80 ? 1 : utf8_seq(p + i, total - i, &cp);
        if (l) {
            memcpy(s + o, raw + i, l);
            o += l;
            i += l;
        } else {
            i += utf8_bad_prefix(p + i, total - i);
            memcpy(s + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    s[o] = '\0';
    free(raw);
    *text = s;
    if (len) *len = o;
    return LSC_OK;
}

/* ------------------------------------------------------------------------ */
/* Testing hooks (internal.h)                                                */
/* ------------------------------------------------------------------------ */

/* Testing: which BPE runs for which piece length (see internal.h). */
void lsc_tokenizer_set_bpe_heap_threshold(lsc_tokenizer *tok, int n) { tok->bpe_heap_threshold = n; }

/* Testing: empties the piece cache and turns it on or off. */
void lsc_tokenizer_set_cache(lsc_tokenizer *tok, bool on) {
    cache_clear(tok);
    tok->cache_off = !on;
}
