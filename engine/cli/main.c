/* engine/cli/main.c — `salvo <command>` dispatch and top-level help. */
#include <stdio.h>
#include <string.h>

#include "engine/cli/cli.h"

#define SALVO_VERSION "0.1.0"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} main__commands[] = {
    {"send", cmd_send, "deliver one message now and print each recipient's outcome"},
    {"run", cmd_run, "run the engine: deliver jobs from Redis and report every outcome"},
    {"inject", cmd_inject, "enqueue a message or a campaign with a recipient list"},
    {"shaping", cmd_shaping, "explain the traffic shaping limits for a destination"},
    {"check-config", cmd_check_config, "validate a configuration file"},
};

static void main__usage(FILE *f)
{
    fprintf(f, "Usage: salvo <command> [options]\n\n"
               "Salvo is an outbound mail engine: it delivers messages over SMTP to the\n"
               "recipients' mail servers.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof main__commands / sizeof *main__commands; i++)
        fprintf(f, "  %-14s %s\n", main__commands[i].name, main__commands[i].summary);
    fprintf(f, "\nRun 'salvo <command> --help' for a command's options.\n"
               "'salvo --version' prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        main__usage(stderr);
        return CLI_EX_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        main__usage(stdout);
        return CLI_EX_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("salvo %s\n", SALVO_VERSION);
        return CLI_EX_OK;
    }
    for (size_t i = 0; i < sizeof main__commands / sizeof *main__commands; i++)
        if (strcmp(argv[1], main__commands[i].name) == 0)
            return main__commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "salvo: unknown command '%s'\n\n", argv[1]);
    main__usage(stderr);
    return CLI_EX_USAGE;
}
