/* The built-in guest's console on COM1. */
#ifndef KVMHOST_GUEST_CONSOLE_H
#define KVMHOST_GUEST_CONSOLE_H

#include "io.h"

void print_str(const char *s);
/* a, the number x, b, the number y, c: one line from one vCPU. */
void print_line(const char *a, u64 x, const char *b, u64 y, const char *c);

#endif
