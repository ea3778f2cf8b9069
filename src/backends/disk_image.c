/* Raw disk images: opened, sized, locked, read and written. Two VMs must
 * never write one image, so besides the flock there is a gate (an OFD lock
 * on byte 0) that a migration's destination holds until it has the flock,
 * and an image a loop device is also backed by is refused. A read or write
 * does the whole request or fails. */
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

static int open_error(const struct disk_spec *spec, int e, struct error *err)
{
	if (e == EISDIR)
		error_setf(err, "%s is a directory, not a disk image", spec->path);
	else if (!spec->ro && (e == EACCES || e == EPERM || e == EROFS))
		error_setf(err, "%s cannot be written (%s): add ,ro to use it read-only",
			   spec->path, strerror(e));
	else
		error_set_errno(err, e, "%s", spec->path);
	return -e;
}

static int image_size(struct disk_image *d, const struct stat *st, struct error *err)
{
	if (S_ISREG(st->st_mode)) {
		d->size = (uint64_t)st->st_size;
	} else if (!S_ISBLK(st->st_mode) || ioctl(d->fd, BLKGETSIZE64, &d->size) < 0) {
		error_setf(err, "%s is not a regular file or block device", d->path);
		return -EINVAL;
	}
	if (d->size < SECTOR) {
		error_setf(err, "%s is smaller than one 512-byte sector", d->path);
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

/* The gate: an OFD write lock on byte 0, beside the flock. Whoever takes
 * the flock passes the gate first; a migration's destination holds the gate
 * from the start until it has the flock, so in the moment between the
 * source's release and its own take no third process gets in. */
static int set_gate(struct disk_image *d, short type)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
	if (fcntl(d->fd, F_OFD_SETLK, &l) < 0)
		return -errno;
	d->gated = type != F_UNLCK;
	return 0;
}

/* Held briefly by an opener, or by a destination until it locks. */
static int take_gate(struct disk_image *d, struct error *err)
{
	int r = -EAGAIN;
	/* Shared for a read-only image (its fd cannot hold a write lock);
	 * two openers at once pass by turns. */
	for (int i = 0; i < 50 && (r == -EAGAIN || r == -EACCES); i++) {
		if (i)
			usleep(2000);
		r = set_gate(d, d->ro ? F_RDLCK : F_WRLCK);
	}
	if (r == -EAGAIN || r == -EACCES)
		error_setf(err, "%s is in use by another VM (a migration is arriving)", d->path);
	else if (r)
		error_set_errno(err, -r, "%s: cannot lock", d->path);
	return r ? -EBUSY : 0;
}

int disk_image_open(struct disk_image *d, const struct disk_spec *spec, struct error *err)
{
	memset(d, 0, sizeof(*d));
	d->ro = spec->ro;
	d->path = spec->path;
	/* O_NONBLOCK so that a FIFO cannot hang the open (it is refused below);
	 * it changes nothing for files and block devices. */
	d->fd = open(spec->path, (spec->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (d->fd < 0)
		return open_error(spec, errno, err);
	struct stat st;
	int r;
	if (fstat(d->fd, &st) < 0) {
		r = -errno;
		error_set_errno(err, -r, "%s", spec->path);
		goto fail;
	}
	r = image_size(d, &st, err);
	if (r)
		goto fail;
	int loop = S_ISREG(st.st_mode) ? loop_sharing(&st, spec->ro) : -1;
	if (loop >= 0) {
		error_setf(err,
			   "%s is attached to /dev/loop%d (losetup): it cannot be shared "
			   "while either side may write it",
			   spec->path, loop);
		r = -EBUSY;
		goto fail;
	}
	r = take_gate(d, err);
	if (r)
		goto fail;
	if (!spec->lock_later) {
		r = disk_image_lock(d, err);
		if (r)
			goto fail;
	}
	snprintf(d->default_id, sizeof(d->default_id), "kh-%llx-%llx",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	return 0;
fail:
	disk_image_close(d);
	return r;
}

int disk_image_lock(struct disk_image *d, struct error *err)
{
	/* Two VMs must not write one image: exclusive for rw, shared for ro. */
	if (flock(d->fd, (d->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int e = errno;
		error_setf(err, "%s is in use by another VM (%s)", d->path,
			   e == EWOULDBLOCK ? "locked" : strerror(e));
		return -EBUSY;
	}
	if (d->gated)
		(void)set_gate(d, F_UNLCK); /* cannot fail for a lock we hold */
	return 0;
}

void disk_image_unlock(struct disk_image *d)
{
	if (d->fd >= 0 && flock(d->fd, LOCK_UN) < 0)
		log_warn("%s: cannot unlock: %s", d->path, strerror(errno));
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
