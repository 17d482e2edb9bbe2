/* Logging: one line per event, with a level, to one destination:
 *   stderr  in the foreground (and before the daemon has detached, as a copy)
 *   syslog  once detached, when a syslog daemon (or journald) listens on /dev/log
 *   a file  otherwise (default /var/log/siltfs/<volume>.log), time-stamped,
 *           rotated by size and reopened when something moved it away. */
#ifndef SILT_LOG_H
#define SILT_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum silt_log_level { SILT_LOG_ERR, SILT_LOG_WARN, SILT_LOG_INFO, SILT_LOG_DEBUG };
enum silt_log_dest { SILT_LOG_TO_STDERR, SILT_LOG_TO_SYSLOG, SILT_LOG_TO_FILE };

#define SILT_LOG_DIR "/var/log/siltfs"
#define SILT_LOG_KEEP 3                    /* rotated files: <file>.1 .. <file>.3 */
#define SILT_LOG_MAX_SIZE (10ull << 20)    /* default rotation size */

/* What siltfs.conf / -o say; "" or "auto" for log_file = the default. */
struct silt_log_conf {
	const char *file;        /* "", "auto", "syslog" or an absolute path */
	const char *volume;      /* names the default file and the syslog identifier */
	int level;               /* enum silt_log_level */
	uint64_t max_size;       /* rotate above this; 0 = never (logrotate's job) */
};

void silt_log_init(const char *ident, int debug);  /* stderr only, until silt_log_open */

/* Where cfg sends the log of a daemon (foreground or detached): the file
 * name goes to path. The one place that decides, for siltfs and siltctl. */
enum silt_log_dest silt_log_resolve(const struct silt_log_conf *cfg, int foreground,
				    char *path, size_t len);
/* Does a syslog daemon accept messages on /dev/log right now? */
int silt_syslog_present(void);

/* Switch to dest (file: created with its folder; -errno if it cannot be
 * opened). While copy_stderr is set, lines also go to stderr. */
int silt_log_open(enum silt_log_dest dest, const char *path, const struct silt_log_conf *cfg);
void silt_log_copy_stderr(int on);

/* For the control socket: where lines go now. */
struct silt_log_where {
	enum silt_log_dest dest;
	const char *path;        /* file */
	const char *ident;       /* syslog identifier */
	int level;
};
void silt_log_where(struct silt_log_where *w);

int silt_log_level_parse(const char *s);     /* -1 if not a level name */
const char *silt_log_level_name(int level);
const char *silt_log_dest_name(enum silt_log_dest d);
/* syslog identifier of a volume's daemon: "siltfs/<volume>" */
void silt_log_ident(const char *volume, char *out, size_t len);

void silt_log(enum silt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void silt_logv(enum silt_log_level lvl, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Like silt_log, but never copied to stderr: for what the daemon also
 * tells its caller another way (the start-up pipe). */
void silt_log_quiet(enum silt_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...)   silt_log(SILT_LOG_ERR, __VA_ARGS__)
#define log_warn(...)  silt_log(SILT_LOG_WARN, __VA_ARGS__)
#define log_info(...)  silt_log(SILT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) silt_log(SILT_LOG_DEBUG, __VA_ARGS__)

#endif
