/* json.c - the CLI's one JSON writer: every command prints one compact
 * object per line (cJSON_PrintUnformatted), and the tokenizer commands, whose
 * strings may hold U+0000 (which cJSON's C strings cannot), write their
 * strings through cli_json_string in the same compact form. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

int cli_print_json(cJSON *obj) {
    if (!obj) return cli_error("out of memory while writing JSON");
    char *txt = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!txt) return cli_error("out of memory while writing JSON");
    fputs(txt, stdout);
    fputc('\n', stdout);
    cJSON_free(txt);
    if (fflush(stdout) != 0) return cli_error("cannot write stdout");
    return 0;
}

/* Prints s[0..n) as a JSON string literal, escaped by cJSON; a U+0000 (which
 * cJSON's NUL-terminated strings cannot hold) is written as \u0000. */
bool cli_json_string(FILE *out, const char *s, size_t n) {
    fputc('"', out);
    for (size_t i = 0; i <= n;) {
        const char *z = memchr(s + i, '\0', n - i);
        size_t seg = z ? (size_t)(z - (s + i)) : n - i;
        char *part = malloc(seg + 1);
        if (!part) return false;
        memcpy(part, s + i, seg);
        part[seg] = '\0';
        cJSON *j = cJSON_CreateString(part);
        char *lit = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        free(part);
        if (!lit) return false;
        fwrite(lit + 1, 1, strlen(lit) - 2, out); /* without its quotes */
        cJSON_free(lit);
        i += seg;
        if (!z) break;
        fputs("\\u0000", out);
        i++;
    }
    fputc('"', out);
    return true;
}

/* Prints [a, b, c]. */
void cli_json_ids(FILE *out, const int32_t *ids, size_t n) {
    fputc('[', out);
    for (size_t i = 0; i < n; i++) fprintf(out, i ? ",%d" : "%d", (int)ids[i]);
    fputc(']', out);
}
