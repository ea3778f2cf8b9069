/* Direct I/O on a Linux guest's first virtio disk, timed by the guest: the
 * guest side of bench/bench_qemu_disk.py. Built static (it runs as the
 * initramfs's only program besides busybox). For each pattern it prints
 *
 *   DISKIO NAME OPS BYTES NANOSECONDS
 *
 * usage: diskio DEVICE MIB */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pattern {
	const char *name;
	size_t block;
	int write;
	int random;
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* One pattern over the first `span` bytes: as many requests as it has
 * blocks, in order or at pseudo-random blocks (the same ones in every VMM). */
static int run(int fd, const struct pattern *p, uint64_t span, char *buf)
{
	uint64_t blocks = span / p->block, x = 88172645463325252ull;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < blocks; i++) {
		uint64_t b = i;
		if (p->random) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			b = x % blocks;
		}
		off_t at = (off_t)(b * p->block);
		ssize_t n = p->write ? pwrite(fd, buf, p->block, at) : pread(fd, buf, p->block, at);
		if (n != (ssize_t)p->block) {
			printf("DISKIO-FAIL %s at %lld: %zd\n", p->name, (long long)at, n);
			return -1;
		}
	}
	uint64_t ns = now_ns() - t0;
	printf("DISKIO %s %llu %llu %llu\n", p->name, (unsigned long long)blocks,
	       (unsigned long long)(blocks * p->block), (unsigned long long)ns);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct pattern patterns[] = {
		{"seq-write-1m", 1 << 20, 1, 0},
		{"seq-read-1m", 1 << 20, 0, 0},
		{"rand-write-4k", 4096, 1, 1},
		{"rand-read-4k", 4096, 0, 1},
	};
	if (argc != 3) {
		fprintf(stderr, "usage: diskio DEVICE MIB\n");
		return 2;
	}
	uint64_t span = strtoull(argv[2], NULL, 10) << 20;
	int fd = open(argv[1], O_RDWR | O_DIRECT);
	char *buf;
	if (fd < 0 || posix_memalign((void **)&buf, 4096, 1 << 20)) {
		printf("DISKIO-FAIL open %s\n", argv[1]);
		return 1;
	}
	memset(buf, 0xa5, 1 << 20);
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++)
		if (run(fd, &patterns[i], span, buf))
			return 1;
	close(fd);
	return 0;
}
