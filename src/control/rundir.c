/* Where VMs are found: the runtime directory (NAME.lock, flocked by the
 * live VM, and NAME.sock, its control socket; entries whose lock is free
 * belong to a dead VM and are reaped) and the state directory (NAME.kvmh,
 * managed saves). VM names are checked so they are safe as file names. */
#include "control/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

/* The tail of both directory lookups: snprintf's n checked, then mkdir. */
static int dir_made(const char *buf, size_t len, int n, bool create)
{
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* An empty variable counts as unset. */
static const char *env_dir(const char *name)
{
	const char *env = getenv(name);
	return env && *env ? env : NULL;
}

int rundir_path(char *buf, size_t len, bool create)
{
	const char *env = env_dir("KVMHOST_RUNDIR");
	const char *xdg = env_dir("XDG_RUNTIME_DIR");
	int n;
	if (env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/kvmhost");
	else if (xdg)
		n = snprintf(buf, len, "%s/kvmhost", xdg);
	else
		return -ENOENT;
	return dir_made(buf, len, n, create);
}

int statedir_path(char *buf, size_t len, bool create)
{
	const char *env = env_dir("KVMHOST_STATEDIR");
	const char *xdg = env_dir("XDG_STATE_HOME"), *home = env_dir("HOME");
	int n;
	if (env)
		n = snprintf(buf, len, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/var/lib/kvmhost");
	else if (xdg)
		n = snprintf(buf, len, "%s/kvmhost", xdg);
	else if (home)
		n = snprintf(buf, len, "%s/.local/state/kvmhost", home);
	else
		return -ENOENT;
	return dir_made(buf, len, n, create);
}

int statedir_save_path(const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX];
	int r = statedir_path(dir, sizeof(dir), false);
	if (r)
		return r;
	int n = snprintf(buf, len, "%s/%s.kvmh", dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A directory's entry for a VM, and a save's temporary beside it. */
_Static_assert(PATH_MAX + sizeof("/") + VM_NAME_MAX + sizeof(".kvmh.tmp") <= KVMHOST_PATH_MAX,
	       "KVMHOST_PATH_MAX holds a directory and a VM's file in it");

static int entry_path(const char *dir, const char *name, const char *ext, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.%s", dir, name, ext);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int rundir_socket_path(const char *dir, const char *name, char *buf, size_t len)
{
	return entry_path(dir, name, "sock", buf, len);
}

int rundir_claim(struct rundir_claim *c, const char *name)
{
	char path[KVMHOST_PATH_MAX];
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->lock_fd = -1;
	c->linked = false;
	int r = entry_path(c->dir, name, "lock", path, sizeof(path));
	if (r)
		return r;
	for (int tries = 0; tries < 10; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			close(fd);
			return err == EWOULDBLOCK ? -EADDRINUSE : -err;
		}
		/* A lister may have unlinked the file between open and flock:
		 * only a lock on the file that is still there counts. */
		struct stat a, b;
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			c->lock_fd = fd;
			char pid[32];
			int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
			if (ftruncate(fd, 0) == 0)
				(void)write_full(fd, pid, (size_t)n);
			/* The socket of a dead owner may still be there. */
			if (entry_path(c->dir, name, "sock", path, sizeof(path)) == 0)
				unlink(path);
			return 0;
		}
		close(fd);
	}
	return -EAGAIN;
}

int rundir_link_socket(struct rundir_claim *c, const char *target)
{
	char path[KVMHOST_PATH_MAX];
	int r = entry_path(c->dir, c->name, "sock", path, sizeof(path));
	if (r)
		return r;
	unlink(path);
	if (symlink(target, path) < 0)
		return -errno;
	c->linked = true;
	return 0;
}

void rundir_release(struct rundir_claim *c)
{
	if (c->lock_fd < 0)
		return;
	char path[KVMHOST_PATH_MAX];
	if (entry_path(c->dir, c->name, "sock", path, sizeof(path)) == 0)
		unlink(path);
	/* Unlink the lock while still holding it, so no one reaps a live claim. */
	if (entry_path(c->dir, c->name, "lock", path, sizeof(path)) == 0)
		unlink(path);
	close(c->lock_fd);
	c->lock_fd = -1;
}

bool rundir_reap_if_dead(const char *dir, const char *name)
{
	char lock[KVMHOST_PATH_MAX], sock[KVMHOST_PATH_MAX];
	if (entry_path(dir, name, "lock", lock, sizeof(lock)) ||
	    entry_path(dir, name, "sock", sock, sizeof(sock)))
		return false;
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		/* A socket with no lock file at all: its owner is gone. */
		if (errno == ENOENT) {
			unlink(sock);
			return true;
		}
		return false;
	}
	bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
	if (dead) {
		unlink(sock);
		unlink(lock);
	}
	close(fd);
	return dead;
}

/* The names of DIR's entries NAME.EXT, sorted; *out is NULL-free. */
static int names_with_ext(const char *dir, const char *ext, char ***out, size_t *count)
{
	DIR *d = opendir(dir);
	*out = NULL;
	*count = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	char **names = NULL;
	size_t n = 0, el = strlen(ext);
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len <= el || strcmp(e->d_name + len - el, ext))
			continue;
		char **grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown)
			break;
		names = grown;
		names[n] = strndup(e->d_name, len - el);
		if (names[n])
			n++;
	}
	closedir(d);
	/* Stable order for people and tests. */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	*out = names;
	*count = n;
	return 0;
}

int rundir_for_each(const char *dir, void (*fn)(const char *name, void *opaque), void *opaque)
{
	char **names;
	size_t n;
	int r = names_with_ext(dir, ".sock", &names, &n);
	for (size_t i = 0; i < n; i++) {
		if (!rundir_reap_if_dead(dir, names[i]))
			fn(names[i], opaque);
		free(names[i]);
	}
	free(names);
	return r;
}

int statedir_for_each_saved(void (*fn)(const char *name, const char *path, void *opaque),
			    void *opaque)
{
	char dir[PATH_MAX], path[KVMHOST_PATH_MAX];
	int r = statedir_path(dir, sizeof(dir), false);
	if (r)
		return r;
	char **names;
	size_t n;
	r = names_with_ext(dir, ".kvmh", &names, &n);
	for (size_t i = 0; i < n; i++) {
		if (rundir_valid_name(names[i]) &&
		    !statedir_save_path(names[i], path, sizeof(path)))
			fn(names[i], path, opaque);
		free(names[i]);
	}
	free(names);
	return r;
}

bool rundir_valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > VM_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}
