/*
 * A 16550A UART (the PC's COM1 at 0x3f8, ISA IRQ 4) on a dm_chardev.
 *
 * Registers: THR/RBR, IER, IIR (with the FIFO-enabled bits), FCR, LCR with
 * DLAB and the divisor latch, MCR including loopback, LSR, MSR, SCR; 16-byte
 * receive and transmit FIFOs, receive trigger levels and the character
 * timeout interrupt.  Interrupt priorities follow the 16550A data sheet as
 * QEMU implements them (guests are tested against QEMU).
 *
 * No byte lost or duplicated: a byte leaves the transmit FIFO only when
 * the chardev took it.  While the chardev cannot take more, the byte stays
 * (LSR.THRE clear) and the guest waits as it would for a slow line.  Input
 * is read from the chardev only while the receive FIFO has room.
 *
 * While the VM is stopped the UART answers every register access but makes
 * no progress: nothing is sent or received, no timeout fires, and
 * interrupts are held by the dm_irq gate; bytes the guest writes are kept
 * in the FIFO and sent at the next start.
 *
 * [main] throughout.
 */
#ifndef DEV_UART_H
#define DEV_UART_H

#include <stdbool.h>
#include <stdint.h>

#include "dm_chardev.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_loop.h"
#include "dm_statefile.h"
#include "runstate.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4
#define UART_FIFO_SIZE 16

typedef struct uart uart;

/* Registers 8 ports at base in pio and becomes chr's peer.  chr may be
 * NULL (a UART with nothing attached: output discarded).  The UART starts
 * stopped; attach it to the run state or call uart_set_running.  Errors:
 * the dm_io registration's, -ENOMEM. */
int uart_new(dm_loop *loop, dm_io_space *pio, uint16_t base, dm_irq *irq, unsigned isa_irq,
             dm_chardev *chr, uart **out);
/* Unregisters the ports and lowers the IRQ; the chardev stays open. */
void uart_free(uart *u);

/* A change-state handler that calls uart_set_running; the current run
 * state applies at once. */
int uart_attach_runstate(uart *u, rs_vm *vm, int priority);
void uart_set_running(uart *u, bool running);

/* Section "serial", version 1: every register, both FIFOs and the pending
 * interrupt flags.  The validator names the field that is out of range. */
int uart_register_state(uart *u, dm_state_reg *reg, uint32_t instance);

typedef struct uart_stats {
    uint64_t tx_bytes;        /* handed to the chardev */
    uint64_t rx_bytes;        /* taken from the chardev */
    uint64_t tx_overruns;     /* THR written while the transmit FIFO was full */
    uint64_t rx_overruns;     /* bytes lost because the receive FIFO was full */
} uart_stats;
void uart_get_stats(const uart *u, uart_stats *out);

#endif
