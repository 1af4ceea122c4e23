/* engine/cli/cli.h — the salvo command-line edge: subcommands and their shared helpers.
 * This is the only place (with the API) that prints; everything below returns errors. */
#ifndef SALVO_ENGINE_CLI_CLI_H
#define SALVO_ENGINE_CLI_CLI_H

#include <stddef.h>
#include <stdio.h>

struct salvo_config;

/* sysexits(3) codes, part of the CLI contract */
#define CLI_EX_OK 0
#define CLI_EX_FAILED 1       /* some recipient bounced (permanent) */
#define CLI_EX_USAGE 64
#define CLI_EX_DATAERR 65
#define CLI_EX_NOINPUT 66
#define CLI_EX_SOFTWARE 70
#define CLI_EX_TEMPFAIL 75    /* only temporary failures */
#define CLI_EX_CONFIG 78

/* --set PATH=VALUE: 0, or -1 with err. */
int cli_set(struct salvo_config *cfg, const char *assignment, char *err, size_t errlen);
/* Appends item to a comma-separated list (repeatable options such as --resolver). */
int cli_list_append(char *list, size_t cap, const char *item, char *err, size_t errlen);

int cmd_send(int argc, char **argv);
int cmd_check_config(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_inject(int argc, char **argv);
int cmd_shaping(int argc, char **argv);
/* warmup, holds, suspend, resume (from cmd_shaping) */
int cmd_shaping_state(int argc, char **argv);

#endif
