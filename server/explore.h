/* explore.h - the explorer: its page (static.c) and its JSON endpoints
 * (api_explore.c), added to the route table in routes.c. */
#ifndef LSC_SERVER_EXPLORE_H
#define LSC_SERVER_EXPLORE_H

#include "server.h"

void api_explore_model(const http_request *req, http_reply *rep);
void api_explore_vocab(const http_request *req, http_reply *rep);
void api_explore_analyze(const http_request *req, http_reply *rep);
void api_explore_logits(const http_request *req, http_reply *rep);
void api_explore_lens(const http_request *req, http_reply *rep);
void api_explore_attention(const http_request *req, http_reply *rep);
void api_explore_generate(const http_request *req, http_reply *rep);

/* Answers a GET for one of the page's files (1), or leaves `rep` alone (0). */
int web_static(const http_request *req, http_reply *rep);

#endif
