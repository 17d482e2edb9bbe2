/* silt-renameat2 FLAGS OLD NEW
 * Calls renameat2(2) with FLAGS = none | noreplace | exchange, which mv(1)
 * cannot do.  Exit 0 on success; on failure prints the errno name (EEXIST,
 * ENOENT, ...) on stdout and exits 1. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

int main(int argc, char **argv)
{
	unsigned flags;

	if (argc != 4) {
		fprintf(stderr, "usage: %s none|noreplace|exchange OLD NEW\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "none"))
		flags = 0;
	else if (!strcmp(argv[1], "noreplace"))
		flags = RENAME_NOREPLACE;
	else if (!strcmp(argv[1], "exchange"))
		flags = RENAME_EXCHANGE;
	else {
		fprintf(stderr, "bad flags %s\n", argv[1]);
		return 2;
	}
	if (renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], flags) < 0) {
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	return 0;
}
