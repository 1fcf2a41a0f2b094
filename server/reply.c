/* reply.c - building replies: JSON bodies, OpenAI-style errors, and the
 * small helpers every route uses. */
#include "server.h"

#include <cjson/cJSON.h>

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

void reply_text(http_reply *rep, int status, const char *content_type, const char *text) {
    rep->status = status;
    rep->content_type = content_type;
    free(rep->body);
    rep->body = strdup(text);
    rep->body_len = rep->body ? strlen(rep->body) : 0;
    if (!rep->body) rep->status = 500;
}

void reply_json(http_reply *rep, int status, cJSON *obj) {
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    free(rep->body);
    rep->content_type = "application/json";
    if (!s) {
        rep->status = 500;
        rep->body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\","
                           "\"param\":null,\"code\":500}}");
        rep->body_len = rep->body ? strlen(rep->body) : 0;
        return;
    }
    rep->status = status;
    rep->body = s;
    rep->body_len = strlen(s);
}

static const char *error_type(int status) {
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed_error";
    case 413: return "request_too_large_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "internal_error" : "invalid_request_error";
    }
}

cJSON *error_json(int status, const char *param, const char *message) {
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    if (!e) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", error_type(status));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    cJSON_AddNumberToObject(e, "code", status);
    return root;
}

void reply_error(http_reply *rep, int status, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_json(rep, status, error_json(status, param, msg));
}

lsc_status server_encode(server *srv, const char *text, size_t len, int32_t **ids, size_t *n,
                         lsc_error *err) {
    pthread_mutex_lock(&srv->tok_mu);
    lsc_status st = lsc_tokenizer_encode(srv->tok, text, len, 0, ids, n, err);
    pthread_mutex_unlock(&srv->tok_mu);
    return st;
}
