/*
 * libFuzzer target: the device-state loader (dm_state_load_mem) with the
 * sections rsdm really registers -- the platform devices (i440FX, PIIX3,
 * PIIX4 ACPI PM, Xen platform device, i8042, reset ports, each PCI
 * function's config space) and a 16550 UART -- so every device's validate
 * and load callbacks see hostile payloads.
 *
 * Properties beyond "no crash":
 *   - a refused file applies nothing: the state saved after the refusal is
 *     byte for byte the state saved before it, and the message is set;
 *   - an accepted file is a fixed point: saving, loading that, and saving
 *     again gives the same bytes.
 *
 * Input: byte 0 bit 0 asks the harness to recompute every CRC the bytes
 * after it would need (sections and the whole-file CRC), so the fuzzer
 * reaches the device validators instead of stopping at the checksums;
 * with the bit clear the CRCs are fuzzed too.
 *
 * RSDM_FUZZ_WRITE_SEEDS=DIR makes the first run write the seed corpus
 * (files saved from this very machine) into DIR.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dev_uart.h"
#include "dm_chardev.h"
#include "fuzz_harness.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_log.h"
#include "dm_loop.h"
#include "dm_pci.h"
#include "dm_platform.h"
#include "dm_statefile.h"
#include "runstate.h"

static struct {
    dm_loop *loop;
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_bus *pci;
    rs_vm *vm;
    dm_state_reg *reg;
    dm_platform *plat;
    dm_chardev *chr;
    uart *com1;
    int far;
} M;

static int irq_isa(void *o, unsigned irq, bool level) { (void)o; (void)irq; (void)level; return 0; }
static int irq_intx(void *o, unsigned s, unsigned i, bool l) { (void)o; (void)s; (void)i; (void)l; return 0; }
static const dm_irq_backend irq_be = { irq_isa, irq_intx };
static int be_route(void *o, unsigned link, unsigned irq) { (void)o; (void)link; (void)irq; return 0; }
static int be_shutdown(void *o, dm_platform_shutdown w) { (void)o; (void)w; return 0; }
static int be_s_state(void *o, unsigned s) { (void)o; (void)s; return 0; }
static const dm_platform_backend plat_be = { be_route, be_shutdown, be_s_state };

/* The machine the dm builds for a traditional HVM guest, less Xen. */
static void machine_build(void)
{
    char err[256];
    M.loop = dm_loop_new();
    M.pio = dm_io_space_new(DM_IO_PORT);
    M.mmio = dm_io_space_new(DM_IO_MMIO);
    M.irq = dm_irq_new(&irq_be, NULL);
    M.vm = rs_vm_new();
    if (!M.loop || !M.pio || !M.mmio || !M.irq || !M.vm)
        fuzz_die("machine", "out of memory");
    if (dm_irq_attach_runstate(M.irq, M.vm, 0) < 0)
        fuzz_die("dm_irq_attach_runstate", "failed");
    M.pci = dm_pci_bus_new(M.pio, M.mmio, M.irq);
    M.reg = dm_state_reg_new();
    if (!M.pci || !M.reg || dm_pci_bus_set_state_reg(M.pci, M.reg) < 0)
        fuzz_die("pci bus", "failed");
    dm_platform_cfg cfg = {
        .pio = M.pio, .pci = M.pci, .irq = M.irq, .vm = M.vm, .state = M.reg, .be = &plat_be,
        .pm1_evt = true,
    };
    if (dm_platform_init(&cfg, &M.plat, err, sizeof(err)) < 0)
        fuzz_die("dm_platform_init", err);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        fuzz_die("socketpair", strerror(errno));
    M.far = sv[1];
    if (dm_chardev_from_fd(M.loop, sv[0], "com1", &M.chr) < 0 ||
        uart_new(M.loop, M.pio, UART_COM1_BASE, M.irq, UART_COM1_IRQ, M.chr, &M.com1) < 0 ||
        uart_attach_runstate(M.com1, M.vm, 10) < 0 || uart_register_state(M.com1, M.reg, 0) < 0)
        fuzz_die("uart", "setup failed");
    rs_err re;
    if (rs_cont(M.vm, &re) < 0)
        fuzz_die("rs_cont", re.msg);
    /* State that is not the reset state, as a guest would leave it: UART
     * line settings and an enabled interrupt, a PCI command register. */
    dm_io_write(M.pio, UART_COM1_BASE + 3, 1, 0x83);   /* DLAB */
    dm_io_write(M.pio, UART_COM1_BASE + 0, 1, 0x01);   /* 115200 */
    dm_io_write(M.pio, UART_COM1_BASE + 3, 1, 0x03);   /* 8N1 */
    dm_io_write(M.pio, UART_COM1_BASE + 1, 1, 0x01);   /* IER: rx */
    dm_io_write(M.pio, UART_COM1_BASE + 7, 1, 0x5a);   /* scratch */
    dm_io_write(M.pio, 0xcf8, 4, 0x80000804u);         /* 00:01.0 command */
    dm_io_write(M.pio, 0xcfc, 2, 0x0007);
}

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

/* Walks the layout dm_statefile.h documents and rewrites each CRC the
 * bytes would need; stops where the structure stops making sense. */
static void fix_crcs(uint8_t *b, size_t len)
{
    size_t off = 16;
    while (off + 4 <= len) {
        uint32_t marker = rd32(b + off);
        if (marker == 0x2e444e45u) {            /* "END." */
            if (off + 12 <= len)
                wr32(b + off + 8, dm_crc32(0, b, off + 8));
            return;
        }
        if (marker != 0x54434553u || off + 6 > len)   /* "SECT" */
            return;
        size_t idl = rd16(b + off + 4);
        size_t h = off + 6 + idl;                 /* instance, version, len, crc */
        if (h + 16 > len)
            return;
        uint32_t plen = rd32(b + h + 8);
        if (plen > len - (h + 16))
            return;
        wr32(b + h + 12, dm_crc32(0, b + h + 16, plen));
        off = h + 16 + plen;
    }
}

static void save(uint8_t **out, size_t *len)
{
    char err[256];
    if (dm_state_save_mem(M.reg, out, len, err, sizeof(err)) < 0)
        fuzz_die("dm_state_save_mem", err);
}

static void write_seed(const char *dir, const char *name, uint8_t flags, const uint8_t *b, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&flags, 1, 1, f) != 1 || (n && fwrite(b, 1, n, f) != n) || fclose(f) != 0)
        fuzz_die(path, "cannot write seed");
}

/* The seeds: a file this machine saved, as is and with the CRC fixing
 * asked for; the same cut short; one with a UART field out of range; the
 * header of a QEMU file. */
static void write_seeds(const char *dir)
{
    uint8_t *f;
    size_t n;
    save(&f, &n);
    write_seed(dir, "saved", 0, f, n);
    write_seed(dir, "saved-fixcrc", 1, f, n);
    write_seed(dir, "truncated", 1, f, n / 2);
    uint8_t *bad = malloc(n);
    if (!bad)
        fuzz_die("seeds", "out of memory");
    memcpy(bad, f, n);
    /* The last section is the UART's (registered last); make its first
     * payload bytes nonsense. */
    for (size_t off = n - 12; off > 16; off--)
        if (rd32(bad + off) == 0x54434553u) {
            size_t h = off + 6 + rd16(bad + off + 4);
            memset(bad + h + 16, 0xff, rd32(bad + h + 8) < 4 ? rd32(bad + h + 8) : 4);
            break;
        }
    write_seed(dir, "uart-garbage-fixcrc", 1, bad, n);
    static const uint8_t qevm[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3 };
    write_seed(dir, "qemu-file", 0, qevm, sizeof(qevm));
    free(bad);
    free(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    dm_log_set_level(DM_LOG_ERROR);
    machine_build();
    const char *dir = getenv("RSDM_FUZZ_WRITE_SEEDS");
    if (dir)
        write_seeds(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size - 1 > DM_STATE_MAX_SIZE + 16)
        return 0;
    uint8_t *file = malloc(size - 1 ? size - 1 : 1);
    if (!file)
        return 0;
    memcpy(file, data + 1, size - 1);
    if (data[0] & 1)
        fix_crcs(file, size - 1);

    uint8_t *before, *after;
    size_t nb, na;
    save(&before, &nb);
    char err[512] = "";
    int rc = dm_state_load_mem(M.reg, file, size - 1, err, sizeof(err));
    save(&after, &na);
    if (rc < 0) {
        if (err[0] == '\0' || (rc != -EINVAL && rc != -EFBIG))
            fuzz_die("refused load", err[0] ? "unexpected error code" : "no message");
        if (na != nb || memcmp(before, after, nb) != 0)
            fuzz_die("refused load", "state changed although nothing may be applied");
    } else {
        /* What the devices now hold saves and reloads to itself. */
        if (dm_state_load_mem(M.reg, after, na, err, sizeof(err)) < 0)
            fuzz_die("reloading the state just saved", err);
        uint8_t *again;
        size_t ng;
        save(&again, &ng);
        if (ng != na || memcmp(again, after, na) != 0)
            fuzz_die("accepted load", "save/load/save is not a fixed point");
        free(again);
    }
    free(before);
    free(after);
    free(file);
    return 0;
}
