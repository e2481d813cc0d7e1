/*  Fuzz target: a config file's text, parsed onto the defaults. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    if (size) {
        memcpy(text, data, size);
    }
    text[size] = 0;
    config_t cfg;
    config_defaults(&cfg);
    char err[256] = "";
    if (config_parse_text(&cfg, text, "fuzz.conf", err, sizeof err) != 0 &&
        err[0] == 0) {
        __builtin_trap(); // a refusal always says why
    }
    config_free(&cfg);
    free(text);
    return 0;
}
