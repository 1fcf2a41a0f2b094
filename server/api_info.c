/* api_info.c - what the server serves and how it is doing: GET /v1/models,
 * GET /health, GET /metrics. */
#include "metrics.h"
#include "scheduler.h"
#include "server.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

void api_models(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", srv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)srv->started);
    cJSON_AddStringToObject(m, "owned_by", "logitscope");
    cJSON_AddStringToObject(m, "root", srv->model_dir);
    cJSON_AddNumberToObject(m, "max_model_len", srv->n_ctx);
    cJSON_AddItemToArray(data, m);
    reply_json(rep, 200, o);
}

void api_health(const http_request *req, http_reply *rep) {
    /* the route exists only once the model is loaded and the scheduler runs */
    reply_text(rep, 200, "text/plain", "ok\n");
}

void api_metrics(const http_request *req, http_reply *rep) {
    server *srv = req->srv;
    size_t waiting, running;
    sched_counts(srv->sched, &waiting, &running);
    metrics_gauges(srv->metrics, waiting, running);
    char *s = metrics_render(srv->metrics);
    if (!s) {
        reply_error(rep, 500, NULL, "out of memory");
        return;
    }
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4";
    free(rep->body);
    rep->body = s;
    rep->body_len = strlen(s);
}
