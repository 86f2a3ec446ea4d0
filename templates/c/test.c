/* Native unit test of logic.c: ./test.sh */
#include "logic.h"

#include <stdio.h>
#include <string.h>

static int failures;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static long parse(const char *json) {
    return logic_parse_config(json, strlen(json));
}

int main(void) {
    CHECK(parse("{\"max_bytes\": 5}") == 5);
    CHECK(parse("{\"max_bytes\":1024}") == 1024);
    CHECK(parse("{}") == 0);
    CHECK(parse("{\"max_bytes\": 0}") == 0);
    CHECK(parse("{\"max_bytes\": 1.5}") == 0);
    CHECK(parse("{\"max_bytes\": \"5\"}") == 0);
    CHECK(logic_allows(5, 5));
    CHECK(!logic_allows(5, 6));
    if (failures)
        return 1;
    printf("all checks passed\n");
    return 0;
}
