/* static.c - serves the explorer page embedded in the binary (web_files.h):
 * "/" is web/index.html (whatever the query string: the page keeps its state
 * there), every other file under its path in web/. */
#include "server.h"
#include "web_files.h"

#include <string.h>

int web_static(const http_request *req, http_reply *rep) {
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) return 0;
    const char *path = strcmp(req->path, "/") ? req->path : "/index.html";
    for (int i = 0; i < web_n_files; i++)
        if (!strcmp(web_files[i].path, path)) {
            reply_text(rep, 200, web_files[i].content_type, (const char *)web_files[i].data);
            return 1;
        }
    return 0;
}
