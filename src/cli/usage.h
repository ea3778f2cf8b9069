/* The one usage text: `kvmhost --help` prints it, and a test checks that
 * README's usage block is the same. */
#ifndef KVMHOST_USAGE_H
#define KVMHOST_USAGE_H

#include <stdio.h>

extern const char usage_text[];
void usage_print(FILE *f);

#endif
