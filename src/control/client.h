/* The client side: `kvmhost ctl` and `kvmhost list`. */
#ifndef KVMHOST_CLIENT_H
#define KVMHOST_CLIENT_H

int cmd_ctl(int argc, char **argv);
int cmd_list(int argc, char **argv);
/* `kvmhost discard NAME`: removes NAME's managed save. */
int cmd_discard(int argc, char **argv);

#endif
