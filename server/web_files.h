/* web_files.h - the explorer page's files (web/), embedded into the binary
 * at build time (scripts/embed_files.c writes build/gen/web_files.c). */
#ifndef LSC_SERVER_WEB_FILES_H
#define LSC_SERVER_WEB_FILES_H

#include <stddef.h>

typedef struct web_file {
    const char *path;         /* "/index.html", "/js/app.mjs" */
    const char *content_type;
    const unsigned char *data; /* NUL-terminated */
    size_t len;
} web_file;

extern const web_file web_files[];
extern const int web_n_files;

#endif
