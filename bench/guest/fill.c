/* A Linux guest's memory in use, and kept: the guest side of
 * bench/bench_qemu_migrate.py. Built static. Writes MIB MiB, every page
 * with a word of its own (no page is zero, so no VMM can skip one), says
 *
 *   FILLED MIB
 *
 * then, for each line it reads on its standard input (the console), reads
 * every page back and says FILL ok N, or FILL BAD PAGE and ends: after a
 * save, a restore or a migration, the host asks and times the answer.
 *
 * usage: fill MIB < /dev/console */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_WORDS 512 /* 4 KiB of 64-bit words */

static uint64_t word_of(size_t page)
{
	return 0x9e3779b97f4a7c15ull * (page + 1);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fill MIB\n");
		return 2;
	}
	size_t mib = strtoul(argv[1], NULL, 10), pages = mib << 8;
	uint64_t *m = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	if (m == MAP_FAILED) {
		perror("fill: mmap");
		return 1;
	}
	for (size_t p = 0; p < pages; p++)
		m[p * PAGE_WORDS] = word_of(p);
	printf("FILLED %zu\n", mib);
	fflush(stdout);
	char line[64];
	for (unsigned long pass = 1; fgets(line, sizeof(line), stdin); pass++) {
		for (size_t p = 0; p < pages; p++) {
			if (m[p * PAGE_WORDS] != word_of(p)) {
				printf("FILL BAD %zu\n", p);
				fflush(stdout);
				return 1;
			}
		}
		printf("FILL ok %lu\n", pass);
		fflush(stdout);
	}
	return 0;
}
