/* siltfs: the daemon.
 *
 *   siltfs CONFIG MOUNTPOINT [-f] [-d] [-o OPTIONS]
 *
 * Source first, options after, as mount.fuse3 calls it, so an fstab line of
 * type fuse.siltfs works. Start-up order matters:
 *   1. parse options and config, build the FUSE session (pure memory): any
 *      mistake is printed here and the exit status is 1;
 *   2. fork: the parent waits on a pipe for the child's verdict, so that
 *      `mount` still gets errors and an exit status (RocksDB and io_uring
 *      start threads, which would not survive a fork done later);
 *   3. the child opens the volume, starts the control socket, mounts, then
 *      tells the parent and detaches;
 *   4. the FUSE init callback locks memory (see fs/fuse_ops.c).
 * SIGTERM/SIGINT/SIGHUP end the session loop; everything is flushed, the
 * control socket removed and the mount undone on the way out. */
#include "fs/ctl.h"
#include "fs/fuse/fuse_ops.h"
#include "fs/vol.h"
#include "tools/bdi.h"
#include "tools/utab.h"
#include "sync/sync.h"
#include "utils/config.h"
#include "utils/log.h"
#include "utils/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 64

struct opts {
	const char *config, *mountpoint;
	int foreground, debug, readonly;
	unsigned threads;
	char ctl[108];
	char log_file[4096];   /* -o log_file=: overrides the config's ("" = no) */
	int log_level;         /* -o log_level=, -1 = the config's */
	char fuse_opts[4096];  /* what we pass on to libfuse */
	int writeback;         /* -o cache=writeback (default) or writethrough */
	int nsplit;            /* split_tier=TIER:FROM recoveries to run first */
	char split[SILT_MAX_TIERS][2][SILT_NAME_MAX];
};

static int status_fd = -1; /* pipe to the waiting parent, until detached */

/* Tell whoever started us (the parent waiting on the pipe, or our stderr
 * in the foreground), and put it in the log too. */
static void say(enum silt_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(enum silt_log_level lvl, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	silt_log_quiet(lvl, "%.*s", n, line);
	line[n++] = '\n';
	if (status_fd >= 0) {
		if (write(status_fd, line, (size_t)n) < 0)
			return;
	} else {
		fprintf(stderr, "siltfs: %.*s", n, line);
	}
}

static void usage(FILE *o)
{
	fprintf(o,
		"usage: siltfs CONFIG MOUNTPOINT [-f] [-d] [-o OPTIONS]\n"
		"  -f            stay in the foreground\n"
		"  -d            debug output (implies -f)\n"
		"  -o ctl=PATH   control socket (default /run/siltfs/<mountpoint>.sock)\n"
		"  -o threads=N  FUSE worker threads (default 4, at most %d)\n"
		"  -o split_tier=TIER:FROM  move TIER's chunks out of FROM's folder, where an older\n"
		"                siltfs let them share one folder, into TIER's own (empty) folder\n"
		"  -o log_file=auto|syslog|PATH, -o log_level=error|warning|info|debug\n"
		"  -o cache=writeback|writethrough  buffered writes coalesced in the page cache\n"
		"                (fsync writes them back), or each sent at once (default)\n"
		"                override the config's log settings\n"
		"  -o OPT,...    FUSE and mount options (allow_other, ro, noatime, ...)\n"
		"see docs/usage.md for the config file\n", MAX_THREADS);
}

static int add_fuse_opt(struct opts *o, const char *opt)
{
	size_t n = strlen(o->fuse_opts);
	if (n + strlen(opt) + 2 >= sizeof(o->fuse_opts))
		return -1;
	snprintf(o->fuse_opts + n, sizeof(o->fuse_opts) - n, "%s%s", n ? "," : "", opt);
	return 0;
}

/* One comma-separated -o list: ours are taken, fstab's no-ops dropped, the
 * rest left for libfuse (which rejects what it does not know). */
static int parse_o(struct opts *o, const char *list)
{
	char *dup = strdup(list), *save = NULL;

	if (!dup)
		return -1;
	for (char *opt = strtok_r(dup, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (!strncmp(opt, "ctl=", 4)) {
			if (opt[4] != '/' || strlen(opt + 4) >= sizeof(o->ctl)) {
				fprintf(stderr, "siltfs: -o %s: must be an absolute path under %zu bytes\n",
					opt, sizeof(o->ctl));
				free(dup);
				return -1;
			}
			snprintf(o->ctl, sizeof(o->ctl), "%s", opt + 4);
		} else if (!strncmp(opt, "threads=", 8)) {
			char *end;
			long t = strtol(opt + 8, &end, 10);
			if (*end || t < 1 || t > MAX_THREADS) {
				fprintf(stderr, "siltfs: -o %s: must be 1..%d\n", opt, MAX_THREADS);
				free(dup);
				return -1;
			}
			o->threads = (unsigned)t;
		} else if (!strncmp(opt, "split_tier=", 11)) {
			const char *v = opt + 11, *colon = strchr(v, ':');
			if (!colon || colon == v || !colon[1] || colon - v >= SILT_NAME_MAX ||
			    strlen(colon + 1) >= SILT_NAME_MAX || o->nsplit == SILT_MAX_TIERS) {
				fprintf(stderr, "siltfs: -o %s: must be split_tier=TIER:FROM (two tier names)\n", opt);
				free(dup);
				return -1;
			}
			snprintf(o->split[o->nsplit][0], SILT_NAME_MAX, "%.*s", (int)(colon - v), v);
			snprintf(o->split[o->nsplit++][1], SILT_NAME_MAX, "%s", colon + 1);
		} else if (!strncmp(opt, "log_file=", 9)) {
			if (opt[9] != '/' && strcmp(opt + 9, "auto") && strcmp(opt + 9, "syslog")) {
				fprintf(stderr, "siltfs: -o %s: must be auto, syslog or an absolute path\n", opt);
				free(dup);
				return -1;
			}
			snprintf(o->log_file, sizeof(o->log_file), "%s", opt + 9);
		} else if (!strncmp(opt, "log_level=", 10)) {
			if ((o->log_level = silt_log_level_parse(opt + 10)) < 0) {
				fprintf(stderr, "siltfs: -o %s: must be error, warning, info or debug\n", opt);
				free(dup);
				return -1;
			}
		} else if (!strncmp(opt, "cache=", 6)) {
			if (strcmp(opt + 6, "writeback") && strcmp(opt + 6, "writethrough")) {
				fprintf(stderr, "siltfs: -o %s: must be cache=writeback or cache=writethrough\n", opt);
				free(dup);
				return -1;
			}
			o->writeback = !strcmp(opt + 6, "writeback");
		} else if (!strcmp(opt, "ro")) {
			o->readonly = 1; /* a replica must be mounted so; libfuse gets it too */
			if (add_fuse_opt(o, opt)) {
				free(dup);
				return -1;
			}
		} else if (!strcmp(opt, "defaults") || !strcmp(opt, "_netdev") || !strcmp(opt, "nofail") ||
			   !strcmp(opt, "auto") || !strcmp(opt, "noauto") || !strcmp(opt, "user") ||
			   !strcmp(opt, "users") || !strcmp(opt, "nouser") || !strncmp(opt, "x-", 2) ||
			   !strncmp(opt, "comment=", 8) || !strcmp(opt, "default_permissions") ||
			   !strncmp(opt, "fsname=", 7) || !strncmp(opt, "subtype=", 8)) {
			/* fstab's business, or something we always set ourselves */
		} else if (add_fuse_opt(o, opt)) {
			free(dup);
			return -1;
		}
	}
	free(dup);
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	int npos = 0;

	memset(o, 0, sizeof(*o));
	o->threads = 4;
	o->log_level = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("siltfs %s (libfuse %d)\n", SILT_VERSION, fuse_version());
			exit(0);
		} else if (!strcmp(a, "-f")) {
			o->foreground = 1;
		} else if (!strcmp(a, "-d")) {
			o->debug = o->foreground = 1;
		} else if (!strncmp(a, "-o", 2)) {
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list) {
				fprintf(stderr, "siltfs: -o needs an argument\n");
				return -1;
			}
			if (parse_o(o, list))
				return -1;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "siltfs: unknown option %s\n", a);
			usage(stderr);
			return -1;
		} else if (npos == 0) {
			o->config = a;
			npos++;
		} else if (npos == 1) {
			o->mountpoint = a;
			npos++;
		} else {
			fprintf(stderr, "siltfs: unexpected argument %s\n", a);
			return -1;
		}
	}
	if (npos != 2) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* path, or the part of it that exists, is the mountpoint or inside it. */
static int inside(const char *path, const struct stat *mst)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", path);
	for (;;) {
		int r = silt_path_within(p, mst);
		char *slash = strrchr(p, '/');
		if (r >= 0 || !slash || slash == p)
			return r > 0;
		*slash = '\0';
	}
}

/* A tier or metadata folder inside the mountpoint would be hidden by the
 * mount from siltfs itself (RocksDB opens its files by path). */
static int check_mountpoint(const struct silt_config *cfg, const char *mnt)
{
	struct stat mst;

	if (stat(mnt, &mst) < 0)
		return 0; /* fuse_session_mount will say */
	for (int i = 0; i < cfg->ntiers; i++) {
		if (inside(cfg->tiers[i].path, &mst)) {
			fprintf(stderr, "siltfs: %s:%d: [tier %s] path = %s is inside the mountpoint %s: the "
				"mount would hide it from siltfs itself\n", cfg->file, cfg->tiers[i].path_line,
				cfg->tiers[i].name, cfg->tiers[i].path, mnt);
			return -1;
		}
	}
	if (cfg->meta_dir[0] && inside(cfg->meta_dir, &mst)) {
		fprintf(stderr, "siltfs: %s:%d: metadata = %s is inside the mountpoint %s: the mount would "
			"hide it from siltfs itself\n", cfg->file, cfg->meta_line, cfg->meta_dir, mnt);
		return -1;
	}
	return 0;
}

/* Parent side of the fork: relay the child's messages; its last line says
 * whether the mount is up. */
static int wait_for_child(int fd)
{
	char buf[8192];
	size_t n = 0;
	ssize_t r;
	int ok = 0;

	while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	if (n >= 3 && !strcmp(buf + n - 3, "OK\n") && (n == 3 || buf[n - 4] == '\n')) {
		ok = 1;
		buf[n - 3] = '\0';
	}
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl) {
			fprintf(stderr, "siltfs: %s\n", line);
			break;
		}
		fprintf(stderr, "siltfs: %.*s\n", (int)(nl - line), line);
	}
	if (!ok && n == 0)
		fprintf(stderr, "siltfs: the daemon exited during start-up\n");
	return ok ? 0 : 1;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* Every way out of main once the FUSE session exists: free what it holds
 * (LeakSanitizer would otherwise turn the exit status into a failure). */
static int leave(struct fuse_session *se, struct fuse_args *args, int rc)
{
	fuse_session_destroy(se);
	fuse_opt_free_args(args);
	return rc;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* libfuse's own messages (mount errors, a broken device) into our log */
static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	silt_logv(level <= FUSE_LOG_ERR ? SILT_LOG_ERR : level == FUSE_LOG_WARNING ? SILT_LOG_WARN
		  : level == FUSE_LOG_DEBUG ? SILT_LOG_DEBUG : SILT_LOG_INFO, fmt, ap);
}

/* Open the log the config and -o ask for. Until the daemon detaches,
 * every line is copied to stderr as well, so that whoever runs siltfs
 * sees start-up warnings. An explicit log file that cannot be opened is an
 * error; the default one falls back to syslog with a warning. */
static int start_log(const struct opts *o, const struct silt_config *cfg)
{
	struct silt_log_conf lc = {
		.file = o->log_file[0] ? o->log_file : cfg->log_file,
		.volume = cfg->name,
		.level = o->debug ? SILT_LOG_DEBUG : o->log_level >= 0 ? o->log_level : cfg->log_level,
		.max_size = cfg->log_max_size,
	};
	char path[4096];
	enum silt_log_dest dest = o->debug ? SILT_LOG_TO_STDERR : silt_log_resolve(&lc, o->foreground, path, sizeof(path));
	int r = silt_log_open(dest, path, &lc);

	if (r && lc.file[0] && strcmp(lc.file, "auto")) {
		fprintf(stderr, "siltfs: log_file %s: %s\n", path, strerror(-r));
		return -1;
	}
	if (r) {
		fprintf(stderr, "siltfs: warning: log file %s: %s: logging to syslog instead\n", path, strerror(-r));
		silt_log_open(SILT_LOG_TO_SYSLOG, "", &lc);
	}
	silt_log_copy_stderr(1);
	fuse_set_log_func(fuse_log_to_ours);
	return 0;
}

/* Fork: the parent waits for the child's verdict and exits with it; the
 * child goes on with status_fd set. */
static void daemonize(struct fuse_session *se, struct fuse_args *args)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("siltfs: pipe");
		exit(leave(se, args, 1));
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("siltfs: fork");
		exit(leave(se, args, 1));
	}
	if (pid > 0) { /* the parent: report the child's verdict, free what we built */
		close(p[1]);
		exit(leave(se, args, wait_for_child(p[0])));
	}
	close(p[0]);
	status_fd = p[1];
	setsid();
}

/* The volume is mounted: tell the parent, stop writing to its terminal. */
static void detach(void)
{
	if (chdir("/") < 0)
		log_warn("chdir /: %s", strerror(errno));
	if (write(status_fd, "OK\n", 3) < 0)
		log_warn("cannot tell the starting process that the volume is mounted: %s", strerror(errno));
	close(status_fd);
	status_fd = -1;
	silt_log_copy_stderr(0);
	detach_stdio();
}

static void say_created(const struct silt_config *cfg, struct silt_vol *vol)
{
	char tiers[1024] = "";

	for (int i = 0; i < cfg->ntiers; i++)
		snprintf(tiers + strlen(tiers), sizeof(tiers) - strlen(tiers), "%s%s",
			 i ? ", " : "", cfg->tiers[i].name);
	say(SILT_LOG_INFO, "created volume %s (uuid %s) on tiers %s", cfg->name, vol_uuid(vol), tiers);
}

/* Options and config into a FUSE session (memory only, before the fork). */
static struct fuse_session *new_session(const struct opts *o, const char *cfgpath, struct fuse_args *args,
					struct silt_fs *fs)
{
	char opt[PATH_MAX + 64];

	/* libfuse gets: our fixed options, then the user's. */
	snprintf(opt, sizeof(opt), "fsname=%s,subtype=siltfs,default_permissions", cfgpath);
	if (fuse_opt_add_arg(args, "siltfs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, opt) ||
	    (o->fuse_opts[0] && (fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, o->fuse_opts))) ||
	    (o->debug && fuse_opt_add_arg(args, "-d"))) {
		fprintf(stderr, "siltfs: out of memory\n");
		fuse_opt_free_args(args);
		return NULL;
	}
	struct fuse_session *se = fuse_session_new(args, &silt_fuse_ops, sizeof(silt_fuse_ops), fs);
	if (!se) {
		fprintf(stderr, "siltfs: invalid mount options: %s\n", o->fuse_opts);
		fuse_opt_free_args(args);
	}
	return se;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct silt_config cfg;
	struct silt_fs fs = { .timeout = 1.0, .lock_memory = 1 };
	struct silt_ctl *ctl = NULL;
	struct fuse_session *se;
	struct opts o;
	char err[8192], mnt[PATH_MAX], cfgpath[PATH_MAX], ctl_default[108];
	int created = 0, r;

	silt_log_init("siltfs", 0);
	if (parse_args(argc, argv, &o))
		return 1;
	silt_log_init("siltfs", o.debug);
	if (!realpath(o.mountpoint, mnt)) {
		fprintf(stderr, "siltfs: mountpoint %s: %s\n", o.mountpoint, strerror(errno));
		return 1;
	}
	if (!realpath(o.config, cfgpath)) {
		fprintf(stderr, "siltfs: config %s: %s\n", o.config, strerror(errno));
		return 1;
	}
	if ((r = silt_config_load(cfgpath, &cfg, err, sizeof(err)))) {
		fprintf(stderr, "siltfs: %s\n", err);
		return 1;
	}
	if (check_mountpoint(&cfg, mnt))
		return 1;
	silt_ctl_default_path(mnt, ctl_default, sizeof(ctl_default));
	if (!o.ctl[0])
		snprintf(o.ctl, sizeof(o.ctl), "%s", ctl_default);
	if (!(se = new_session(&o, cfgpath, &args, &fs)))
		return 1;
	if (start_log(&o, &cfg))
		return leave(se, &args, 1);
	if (!o.foreground)
		daemonize(se, &args);
	raise_nofile();
	log_debug("config %s, %u FUSE threads, control socket %s, FUSE options '%s'", cfgpath, o.threads, o.ctl,
		  o.fuse_opts);

	for (int i = 0; i < o.nsplit; i++) {
		char report[1024];
		if (vol_split_tier(&cfg, o.split[i][0], o.split[i][1], report, sizeof(report), err, sizeof(err))) {
			say(SILT_LOG_ERR, "%s", err);
			return leave(se, &args, 1);
		}
		say(SILT_LOG_INFO, "%s", report);
	}
	fs.writeback = o.writeback;
	if ((r = vol_open(&cfg, &fs.vol, &created, err, sizeof(err)))) {
		say(SILT_LOG_ERR, "%s", err);
		return leave(se, &args, 1);
	}
	vol_set_mountpoint(fs.vol, mnt);
	/* replication hooks into the commit point before the volume takes
	 * user I/O, and the control socket answers for it */
	struct silt_sync *sync = NULL;
	if ((r = sync_start(fs.vol, &cfg, &sync, err, sizeof(err)))) {
		say(SILT_LOG_ERR, "%s", err);
		vol_close(fs.vol);
		return leave(se, &args, 1);
	}
	if (sync_is_replica(sync) && !o.readonly) {
		say(SILT_LOG_ERR, "volume %s is a replica ([sync] listen): mount it read-only (-o ro)", cfg.name);
		sync_stop(sync);
		vol_close(fs.vol);
		sync_free(sync);
		return leave(se, &args, 1);
	}
	struct ctl_ext ext = { .words = { "sync", "replica" }, .fn = sync_ctl, .arg = sync };
	if (created)
		say_created(&cfg, fs.vol);
	if ((r = ctl_start(fs.vol, o.ctl, &ext, &ctl))) {
		say(SILT_LOG_ERR, "control socket %s: %s", o.ctl,
		    r == -EADDRINUSE ? "another siltfs is serving it (already mounted?)" : strerror(-r));
		sync_stop(sync);
		vol_close(fs.vol);
		sync_free(sync);
		return leave(se, &args, 1);
	}
	/* libfuse only takes over signals left at their default; a daemon
	 * started as a background job inherits SIGINT ignored, and should
	 * still unmount cleanly when told to. */
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(se) || fuse_session_mount(se, mnt)) {
		say(SILT_LOG_ERR, "cannot mount on %s (see the message above)", mnt);
		ctl_stop(ctl);
		sync_stop(sync);
		vol_close(fs.vol);
		sync_free(sync);
		return leave(se, &args, 1);
	}
	/* siltctl finds a volume by its mountpoint: point the default name at
	 * a socket placed elsewhere */
	int ctl_link = strcmp(o.ctl, ctl_default) != 0;
	if (ctl_link) {
		unlink(ctl_default);
		if (symlink(o.ctl, ctl_default) < 0) {
			log_warn("cannot link %s to %s: %s", ctl_default, o.ctl, strerror(errno));
			ctl_link = 0;
		}
	}
	if (o.writeback) {
		char dev[32] = "?";
		if ((r = bdi_relax(mnt, dev, sizeof(dev))))
			log_warn("writeback cache: cannot raise the dirty-page limit of bdi %s (%s): "
				 "buffered writes are flushed early", dev, strerror(-r));
		else
			silt_log_quiet(SILT_LOG_INFO, "writeback cache: bdi %s takes dirty pages as a disk does "
				       "(max_ratio 100, strict_limit 0)", dev);
	}
	if ((r = utab_add(cfgpath, mnt)))
		log_warn("cannot record the mount in libmount's utab (%s): umount %s will not wait for this daemon",
			 strerror(-r), mnt);
	silt_log_quiet(SILT_LOG_INFO, "volume %s (%s) mounted on %s", cfg.name, vol_uuid(fs.vol), mnt);
	if (status_fd >= 0)
		detach();

	if ((r = silt_fuse_loop(se, &fs, o.threads)))
		log_err("serving %s: %s", mnt, strerror(-r));

	log_info("unmounting %s", mnt);
	fuse_session_unmount(se);
	utab_remove(mnt);
	fuse_remove_signal_handlers(se);
	if (ctl_link)
		unlink(ctl_default);
	ctl_stop(ctl);
	sync_stop(sync);
	vol_close(fs.vol);
	sync_free(sync); /* after the volume: its last commits reach the journal */
	log_info("volume %s closed: its tier files and metadata are released", cfg.name);
	return leave(se, &args, r < 0 ? 1 : 0);
}
