/* The channel guard's logic, free of WIT bindings so that it can be tested natively
 * (test.c, built with the host's cc). */
#ifndef SLUICE_CHANNEL_GUARD_H
#define SLUICE_CHANNEL_GUARD_H

#include <stddef.h>

/* At most this many entries in `allow`, each at most GUARD_MAX_NAME bytes. */
#define GUARD_MAX_RULES 64
#define GUARD_MAX_NAME 128

struct guard {
    size_t count;
    /* A channel name, or a prefix ending in `*` ("*" alone allows everything). */
    char rules[GUARD_MAX_RULES][GUARD_MAX_NAME + 1];
};

/* Reads `{"allow": ["news", "chat.*", ...]}` into `g`. Returns 0, or -1 with a
 * NUL-terminated reason in `err`. */
int guard_parse_config(struct guard *g, const char *json, size_t len, char *err, size_t err_len);

/* Whether a connection may use `channel` (a name, or a pattern ending in `*`): a name must
 * match a rule; a pattern only if every channel it covers does, so `news.*` needs a rule
 * `news.*`, `news*`, `ne*` or `*`. */
int guard_allows(const struct guard *g, const char *channel, size_t len);

#endif
