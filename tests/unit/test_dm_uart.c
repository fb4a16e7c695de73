/*
 * The 16550A UART (dev_uart) on real modules: ports through a dm_io space,
 * ISA IRQ 4 through dm_irq gated by librunstate, a socketpair chardev whose
 * far end the test reads slowly.  A "guest" here is a loop of port
 * accesses that, like Linux's 8250 driver, writes only when LSR.THRE says
 * there is room.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dev_uart.h"

#define COM1 0x3f8
#define THR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

typedef struct fx {
    dm_loop *loop;
    dm_io_space *pio;
    dm_irq *irq;
    rs_vm *vm;
    dm_chardev *chr;
    uart *u;
    int far;                     /* the test's end of the socketpair */
    int raises;                  /* IRQ 4 rising edges seen by the back-end */
    bool level;
} fx;

static fx F;

static int rec_isa(void *opaque, unsigned irq, bool level)
{
    assert_int_equal(irq, 4);
    if (level && !F.level)
        F.raises++;
    F.level = level;
    return 0;
}

static const dm_irq_backend be = { rec_isa, NULL };

static uint8_t inb(unsigned reg)
{
    uint64_t v;
    assert_int_equal(dm_io_read(F.pio, COM1 + reg, 1, &v), 0);
    return (uint8_t)v;
}

static void outb(unsigned reg, uint8_t v)
{
    assert_int_equal(dm_io_write(F.pio, COM1 + reg, 1, v), 0);
}

static void fx_open(int sndbuf)
{
    memset(&F, 0, sizeof(F));
    F.loop = dm_loop_new();
    F.pio = dm_io_space_new(DM_IO_PORT);
    F.irq = dm_irq_new(&be, NULL);
    F.vm = rs_vm_new();
    assert_int_equal(dm_irq_attach_runstate(F.irq, F.vm, 0), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (sndbuf) {
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof(sndbuf));
    }
    F.far = sv[1];
    assert_int_equal(fcntl(F.far, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(dm_chardev_from_fd(F.loop, sv[0], "test", &F.chr), 0);
    assert_int_equal(uart_new(F.loop, F.pio, COM1, F.irq, 4, F.chr, &F.u), 0);
    assert_int_equal(uart_attach_runstate(F.u, F.vm, 10), 0);
}

static void fx_start(void)
{
    rs_err err;
    assert_int_equal(rs_cont(F.vm, &err), 0);
}

static void fx_stop(void)
{
    rs_err err;
    assert_int_equal(rs_vm_stop(F.vm, RS_PAUSED, &err), 0);
}

static void fx_close(void)
{
    uart_free(F.u);
    dm_chardev_close(F.chr);
    close(F.far);
    dm_irq_free(F.irq);
    rs_vm_free(F.vm);
    dm_io_space_free(F.pio);
    dm_loop_free(F.loop);
}

static int setup(void **state)
{
    (void)state;
    fx_open(0);
    fx_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fx_close();
    return 0;
}

/* Reads what is waiting on the far end (non-blocking). */
static size_t far_read(uint8_t *buf, size_t max)
{
    ssize_t n = read(F.far, buf, max);
    if (n < 0) {
        assert_true(errno == EAGAIN);
        return 0;
    }
    return (size_t)n;
}

static void spin(int n)
{
    for (int i = 0; i < n; i++)
        assert_true(dm_loop_iterate(F.loop, 0) >= 0);
}

/* The test stream: an LCG, so a lost or repeated byte shifts everything
 * after it and cannot line up again by accident. */
static uint8_t stream_byte(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return (uint8_t)(*s >> 16);
}

static void test_reset_values(void **state)
{
    (void)state;
    assert_int_equal(inb(IIR), 0x01);
    assert_int_equal(inb(LSR), 0x60);
    assert_int_equal(inb(MSR), 0xb0);
    assert_int_equal(inb(LCR), 0);
    assert_int_equal(inb(IER), 0);
    outb(LCR, 0x80);
    assert_int_equal(inb(0), 12);              /* divisor latch: 9600 baud */
    assert_int_equal(inb(1), 0);
    outb(0, 1);
    outb(1, 0);
    outb(LCR, 0x03);                           /* 8N1, DLAB off */
    assert_int_equal(inb(LCR), 0x03);
    outb(SCR, 0x5a);
    assert_int_equal(inb(SCR), 0x5a);
    outb(IER, 0xff);
    assert_int_equal(inb(IER), 0x0f);          /* upper bits reserved */
    outb(MCR, 0xff);
    assert_int_equal(inb(MCR), 0x1f);
    /* LSR and MSR writes are ignored. */
    outb(MCR, 0);
    outb(LSR, 0x00);
    outb(MSR, 0x00);
    assert_int_equal(inb(LSR), 0x60);
    assert_int_equal(inb(MSR), 0xb0);
}

static void test_numbered_stream_slow_reader(void **state)
{
    (void)state;
    fx_close();
    fx_open(4096);                /* small socket buffers: the reader is the bottleneck */
    fx_start();
    outb(FCR, 0x07);              /* FIFOs on, both cleared */
    assert_int_equal(inb(IIR) & 0xc0, 0xc0);
    const size_t total = 300000;
    uint32_t wseed = 1, rseed = 1;
    size_t sent = 0, got = 0;
    uint8_t buf[512];
    unsigned iter = 0;
    while (got < total) {
        assert_true(++iter < 10000000);
        /* Guest: a FIFO's worth whenever THRE says it is empty. */
        if (sent < total && (inb(LSR) & 0x20)) {
            for (int i = 0; i < 16 && sent < total; i++, sent++)
                outb(THR, stream_byte(&wseed));
        }
        dm_loop_iterate(F.loop, 0);
        /* Slow reader: a little, now and then. */
        if (iter % 7 == 0) {
            size_t n = far_read(buf, 1 + iter % 97);
            for (size_t i = 0; i < n; i++, got++)
                if (buf[i] != stream_byte(&rseed))
                    fail_msg("byte %zu differs: a byte was lost, repeated or reordered", got);
        }
    }
    spin(10);
    assert_int_equal(far_read(buf, sizeof(buf)), 0);   /* nothing extra */
    assert_int_equal(got, total);
    uart_stats st;
    uart_get_stats(F.u, &st);
    assert_int_equal(st.tx_bytes, total);
    assert_int_equal(st.tx_overruns, 0);
    dm_chardev_stats cs;
    dm_chardev_get_stats(F.chr, &cs);
    assert_int_equal(cs.discarded, 0);
    assert_true(cs.short_writes > 0);          /* the back-pressure really happened */
}

static void test_stopped_vm_no_progress(void **state)
{
    (void)state;
    outb(FCR, 0x07);
    outb(IER, 0x03);              /* RDI + THRI */
    assert_true(F.level);
    assert_int_equal(inb(IIR), 0xc2);          /* THRE interrupt: FIFO empty */
    assert_int_equal(inb(IIR), 0xc1);          /* acknowledged by reading IIR */
    assert_false(F.level);
    int raises = F.raises;

    fx_stop();
    /* The guest keeps writing (Xen's vCPUs still run): answered, held. */
    for (int i = 0; i < 16; i++)
        outb(THR, (uint8_t)('a' + i));
    assert_int_equal(inb(LSR) & 0x60, 0);      /* THRE and TEMT clear: held */
    /* Input arrives while stopped: not taken. */
    assert_int_equal(write(F.far, "xyz", 3), 3);
    spin(50);
    uint8_t buf[64];
    assert_int_equal(far_read(buf, sizeof(buf)), 0);
    assert_int_equal(inb(LSR) & 0x01, 0);
    /* Enabling THRI while stopped: visible in IIR only once there is
     * room; no interrupt reaches the back-end. */
    outb(IER, 0x00);
    outb(IER, 0x03);
    assert_int_equal(F.raises, raises);
    assert_false(F.level);

    fx_start();
    spin(20);
    assert_int_equal(far_read(buf, sizeof(buf)), 16);
    assert_memory_equal(buf, "abcdefghijklmnop", 16);
    assert_int_equal(inb(LSR) & 0x61, 0x61);   /* sent, and the input came in */
    assert_true(F.raises > raises);
    assert_int_equal(inb(0), 'x');
    assert_int_equal(inb(0), 'y');
    assert_int_equal(inb(0), 'z');
}

static void test_receive_trigger_and_timeout(void **state)
{
    (void)state;
    outb(LCR, 0x80);
    outb(0, 1);                   /* 115200 baud: a short character timeout */
    outb(LCR, 0x03);
    outb(FCR, 0xc7);              /* FIFOs on, trigger at 14 */
    outb(IER, 0x01);
    assert_int_equal(write(F.far, "12345", 5), 5);
    /* Below the trigger: no RDA, but the timeout interrupt comes. */
    for (int i = 0; i < 1000 && !F.level; i++)
        dm_loop_iterate(F.loop, 10);
    assert_true(F.level);
    assert_int_equal(inb(IIR), 0xcc);
    char got[32];
    for (int i = 0; i < 5; i++)
        got[i] = (char)inb(0);
    assert_memory_equal(got, "12345", 5);
    assert_int_equal(inb(IIR), 0xc1);
    assert_false(F.level);
    /* 20 bytes: 16 taken (trigger reached -> RDA), 4 wait in the socket. */
    assert_int_equal(write(F.far, "abcdefghijklmnopqrst", 20), 20);
    spin(20);
    assert_int_equal(inb(IIR), 0xc4);
    for (int i = 0; i < 16; i++)
        got[i] = (char)inb(0);
    spin(20);
    for (int i = 16; i < 20; i++) {
        assert_int_equal(inb(LSR) & 1, 1);
        got[i] = (char)inb(0);
    }
    assert_memory_equal(got, "abcdefghijklmnopqrst", 20);
    assert_int_equal(inb(LSR) & 0x1f, 0);      /* no data, no overrun */
    uart_stats st;
    uart_get_stats(F.u, &st);
    assert_int_equal(st.rx_overruns, 0);
    assert_int_equal(st.rx_bytes, 25);
}

static void test_loopback_and_errors(void **state)
{
    (void)state;
    outb(MCR, 0x1f);              /* loopback, all modem outputs on */
    assert_int_equal(inb(MSR) & 0xf0, 0xf0);
    outb(MCR, 0x12);              /* loopback, RTS only */
    assert_int_equal(inb(MSR) & 0xf0, 0x10);
    outb(THR, 0x42);
    assert_int_equal(inb(LSR) & 0x01, 1);
    assert_int_equal(inb(0), 0x42);
    /* Nothing went out on the wire. */
    spin(5);
    uint8_t buf[8];
    assert_int_equal(far_read(buf, sizeof(buf)), 0);
    /* 16450 mode: a second byte before the first is read overruns. */
    outb(IER, 0x04);              /* line status interrupt */
    outb(THR, 1);
    outb(THR, 2);
    assert_int_equal(inb(IIR), 0x06);
    assert_true(F.level);
    assert_int_equal(inb(LSR) & 0x03, 0x03);   /* DR + OE */
    assert_int_equal(inb(LSR) & 0x02, 0);      /* OE cleared by the read */
    assert_int_equal(inb(0), 1);
    assert_false(F.level);
    outb(MCR, 0);
}

static void test_odd_sizes_and_offsets(void **state)
{
    (void)state;
    uint64_t v;
    /* 16-bit access to the divisor latch covers DLL and DLM. */
    outb(LCR, 0x80);
    assert_int_equal(dm_io_write(F.pio, COM1, 2, 0x0180), 0);
    assert_int_equal(dm_io_read(F.pio, COM1, 2, &v), 0);
    assert_int_equal(v, 0x0180);
    outb(LCR, 0x03);
    /* 16-bit write at an odd port: LCR then MCR. */
    assert_int_equal(dm_io_write(F.pio, COM1 + 3, 2, 0x0b03), 0);
    assert_int_equal(inb(LCR), 0x03);
    assert_int_equal(inb(MCR), 0x0b);
    /* Crossing the end of the 8 ports: not the UART's (unclaimed). */
    assert_int_equal(dm_io_read(F.pio, COM1 + 6, 4, &v), -ENOENT);
    assert_int_equal(v, 0xffffffff);
    assert_int_equal(dm_io_write(F.pio, COM1 + 7, 2, 0), -ENOENT);
    assert_int_equal(dm_io_read(F.pio, COM1, 3, &v), -EINVAL);
    /* Every register, every byte value: nothing crashes, IER/MCR stay in range. */
    for (unsigned reg = 0; reg < 8; reg++)
        for (unsigned val = 0; val < 256; val++) {
            outb(reg, (uint8_t)val);
            (void)inb(reg);
        }
    assert_int_equal(inb(IER) & 0xf0, 0);
    assert_int_equal(inb(MCR) & 0xe0, 0);
    uart_stats st;
    uart_get_stats(F.u, &st);
    (void)st;
}

/* Saves the UART with bytes held in both FIFOs while stopped, loads it into
 * a new UART on a new chardev, starts: the held bytes come out there. */
static void test_save_load(void **state)
{
    (void)state;
    outb(FCR, 0x07);
    outb(IER, 0x01);
    outb(SCR, 0x77);
    assert_int_equal(write(F.far, "RX", 2), 2);
    spin(10);
    fx_stop();
    for (int i = 0; i < 5; i++)
        outb(THR, (uint8_t)('0' + i));
    dm_state_reg *reg = dm_state_reg_new();
    assert_int_equal(uart_register_state(F.u, reg, 0), 0);
    uint8_t *file;
    size_t len;
    char err[256];
    assert_int_equal(dm_state_save_mem(reg, &file, &len, err, sizeof(err)), 0);
    dm_state_reg_free(reg);
    /* The old dm never sends them: it is destroyed while stopped. */
    fx_close();

    fx_open(0);
    reg = dm_state_reg_new();
    assert_int_equal(uart_register_state(F.u, reg, 0), 0);
    assert_int_equal(dm_state_load_mem(reg, file, len, err, sizeof(err)), 0);
    assert_int_equal(inb(SCR), 0x77);
    assert_int_equal(inb(IER), 0x01);
    assert_int_equal(inb(LSR) & 0x61, 0x01);   /* RX data, TX held */
    spin(5);
    uint8_t buf[16];
    assert_int_equal(far_read(buf, sizeof(buf)), 0);   /* prelaunch: still held */
    fx_start();
    spin(10);
    assert_int_equal(far_read(buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "01234", 5);
    assert_int_equal(inb(0), 'R');
    assert_int_equal(inb(0), 'X');

    /* Bad files: each refused naming the field, nothing applied. */
    static const struct { size_t off; uint8_t val; const char *field; } bad[] = {
        { 2, 0x10, "ier" },       /* payload offsets: divisor(2) ier lcr mcr lsr msr scr fcr ... */
        { 4, 0x20, "mcr" },
        { 5, 0x01, "lsr" },
        { 8, 0x02, "fcr" },
        { 9, 2, "thr_ipending" },
        { 11, 17, "rx_count" },
        { 28, 200, "tx_count" },
    };
    /* The payload starts after the 16-byte header and the section header
     * (22 bytes + "serial"). */
    size_t payload = 16 + 22 + 6;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, file, len);
        copy[payload + bad[i].off] = bad[i].val;
        /* Fix both CRCs so only the field check can refuse it. */
        uint32_t plen = (uint32_t)(len - payload - 12);
        uint32_t crc = dm_crc32(0, copy + payload, plen);
        for (int k = 0; k < 4; k++)
            copy[payload - 4 + k] = (uint8_t)(crc >> (8 * k));
        crc = dm_crc32(0, copy, len - 4);
        for (int k = 0; k < 4; k++)
            copy[len - 4 + k] = (uint8_t)(crc >> (8 * k));
        outb(SCR, 0x11);
        assert_int_equal(dm_state_load_mem(reg, copy, len, err, sizeof(err)), -EINVAL);
        char want[64];
        snprintf(want, sizeof(want), "field '%s'", bad[i].field);
        if (!strstr(err, want))
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, want);
        assert_int_equal(inb(SCR), 0x11);      /* nothing applied */
        free(copy);
    }
    /* 16450 mode allows one byte per FIFO only. */
    dm_state_reg_free(reg);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reset_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbered_stream_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_vm_no_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receive_trigger_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_sizes_and_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
