/* engine/util/log.h — leveled logging to stderr (or a sink the edge installs).
 * Library code logs only at DEBUG/TRACE (tracing for operators); errors are returned. */
#ifndef SALVO_ENGINE_UTIL_LOG_H
#define SALVO_ENGINE_UTIL_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

extern enum log_level log_current_level;

void log_set_level(enum log_level lvl);
/* Parses "error|warn|info|debug|trace"; returns 0 or -1. */
int log_level_from_text(const char *s, enum log_level *out);
void log_write(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...) \
    do { if ((lvl) <= log_current_level) log_write((lvl), __VA_ARGS__); } while (0)
#define log_error(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_WARN, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_INFO, __VA_ARGS__)
#define log_debug(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)
#define log_trace(...) LOG_AT(LOG_TRACE, __VA_ARGS__)

#endif
