/* Native unit test of guard.c: `cc -o test guard.c test.c && ./test` */
#include "guard.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                    \
    do {                                                               \
        if (!(cond)) {                                                 \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                \
        }                                                              \
    } while (0)

static int allows(const struct guard *g, const char *channel) {
    return guard_allows(g, channel, strlen(channel));
}

static int parse(struct guard *g, const char *json, char *err) {
    return guard_parse_config(g, json, strlen(json), err, 200);
}

int main(void) {
    static struct guard g;
    char err[200];

    CHECK(parse(&g, " { \"allow\" : [\"news\", \"chat.*\"] } ", err) == 0);
    CHECK(g.count == 2);
    CHECK(allows(&g, "news"));
    CHECK(!allows(&g, "news.eu"));
    CHECK(allows(&g, "chat.lobby"));
    CHECK(allows(&g, "chat."));
    CHECK(!allows(&g, "chat"));
    CHECK(!allows(&g, "admin"));
    CHECK(allows(&g, "chat.*"));
    CHECK(allows(&g, "chat.room*"));
    CHECK(!allows(&g, "cha*"));
    CHECK(!allows(&g, "*"));
    CHECK(!allows(&g, "news*"));

    CHECK(parse(&g, "{\"allow\": [\"*\"]}", err) == 0);
    CHECK(allows(&g, "*"));
    CHECK(allows(&g, "anything"));

    CHECK(parse(&g, "{\"allow\": []}", err) == 0);
    CHECK(!allows(&g, "news"));

    CHECK(parse(&g, "{}", err) == -1);
    CHECK(strcmp(err, "allow: required") == 0);
    CHECK(parse(&g, "{\"deny\": []}", err) == -1);
    CHECK(strcmp(err, "unknown config key (expected `allow`)") == 0);
    CHECK(parse(&g, "{\"allow\": [\"\"]}", err) == -1);
    CHECK(strcmp(err, "allow[0]: must be a non-empty string") == 0);
    CHECK(parse(&g, "{\"allow\": [1]}", err) == -1);
    CHECK(parse(&g, "[]", err) == -1);
    CHECK(parse(&g, "{\"allow\": [\"a\"]} x", err) == -1);

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("channel-guard: all checks passed\n");
    return 0;
}
