/* engine/cli/cli.h — the salvo command-line edge: subcommands and their shared helpers.
 * This is the only place (with the API) that prints; everything below returns errors. */
#ifndef SALVO_ENGINE_CLI_CLI_H
#define SALVO_ENGINE_CLI_CLI_H

#include <stdio.h>

/* sysexits(3) codes, part of the CLI contract */
#define CLI_EX_OK 0
#define CLI_EX_FAILED 1       /* some recipient bounced (permanent) */
#define CLI_EX_USAGE 64
#define CLI_EX_DATAERR 65
#define CLI_EX_NOINPUT 66
#define CLI_EX_SOFTWARE 70
#define CLI_EX_TEMPFAIL 75    /* only temporary failures */
#define CLI_EX_CONFIG 78

int cmd_send(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_inject(int argc, char **argv);
int cmd_shaping(int argc, char **argv);

#endif
