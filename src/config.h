/* config.h - config.json -> lsc_config (not public). */
#ifndef LSC_CONFIG_H
#define LSC_CONFIG_H

#include "internal.h"
#include "kernels.h"


/* Parses the text of a config.json (`path` is only used in messages) into
 * *cfg, applying transformers' GPT2Config defaults for absent keys, and
 * refusing wrong types, absurd sizes and unsupported settings with a message
 * that names the key. *act receives the activation function. */
lsc_status lsc_config_parse(const char *path, const char *json, size_t len, lsc_config *cfg,
                            lsc_act *act, lsc_error *err);

/* Reads and parses `path` (see lsc_config_parse). */
lsc_status lsc_config_load(const char *path, lsc_config *cfg, lsc_act *act, lsc_error *err);

#endif
