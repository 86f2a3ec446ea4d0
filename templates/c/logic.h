/* The plugin's logic, free of WIT bindings so that test.c runs it natively. */
#ifndef PLUGIN_LOGIC_H
#define PLUGIN_LOGIC_H

#include <stddef.h>

/* Reads `{"max_bytes": N}` (N from 1 to 1000000000). Returns N, or 0 when the config is
 * malformed. */
long logic_parse_config(const char *json, size_t len);

/* Whether a message whose `data` is `data_len` bytes of JSON may pass. */
int logic_allows(long max_bytes, size_t data_len);

#endif
