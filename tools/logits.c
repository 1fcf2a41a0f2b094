/* logits.c - `logitscope logits`: TEMPORARY stub until the core lands. */
#include "cli.h"

int cmd_logits(int argc, char **argv) { return cli_error("logits: not implemented yet"); }
