/* Config parsing and the allow check; see guard.h. */
#include "guard.h"

#include <stdio.h>
#include <string.h>

struct cursor {
    const char *at;
    const char *end;
};

static void skip_space(struct cursor *c) {
    while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r'))
        c->at++;
}

static int eat(struct cursor *c, char want) {
    skip_space(c);
    if (c->at < c->end && *c->at == want) {
        c->at++;
        return 1;
    }
    return 0;
}

/* Reads a JSON string into out (at most cap bytes plus NUL). Returns its length, -1 when
 * malformed, -2 when too long or when it uses a \u escape (not needed for channel names). */
static int read_string(struct cursor *c, char *out, size_t cap) {
    size_t n = 0;
    if (!eat(c, '"'))
        return -1;
    while (c->at < c->end && *c->at != '"') {
        char ch = *c->at++;
        if (ch == '\\') {
            if (c->at >= c->end)
                return -1;
            ch = *c->at++;
            if (ch == 'u')
                return -2;
            if (ch != '"' && ch != '\\' && ch != '/')
                return -1;
        }
        if (n == cap)
            return -2;
        out[n++] = ch;
    }
    if (!eat(c, '"'))
        return -1;
    out[n] = '\0';
    return (int)n;
}

int guard_parse_config(struct guard *g, const char *json, size_t len, char *err, size_t err_len) {
    struct cursor c = {json, json + len};
    char key[16];
    int seen_allow = 0;
    g->count = 0;
    if (!eat(&c, '{')) {
        snprintf(err, err_len, "config must be a table");
        return -1;
    }
    if (eat(&c, '}'))
        goto missing;
    do {
        if (read_string(&c, key, sizeof key - 1) < 0 || strcmp(key, "allow") != 0) {
            snprintf(err, err_len, "unknown config key (expected `allow`)");
            return -1;
        }
        if (!eat(&c, ':') || !eat(&c, '[')) {
            snprintf(err, err_len, "allow: must be a list of channel names or prefixes ending in `*`");
            return -1;
        }
        seen_allow = 1;
        if (eat(&c, ']'))
            continue;
        do {
            if (g->count == GUARD_MAX_RULES) {
                snprintf(err, err_len, "allow: more than %d entries", GUARD_MAX_RULES);
                return -1;
            }
            int n = read_string(&c, g->rules[g->count], GUARD_MAX_NAME);
            if (n == -2) {
                snprintf(err, err_len, "allow[%zu]: longer than %d bytes or uses \\u", g->count, GUARD_MAX_NAME);
                return -1;
            }
            if (n <= 0) {
                snprintf(err, err_len, "allow[%zu]: must be a non-empty string", g->count);
                return -1;
            }
            g->count++;
        } while (eat(&c, ','));
        if (!eat(&c, ']')) {
            snprintf(err, err_len, "allow: must be a list of strings");
            return -1;
        }
    } while (eat(&c, ','));
    if (!eat(&c, '}')) {
        snprintf(err, err_len, "config is not a JSON table");
        return -1;
    }
    skip_space(&c);
    if (c.at != c.end) {
        snprintf(err, err_len, "config has text after the table");
        return -1;
    }
    if (seen_allow)
        return 0;
missing:
    snprintf(err, err_len, "allow: required");
    return -1;
}

int guard_allows(const struct guard *g, const char *channel, size_t len) {
    int is_pattern = len > 0 && channel[len - 1] == '*';
    for (size_t i = 0; i < g->count; i++) {
        const char *rule = g->rules[i];
        size_t rule_len = strlen(rule);
        if (rule[rule_len - 1] == '*') {
            /* A prefix rule covers a name or pattern that starts with its prefix. */
            size_t prefix = rule_len - 1;
            size_t own = is_pattern ? len - 1 : len;
            if (own >= prefix && memcmp(channel, rule, prefix) == 0)
                return 1;
        } else if (!is_pattern && rule_len == len && memcmp(channel, rule, len) == 0) {
            return 1;
        }
    }
    return 0;
}
