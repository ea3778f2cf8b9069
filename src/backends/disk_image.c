#include "backends/disk_image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define SECTOR 512

static int open_error(const struct disk_spec *spec, int e, char *err, size_t errlen)
{
	if (e == EISDIR)
		snprintf(err, errlen, "%s is a directory, not a disk image", spec->path);
	else if (!spec->ro && (e == EACCES || e == EPERM || e == EROFS))
		snprintf(err, errlen, "%s cannot be written (%s): add ,ro to use it read-only",
			 spec->path, strerror(e));
	else
		snprintf(err, errlen, "%s: %s", spec->path, strerror(e));
	return -e;
}

static int image_size(struct disk_image *d, const struct stat *st, char *err, size_t errlen)
{
	if (S_ISREG(st->st_mode)) {
		d->size = (uint64_t)st->st_size;
	} else if (!S_ISBLK(st->st_mode) || ioctl(d->fd, BLKGETSIZE64, &d->size) < 0) {
		snprintf(err, errlen, "%s is not a regular file or block device", d->path);
		return -EINVAL;
	}
	if (d->size < SECTOR) {
		snprintf(err, errlen, "%s is smaller than one 512-byte sector", d->path);
		return -EINVAL;
	}
	return 0;
}

/* A loop device backed by this very file (same device and inode) shares
 * it outside any flock: refused unless neither side can write. Returns the
 * loop device's number, or -1. */
static int loop_sharing(const struct stat *st, bool ro)
{
	DIR *d = opendir("/sys/block");
	int found = -1;
	struct dirent *e;
	while (d && found < 0 && (e = readdir(d))) {
		int n;
		char path[300], backing[4096], rdonly[8];
		if (sscanf(e->d_name, "loop%d", &n) != 1)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", e->d_name);
		int len = read_file(path, backing, sizeof(backing));
		if (len <= 0)
			continue; /* not attached */
		backing[strcspn(backing, "\n")] = '\0';
		snprintf(path, sizeof(path), "/sys/block/%s/ro", e->d_name);
		bool loop_ro = read_file(path, rdonly, sizeof(rdonly)) > 0 && rdonly[0] == '1';
		struct stat bs;
		if (stat(backing, &bs) == 0 && bs.st_dev == st->st_dev && bs.st_ino == st->st_ino &&
		    !(ro && loop_ro))
			found = n;
	}
	if (d)
		closedir(d);
	return found;
}

int disk_image_open(struct disk_image *d, const struct disk_spec *spec, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	d->ro = spec->ro;
	d->path = spec->path;
	/* O_NONBLOCK so that a FIFO cannot hang the open (it is refused below);
	 * it changes nothing for files and block devices. */
	d->fd = open(spec->path, (spec->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (d->fd < 0)
		return open_error(spec, errno, err, errlen);
	struct stat st;
	int r;
	if (fstat(d->fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", spec->path, strerror(-r));
		goto fail;
	}
	if ((r = image_size(d, &st, err, errlen)))
		goto fail;
	int loop = S_ISREG(st.st_mode) ? loop_sharing(&st, spec->ro) : -1;
	if (loop >= 0) {
		snprintf(err, errlen,
			 "%s is attached to /dev/loop%d (losetup): it cannot be shared "
			 "while either side may write it",
			 spec->path, loop);
		r = -EBUSY;
		goto fail;
	}
	/* Two VMs must not write one image: exclusive for rw, shared for ro. */
	if (flock(d->fd, (spec->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s is in use by another VM (%s)", spec->path,
			 e == EWOULDBLOCK ? "locked" : strerror(e));
		r = -EBUSY;
		goto fail;
	}
	snprintf(d->default_id, sizeof(d->default_id), "kh-%llx-%llx",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	return 0;
fail:
	disk_image_close(d);
	return r;
}

void disk_image_close(struct disk_image *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

int disk_image_flush(struct disk_image *d)
{
	if (d->ro || d->fd < 0)
		return 0;
	return fdatasync(d->fd) < 0 ? -errno : 0;
}

int disk_image_rw(struct disk_image *d, struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
		  bool write)
{
	while (len) {
		ssize_t r = write ? pwritev(d->fd, iov, (int)n, (off_t)off)
				  : preadv(d->fd, iov, (int)n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		len -= (uint64_t)r;
		off += (uint64_t)r;
		uint64_t skip = (uint64_t)r; /* move past what was done */
		while (n && skip >= iov->iov_len) {
			skip -= iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + skip;
			iov->iov_len -= skip;
		}
	}
	return 0;
}
