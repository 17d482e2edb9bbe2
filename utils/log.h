/* Logging: one line per event, to stderr in the foreground and to syslog
 * once the daemon has detached. */
#ifndef SILT_LOG_H
#define SILT_LOG_H

#include <stdarg.h>

enum silt_log_level { SILT_LOG_ERR, SILT_LOG_WARN, SILT_LOG_INFO, SILT_LOG_DEBUG };

void silt_log_init(const char *ident, int debug);
void silt_log_use_syslog(void);
void silt_log(enum silt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)   silt_log(SILT_LOG_ERR, __VA_ARGS__)
#define log_warn(...)  silt_log(SILT_LOG_WARN, __VA_ARGS__)
#define log_info(...)  silt_log(SILT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) silt_log(SILT_LOG_DEBUG, __VA_ARGS__)

#endif
