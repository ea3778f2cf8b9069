/* The guest's console on the host terminal: stdin goes to the UART, with
 * QEMU's escape (Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A); a terminal is
 * put in raw mode and always given back as it was. */
#ifndef KVMHOST_TERMINAL_H
#define KVMHOST_TERMINAL_H

#include <stdbool.h>
#include <systemd/sd-event.h>
#include <termios.h>

struct vm;

struct terminal {
	struct vm *vm;
	sd_event_source *src;
	struct termios saved;
	bool raw;
	bool escape;
};

int terminal_start(struct terminal *c, struct vm *vm, sd_event *event, int fd);
/* Restores the terminal; safe to call when not started or twice. */
void terminal_stop(struct terminal *c);
/* Feeds host input through the escape handling (exposed for tests). */
void terminal_input(struct terminal *c, const unsigned char *buf, size_t len);

#endif
