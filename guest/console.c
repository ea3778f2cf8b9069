/* The built-in guest's console: whole lines to COM1, one exit each, never
 * interleaved between vCPUs. */
#include "console.h"

static volatile int print_lock;

/* One exit per line: the UART takes the whole string through rep outsb. */
static void puts_raw(const char *s, u64 n)
{
	__asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(SERIAL_COM1) : "memory");
}

static u64 fmt_u64(char *buf, u64 v)
{
	char tmp[20];
	u64 n = 0, i = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		buf[i++] = tmp[--n];
	return i;
}

static u64 fmt_str(char *buf, const char *s)
{
	u64 i = 0;
	while (s[i]) {
		buf[i] = s[i];
		i++;
	}
	return i;
}

void print_str(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	puts_raw(s, n);
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

void print_line(const char *a, u64 x, const char *b, u64 y, const char *c)
{
	char buf[128];
	u64 n = fmt_str(buf, a);
	n += fmt_u64(buf + n, x);
	n += fmt_str(buf + n, b);
	n += fmt_u64(buf + n, y);
	n += fmt_str(buf + n, c);
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		__asm__ volatile("pause");
	puts_raw(buf, n);
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}
