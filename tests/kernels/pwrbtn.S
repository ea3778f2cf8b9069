/* A synthetic kernel for the ACPI power button (tests/integration/test_linux.py):
 * it does what Linux's ACPI core and button driver do with a fixed power
 * button - route the SCI (GSI 9, level, active high as our MADT's override
 * says) through the IOAPIC, enable PWRBTN_EN in PM1a, wait - and, when the
 * SCI comes with PWRBTN_STS set, acknowledges it and powers off through
 * SLP_TYP S5 | SLP_EN, as `poweroff` in the guest would. Entered by kvmhost
 * in 64-bit mode with the boot protocol's CS 0x10 and identity paging. */
/* Prints with immediates only: on the nested PVM host, loads in this
 * interrupt handler (the string for puts) came back as garbage, while port
 * I/O worked; immediates keep the test about the device, not the host. */
	.macro	say chars:vararg	/* ASCII codes */
	mov	$0x3f8, %dx
	.irp	c, \chars
	mov	$\c, %al
	out	%al, %dx
	.endr
	.endm

	.code64
	.text
	.globl _start
_start:
	lea	stack_top(%rip), %rsp
	mov	$0xff, %al		/* mask both 8259s: the IOAPIC delivers */
	out	%al, $0x21
	out	%al, $0xa1

	lea	idt(%rip), %rdi		/* gate 0x40 -> sci */
	add	$0x40 * 16, %rdi
	lea	sci(%rip), %rax
	mov	%ax, (%rdi)
	movw	$0x10, 2(%rdi)		/* the boot protocol's kernel CS */
	movw	$0x8e00, 4(%rdi)	/* present, DPL 0, 64-bit interrupt gate */
	shr	$16, %rax
	mov	%ax, 6(%rdi)
	shr	$16, %rax
	mov	%eax, 8(%rdi)
	lidt	idtr(%rip)

	mov	$0xfee00000, %ebx	/* LAPIC: software enable */
	movl	$0x1ff, 0xf0(%rbx)
	mov	$0xfec00000, %ecx	/* IOAPIC pin 9: vector 0x40, level, unmasked, APIC 0 */
	movl	$0x22, (%rcx)
	movl	$0x8040, 0x10(%rcx)
	movl	$0x23, (%rcx)
	movl	$0, 0x10(%rcx)

	mov	$0x602, %dx		/* PM1a enable: PWRBTN_EN */
	mov	$0x100, %ax
	out	%ax, %dx
	lea	ready(%rip), %rsi
	call	puts
	sti
1:	hlt
	jmp	1b

sci:
	mov	$0x600, %dx		/* PM1a status */
	in	%dx, %ax
	test	$0x100, %ax
	jz	2f
	mov	$0x100, %ax		/* write 1 to clear PWRBTN_STS */
	out	%ax, %dx
	say	112, 119, 114, 98, 116, 110, 58, 32, 112, 114, 101, 115, 115, 101, 100, 10	/* "pwrbtn: pressed\n" */
	mov	$0x604, %dx		/* PM1a control: SLP_TYP 5 | SLP_EN */
	mov	$0x3400, %ax
	out	%ax, %dx
	jmp	3f
2:	say	112, 119, 114, 98, 116, 110, 58, 32, 115, 112, 117, 114, 105, 111, 117, 115, 10	/* "pwrbtn: spurious\n" */
3:	cli
	hlt
	jmp	3b

puts:	mov	$0x3f8, %dx
4:	lodsb
	test	%al, %al
	jz	5f
	out	%al, %dx
	jmp	4b
5:	ret

ready:	.asciz	"pwrbtn: ready\n"

	.data
	.balign	16
idtr:	.word	256 * 16 - 1
	.quad	idt
	.balign	16
idt:	.fill	256 * 16, 1, 0
	.balign	16
	.fill	4096, 1, 0
stack_top:
