/*
 * The libxenctrl calls a device model makes, on xensim: the interface
 * handle, domain pause/unpause (the controller pause count, nesting with the
 * toolstack's), shutdown, getinfo/getinfolist and HVM params.  Like the real
 * one (libxencall), the handle dies on xentoolcore_restrict_all(): its
 * socket is dup2'ed onto /dev/null and every later call fails with EBADF.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xsim_xenlib.h"
#include <xenguest.h>  /* xc_domain_resume is declared there (libxenguest) */

struct xc_interface_core {
    struct xsim_conn c;
};

xc_interface *xc_interface_open(xentoollog_logger *logger,
                                xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    xc_interface *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (xsim_conn_open(&h->c, HV_CLIENT_CTRL, "xenctrl") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    return h;
}

int xc_interface_close(xc_interface *xch)
{
    if (!xch)
        return 0;
    xsim_conn_close(&xch->c);
    free(xch);
    return 0;
}

static int call(xc_interface *xch, struct hv_req *q, struct hv_rsp *r,
                void **payload)
{
    if (!xch) {
        errno = EBADF;
        return -1;
    }
    return xsim_call(&xch->c, q, r, NULL, 0, payload);
}

int xc_domain_pause(xc_interface *xch, uint32_t domid)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_PAUSE, domid);
    return call(xch, &q, &r, NULL);
}

int xc_domain_unpause(xc_interface *xch, uint32_t domid)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_UNPAUSE, domid);
    return call(xch, &q, &r, NULL);
}

int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_SHUTDOWN, domid);
    q.a32[0] = (uint32_t)reason;
    return call(xch, &q, &r, NULL);
}

/* libxl_domain_resume's call: fast = suspend_cancel (cooperative). */
int xc_domain_resume(xc_interface *xch, uint32_t domid, int fast)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_RESUME, domid);
    q.a32[0] = fast != 0;
    return call(xch, &q, &r, NULL);
}

int xc_domain_destroy(xc_interface *xch, uint32_t domid)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_DESTROY, domid);
    return call(xch, &q, &r, NULL);
}

/* All domains with domid >= first, at most max, as wire records. */
static int list(xc_interface *xch, uint32_t first, unsigned int max,
                struct hv_wire_dominfo **out)
{
    struct hv_req q;
    struct hv_rsp r;
    void *p = NULL;
    xsim_req_init(&q, HV_OP_DOMAIN_LIST, first);
    q.a32[0] = max;
    if (call(xch, &q, &r, &p) < 0)
        return -1;
    *out = p;
    return (int)(r.len / sizeof(struct hv_wire_dominfo));
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid,
                      unsigned int max_doms, xc_dominfo_t *info)
{
    struct hv_wire_dominfo *w = NULL;
    if (max_doms == 0)
        return 0;
    int n = list(xch, first_domid, max_doms, &w);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        xc_dominfo_t *o = &info[i];
        memset(o, 0, sizeof(*o));
        o->domid = w[i].domid;
        o->dying = w[i].dying;
        o->crashed = w[i].crashed;
        o->shutdown = w[i].shut_down;
        o->paused = w[i].paused;
        o->running = !w[i].paused && !w[i].shut_down;
        o->blocked = 0;
        o->hvm = 1;
        o->hap = 1;
        o->shutdown_reason = w[i].shut_down ? w[i].shutdown_reason : 0;
        o->nr_pages = w[i].mem_bytes / 4096;
        o->max_memkb = w[i].mem_bytes / 1024;
        o->nr_online_vcpus = w[i].nr_vcpus;
        o->max_vcpu_id = w[i].nr_vcpus - 1;
    }
    free(w);
    return n;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain,
                          unsigned int max_domains, xc_domaininfo_t *info)
{
    struct hv_wire_dominfo *w = NULL;
    if (max_domains == 0)
        return 0;
    int n = list(xch, first_domain, max_domains, &w);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        xc_domaininfo_t *o = &info[i];
        memset(o, 0, sizeof(*o));
        o->domain = (domid_t)w[i].domid;
        o->flags = XEN_DOMINF_hvm_guest | XEN_DOMINF_hap;
        if (w[i].dying)
            o->flags |= XEN_DOMINF_dying;
        if (w[i].shut_down)
            o->flags |= XEN_DOMINF_shutdown |
                        ((w[i].shutdown_reason & XEN_DOMINF_shutdownmask)
                         << XEN_DOMINF_shutdownshift);
        if (w[i].paused)
            o->flags |= XEN_DOMINF_paused;
        else if (!w[i].shut_down)
            o->flags |= XEN_DOMINF_running;
        o->tot_pages = o->max_pages = w[i].mem_bytes / 4096;
        o->nr_online_vcpus = w[i].nr_vcpus;
        o->max_vcpu_id = w[i].nr_vcpus - 1;
    }
    free(w);
    return n;
}

int xc_hvm_param_set(xc_interface *handle, uint32_t dom, uint32_t param,
                     uint64_t value)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_HVM_PARAM_SET, dom);
    q.a32[0] = param;
    q.a64[0] = value;
    return call(handle, &q, &r, NULL);
}

int xc_hvm_param_get(xc_interface *handle, uint32_t dom, uint32_t param,
                     uint64_t *value)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_HVM_PARAM_GET, dom);
    q.a32[0] = param;
    if (call(handle, &q, &r, NULL) < 0)
        return -1;
    *value = r.u64[0];
    return 0;
}

int xc_set_hvm_param(xc_interface *handle, uint32_t dom, int param,
                     unsigned long value)
{
    return xc_hvm_param_set(handle, dom, (uint32_t)param, value);
}

int xc_get_hvm_param(xc_interface *handle, uint32_t dom, int param,
                     unsigned long *value)
{
    uint64_t v;
    if (xc_hvm_param_get(handle, dom, (uint32_t)param, &v) < 0)
        return -1;
    *value = (unsigned long)v;
    return 0;
}
