/* cmd_tokenize.c - `logitscope tokenize` and `logitscope detokenize`: text to
 * GPT-2 token ids and back, one text on the command line or a batch of JSON
 * lines on stdin. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

enum { OPT_JSONL = 2000, OPT_PIECES, OPT_CLEAN_UP };

/* Number of code points in valid UTF-8 s[0..n). */
static size_t count_chars(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Decodes one id to text (U+FFFD for bytes that are not whole characters, as
 * tokenizer.decode([id]) does). Returns a new string (free with lsc_free). */
static char *token_text(lsc_tokenizer *tok, int32_t id, size_t *len) {
    char *s = NULL;
    if (lsc_tokenizer_decode(tok, &id, 1, &s, len, NULL) != LSC_OK) return NULL;
    return s;
}

/* Prints the human-readable table of a tokenized text, after a line with
 * its pieces when pieces_flags >= 0 (the encode flags to split with). */
static int print_table(lsc_tokenizer *tok, const char *text, const int32_t *ids, size_t n, int pieces_flags) {
    size_t nc = count_chars(text, strlen(text));
    printf("There %s %zu character%s and %zu token%s.\n\n", nc == 1 ? "is" : "are", nc, nc == 1 ? "" : "s", n,
           n == 1 ? "" : "s");
    if (pieces_flags >= 0) {
        size_t *ends, np;
        lsc_error err;
        if (lsc_tokenizer_split(tok, text, strlen(text), pieces_flags, &ends, &np, &err))
            return cli_error("%s", err.message);
        printf("%zu piece%s:", np, np == 1 ? "" : "s");
        for (size_t i = 0, a = 0; i < np; a = ends[i++]) {
            fputc(' ', stdout);
            cli_print_repr(stdout, text + a, ends[i] - a);
        }
        fputs("\n\n", stdout);
        lsc_free(ends);
    }
    printf("%5s %7s  %s\n", "pos", "id", "token");
    for (size_t i = 0; i < n; i++) {
        size_t blen, tlen;
        const char *bytes = lsc_tokenizer_token_bytes(tok, ids[i], &blen);
        char *s = token_text(tok, ids[i], &tlen);
        if (!s) continue;
        printf("%5zu %7d  ", i, (int)ids[i]);
        cli_print_repr(stdout, s, tlen);
        /* a piece of a character: show its bytes too */
        if (tlen != blen || memcmp(s, bytes, blen)) {
            fputs("  (bytes", stdout);
            for (size_t k = 0; k < blen; k++) printf(" %02x", (unsigned char)bytes[k]);
            fputc(')', stdout);
        }
        fputc('\n', stdout);
        lsc_free(s);
    }
    return 0;
}

/* Reads JSON lines from stdin; for each, `fn` gets the parsed object and
 * writes one output line. Stops at the first bad line with its number. */
static int each_json_line(int (*fn)(lsc_tokenizer *, const cJSON *, size_t, void *), lsc_tokenizer *tok,
                          void *user) {
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        if (strlen(line) != (size_t)got) {
            rc = cli_error("stdin line %zu: contains a NUL byte", lineno);
            break;
        }
        if (cli_json_has_nul_escape(line)) {
            rc = cli_error("stdin line %zu: \\u0000 (U+0000) is not supported in JSON input", lineno);
            break;
        }
        cJSON *obj = cJSON_Parse(line);
        if (!cJSON_IsObject(obj)) {
            cJSON_Delete(obj);
            rc = cli_error("stdin line %zu: not a JSON object", lineno);
            break;
        }
        rc = fn(tok, obj, lineno, user);
        cJSON_Delete(obj);
        if (rc) break;
    }
    free(line);
    if (!rc && ferror(stdin)) rc = cli_error("cannot read stdin");
    if (fflush(stdout) != 0 && !rc) rc = cli_error("cannot write stdout");
    return rc;
}

/* What tokenize does with each text. */
typedef struct tokenize_opts {
    int flags;   /* LSC_ENCODE_* */
    bool pieces; /* --pieces: also give the pre-tokenization pieces */
} tokenize_opts;

/* Prints `, "pieces": [...]`: the pieces of text[0..len) as JSON strings. */
static int print_json_pieces(lsc_tokenizer *tok, const char *text, size_t len, int flags) {
    size_t *ends, n;
    lsc_error err;
    if (lsc_tokenizer_split(tok, text, len, flags, &ends, &n, &err)) return cli_error("%s", err.message);
    fputs(",\"pieces\":[", stdout);
    for (size_t i = 0, a = 0; i < n; a = ends[i++]) {
        if (i) fputc(',', stdout);
        cli_json_string(stdout, text + a, ends[i] - a);
    }
    fputc(']', stdout);
    lsc_free(ends);
    return 0;
}

/* --jsonl line of `tokenize`: {"text": "..."} -> {"ids": [...]} (and
 * "pieces" with --pieces). */
static int tokenize_line(lsc_tokenizer *tok, const cJSON *obj, size_t lineno, void *user) {
    const tokenize_opts *o = user;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
    if (!cJSON_IsString(t)) return cli_error("stdin line %zu: no \"text\" string", lineno);
    int32_t *ids;
    size_t n, len = strlen(t->valuestring);
    lsc_error err;
    if (lsc_tokenizer_encode(tok, t->valuestring, len, o->flags, &ids, &n, &err))
        return cli_error("stdin line %zu: %s", lineno, err.message);
    fputs("{\"ids\":", stdout);
    cli_json_ids(stdout, ids, n);
    lsc_free(ids);
    if (o->pieces && print_json_pieces(tok, t->valuestring, len, o->flags)) return 1;
    fputs("}\n", stdout);
    return 0;
}

/* Reads a JSON array of token ids into a new array (free with free()). */
static bool json_ids(const cJSON *a, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    if (!cJSON_IsArray(a)) return false;
    size_t k = (size_t)cJSON_GetArraySize(a);
    int32_t *v = malloc((k ? k : 1) * sizeof *v);
    if (!v) return false;
    size_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next) {
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || d != (double)(int64_t)d || d < INT32_MIN || d > INT32_MAX) {
            free(v);
            return false;
        }
        v[i++] = (int32_t)d;
    }
    *ids = v;
    *n = i;
    return true;
}

/* transformers' clean_up_tokenization(): drops the space before punctuation
 * and contractions, with the same replacements in the same order. Rewrites
 * s in place (it only shrinks) and returns the new length. */
static size_t clean_up_spaces(char *s, size_t n) {
    static const char *const rules[][2] = {{" .", "."},     {" ?", "?"},     {" !", "!"},   {" ,", ","},
                                           {" ' ", "'"},    {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"},
                                           {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        size_t fl = strlen(rules[r][0]), tl = strlen(rules[r][1]), o = 0;
        for (size_t i = 0; i < n;) {
            if (i + fl <= n && !memcmp(s + i, rules[r][0], fl)) {
                memcpy(s + o, rules[r][1], tl);
                o += tl;
                i += fl;
            } else
                s[o++] = s[i++];
        }
        n = o;
        s[n] = '\0';
    }
    return n;
}

/* Decodes ids and prints the text as `mode` asks: raw text and a newline, or
 * a {"text": ...} line. */
static int print_decoded(lsc_tokenizer *tok, const int32_t *ids, size_t n, bool json, bool clean,
                         const char *where) {
    char *text;
    size_t len;
    lsc_error err;
    if (lsc_tokenizer_decode(tok, ids, n, &text, &len, &err))
        return where ? cli_error("%s: %s", where, err.message) : cli_error("%s", err.message);
    if (clean) len = clean_up_spaces(text, len);
    if (json) {
        fputs("{\"text\":", stdout);
        bool ok = cli_json_string(stdout, text, len);
        fputs("}\n", stdout);
        if (!ok) {
            lsc_free(text);
            return cli_error("out of memory");
        }
    } else {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    }
    lsc_free(text);
    return 0;
}

/* --jsonl line of `detokenize`: {"ids": [...]} -> {"text": "..."}. */
static int detokenize_line(lsc_tokenizer *tok, const cJSON *obj, size_t lineno, void *user) {
    bool clean = *(bool *)user;
    int32_t *ids;
    size_t n;
    if (!json_ids(cJSON_GetObjectItemCaseSensitive(obj, "ids"), &ids, &n))
        return cli_error("stdin line %zu: no \"ids\" array of integers", lineno);
    char where[64];
    snprintf(where, sizeof where, "stdin line %zu", lineno);
    int rc = print_decoded(tok, ids, n, true, clean, where);
    free(ids);
    return rc;
}

static int tokenize_run(int argc, char **argv);
static int detokenize_run(int argc, char **argv);

static const cli_opt tokenize_opts_table[] = {
    {"text", 0, "TEXT", OPT_TEXT, "the text (or give it as the bare argument TEXT)"},
    {"no-special", 0, NULL, OPT_NO_SPECIAL, "\"<|endoftext|>\" is plain text, not id 50256"},
    {"pieces", 0, NULL, OPT_PIECES,
     "also the pre-tokenization pieces (the regex matches that BPE runs on),\n"
     "as a line before the table or a \"pieces\" array"},
    {"jsonl", 0, NULL, OPT_JSONL, "read {\"text\": ...} lines on stdin, write {\"ids\": [...]} lines"},
    {0},
};

const cli_command cli_cmd_tokenize = {
    .name = "tokenize",
    .summary = "text -> token ids, with a table of the tokens (--jsonl for batches)",
    .synopsis = "[options] (TEXT | --text TEXT | --jsonl < lines)",
    .about = "Prints the number of characters and tokens and a table of position, id and\n"
             "token text (Python repr: the leading space shows inside the quotes).\n",
    .groups = CLI_MODEL | CLI_OUTPUT,
    .opts = tokenize_opts_table,
    .json = "  {\"text\", \"n_chars\", \"n_tokens\", \"ids\", \"tokens\"} (+ \"pieces\")\n",
    .run = tokenize_run,
};

static const cli_opt detokenize_opts_table[] = {
    {"ids", 0, "1,2,3", OPT_IDS, "the token ids"},
    {"clean-up-spaces", 0, NULL, OPT_CLEAN_UP,
     "drop the space before . , ! ? and contractions, as transformers'\n"
     "clean_up_tokenization_spaces=True"},
    {"jsonl", 0, NULL, OPT_JSONL, "read {\"ids\": [...]} lines on stdin, write {\"text\": ...} lines"},
    {0},
};

const cli_command cli_cmd_detokenize = {
    .name = "detokenize",
    .summary = "token ids -> text (--jsonl for batches)",
    .synopsis = "[options] (--ids 1,2,3 | --jsonl < lines)",
    .about = "Prints the text of the ids (bytes that are not valid UTF-8 become U+FFFD, as\n"
             "Python's errors='replace').\n",
    .groups = CLI_MODEL | CLI_OUTPUT,
    .opts = detokenize_opts_table,
    .json = "  {\"text\"}\n",
    .run = detokenize_run,
};

static int tokenize_run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_tokenize, argc, argv);
    bool jsonl = false;
    tokenize_opts o = {0};
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_JSONL) jsonl = true;
        else if (opt == OPT_PIECES) o.pieces = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (jsonl ? c.text != NULL : c.text == NULL)
        return cli_usage_error(jsonl ? "tokenize: --jsonl reads stdin; give no text"
                                     : "tokenize: give the text (TEXT or --text TEXT)");
    const char *text = c.text;
    lsc_tokenizer *tok = cli_load_tokenizer(&c);
    if (!tok) return 1;
    int flags = o.flags = c.no_special ? LSC_ENCODE_NO_SPECIAL : 0;
    int rc;
    if (jsonl) {
        rc = each_json_line(tokenize_line, tok, &o);
    } else {
        int32_t *ids;
        size_t n;
        lsc_error err;
        if (lsc_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n, &err)) {
            rc = cli_error("%s", err.message);
        } else if (c.json) {
            fputs("{\"text\":", stdout);
            cli_json_string(stdout, text, strlen(text));
            printf(",\"n_chars\":%zu,\"n_tokens\":%zu,\"ids\":", count_chars(text, strlen(text)), n);
            cli_json_ids(stdout, ids, n);
            fputs(",\"tokens\":[", stdout);
            for (size_t i = 0; i < n; i++) {
                size_t tl;
                char *s = token_text(tok, ids[i], &tl);
                if (i) fputc(',', stdout);
                if (s) cli_json_string(stdout, s, tl);
                lsc_free(s);
            }
            fputc(']', stdout);
            rc = o.pieces ? print_json_pieces(tok, text, strlen(text), flags) : 0;
            fputs("}\n", stdout);
        } else
            rc = print_table(tok, text, ids, n, o.pieces ? flags : -1);
        if (ids) lsc_free(ids);
    }
    lsc_tokenizer_free(tok);
    return rc;
}

static int detokenize_run(int argc, char **argv) {
    cli_args a;
    cli_args_begin(&a, &cli_cmd_detokenize, argc, argv);
    bool jsonl = false, clean = false;
    int opt;
    while ((opt = cli_args_next(&a)) > 0) {
        if (opt == OPT_JSONL) jsonl = true;
        else if (opt == OPT_CLEAN_UP) clean = true;
    }
    if (opt < 0) return a.status;
    cli_common c = a.c;
    if (jsonl == (c.ids != NULL))
        return cli_usage_error("detokenize: give exactly one of --ids or --jsonl");
    int32_t *ids = NULL;
    size_t n = 0;
    if (c.ids && !cli_parse_id_list(c.ids, &ids, &n))
        return cli_usage_error("--ids: '%s' is not a comma-separated list of token ids", c.ids);
    lsc_tokenizer *tok = cli_load_tokenizer(&c);
    int rc = 1;
    if (tok) rc = jsonl ? each_json_line(detokenize_line, tok, &clean) : print_decoded(tok, ids, n, c.json, clean, NULL);
    free(ids);
    lsc_tokenizer_free(tok);
    return rc;
}
