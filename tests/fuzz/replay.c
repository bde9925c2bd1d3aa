/* replay.c - runs a fuzz target over every file of a corpus directory, so the
 * corpus (and every crash a fuzzer once found, kept there) is replayed by the
 * normal test run under the sanitizers. Each file is fed whole and then in
 * every prefix length up to 256 bytes (truncated /proc reads). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	for (size_t i = 0; i < n && i < 256; i++) {
		/* a copy of exactly i bytes, so ASan sees reads past the end */
		uint8_t *p = malloc(i ? i : 1);
		memcpy(p, buf, i);
		LLVMFuzzerTestOneInput(p, i);
		free(p);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	int files = 0, rc = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		if (replay_file(path) < 0)
			rc = 1;
		files++;
	}
	closedir(d);
	printf("replayed %d corpus files from %s\n", files, argv[1]);
	if (files == 0) {
		fprintf(stderr, "empty corpus %s\n", argv[1]);
		return 1;
	}
	return rc;
}
