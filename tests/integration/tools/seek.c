/* silt-seek FILE data|hole OFFSET
 * Prints lseek(fd, OFFSET, SEEK_DATA or SEEK_HOLE), or the errno name
 * (ENXIO, ...) and exit status 1 if it fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[2], "data") && strcmp(argv[2], "hole"))) {
		fprintf(stderr, "usage: %s FILE data|hole OFFSET\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	off_t r = lseek(fd, strtoll(argv[3], NULL, 0), strcmp(argv[2], "data") ? SEEK_HOLE : SEEK_DATA);
	if (r < 0) {
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("%lld\n", (long long)r);
	return 0;
}
