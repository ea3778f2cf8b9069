#include "virtio/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include "util/util.h"

#define SECTOR 512

struct blk_header {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

int parse_disk_spec(const char *s, struct disk_spec *d, char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	char *copy = strdup(s), *save = NULL;
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int ret = 0;
	/* strtok_r would skip an empty path: ",ro" is not a disk named "ro". */
	char *tok = copy[0] == ',' ? NULL : strtok_r(copy, ",", &save);
	if (!tok || !*tok || strlen(tok) >= sizeof(d->path)) {
		snprintf(err, errlen, "expected FILE[,ro][,id=NAME]");
		ret = -1;
		goto out;
	}
	snprintf(d->path, sizeof(d->path), "%s", tok);
	while ((tok = strtok_r(NULL, ",", &save))) {
		if (!strcmp(tok, "ro")) {
			d->ro = true;
		} else if (!strncmp(tok, "id=", 3) && tok[3] &&
			   strlen(tok + 3) <= VIRTIO_BLK_ID_BYTES) {
			snprintf(d->id, sizeof(d->id), "%s", tok + 3);
		} else {
			snprintf(err, errlen,
				 "unknown disk option '%s' (ro, id=NAME of 1-%d bytes)", tok,
				 VIRTIO_BLK_ID_BYTES);
			ret = -1;
			goto out;
		}
	}
out:
	free(copy);
	return ret;
}

int virtio_blk_open(struct virtio_blk *b, const struct disk_spec *spec, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->ro = spec->ro;
	snprintf(b->path, sizeof(b->path), "%s", spec->path);
	snprintf(b->id, sizeof(b->id), "%s", spec->id);
	int fd = open(spec->path, (spec->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == EISDIR)
			snprintf(err, errlen, "%s is a directory, not a disk image", spec->path);
		else if (!spec->ro && (e == EACCES || e == EPERM || e == EROFS))
			snprintf(err, errlen,
				 "%s cannot be written (%s): add ,ro to use it read-only",
				 spec->path, strerror(e));
		else
			snprintf(err, errlen, "%s: %s", spec->path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", spec->path, strerror(errno));
		close(fd);
		return -EIO;
	}
	uint64_t size;
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) == 0) {
		/* a block device works as well */
	} else {
		snprintf(err, errlen, "%s is not a regular file or block device", spec->path);
		close(fd);
		return -EINVAL;
	}
	if (size < SECTOR) {
		snprintf(err, errlen, "%s is smaller than one 512-byte sector", spec->path);
		close(fd);
		return -EINVAL;
	}
	/* Two VMs must not write one image: exclusive for rw, shared for ro. */
	if (flock(fd, (spec->ro ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s is in use by another VM (%s)", spec->path,
			 e == EWOULDBLOCK ? "locked" : strerror(e));
		close(fd);
		return -EBUSY;
	}
	b->fd = fd;
	b->capacity = size / SECTOR;
	if (!b->id[0]) {
		/* A stable default id: the file's device and inode. */
		snprintf(b->id, sizeof(b->id), "kh-%llx-%llx", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino);
	}
	return 0;
}

void virtio_blk_close(struct virtio_blk *b)
{
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
}

int virtio_blk_flush(struct virtio_blk *b)
{
	if (b->ro || b->fd < 0)
		return 0;
	return fdatasync(b->fd) < 0 ? -errno : 0;
}

static uint64_t blk_features(void *dev)
{
	struct virtio_blk *b = dev;
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
		     (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (b->ro)
		f |= 1ull << VIRTIO_BLK_F_RO;
	return f;
}

static void blk_config_read(void *dev, uint64_t offset, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = dev;
	uint8_t cfg[64] = {0};
	uint64_t cap = b->capacity;
	uint32_t seg_max = VIRTIO_BLK_SEG_MAX, blk_size = SECTOR;
	memcpy(cfg + 0, &cap, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memset(data, 0, len);
	if (offset < sizeof(cfg))
		memcpy(data, cfg + offset, len < sizeof(cfg) - offset ? len : sizeof(cfg) - offset);
}

static int full_rw(int fd, struct iovec *iov, unsigned n, uint64_t off, uint64_t len, bool write)
{
	while (len) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, (off_t)off)
				  : preadv(fd, iov, (int)n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* the image shrank under us */
		len -= (uint64_t)r;
		off += (uint64_t)r;
		/* Move past what was done. */
		uint64_t skip = (uint64_t)r;
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

/* Serves one request; returns bytes written to the driver's buffers. */
static uint32_t blk_request(struct virtio_blk *b, struct virtq_elem *e)
{
	struct blk_header h;
	/* Framing: a 16-byte header the device reads, a status byte it writes,
	 * data in between - in whatever descriptors the driver chose. */
	uint8_t status = VIRTIO_BLK_S_IOERR;
	uint64_t in_data = e->in_len - 1, out_data = e->out_len - sizeof(h);
	uint32_t written = 0;
	struct iovec data[VIRTQ_MAX_SEGS];
	unsigned n;
	iov_copy_from(e->out, e->nout, 0, &h, sizeof(h));

	switch (h.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool write = h.type == VIRTIO_BLK_T_OUT;
		uint64_t len = write ? out_data : in_data;
		if (write && b->ro)
			break;
		/* Whole sectors, not empty, not huge, and inside the disk. */
		if (len == 0 || len % SECTOR || len > VIRTIO_BLK_MAX_REQUEST ||
		    h.sector > b->capacity || len / SECTOR > b->capacity - h.sector)
			break;
		n = write ? iov_slice(e->out, e->nout, sizeof(h), len, data)
			  : iov_slice(e->in, e->nin, 0, len, data);
		if (full_rw(b->fd, data, n, h.sector * SECTOR, len, write))
			break;
		if (write)
			atomic_fetch_add(&b->writes, 1);
		else
			atomic_fetch_add(&b->reads, 1), written = (uint32_t)len;
		status = VIRTIO_BLK_S_OK;
		break;
	}
	case VIRTIO_BLK_T_FLUSH:
		/* Complete only once the data is durable. */
		if (virtio_blk_flush(b) == 0) {
			atomic_fetch_add(&b->flushes, 1);
			status = VIRTIO_BLK_S_OK;
		}
		break;
	case VIRTIO_BLK_T_GET_ID: {
		if (in_data == 0)
			break;
		char id[VIRTIO_BLK_ID_BYTES] = {0};
		memcpy(id, b->id, strnlen(b->id, sizeof(id)));
		uint64_t len = in_data < sizeof(id) ? in_data : sizeof(id);
		written = (uint32_t)iov_copy_to(e->in, e->nin, 0, id, len);
		status = VIRTIO_BLK_S_OK;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (status == VIRTIO_BLK_S_IOERR)
		atomic_fetch_add(&b->errors, 1);
	iov_copy_to(e->in, e->nin, e->in_len - 1, &status, 1);
	return written + 1;
}

static int blk_notify(void *dev, const struct guest_mem *gm, struct virtq *vq)
{
	struct virtio_blk *b = dev;
	int used = 0;
	uint64_t t0 = now_ns();
	/* At most one ring's worth per kick: a driver that keeps refilling
	 * cannot hold the vCPU here forever. */
	for (unsigned k = 0; k < vq->num; k++) {
		static _Thread_local struct virtq_elem e;
		int r = virtq_pop(gm, vq, &e);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		/* No room for a header and a status byte: the driver is broken. */
		if (e.out_len < sizeof(struct blk_header) || e.in_len < 1)
			return -EINVAL;
		virtq_push(gm, vq, e.head, blk_request(b, &e));
		used++;
	}
	atomic_fetch_add(&b->busy_ns, now_ns() - t0);
	return used;
}

const struct virtio_device_ops virtio_blk_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.features = blk_features,
	.config_read = blk_config_read,
	.notify = blk_notify,
};
