/*
 * The Xen library handles a device model needs, opened and closed in one
 * place so every failure names the library and the domain.  The same code
 * links against Debian's libraries (rsdm) or xensim's implementation of the
 * same calls (rsdm-sim).
 */
#ifndef DM_XEN_H
#define DM_XEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>

typedef struct dm_xen {
    domid_t domid;
    xendevicemodel_handle *dmod;
    xenforeignmemory_handle *fmem;
    xenevtchn_handle *xce;
    xc_interface *xch;        /* NULL once restricted: xenctrl cannot be restricted */
    bool restricted;
} dm_xen;

/* Opens every handle; on failure closes what was opened, fills err and
 * returns a negative errno. */
int dm_xen_open(dm_xen *x, domid_t domid, char *err, size_t errlen);
void dm_xen_close(dm_xen *x);

/* xentoolcore_restrict_all: afterwards the handles reach only x->domid and
 * the xenctrl handle is closed (it cannot be restricted). */
int dm_xen_restrict(dm_xen *x, char *err, size_t errlen);

/* The logger given to the libraries: their messages go to rsdm's log. */
struct xentoollog_logger *dm_xen_logger(void);

#endif
