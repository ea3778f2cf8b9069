/* The guest's console on the host terminal: stdin goes to the UART, with
 * QEMU's escape (Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A); a terminal is
 * put in raw mode and always given back as it was. */
#ifndef KVMHOST_CONSOLE_H
#define KVMHOST_CONSOLE_H

#include <stdbool.h>
#include <systemd/sd-event.h>
#include <termios.h>

struct vm;

struct console {
	struct vm *vm;
	sd_event_source *src;
	struct termios saved;
	bool raw;
	bool escape;
};

int console_start(struct console *c, struct vm *vm, sd_event *event, int fd);
/* Restores the terminal; safe to call when not started or twice. */
void console_stop(struct console *c);
/* Feeds host input through the escape handling (exposed for tests). */
void console_input(struct console *c, const unsigned char *buf, size_t len);

#endif
