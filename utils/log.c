/* Logging.
 *
 * The only process-wide state in siltfs lives here: where log lines go and
 * how verbose they are. It is written once at start-up (before any thread
 * exists) and only read afterwards, so it needs no lock. */
#include "utils/log.h"

#include <stdio.h>
#include <syslog.h>
#include <time.h>

static struct {
	const char *ident;
	int debug;
	int syslog;
} logcfg = { "siltfs", 0, 0 };

void silt_log_init(const char *ident, int debug)
{
	logcfg.ident = ident;
	logcfg.debug = debug;
}

void silt_log_use_syslog(void)
{
	openlog(logcfg.ident, LOG_PID, LOG_DAEMON);
	logcfg.syslog = 1;
}

void silt_log(enum silt_log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *tag[] = { "error", "warning", "info", "debug" };
	va_list ap;

	if (lvl == SILT_LOG_DEBUG && !logcfg.debug)
		return;
	va_start(ap, fmt);
	if (logcfg.syslog) {
		vsyslog(prio[lvl], fmt, ap);
	} else {
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "%s: %s%s%s\n", logcfg.ident,
			lvl == SILT_LOG_INFO ? "" : tag[lvl],
			lvl == SILT_LOG_INFO ? "" : ": ", line);
	}
	va_end(ap);
}
