/* The host-wide VM list: every running VM holds a lock file and a control
 * socket in one runtime directory; `kvmhost list` walks it. */
#ifndef KVMHOST_RUNDIR_H
#define KVMHOST_RUNDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define VM_NAME_MAX 64

/* 1-64 of A-Z a-z 0-9 . _ -, not starting with . or -: safe as a file name. */
bool rundir_valid_name(const char *name);

/* $KVMHOST_RUNDIR, else /run/kvmhost as root, else $XDG_RUNTIME_DIR/kvmhost. */
int rundir_path(char *buf, size_t len, bool create);

/* Where managed saves live: $KVMHOST_STATEDIR, else /var/lib/kvmhost as
 * root, else $XDG_STATE_HOME/kvmhost (~/.local/state/kvmhost). */
int statedir_path(char *buf, size_t len, bool create);
/* NAME's managed-save file in it. */
int statedir_save_path(const char *name, char *buf, size_t len);
/* Calls fn for each managed save, by name. */
int statedir_for_each_saved(void (*fn)(const char *name, const char *path, void *opaque),
			    void *opaque);

struct rundir_claim {
	char dir[PATH_MAX];
	char name[80];
	int lock_fd;
	bool linked; /* NAME.sock is a symlink to a --socket path */
};

/* Takes NAME for this process: -EADDRINUSE if a live VM holds it. */
int rundir_claim(struct rundir_claim *c, const char *name);
/* Path of NAME's socket in the directory. */
int rundir_socket_path(const char *dir, const char *name, char *buf, size_t len);
/* Points NAME.sock at a socket elsewhere (for --socket). */
int rundir_link_socket(struct rundir_claim *c, const char *target);
void rundir_release(struct rundir_claim *c);

/* Calls fn for each live VM's name; removes entries whose owner is dead. */
int rundir_for_each(const char *dir, void (*fn)(const char *name, void *opaque), void *opaque);
/* True (and cleans up) if NAME's owner is gone. */
bool rundir_reap_if_dead(const char *dir, const char *name);

#endif
