/* xs_wire.c: payload parsing helpers and Xen's names for the wire.
 * The message types and the error table come from <xen/io/xs_wire.h>. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xs_internal.h"

#include <xen/xen.h>   /* DOMID_FIRST_RESERVED */

const char *xs_wire_errname(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    /* xenstored sends EINVAL for an errno it cannot translate. */
    return "EINVAL";
}

unsigned xs_wire_strings(const char *buf, size_t len, const char **vec, unsigned max)
{
    unsigned n = 0;
    size_t off = 0;
    while (off < len) {
        const char *nul = memchr(buf + off, '\0', len - off);
        if (!nul)
            break;
        if (n < max)
            vec[n] = buf + off;
        n++;
        off = (size_t)(nul - buf) + 1;
    }
    return n;
}

const char *xs_wire_onearg(const char *buf, size_t len)
{
    if (len == 0 || buf[len - 1] != '\0' || memchr(buf, '\0', len) != buf + len - 1)
        return NULL;
    return buf;
}

bool xs_wire_parse_domid(const char *s, unsigned *domid)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    unsigned long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v >= DOMID_FIRST_RESERVED)
            return false;
    }
    *domid = (unsigned)v;
    return true;
}

const char *xs_wire_type_name(uint32_t type)
{
    static const char *const names[XS_TYPE_COUNT] = {
        [XS_CONTROL] = "CONTROL",
        [XS_DIRECTORY] = "DIRECTORY",
        [XS_READ] = "READ",
        [XS_GET_PERMS] = "GET_PERMS",
        [XS_WATCH] = "WATCH",
        [XS_UNWATCH] = "UNWATCH",
        [XS_TRANSACTION_START] = "TRANSACTION_START",
        [XS_TRANSACTION_END] = "TRANSACTION_END",
        [XS_INTRODUCE] = "INTRODUCE",
        [XS_RELEASE] = "RELEASE",
        [XS_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH",
        [XS_WRITE] = "WRITE",
        [XS_MKDIR] = "MKDIR",
        [XS_RM] = "RM",
        [XS_SET_PERMS] = "SET_PERMS",
        [XS_WATCH_EVENT] = "WATCH_EVENT",
        [XS_ERROR] = "ERROR",
        [XS_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
        [XS_RESUME] = "RESUME",
        [XS_SET_TARGET] = "SET_TARGET",
        [XS_RESET_WATCHES] = "RESET_WATCHES",
        [XS_DIRECTORY_PART] = "DIRECTORY_PART",
    };
    if (type < XS_TYPE_COUNT && names[type])
        return names[type];
    return "UNKNOWN";
}
