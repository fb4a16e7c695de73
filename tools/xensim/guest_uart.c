/*
 * xensim guests: 16550A UART driver.
 */
#include <time.h>

#include "guest_uart.h"

#define RBR 0
#define THR 0
#define DLL 0
#define DLM 1
#define IER 1
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define SCR 7
#define LSR_DR 0x01
#define LSR_THRE 0x20

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int guest_uart_init(struct guest_uart *u, struct guest_bus *b, uint16_t base)
{
    u->bus = b;
    u->base = base;
    u->timeouts = 0;
    /* The scratch register tells "a UART is there" from "nothing decodes
     * these ports" (all-ones), the way Linux's 8250 probe does. */
    uint8_t v;
    if (guest_outb(b, base + SCR, 0x5a) < 0 || guest_inb(b, base + SCR, &v) < 0)
        return -1;
    if (v != 0x5a)
        return guest_bus_fail(b, "uart 0x%x: scratch register reads 0x%02x after writing 0x5a",
                              base, v);
    if (guest_outb(b, base + LCR, 0x80) < 0 || guest_outb(b, base + DLL, 1) < 0 ||
        guest_outb(b, base + DLM, 0) < 0 || guest_outb(b, base + LCR, 0x03) < 0 ||
        guest_outb(b, base + FCR, 0x07) < 0 || guest_outb(b, base + MCR, 0x0b) < 0 ||
        guest_outb(b, base + IER, 0) < 0)
        return -1;
    if (guest_inb(b, base + LCR, &v) < 0)
        return -1;
    if (v != 0x03)
        return guest_bus_fail(b, "uart 0x%x: LCR reads 0x%02x after writing 0x03", base, v);
    return 0;
}

int guest_uart_put(struct guest_uart *u, uint8_t c)
{
    int64_t deadline = now_ms() + u->bus->timeout_ms;
    for (;;) {
        uint8_t lsr;
        if (guest_inb(u->bus, u->base + LSR, &lsr) < 0)
            return -1;
        if (lsr == 0xff)
            return guest_bus_fail(u->bus, "uart 0x%x: LSR reads all-ones", u->base);
        if (lsr & LSR_THRE)
            return guest_outb(u->bus, u->base + THR, c);
        if (now_ms() > deadline) {
            u->timeouts++;
            return guest_bus_fail(u->bus, "uart 0x%x: THRE not set within %d ms", u->base,
                                  u->bus->timeout_ms);
        }
    }
}

int guest_uart_get(struct guest_uart *u, uint8_t *c, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        uint8_t lsr;
        if (guest_inb(u->bus, u->base + LSR, &lsr) < 0)
            return -1;
        if (lsr == 0xff)
            return guest_bus_fail(u->bus, "uart 0x%x: LSR reads all-ones", u->base);
        if (lsr & LSR_DR)
            return guest_inb(u->bus, u->base + RBR, c) < 0 ? -1 : 1;
        if (now_ms() > deadline)
            return 0;
    }
}
