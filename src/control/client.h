/* The client side: `kvmhost ctl`, `kvmhost list` and `kvmhost discard`.
 * Each takes its subcommand's arguments (argv[0] is the subcommand) and
 * returns the exit status. */
#ifndef KVMHOST_CLIENT_H
#define KVMHOST_CLIENT_H

int client_ctl(int argc, char **argv);
int client_list(int argc, char **argv);
/* `kvmhost discard NAME`: removes NAME's managed save. */
int client_discard(int argc, char **argv);

#endif
