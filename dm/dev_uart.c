/*
 * 16550A UART (dev_uart.h).  Register semantics follow QEMU's hw/char/serial.c
 * (which guests are tested against); the transmit side differs on purpose:
 * QEMU drops a byte its chardev refuses after retries, we keep it.
 *
 * Both FIFOs are rings; in 16450 mode (FCR.FE clear) they hold one byte,
 * which is the holding register.  LSR.DR, THRE and TEMT are derived from
 * the FIFO counts, so they can never disagree with the data.
 */
#include "dev_uart.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dm_log.h"

/* Register offsets */
#define R_RBR_THR 0
#define R_IER 1
#define R_IIR_FCR 2
#define R_LCR 3
#define R_MCR 4
#define R_LSR 5
#define R_MSR 6
#define R_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI 0x08

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_CTI 0x0c
#define IIR_FIFO_BITS 0xc0

#define FCR_FE 0x01
#define FCR_RFR 0x02
#define FCR_XFR 0x04
#define FCR_KEEP 0xc9            /* FE, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_ERRORS 0x1e          /* OE, PE, FE, BI: cleared by reading LSR */
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DELTAS 0x0f
#define MSR_IDLE_LINES 0xb0      /* DCD, DSR, CTS: a terminal is always there */

#define STATE_ID "serial"
#define STATE_VERSION 1u

typedef struct fifo {
    uint8_t buf[UART_FIFO_SIZE];
    unsigned head, count;
} fifo;

struct uart {
    dm_loop *loop;
    dm_io_space *pio;
    dm_io_range *range;
    dm_irq *irq;
    unsigned isa_irq;
    dm_chardev *chr;
    dm_timer *timeout;
    rs_vm *vm;
    rs_handler *h;
    bool running;
    bool pumping;                /* tx_pump is on the stack */

    uint16_t divisor;
    uint8_t ier, lcr, mcr, lsr_err, msr, scr, fcr;
    bool thr_ipending, timeout_ipending;
    fifo rx, tx;
    uart_stats stats;
};

/* ----------------------------------------------------------------- FIFOs */

static unsigned capacity(const uart *u)
{
    return (u->fcr & FCR_FE) ? UART_FIFO_SIZE : 1;
}

static bool fifo_push(fifo *f, unsigned cap, uint8_t b)
{
    if (f->count >= cap)
        return false;
    f->buf[(f->head + f->count) % UART_FIFO_SIZE] = b;
    f->count++;
    return true;
}

static uint8_t fifo_pop(fifo *f)
{
    if (!f->count)
        return 0;
    uint8_t b = f->buf[f->head];
    f->head = (f->head + 1) % UART_FIFO_SIZE;
    f->count--;
    return b;
}

static void fifo_clear(fifo *f)
{
    f->head = f->count = 0;
}

/* ------------------------------------------------------------ interrupts */

static uint8_t lsr(const uart *u)
{
    uint8_t v = u->lsr_err;
    if (u->rx.count)
        v |= LSR_DR;
    if (!u->tx.count)
        v |= LSR_THRE | LSR_TEMT;
    return v;
}

static unsigned trigger_level(const uart *u)
{
    static const unsigned levels[4] = { 1, 4, 8, 14 };
    return levels[u->fcr >> 6];
}

/* The highest-priority pending interrupt (IIR bits 3:0). */
static uint8_t iir_id(const uart *u)
{
    if ((u->ier & IER_RLSI) && u->lsr_err)
        return IIR_RLSI;
    if ((u->ier & IER_RDI) && u->timeout_ipending)
        return IIR_CTI;
    if ((u->ier & IER_RDI) && u->rx.count && (!(u->fcr & FCR_FE) || u->rx.count >= trigger_level(u)))
        return IIR_RDI;
    if ((u->ier & IER_THRI) && u->thr_ipending)
        return IIR_THRI;
    if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

static void update_irq(uart *u)
{
    if (u->irq)
        dm_irq_isa_set(u->irq, u->isa_irq, iir_id(u) != IIR_NO_INT);
}

/* Four character times at the programmed speed: the 16550's receive
 * timeout.  10 bits per character is close enough for every LCR setting. */
static int64_t timeout_ns(const uart *u)
{
    unsigned d = u->divisor ? u->divisor : 1;
    return 4 * (int64_t)10 * 1000000000 * d / 115200;
}

static void arm_timeout(uart *u)
{
    if (u->running && (u->fcr & FCR_FE) && u->rx.count && u->timeout)
        dm_timer_arm(u->timeout, timeout_ns(u), 0);
}

static void on_timeout(void *opaque)
{
    uart *u = opaque;
    if (u->running && u->rx.count) {
        u->timeout_ipending = true;
        update_irq(u);
    }
}

/* -------------------------------------------------------------- transmit */

static void rx_push(uart *u, uint8_t b)
{
    if (!fifo_push(&u->rx, capacity(u), b)) {
        u->lsr_err |= LSR_OE;
        u->stats.rx_overruns++;
    }
}

/* Moves bytes from the transmit FIFO to the chardev (or, in loopback, to
 * the receive FIFO) as far as the chardev takes them. */
static void tx_pump(uart *u)
{
    if (!u->running || u->pumping || !u->tx.count)
        return;
    u->pumping = true;
    while (u->tx.count) {
        if (u->mcr & MCR_LOOP) {
            rx_push(u, fifo_pop(&u->tx));
            arm_timeout(u);
            continue;
        }
        unsigned run = u->tx.count;
        if (run > UART_FIFO_SIZE - u->tx.head)
            run = UART_FIFO_SIZE - u->tx.head;
        size_t n = u->chr ? dm_chardev_write(u->chr, &u->tx.buf[u->tx.head], run) : run;
        u->tx.head = (u->tx.head + (unsigned)n) % UART_FIFO_SIZE;
        u->tx.count -= (unsigned)n;
        u->stats.tx_bytes += n;
        if (n < run)
            break;                /* held: the chardev calls writable() later */
    }
    if (!u->tx.count)
        u->thr_ipending = true;
    u->pumping = false;
    update_irq(u);
}

/* --------------------------------------------------------------- receive */

static size_t chr_can_receive(void *opaque)
{
    uart *u = opaque;
    if (!u->running || (u->mcr & MCR_LOOP))
        return 0;
    return capacity(u) - u->rx.count;
}

static void chr_receive(void *opaque, const uint8_t *buf, size_t len)
{
    uart *u = opaque;
    for (size_t i = 0; i < len; i++)
        rx_push(u, buf[i]);
    u->stats.rx_bytes += len;
    arm_timeout(u);
    update_irq(u);
}

static void chr_writable(void *opaque)
{
    tx_pump(opaque);
}

static const dm_chardev_peer uart_peer = { chr_can_receive, chr_receive, chr_writable };

/* ------------------------------------------------------------- registers */

static uint8_t reg_read(uart *u, unsigned off)
{
    uint8_t v;
    switch (off) {
    case R_RBR_THR:
        if (u->lcr & LCR_DLAB)
            return (uint8_t)u->divisor;
        v = fifo_pop(&u->rx);
        u->timeout_ipending = false;
        if (u->rx.count)
            arm_timeout(u);
        else if (u->timeout)
            dm_timer_cancel(u->timeout);
        update_irq(u);
        if (u->chr)
            dm_chardev_accept_input(u->chr);
        return v;
    case R_IER:
        return (u->lcr & LCR_DLAB) ? (uint8_t)(u->divisor >> 8) : u->ier;
    case R_IIR_FCR:
        v = iir_id(u);
        /* Reading IIR acknowledges a THRE interrupt it reports. */
        if (v == IIR_THRI) {
            u->thr_ipending = false;
            update_irq(u);
        }
        return (uint8_t)(v | ((u->fcr & FCR_FE) ? IIR_FIFO_BITS : 0));
    case R_LCR:
        return u->lcr;
    case R_MCR:
        return u->mcr;
    case R_LSR:
        v = lsr(u);
        if (u->lsr_err) {
            u->lsr_err = 0;
            update_irq(u);
        }
        return v;
    case R_MSR:
        if (u->mcr & MCR_LOOP)    /* the modem outputs looped back */
            return (uint8_t)(((u->mcr & 0x0c) << 4) | ((u->mcr & 0x02) << 3) |
                             ((u->mcr & 0x01) << 5));
        v = u->msr;
        if (u->msr & MSR_DELTAS) {
            u->msr &= (uint8_t)~MSR_DELTAS;
            update_irq(u);
        }
        return v;
    default:
        return u->scr;
    }
}

static void write_fcr(uart *u, uint8_t val)
{
    /* Switching the FIFOs on or off clears both (16550A). */
    if ((val ^ u->fcr) & FCR_FE)
        val |= FCR_RFR | FCR_XFR;
    if (val & FCR_RFR) {
        fifo_clear(&u->rx);
        u->timeout_ipending = false;
        if (u->timeout)
            dm_timer_cancel(u->timeout);
    }
    if (val & FCR_XFR) {
        fifo_clear(&u->tx);
        u->thr_ipending = true;
    }
    u->fcr = val & FCR_KEEP;
    update_irq(u);
    if (u->chr)
        dm_chardev_accept_input(u->chr);
}

static void reg_write(uart *u, unsigned off, uint8_t val)
{
    switch (off) {
    case R_RBR_THR:
        if (u->lcr & LCR_DLAB) {
            u->divisor = (uint16_t)((u->divisor & 0xff00) | val);
            return;
        }
        /* A guest that ignores THRE overruns the FIFO, as on hardware. */
        if (!fifo_push(&u->tx, capacity(u), val))
            u->stats.tx_overruns++;
        u->thr_ipending = false;
        tx_pump(u);
        update_irq(u);
        return;
    case R_IER:
        if (u->lcr & LCR_DLAB) {
            u->divisor = (uint16_t)((u->divisor & 0x00ff) | val << 8);
            return;
        }
        {
            uint8_t changed = (uint8_t)((u->ier ^ val) & 0x0f);
            u->ier = val & 0x0f;
            /* Enabling THRI while THR is empty raises it at once (16550A). */
            if (changed & IER_THRI)
                u->thr_ipending = (u->ier & IER_THRI) && !u->tx.count;
        }
        update_irq(u);
        return;
    case R_IIR_FCR:
        write_fcr(u, val);
        return;
    case R_LCR:
        u->lcr = val;
        return;
    case R_MCR: {
        bool was_loop = u->mcr & MCR_LOOP;
        u->mcr = val & MCR_MASK;
        if (was_loop != !!(u->mcr & MCR_LOOP)) {
            tx_pump(u);
            if (u->chr)
                dm_chardev_accept_input(u->chr);
        }
        update_irq(u);
        return;
    }
    case R_LSR:
    case R_MSR:
        return;                   /* factory test registers: ignored, as by QEMU */
    default:
        u->scr = val;
        return;
    }
}

/* Wider accesses are split into byte accesses, as QEMU's memory core does
 * for this device; dm_io keeps them inside the 8 ports. */
static uint64_t io_read(void *opaque, uint64_t off, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)reg_read(opaque, (unsigned)off + i) << (8 * i);
    return v;
}

static void io_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    for (unsigned i = 0; i < size; i++)
        reg_write(opaque, (unsigned)off + i, (uint8_t)(val >> (8 * i)));
}

static const dm_io_ops uart_ops = { .read = io_read, .write = io_write };

/* ------------------------------------------------------------- lifecycle */

static void reset(uart *u)
{
    u->divisor = 12;              /* 9600 baud, the power-on value QEMU uses */
    u->ier = u->lcr = u->mcr = u->lsr_err = u->scr = u->fcr = 0;
    u->msr = MSR_IDLE_LINES;
    u->thr_ipending = false;
    u->timeout_ipending = false;
    fifo_clear(&u->rx);
    fifo_clear(&u->tx);
}

int uart_new(dm_loop *loop, dm_io_space *pio, uint16_t base, dm_irq *irq, unsigned isa_irq,
             dm_chardev *chr, uart **out)
{
    *out = NULL;
    if (!loop || !pio || isa_irq >= DM_IRQ_ISA_LINES)
        return -EINVAL;
    uart *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->loop = loop;
    u->pio = pio;
    u->irq = irq;
    u->isa_irq = isa_irq;
    u->chr = chr;
    reset(u);
    u->timeout = dm_timer_new(loop, on_timeout, u);
    if (!u->timeout) {
        free(u);
        return -ENOMEM;
    }
    int rc = dm_io_register(pio, "uart", base, 8, &uart_ops, u, &u->range);
    if (rc < 0) {
        dm_timer_free(u->timeout);
        free(u);
        return rc;
    }
    if (chr)
        dm_chardev_set_peer(chr, &uart_peer, u);
    *out = u;
    return 0;
}

void uart_free(uart *u)
{
    if (!u)
        return;
    if (u->h)
        rs_handler_del(u->vm, u->h);
    if (u->chr)
        dm_chardev_set_peer(u->chr, NULL, NULL);
    if (u->irq)
        dm_irq_isa_set(u->irq, u->isa_irq, false);
    dm_io_unregister(u->pio, u->range);
    dm_timer_free(u->timeout);
    free(u);
}

void uart_set_running(uart *u, bool running)
{
    u->running = running;
    if (!running) {
        /* No progress while stopped: the timeout is re-armed at start. */
        dm_timer_cancel(u->timeout);
        return;
    }
    tx_pump(u);
    arm_timeout(u);
    if (u->chr)
        dm_chardev_accept_input(u->chr);
    update_irq(u);
}

static void on_state_change(void *opaque, bool running, rs_state state)
{
    (void)state;
    uart_set_running(opaque, running);
}

int uart_attach_runstate(uart *u, rs_vm *vm, int priority)
{
    if (!u || !vm || u->h)
        return -EINVAL;
    u->h = rs_handler_add(vm, on_state_change, u, priority);
    if (!u->h) {
        int e = errno;
        dm_err("uart: cannot add the run-state handler: %s", strerror(e));
        return -e;
    }
    u->vm = vm;
    uart_set_running(u, rs_is_live(vm));
    return 0;
}

void uart_get_stats(const uart *u, uart_stats *out)
{
    *out = u->stats;
}

/* ----------------------------------------------------------- state file */

static void put_fifo(dm_state_wr *w, const fifo *f)
{
    dm_state_put_u8(w, (uint8_t)f->count);
    for (unsigned i = 0; i < UART_FIFO_SIZE; i++)
        dm_state_put_u8(w, i < f->count ? f->buf[(f->head + i) % UART_FIFO_SIZE] : 0);
}

static int uart_save(void *opaque, dm_state_wr *w)
{
    uart *u = opaque;
    dm_state_put_u16(w, u->divisor);
    dm_state_put_u8(w, u->ier);
    dm_state_put_u8(w, u->lcr);
    dm_state_put_u8(w, u->mcr);
    dm_state_put_u8(w, u->lsr_err);
    dm_state_put_u8(w, u->msr);
    dm_state_put_u8(w, u->scr);
    dm_state_put_u8(w, u->fcr);
    dm_state_put_u8(w, u->thr_ipending);
    dm_state_put_u8(w, u->timeout_ipending);
    put_fifo(w, &u->rx);
    put_fifo(w, &u->tx);
    return 0;
}

/* The fields in file order; validate and load read them the same way. */
typedef struct uart_image {
    uint16_t divisor;
    uint8_t ier, lcr, mcr, lsr_err, msr, scr, fcr, thr_ipending, timeout_ipending;
    fifo rx, tx;
} uart_image;

static void get_fifo(dm_state_rd *r, fifo *f, const char *count_name, const char *data_name)
{
    f->head = 0;
    f->count = dm_state_get_u8(r, count_name);
    dm_state_get_bytes(r, f->buf, UART_FIFO_SIZE, data_name);
}

static void read_image(dm_state_rd *r, uart_image *im)
{
    im->divisor = dm_state_get_u16(r, "divisor");
    im->ier = dm_state_get_u8(r, "ier");
    im->lcr = dm_state_get_u8(r, "lcr");
    im->mcr = dm_state_get_u8(r, "mcr");
    im->lsr_err = dm_state_get_u8(r, "lsr");
    im->msr = dm_state_get_u8(r, "msr");
    im->scr = dm_state_get_u8(r, "scr");
    im->fcr = dm_state_get_u8(r, "fcr");
    im->thr_ipending = dm_state_get_u8(r, "thr_ipending");
    im->timeout_ipending = dm_state_get_u8(r, "timeout_ipending");
    get_fifo(r, &im->rx, "rx_count", "rx_fifo");
    get_fifo(r, &im->tx, "tx_count", "tx_fifo");
}

static int uart_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    uart_image im;
    read_image(r, &im);
    unsigned cap = (im.fcr & FCR_FE) ? UART_FIFO_SIZE : 1;
    dm_state_check(r, !(im.ier & 0xf0), "ier", im.ier, "has reserved bits set");
    dm_state_check(r, !(im.mcr & ~MCR_MASK), "mcr", im.mcr, "has reserved bits set");
    dm_state_check(r, !(im.lsr_err & ~LSR_ERRORS), "lsr", im.lsr_err,
                   "has bits other than the error bits set");
    dm_state_check(r, !(im.fcr & ~FCR_KEEP), "fcr", im.fcr, "has write-only or reserved bits set");
    dm_state_check(r, im.thr_ipending <= 1, "thr_ipending", im.thr_ipending, "is not 0 or 1");
    dm_state_check(r, im.timeout_ipending <= 1, "timeout_ipending", im.timeout_ipending,
                   "is not 0 or 1");
    dm_state_check(r, im.rx.count <= cap, "rx_count", im.rx.count,
                   cap == 1 ? "out of range (max 1 with the FIFOs off)" : "out of range (max 16)");
    dm_state_check(r, im.tx.count <= cap, "tx_count", im.tx.count,
                   cap == 1 ? "out of range (max 1 with the FIFOs off)" : "out of range (max 16)");
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void uart_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    uart *u = opaque;
    uart_image im;
    read_image(r, &im);
    u->divisor = im.divisor;
    u->ier = im.ier;
    u->lcr = im.lcr;
    u->mcr = im.mcr;
    u->lsr_err = im.lsr_err;
    u->msr = im.msr;
    u->scr = im.scr;
    u->fcr = im.fcr;
    u->thr_ipending = im.thr_ipending;
    u->timeout_ipending = im.timeout_ipending;
    u->rx = im.rx;
    u->tx = im.tx;
    update_irq(u);
    if (u->running)
        uart_set_running(u, true);
}

int uart_register_state(uart *u, dm_state_reg *reg, uint32_t instance)
{
    return dm_state_register(reg, STATE_ID, instance, STATE_VERSION, uart_save, uart_validate,
                             uart_load, u);
}
