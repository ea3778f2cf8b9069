/* Exit statuses of `kvmhost`. Chosen where the cause is known, carried up
 * with the error, and returned by main. */
#ifndef KVMHOST_EXIT_STATUS_H
#define KVMHOST_EXIT_STATUS_H

enum kvmhost_status {
	STATUS_OK = 0,
	STATUS_ERROR = 1,
	STATUS_USAGE = 2,
	STATUS_NO_KVM = 3,
	STATUS_NAME_IN_USE = 4,
	STATUS_DISK = 5,
	STATUS_BAD_KERNEL = 6,
	STATUS_BAD_SNAPSHOT = 7, /* not usable: format, checksums, CPU, disks */
	STATUS_NET = 8,		 /* a tap or bridge cannot be used, a bad MAC */
	STATUS_GUEST_CRASH = 10,
	STATUS_GUEST_ERROR = 11,
	STATUS_GUEST_RESET = 12,
	STATUS_SANDBOX = 13, /* a thread made a system call its seccomp filter denies */
};

#endif
