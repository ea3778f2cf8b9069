/* The ACPI tables kvmhost emits, as the ACPI specification (6.3) lays them
 * out: packed, little-endian as x86 is, with the sizes and the offsets the
 * specification fixes checked at compile time. Field names follow the
 * specification's; only the tables and MADT entries kvmhost writes are here
 * (an XSDT and no RSDT: the RSDP's revision 2 points the guest at it). */
#ifndef KVMHOST_ACPI_SPEC_H
#define KVMHOST_ACPI_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_RSDP_SIGNATURE "RSD PTR "

/* Root System Description Pointer, revision 2. */
struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* of the ACPI 1.0 part: up to `length` */
	char oem_id[6];
	uint8_t revision; /* 2: use the XSDT */
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* of all `length` bytes */
	uint8_t reserved[3];
} __attribute__((packed));

/* The header every System Description Table starts with. */
struct acpi_sdt_header {
	char signature[4];
	uint32_t length; /* of the whole table, header included */
	uint8_t revision;
	uint8_t checksum; /* makes the table's bytes sum to zero */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO  1
#define ACPI_GAS_ACCESS_U8  1
#define ACPI_GAS_ACCESS_U16 2
#define ACPI_GAS_ACCESS_U32 3

#define ACPI_XSDT_ENTRIES 2 /* the FADT and the MADT */

struct acpi_xsdt {
	struct acpi_sdt_header header;
	uint64_t entry[ACPI_XSDT_ENTRIES];
} __attribute__((packed));

/* Firmware ACPI Control Structure: no SDT header, 64-byte aligned. */
struct acpi_facs {
	char signature[4];
	uint32_t length;
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved[3];
	uint32_t ospm_flags;
	uint8_t reserved2[24];
} __attribute__((packed));

/* Fixed ACPI Description Table, revision 6. */
struct acpi_fadt {
	struct acpi_sdt_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved2;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t fadt_minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

/* FADT flags and IA-PC boot architecture flags. */
#define ACPI_FADT_WBINVD	 (1u << 0)
#define ACPI_FADT_C1_SUPPORTED	 (1u << 2)
#define ACPI_FADT_POWER_BUTTON	 (1u << 4) /* set: no fixed-feature power button */
#define ACPI_FADT_SLEEP_BUTTON	 (1u << 5) /* set: no fixed-feature sleep button */
#define ACPI_FADT_RESET_REGISTER (1u << 10)
#define ACPI_FADT_8042		 (1u << 1) /* IA-PC boot architecture flags */
#define ACPI_FADT_NO_VGA	 (1u << 2)
#define ACPI_FADT_NO_CMOS_RTC	 (1u << 5)

/* Multiple APIC Description Table: this header, then the entries. */
struct acpi_madt {
	struct acpi_sdt_header header;
	uint32_t local_apic_address;
	uint32_t flags;
} __attribute__((packed));

#define ACPI_MADT_PCAT_COMPAT 1u /* 8259s are there too */

/* MADT entry types: the first byte of every entry, its length the second. */
#define ACPI_MADT_LOCAL_APIC	     0
#define ACPI_MADT_IO_APIC	     1
#define ACPI_MADT_INTERRUPT_OVERRIDE 2
#define ACPI_MADT_LOCAL_APIC_NMI     4

struct acpi_madt_entry_header {
	uint8_t type;
	uint8_t length;
} __attribute__((packed));

#define ACPI_MADT_ENABLED 1u

struct acpi_madt_local_apic {
	struct acpi_madt_entry_header header;
	uint8_t processor_id;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_io_apic {
	struct acpi_madt_entry_header header;
	uint8_t io_apic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t global_irq_base;
} __attribute__((packed));

/* MPS INTI flags of an override or an NMI entry; 0: as the bus has it. */
#define ACPI_MADT_POLARITY_CONFORMS   0x0
#define ACPI_MADT_POLARITY_ACTIVE_HI  0x1
#define ACPI_MADT_POLARITY_ACTIVE_LOW 0x3
#define ACPI_MADT_TRIGGER_CONFORMS    (0x0 << 2)
#define ACPI_MADT_TRIGGER_EDGE	      (0x1 << 2)
#define ACPI_MADT_TRIGGER_LEVEL	      (0x3 << 2)

struct acpi_madt_interrupt_override {
	struct acpi_madt_entry_header header;
	uint8_t bus; /* 0: ISA */
	uint8_t source_irq;
	uint32_t global_irq;
	uint16_t flags;
} __attribute__((packed));

#define ACPI_MADT_ALL_PROCESSORS 0xff

struct acpi_madt_local_apic_nmi {
	struct acpi_madt_entry_header header;
	uint8_t processor_id;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

/* The sizes and offsets the specification gives. */
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(offsetof(struct acpi_rsdp, length) == 20, "RSDP 1.0 part");
_Static_assert(offsetof(struct acpi_rsdp, xsdt_address) == 24, "RSDP XsdtAddress");
_Static_assert(offsetof(struct acpi_rsdp, extended_checksum) == 32, "RSDP extended checksum");
_Static_assert(sizeof(struct acpi_sdt_header) == 36, "SDT header");
_Static_assert(offsetof(struct acpi_sdt_header, checksum) == 9, "SDT checksum");
_Static_assert(offsetof(struct acpi_sdt_header, oem_id) == 10, "SDT OEMID");
_Static_assert(offsetof(struct acpi_sdt_header, creator_id) == 28, "SDT creator ID");
_Static_assert(sizeof(struct acpi_gas) == 12, "Generic Address Structure");
_Static_assert(offsetof(struct acpi_xsdt, entry) == 36, "XSDT entries");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");
_Static_assert(offsetof(struct acpi_facs, version) == 32, "FACS version");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6");
_Static_assert(offsetof(struct acpi_fadt, firmware_ctrl) == 36, "FADT FIRMWARE_CTRL");
_Static_assert(offsetof(struct acpi_fadt, dsdt) == 40, "FADT DSDT");
_Static_assert(offsetof(struct acpi_fadt, sci_int) == 46, "FADT SCI_INT");
_Static_assert(offsetof(struct acpi_fadt, smi_cmd) == 48, "FADT SMI_CMD");
_Static_assert(offsetof(struct acpi_fadt, pm1a_evt_blk) == 56, "FADT PM1a_EVT_BLK");
_Static_assert(offsetof(struct acpi_fadt, pm1a_cnt_blk) == 64, "FADT PM1a_CNT_BLK");
_Static_assert(offsetof(struct acpi_fadt, pm_tmr_blk) == 76, "FADT PM_TMR_BLK");
_Static_assert(offsetof(struct acpi_fadt, pm1_evt_len) == 88, "FADT PM1_EVT_LEN");
_Static_assert(offsetof(struct acpi_fadt, pm1_cnt_len) == 89, "FADT PM1_CNT_LEN");
_Static_assert(offsetof(struct acpi_fadt, p_lvl2_lat) == 96, "FADT P_LVL2_LAT");
_Static_assert(offsetof(struct acpi_fadt, century) == 108, "FADT CENTURY");
_Static_assert(offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "FADT IAPC_BOOT_ARCH");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT Flags");
_Static_assert(offsetof(struct acpi_fadt, reset_reg) == 116, "FADT RESET_REG");
_Static_assert(offsetof(struct acpi_fadt, reset_value) == 128, "FADT RESET_VALUE");
_Static_assert(offsetof(struct acpi_fadt, arm_boot_arch) == 129, "FADT ARM_BOOT_ARCH");
_Static_assert(offsetof(struct acpi_fadt, fadt_minor_version) == 131, "FADT minor version");
_Static_assert(offsetof(struct acpi_fadt, x_firmware_ctrl) == 132, "FADT X_FIRMWARE_CTRL");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, x_pm1a_evt_blk) == 148, "FADT X_PM1a_EVT_BLK");
_Static_assert(offsetof(struct acpi_fadt, x_pm1a_cnt_blk) == 172, "FADT X_PM1a_CNT_BLK");
_Static_assert(offsetof(struct acpi_fadt, x_pm_tmr_blk) == 208, "FADT X_PM_TMR_BLK");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT SLEEP_CONTROL_REG");
_Static_assert(offsetof(struct acpi_fadt, hypervisor_vendor_id) == 268, "FADT hypervisor id");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT header");
_Static_assert(offsetof(struct acpi_madt, flags) == 40, "MADT flags");
_Static_assert(sizeof(struct acpi_madt_local_apic) == 8, "MADT processor local APIC");
_Static_assert(sizeof(struct acpi_madt_io_apic) == 12, "MADT I/O APIC");
_Static_assert(sizeof(struct acpi_madt_interrupt_override) == 10, "MADT interrupt override");
_Static_assert(offsetof(struct acpi_madt_interrupt_override, flags) == 8, "MADT override flags");
_Static_assert(sizeof(struct acpi_madt_local_apic_nmi) == 6, "MADT local APIC NMI");
_Static_assert(offsetof(struct acpi_madt_local_apic_nmi, lint) == 5, "MADT NMI LINT#");

#endif
