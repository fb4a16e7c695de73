/*
 * libxendevicemodel on xensim: every DMOP becomes one request on the
 * handle's connection; the simulator applies Xen's rules and returns Xen's
 * error codes, which land in errno as the real library leaves them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xsim_xenlib.h"

#include <xendevicemodel.h>

struct xendevicemodel_handle {
    struct xsim_conn c;
};

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
                                           unsigned int open_flags)
{
    (void)logger;
    (void)open_flags;
    xendevicemodel_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (xsim_conn_open(&h->c, HV_CLIENT_DEVICEMODEL, "xendevicemodel") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    return h;
}

int xendevicemodel_close(xendevicemodel_handle *dmod)
{
    if (!dmod)
        return 0;
    xsim_conn_close(&dmod->c);
    free(dmod);
    return 0;
}

static int simple(xendevicemodel_handle *dmod, struct hv_req *q,
                  struct hv_rsp *r)
{
    if (!dmod) {
        errno = EBADF;
        return -1;
    }
    return xsim_call(&dmod->c, q, r, NULL, 0, NULL);
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod,
                                       domid_t domid, int handle_bufioreq,
                                       ioservid_t *id)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SERVER_CREATE, domid);
    q.a32[0] = (uint32_t)handle_bufioreq;
    if (handle_bufioreq < 0) {
        errno = EINVAL;
        return -1;
    }
    if (simple(dmod, &q, &r) < 0)
        return -1;
    *id = (ioservid_t)r.u32[0];
    return 0;
}

int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod,
                                         domid_t domid, ioservid_t id,
                                         xen_pfn_t *ioreq_gfn,
                                         xen_pfn_t *bufioreq_gfn,
                                         evtchn_port_t *bufioreq_port)
{
    /* The legacy GFN path (pages placed in the guest's p2m) is not
     * simulated: devices models use xenforeignmemory_map_resource(). */
    if (ioreq_gfn || bufioreq_gfn) {
        errno = EOPNOTSUPP;
        return -1;
    }
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SERVER_INFO, domid);
    q.id = id;
    if (simple(dmod, &q, &r) < 0)
        return -1;
    if (bufioreq_port)
        *bufioreq_port = r.u32[0];
    return 0;
}

static int map_range(xendevicemodel_handle *dmod, domid_t domid,
                     ioservid_t id, uint32_t type, int map, uint64_t start,
                     uint64_t end)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SERVER_MAP, domid);
    q.id = id;
    q.a32[0] = type;
    q.a32[1] = (uint32_t)map;
    q.a64[0] = start;
    q.a64[1] = end;
    return simple(dmod, &q, &r);
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod,
                                                domid_t domid, ioservid_t id,
                                                int is_mmio, uint64_t start,
                                                uint64_t end)
{
    return map_range(dmod, domid, id, is_mmio ? XEN_DMOP_IO_RANGE_MEMORY
                                              : XEN_DMOP_IO_RANGE_PORT,
                     1, start, end);
}

int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod,
                                                    domid_t domid,
                                                    ioservid_t id, int is_mmio,
                                                    uint64_t start,
                                                    uint64_t end)
{
    return map_range(dmod, domid, id, is_mmio ? XEN_DMOP_IO_RANGE_MEMORY
                                              : XEN_DMOP_IO_RANGE_PORT,
                     0, start, end);
}

int xendevicemodel_map_mem_type_to_ioreq_server(xendevicemodel_handle *dmod,
                                                domid_t domid, ioservid_t id,
                                                uint16_t type, uint32_t flags)
{
    (void)dmod; (void)domid; (void)id; (void)type; (void)flags;
    errno = EOPNOTSUPP;
    return -1;
}

int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod,
                                              domid_t domid, ioservid_t id,
                                              uint16_t segment, uint8_t bus,
                                              uint8_t device, uint8_t function)
{
    /* The real library checks these bounds before the hypercall. */
    if (device > 0x1f || function > 0x7) {
        errno = EINVAL;
        return -1;
    }
    uint64_t sbdf = XEN_DMOP_PCI_SBDF(segment, bus, device, function);
    return map_range(dmod, domid, id, XEN_DMOP_IO_RANGE_PCI, 1, sbdf, sbdf);
}

int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod,
                                                  domid_t domid, ioservid_t id,
                                                  uint16_t segment,
                                                  uint8_t bus, uint8_t device,
                                                  uint8_t function)
{
    if (device > 0x1f || function > 0x7) {
        errno = EINVAL;
        return -1;
    }
    uint64_t sbdf = XEN_DMOP_PCI_SBDF(segment, bus, device, function);
    return map_range(dmod, domid, id, XEN_DMOP_IO_RANGE_PCI, 0, sbdf, sbdf);
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod,
                                        domid_t domid, ioservid_t id)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SERVER_DESTROY, domid);
    q.id = id;
    return simple(dmod, &q, &r);
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod,
                                          domid_t domid, ioservid_t id,
                                          int enabled)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SERVER_STATE, domid);
    q.id = id;
    q.a32[0] = enabled != 0;
    return simple(dmod, &q, &r);
}

int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod,
                                      domid_t domid, uint16_t segment,
                                      uint8_t bus, uint8_t device,
                                      uint8_t intx, unsigned int level)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_PCI_INTX, domid);
    q.a32[0] = segment;
    q.a32[1] = bus;
    q.a32[2] = device;
    q.a32[3] = intx;
    q.a64[0] = level;
    return simple(dmod, &q, &r);
}

int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod,
                                     domid_t domid, uint8_t irq,
                                     unsigned int level)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_ISA_IRQ, domid);
    q.a32[0] = irq;
    q.a32[1] = level;
    return simple(dmod, &q, &r);
}

int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid,
                                 unsigned int irq, unsigned int level)
{
    /* Arm SPIs; x86 rejects the DMOP. */
    (void)dmod; (void)domid; (void)irq; (void)level;
    errno = EOPNOTSUPP;
    return -1;
}

int xendevicemodel_set_pci_link_route(xendevicemodel_handle *dmod,
                                      domid_t domid, uint8_t link, uint8_t irq)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_LINK_ROUTE, domid);
    q.a32[0] = link;
    q.a32[1] = irq;
    return simple(dmod, &q, &r);
}

int xendevicemodel_inject_msi(xendevicemodel_handle *dmod, domid_t domid,
                              uint64_t msi_addr, uint32_t msi_data)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_MSI, domid);
    q.a64[0] = msi_addr;
    q.a32[0] = msi_data;
    return simple(dmod, &q, &r);
}

int xendevicemodel_track_dirty_vram(xendevicemodel_handle *dmod,
                                    domid_t domid, uint64_t first_pfn,
                                    uint32_t nr, unsigned long *dirty_bitmap)
{
    (void)dmod; (void)domid; (void)first_pfn; (void)nr; (void)dirty_bitmap;
    errno = EOPNOTSUPP;
    return -1;
}

int xendevicemodel_modified_memory(xendevicemodel_handle *dmod, domid_t domid,
                                   uint64_t first_pfn, uint32_t nr)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_MODIFIED_MEMORY, domid);
    q.a64[0] = first_pfn;
    q.a64[1] = nr;
    return simple(dmod, &q, &r);
}

int xendevicemodel_modified_memory_bulk(xendevicemodel_handle *dmod,
                                        domid_t domid,
                                        struct xen_dm_op_modified_memory_extent *extents,
                                        uint32_t nr)
{
    for (uint32_t i = 0; i < nr; i++)
        if (xendevicemodel_modified_memory(dmod, domid, extents[i].first_pfn,
                                           extents[i].nr) < 0)
            return -1;
    return 0;
}

int xendevicemodel_set_mem_type(xendevicemodel_handle *dmod, domid_t domid,
                                hvmmem_type_t mem_type, uint64_t first_pfn,
                                uint32_t nr)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_SET_MEM_TYPE, domid);
    q.a32[0] = (uint32_t)mem_type;
    q.a64[0] = first_pfn;
    q.a64[1] = nr;
    return simple(dmod, &q, &r);
}

int xendevicemodel_inject_event(xendevicemodel_handle *dmod, domid_t domid,
                                int vcpu, uint8_t vector, uint8_t type,
                                uint32_t error_code, uint8_t insn_len,
                                uint64_t extra)
{
    (void)dmod; (void)domid; (void)vcpu; (void)vector; (void)type;
    (void)error_code; (void)insn_len; (void)extra;
    errno = EOPNOTSUPP;
    return -1;
}

int xendevicemodel_shutdown(xendevicemodel_handle *dmod, domid_t domid,
                            unsigned int reason)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_DOMAIN_SHUTDOWN, domid);
    q.a32[0] = reason;
    return simple(dmod, &q, &r);
}

int xendevicemodel_relocate_memory(xendevicemodel_handle *dmod, domid_t domid,
                                   uint32_t size, uint64_t src_gfn,
                                   uint64_t dst_gfn)
{
    (void)dmod; (void)domid; (void)size; (void)src_gfn; (void)dst_gfn;
    errno = EOPNOTSUPP;
    return -1;
}

int xendevicemodel_pin_memory_cacheattr(xendevicemodel_handle *dmod,
                                        domid_t domid, uint64_t start,
                                        uint64_t end, uint32_t type)
{
    (void)dmod; (void)domid; (void)start; (void)end; (void)type;
    return 0;   /* cache attributes mean nothing in the simulator */
}

int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid,
                            unsigned int *vcpus)
{
    struct hv_req q;
    struct hv_rsp r;
    xsim_req_init(&q, HV_OP_NR_VCPUS, domid);
    if (simple(dmod, &q, &r) < 0)
        return -1;
    *vcpus = r.u32[0];
    return 0;
}

int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid)
{
    if (!dmod) {
        errno = EBADF;
        return -1;
    }
    return xsim_conn_restrict(&dmod->c, domid);
}
