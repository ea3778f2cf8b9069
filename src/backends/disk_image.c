#include "backends/disk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

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
