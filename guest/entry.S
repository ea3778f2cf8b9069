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

/* Counts an interrupt that arrived while the interrupted context had IF
 * clear, and keeps where (the frame's RIP) and in which handler (`kind`
 * in the top byte); `off` is where the frame's RFLAGS is from %rsp. The
 * handler saved %rax first. */
	.macro count_if_off off, kind
	testl $0x200, \off(%rsp)
	jnz 99f
	lock incq irqs_if_off(%rip)
	mov (\off - 16)(%rsp), %rax
	btsq $(IRQ_WHERE_KIND_SHIFT + \kind), %rax
	mov %rax, irq_if_off_where(%rip)
99:
	.endm

/* LAPIC timer: only wakes the vCPU from hlt; acknowledge and return. */
	.global irq_timer
irq_timer:
	push %rax
	count_if_off 24, IRQ_KIND_TIMER
	mov $0xfee000b0, %eax
	movl $0, (%rax)
	pop %rax
	iretq

	.global irq_spurious
irq_spurious:
	iretq

/* A virtio-mmio device's interrupt: acknowledge it, count, end of
 * interrupt. The line is level-triggered: without the ACK it would fire
 * again at once. */
	.macro virtio_irq name, base, counter, kind
	.global \name
\name:
	push %rax
	push %rdx
	count_if_off 32, \kind
	mov $(\base + 0x60), %eax
	mov (%rax), %edx
	mov $(\base + 0x64), %eax
	mov %edx, (%rax)
	lock incq \counter(%rip)
	mov $0xfee000b0, %eax
	movl $0, (%rax)
	pop %rdx
	pop %rax
	iretq
	.endm

	virtio_irq irq_virtio, VIRTIO_MMIO_BASE, virtio_irqs, IRQ_KIND_DISK /* disk 0 */
	virtio_irq irq_net, (VIRTIO_MMIO_BASE + PC_MAX_DISKS * VIRTIO_MMIO_STRIDE), net_irqs, IRQ_KIND_NET

	.section .bss
	.balign 8
	.global irqs_if_off, irq_if_off_where
irqs_if_off:
	.quad 0
irq_if_off_where:
	.quad 0
	.balign 4096
	.global guest_stacks
guest_stacks:
	.skip GUEST_STACK_SIZE * GUEST_MAX_VCPUS

	.section .note.GNU-stack,"",@progbits
