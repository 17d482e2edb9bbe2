/* Logging.
 *
 * The only process-wide state in siltfs lives here: where log lines go and
 * how verbose they are. Lines are rare (start-up, shutdown, faults), so one
 * mutex serialises them; it also covers the log file's rotation, which
 * happens when a line would take the file past its size, and its reopening
 * when something (logrotate) moved the file away, so that both built-in
 * rotation and logrotate's default "create" mode work without a signal.
 *
 * A detached daemon on a host without a syslog daemon would lose syslog()
 * lines silently, so syslog is used only when /dev/log accepts a
 * connection; otherwise the lines go to a file. */
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	pthread_mutex_t lock;
	const char *ident;          /* stderr prefix */
	int level;
	enum silt_log_dest dest;
	int copy_stderr;
	char sysident[80];
	char path[4096];
	int fd;
	uint64_t max_size;
} logcfg = { PTHREAD_MUTEX_INITIALIZER, "siltfs", SILT_LOG_INFO, SILT_LOG_TO_STDERR, 0, "", "", -1, 0 };

static const char *const level_names[] = { "error", "warning", "info", "debug" };

int silt_log_level_parse(const char *s)
{
	for (int i = 0; i < (int)ARRAY_SIZE(level_names); i++)
		if (!strcmp(s, level_names[i]))
			return i;
	return -1;
}

const char *silt_log_level_name(int level)
{
	return level >= 0 && level < (int)ARRAY_SIZE(level_names) ? level_names[level] : "?";
}

const char *silt_log_dest_name(enum silt_log_dest d)
{
	static const char *const n[] = { "stderr", "syslog", "file" };
	return n[d];
}

void silt_log_ident(const char *volume, char *out, size_t len)
{
	snprintf(out, len, "siltfs/%s", volume);
}

void silt_log_init(const char *ident, int debug)
{
	logcfg.ident = ident;
	logcfg.level = debug ? SILT_LOG_DEBUG : SILT_LOG_INFO;
}

int silt_syslog_present(void)
{
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0), ok;
		if (fd < 0)
			continue;
		ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (ok)
			return 1;
	}
	return 0;
}

enum silt_log_dest silt_log_resolve(const struct silt_log_conf *cfg, int foreground,
				    char *path, size_t len)
{
	const char *f = cfg->file ? cfg->file : "";

	path[0] = '\0';
	if (!strcmp(f, "syslog"))
		return SILT_LOG_TO_SYSLOG;
	if (f[0] && strcmp(f, "auto")) {
		snprintf(path, len, "%s", f);
		return SILT_LOG_TO_FILE;
	}
	if (foreground)
		return SILT_LOG_TO_STDERR;
	if (silt_syslog_present())
		return SILT_LOG_TO_SYSLOG;
	snprintf(path, len, "%s/%s.log", SILT_LOG_DIR, cfg->volume);
	return SILT_LOG_TO_FILE;
}

static int open_file(const char *path)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		int r = silt_mkdir_p(dir, 0750);
		if (r)
			return r;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	return fd < 0 ? -errno : fd;
}

int silt_log_open(enum silt_log_dest dest, const char *path, const struct silt_log_conf *cfg)
{
	int fd = -1;

	if (dest == SILT_LOG_TO_FILE && (fd = open_file(path)) < 0)
		return fd;
	pthread_mutex_lock(&logcfg.lock);
	if (logcfg.fd >= 0)
		close(logcfg.fd);
	logcfg.fd = fd;
	logcfg.dest = dest;
	logcfg.level = cfg->level;
	logcfg.max_size = cfg->max_size;
	snprintf(logcfg.path, sizeof(logcfg.path), "%s", dest == SILT_LOG_TO_FILE ? path : "");
	silt_log_ident(cfg->volume, logcfg.sysident, sizeof(logcfg.sysident));
	if (dest == SILT_LOG_TO_SYSLOG)
		openlog(logcfg.sysident, LOG_PID, LOG_DAEMON);
	tzset();
	pthread_mutex_unlock(&logcfg.lock);
	return 0;
}

void silt_log_copy_stderr(int on)
{
	pthread_mutex_lock(&logcfg.lock);
	logcfg.copy_stderr = on;
	pthread_mutex_unlock(&logcfg.lock);
}

void silt_log_where(struct silt_log_where *w)
{
	pthread_mutex_lock(&logcfg.lock);
	w->dest = logcfg.dest;
	w->path = logcfg.path;
	w->ident = logcfg.sysident;
	w->level = logcfg.level;
	pthread_mutex_unlock(&logcfg.lock);
}

/* <file> -> <file>.1 -> ... -> <file>.KEEP (dropped). */
static void rotate_names(void)
{
	char from[4200], to[4200];

	for (int k = SILT_LOG_KEEP; k >= 1; k--) {
		snprintf(to, sizeof(to), "%s.%d", logcfg.path, k);
		if (k > 1)
			snprintf(from, sizeof(from), "%s.%d", logcfg.path, k - 1);
		else
			snprintf(from, sizeof(from), "%s", logcfg.path);
		rename(from, to);
	}
}

/* Before a line of len bytes: rotate if it would overflow the file, reopen
 * if the file was moved or removed. Lock held. A file that cannot be
 * reopened keeps the old descriptor: lines land in the moved file rather
 * than nowhere. */
static void file_check(size_t len)
{
	struct stat at_fd, at_path;
	int reopen = 0;

	if (fstat(logcfg.fd, &at_fd) < 0)
		return;
	if (stat(logcfg.path, &at_path) < 0 || at_path.st_ino != at_fd.st_ino ||
	    at_path.st_dev != at_fd.st_dev) {
		reopen = 1;
	} else if (logcfg.max_size && at_fd.st_size > 0 &&
		   (uint64_t)at_fd.st_size + len > logcfg.max_size) {
		rotate_names();
		reopen = 1;
	}
	if (reopen) {
		int fd = open_file(logcfg.path);
		if (fd >= 0) {
			close(logcfg.fd);
			logcfg.fd = fd;
		}
	}
}

static void write_file(enum silt_log_level lvl, const char *msg)
{
	char line[1200], stamp[40], zone[8];
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	int n = snprintf(line, sizeof(line), "%s.%03ld%s [%d] %s: %s\n", stamp, ts.tv_nsec / 1000000,
			 zone, (int)getpid(), level_names[lvl], msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	file_check((size_t)n);
	if (write(logcfg.fd, line, (size_t)n) < 0) {
		/* nowhere left to say it */
	}
}

/* One record, one line: libfuse ends its messages with a newline. */
static void one_line(char *msg)
{
	size_t n = strlen(msg);

	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	for (char *p = msg; (p = strchr(p, '\n'));)
		*p = ' ';
}

/* quiet: never to stderr, not even as the destination */
static void emit(enum silt_log_level lvl, int quiet, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	one_line(msg);
	pthread_mutex_lock(&logcfg.lock);
	if ((int)lvl > logcfg.level || (quiet && logcfg.dest == SILT_LOG_TO_STDERR)) {
		pthread_mutex_unlock(&logcfg.lock);
		return;
	}
	if (logcfg.dest == SILT_LOG_TO_SYSLOG)
		syslog(prio[lvl], "%s", msg);
	else if (logcfg.dest == SILT_LOG_TO_FILE)
		write_file(lvl, msg);
	if (logcfg.dest == SILT_LOG_TO_STDERR || (!quiet && logcfg.copy_stderr))
		fprintf(stderr, "%s: %s%s%s\n", logcfg.ident, lvl == SILT_LOG_INFO ? "" : level_names[lvl],
			lvl == SILT_LOG_INFO ? "" : ": ", msg);
	pthread_mutex_unlock(&logcfg.lock);
}

void silt_log(enum silt_log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(lvl, 0, fmt, ap);
	va_end(ap);
}

void silt_logv(enum silt_log_level lvl, const char *fmt, va_list ap)
{
	emit(lvl, 0, fmt, ap);
}

void silt_log_quiet(enum silt_log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(lvl, 1, fmt, ap);
	va_end(ap);
}
