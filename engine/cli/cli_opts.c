/* engine/cli/cli_opts.c — option handling shared by the subcommands (--set, --resolver). */
#include <stdio.h>
#include <string.h>

#include "engine/cli/cli.h"
#include "engine/config/config.h"

int cli_set(struct salvo_config *cfg, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        snprintf(err, errlen, "--set expects PATH=VALUE, got '%s'", assignment);
        return -1;
    }
    char path[256];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof path) {
        snprintf(err, errlen, "--set: path too long");
        return -1;
    }
    memcpy(path, assignment, n);
    path[n] = '\0';
    return config_set(cfg, path, eq + 1, err, errlen);
}

int cli_list_append(char *list, size_t cap, const char *item, char *err, size_t errlen)
{
    size_t have = strlen(list), add = strlen(item);
    if (have + add + 2 > cap) {
        snprintf(err, errlen, "too many values for a list option");
        return -1;
    }
    if (have)
        list[have++] = ',';
    memcpy(list + have, item, add + 1);
    return 0;
}
