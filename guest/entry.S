/* Entered in 64-bit mode by the VMM: rdi = vCPU index, rsi = vCPU count. */
#include "guest_abi.h"

	.section .text.entry, "ax"
	.global _start
_start:
	cli
	/* Each vCPU takes its own stack: stacks + (index + 1) * GUEST_STACK_SIZE. */
	lea guest_stacks(%rip), %rsp
	mov %rdi, %rax
	inc %rax
	shl $12, %rax
	add %rax, %rsp
	call guest_main
1:	cli
	hlt
	jmp 1b

/* LAPIC timer: only wakes the vCPU from hlt; acknowledge and return. */
	.global irq_timer
irq_timer:
	push %rax
	mov $0xfee000b0, %eax
	movl $0, (%rax)
	pop %rax
	iretq

	.global irq_spurious
irq_spurious:
	iretq

/* virtio-blk (disk 0): acknowledge the device, count, end of interrupt. The
 * line is level-triggered: without the ACK it would fire again at once. */
	.global irq_virtio
irq_virtio:
	push %rax
	push %rdx
	mov $(VIRTIO_MMIO_BASE + 0x60), %eax
	mov (%rax), %edx
	mov $(VIRTIO_MMIO_BASE + 0x64), %eax
	mov %edx, (%rax)
	lock incq virtio_irqs(%rip)
	mov $0xfee000b0, %eax
	movl $0, (%rax)
	pop %rdx
	pop %rax
	iretq

	.section .bss
	.balign 4096
	.global guest_stacks
guest_stacks:
	.skip GUEST_STACK_SIZE * GUEST_MAX_VCPUS

	.section .note.GNU-stack,"",@progbits

/* virtio-net (net 0): the same, for its own status register. */
	.text
	.global irq_net
irq_net:
	push %rax
	push %rdx
	mov $(VIRTIO_MMIO_BASE + GUEST_MAX_DISKS * VIRTIO_MMIO_STRIDE + 0x60), %eax
	mov (%rax), %edx
	mov $(VIRTIO_MMIO_BASE + GUEST_MAX_DISKS * VIRTIO_MMIO_STRIDE + 0x64), %eax
	mov %edx, (%rax)
	lock incq net_irqs(%rip)
	mov $0xfee000b0, %eax
	movl $0, (%rax)
	pop %rdx
	pop %rax
	iretq
