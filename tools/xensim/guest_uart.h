/*
 * xensim guests: a 16550A driver as a guest OS's polled console uses it:
 * 8N1 at divisor 1, FIFOs on, transmit only when LSR.THRE says there is
 * room, receive while LSR.DR is set.  Every wait is bounded.
 */
#ifndef XENSIM_GUEST_UART_H
#define XENSIM_GUEST_UART_H

#include "guest_bus.h"

struct guest_uart {
    struct guest_bus *bus;
    uint16_t base;
    uint64_t timeouts;
};

int guest_uart_init(struct guest_uart *u, struct guest_bus *b, uint16_t base);
/* Write one byte once THRE is set (bounded by bus->timeout_ms). */
int guest_uart_put(struct guest_uart *u, uint8_t c);
/* Read one byte; 1 with *c, 0 when none arrived within timeout_ms, -1 error. */
int guest_uart_get(struct guest_uart *u, uint8_t *c, int timeout_ms);

#endif
