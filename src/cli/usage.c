/* The usage text and exit statuses `kvmhost --help` prints. One string, so
 * that tests/integration/test_bad_input.py can hold README's usage block to
 * it line for line. */
#include "cli/usage.h"

const char usage_text[] =
	"kvmhost run [--name NAME] [--cpus N] [--memory MIB]\n"
	"            [--cpu-pin VCPU=HOSTCPU[,...]] [--vmm-cpus LIST] [--on-cpu-offline migrate|pause]\n"
	"            [--on-host-sleep pause|ignore] [--on-host-shutdown save|poweroff|ignore]\n"
	"            [--on-low-battery save|ignore] [--discard-saved]\n"
	"            [--sandbox on|off] [--user USER]\n"
	"            [--console stdio|none|FILE] [--socket PATH]\n"
	"            [--disk FILE[,ro][,id=NAME]]... [--net tap=NAME|bridge=BR[,mac=MAC][,id=ID]]...\n"
	"            [--device rng]...\n"
	"            [--cpu-features -FEATURE,...|x86-64-v1..v4]\n"
	"            [--kernel FILE [--initrd FILE] [--cmdline STR]\n"
	"             [--kernel-decompress host|guest] [--on-reboot exit|restart]]\n"
	"  without --kernel, the built-in test guest:\n"
	"            [--heartbeat-us N] [--print-every N]\n"
	"            [--guest-mode heartbeat|crash|wild-io|pio-bench|disk|disk-bench|ring0-bench|memcheck|\n"
	"                          virtio-replay] [--guest-blob FILE]\n"
	"            [--guest-ip ADDR] [--guest-ping ADDR]\n"
	"            [--disk-blocks N] [--disk-request-kib K] [--disk-flush-every N]\n"
	"            [--disk-generation N] [--memcheck-mib N] [--memcheck-dirty PAGES_PER_S]\n"
	"kvmhost run --restore FILE [--name NAME] [--cpu-pin ...] [--vmm-cpus LIST]\n"
	"            [--on-cpu-offline ...] [--on-host-sleep ...] [--on-host-shutdown ...]\n"
	"            [--on-low-battery ...] [--console ...] [--socket PATH]\n"
	"kvmhost run --incoming unix:PATH|tcp:HOST:PORT [--name NAME] [host-side options]\n"
	"kvmhost ctl NAME status|pause|resume|quit|poweroff|regs|events [--json] [--timeout SEC]\n"
	"kvmhost ctl NAME pin VCPU=HOSTCPU[,...]\n"
	"kvmhost ctl NAME save FILE [--keep-running] [--json]\n"
	"kvmhost ctl NAME migrate unix:PATH|tcp:HOST:PORT [--max-downtime MS] [--json]\n"
	"kvmhost ctl NAME net-link ID up|down\n"
	"kvmhost ctl NAME|--all host-sleep prepare|resume\n"
	"kvmhost list [--all] [--json] [--timeout SEC]\n"
	"kvmhost discard NAME\n";

void usage_print(FILE *f)
{
	fprintf(f, "usage:\n%s\n", usage_text);
	fprintf(f, "Exit status of run: 0 guest powered off or VM stopped on request, 1 error,\n"
		   "2 bad usage, 3 /dev/kvm missing or not permitted, 4 name in use,\n"
		   "5 a disk cannot be used (missing, a directory, read-only, locked),\n"
		   "6 the kernel or initrd cannot be booted, 7 the snapshot or migration\n"
		   "stream cannot be used, 8 a tap, bridge or MAC cannot be used,\n"
		   "10 guest crashed (triple fault), 11 unexpected exit, 12 guest reset,\n"
		   "13 a thread made a system call its sandbox denies.\n");
}
