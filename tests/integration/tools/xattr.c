/* silt-xattr set FILE NAME VALUE | get FILE NAME | list FILE | remove FILE NAME
 * Extended attributes without the attr package.  get prints the value,
 * list prints the names one per line (sorted by the kernel's order).  On
 * failure prints the errno name (ENODATA, ENOTSUP, ...) and exits 1. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

static int err(void)
{
	printf("%s\n", strerrorname_np(errno));
	return 1;
}

int main(int argc, char **argv)
{
	static char buf[65536];
	ssize_t n;

	if (argc == 5 && !strcmp(argv[1], "set"))
		return setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) < 0 ? err() : 0;
	if (argc == 4 && !strcmp(argv[1], "get")) {
		if ((n = getxattr(argv[2], argv[3], buf, sizeof(buf))) < 0)
			return err();
		fwrite(buf, 1, n, stdout);
		putchar('\n');
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "list")) {
		if ((n = listxattr(argv[2], buf, sizeof(buf))) < 0)
			return err();
		for (char *p = buf; p < buf + n; p += strlen(p) + 1)
			printf("%s\n", p);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "remove"))
		return removexattr(argv[2], argv[3]) < 0 ? err() : 0;
	fprintf(stderr, "usage: %s set FILE NAME VALUE | get FILE NAME | list FILE | remove FILE NAME\n", argv[0]);
	return 2;
}
