#include "logic.h"

#include <string.h>

long logic_parse_config(const char *json, size_t len) {
    static const char key[] = "\"max_bytes\"";
    const char *end = json + len;
    const char *at = json;
    /* Finds the key, then reads the number after its `:`. Enough for a one-key config. */
    while (at + sizeof key - 1 <= end && memcmp(at, key, sizeof key - 1) != 0)
        at++;
    if (at + sizeof key - 1 > end)
        return 0;
    at += sizeof key - 1;
    while (at < end && (*at == ' ' || *at == ':'))
        at++;
    long n = 0;
    const char *digits = at;
    while (at < end && *at >= '0' && *at <= '9' && n <= 1000000000)
        n = n * 10 + (*at++ - '0');
    if (at == digits || n < 1 || n > 1000000000 || (at < end && (*at == '.' || *at == 'e' || *at == 'E')))
        return 0;
    return n;
}

int logic_allows(long max_bytes, size_t data_len) {
    return data_len <= (size_t)max_bytes;
}
