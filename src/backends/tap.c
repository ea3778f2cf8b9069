/* The tap backend: `--net` parsed, /dev/net/tun opened with virtio-net
 * headers (IFF_VNET_HDR) so frames and offloads pass through unconverted, a
 * tap created and brought up or added to a bridge as asked, and a stable
 * MAC made from the VM's name where none is given. */
#include "backends/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "util/util.h"

#define VNET_HDR_BYTES 12 /* struct virtio_net_hdr_mrg_rxbuf: every VERSION_1 frame */

static int parse_mac(const char *s, size_t len, uint8_t mac[6])
{
	unsigned v[6];
	char buf[18];
	if (len != 17)
		return -1;
	memcpy(buf, s, 17);
	buf[17] = '\0';
	int n = -1;
	if (sscanf(buf, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &n) != 6 ||
	    n != 17)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	/* A station address: not multicast, not all zeros. */
	return (mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) ? -1 : 0;
}

static int copy_name(char *dst, size_t cap, const char *s, size_t len)
{
	if (!len || len >= cap || memchr(s, '/', len) || memchr(s, ' ', len))
		return -1;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

static int parse_item(const char *s, size_t len, struct net_spec *n)
{
	const char *eq = memchr(s, '=', len);
	if (!eq)
		return -1;
	size_t k = (size_t)(eq - s), vlen = len - k - 1;
	const char *v = eq + 1;
	if (k == 3 && !strncmp(s, "tap", 3))
		return copy_name(n->tap, sizeof(n->tap), v, vlen);
	if (k == 6 && !strncmp(s, "bridge", 6))
		return copy_name(n->bridge, sizeof(n->bridge), v, vlen);
	if (k == 2 && !strncmp(s, "id", 2))
		return copy_name(n->id, sizeof(n->id), v, vlen);
	if (k == 3 && !strncmp(s, "mac", 3)) {
		n->mac_given = true;
		return parse_mac(v, vlen, n->mac);
	}
	return -1;
}

int tap_spec_parse(const char *s, struct net_spec *n, struct error *err)
{
	memset(n, 0, sizeof(*n));
	for (const char *p = s; *p;) {
		size_t len = strcspn(p, ",");
		if (parse_item(p, len, n))
			return error_setf(
				err,
				"'%.*s': expected tap=NAME, bridge=BR, mac=02:xx:xx:xx:xx:xx "
				"(a unicast address) or id=ID",
				(int)len, p);
		p += len + (p[len] == ',');
	}
	if (!n->tap[0] == !n->bridge[0])
		return error_setf(err, "'%s': give tap=NAME or bridge=BR (one of them)", s);
	return 0;
}

void tap_default_mac(const char *name, int index, uint8_t mac[6])
{
	uint32_t h = (uint32_t)crc32(crc32(0, NULL, 0), (const Bytef *)name, (uInt)strlen(name));
	h = (uint32_t)crc32(h, (const Bytef *)&index, sizeof(index));
	/* 0x52 0x54: locally administered, unicast (as QEMU's prefix is). */
	uint8_t m[6] = {0x52,	   0x54, (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8),
			(uint8_t)h};
	memcpy(mac, m, 6);
}

static int ifreq_call(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int r = ioctl(s, req, ifr) < 0 ? -errno : 0;
	close(s);
	return r;
}

static int link_up(const char *name)
{
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = ifreq_call(SIOCGIFFLAGS, &ifr);
	if (r || (ifr.ifr_flags & IFF_UP))
		return r;
	ifr.ifr_flags |= IFF_UP;
	return ifreq_call(SIOCSIFFLAGS, &ifr);
}

static int add_to_bridge(const char *bridge, const char *tap, struct error *err)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", bridge);
	if (stat(path, &st) < 0) {
		error_setf(err, "bridge %s does not exist (in this network namespace)", bridge);
		return -ENODEV;
	}
	struct ifreq ifr = {0};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(tap);
	int r = ifreq_call(SIOCBRADDIF, &ifr);
	if (r)
		error_set_errno(err, -r, "cannot add %s to bridge %s", tap, bridge);
	return r;
}

int tap_open(struct tap *t, const struct net_spec *spec, struct error *err)
{
	memset(t, 0, sizeof(*t));
	t->created = !spec->tap[0] || !if_nametoindex(spec->tap);
	t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (t->fd < 0) {
		int e = errno;
		error_set_errno(err, e, "/dev/net/tun");
		return -e;
	}
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", spec->tap[0] ? spec->tap : "kvmtap%d");
	int hdr = VNET_HDR_BYTES, r;
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		error_setf(err, "tap %s: %s%s", ifr.ifr_name, strerror(-r),
			   r == -EINVAL ? " (a device of another kind has that name)" : "");
		goto err_close;
	}
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		r = -errno;
		error_set_errno(err, -r, "tap %s: virtio-net headers", ifr.ifr_name);
		goto err_close;
	}
	snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
	if (spec->bridge[0]) {
		r = add_to_bridge(spec->bridge, t->name, err);
		if (r)
			goto err_close;
	}
	if (t->created) {
		r = link_up(t->name);
		if (r) {
			error_set_errno(err, -r, "tap %s: cannot bring it up", t->name);
			goto err_close;
		}
	}
	return 0;

err_close:
	tap_close(t);
	return r;
}

int tap_set_offload(struct tap *t, unsigned flags)
{
	return ioctl(t->fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

void tap_close(struct tap *t)
{
	if (t->fd > 0)
		close(t->fd);
	t->fd = -1;
}
