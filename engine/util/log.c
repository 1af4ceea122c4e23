/* engine/util/log.c — leveled logging: one line per call, written with one write(2) so lines
 * from several threads never interleave. */
#include "engine/util/log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_WARN;

static const char *const log__names[] = {"error", "warn", "info", "debug", "trace"};

void log_set_level(enum log_level lvl) { log_current_level = lvl; }

int log_level_from_text(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof log__names / sizeof *log__names; i++)
        if (strcmp(s, log__names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_write(enum log_level lvl, const char *fmt, ...)
{
    char line[4096];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03d %-5s ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), log__names[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
