/* The host terminal as the guest's console: stdin read on the main loop
 * and fed to the UART through the Ctrl-A escape; a terminal is put in raw
 * mode (output processing kept) and restored on every way out. */
#include "cli/terminal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/vm.h"
#include "util/event.h"
#include "util/util.h"

#define ESCAPE 0x01 /* Ctrl-A */

void terminal_input(struct terminal *c, const unsigned char *buf, size_t len)
{
	unsigned char out[4096];
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = buf[i];
		if (c->escape) {
			c->escape = false;
			if (ch == 'x' || ch == 'X') {
				vm_request_exit(c->vm, VM_EXIT_QUIT, 0);
				continue;
			}
			if (ch != ESCAPE && n < sizeof(out))
				out[n++] = ESCAPE; /* not an escape after all */
		} else if (ch == ESCAPE) {
			c->escape = true;
			continue;
		}
		if (n < sizeof(out))
			out[n++] = ch;
	}
	/* The UART holds 4 KiB; beyond that a paste is cut, as on a real line. */
	vm_console_input(c->vm, out, (unsigned)n);
}

static int on_input(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct terminal *c = userdata;
	(void)revents;
	unsigned char buf[1024];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		event_source_enable(s, SD_EVENT_OFF); /* EOF: the guest just gets no more */
		return 0;
	}
	terminal_input(c, buf, (size_t)n);
	return 0;
}

int terminal_start(struct terminal *c, struct vm *vm, sd_event *event, int fd)
{
	memset(c, 0, sizeof(*c));
	c->vm = vm;
	if (isatty(fd) && tcgetattr(fd, &c->saved) == 0) {
		struct termios raw = c->saved;
		cfmakeraw(&raw);
		raw.c_oflag |= OPOST | ONLCR; /* keep output as the guest means it */
		if (tcsetattr(fd, TCSANOW, &raw) == 0)
			c->raw = true;
	}
	int r = sd_event_add_io(event, &c->src, fd, EPOLLIN, on_input, c);
	if (r < 0) {
		terminal_stop(c);
		return r;
	}
	return 0;
}

void terminal_stop(struct terminal *c)
{
	c->src = sd_event_source_disable_unref(c->src);
	if (c->raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &c->saved);
		c->raw = false;
	}
}
