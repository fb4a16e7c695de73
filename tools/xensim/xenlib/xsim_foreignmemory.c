/*
 * libxenforeignmemory on xensim: guest frames and ioreq-server pages are
 * shared memory (memfds) the simulator hands over with SCM_RIGHTS; mapping
 * them is mmap of the right offsets, so the dm and the simulated vCPUs see
 * the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xsim_xenlib.h"

#include <xenforeignmemory.h>

#define PAGE 4096ul

struct xenforeignmemory_handle {
    struct xsim_conn c;
};

struct xenforeignmemory_resource_handle {
    void *addr;
    size_t len;
};

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
                                               unsigned int open_flags)
{
    (void)logger;
    (void)open_flags;
    xenforeignmemory_handle *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    if (xsim_conn_open(&h->c, HV_CLIENT_FOREIGNMEMORY, "xenforeignmemory") < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    return h;
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
    if (!fmem)
        return 0;
    xsim_conn_close(&fmem->c);
    free(fmem);
    return 0;
}

/* The RAM fd is fetched per call: a domid can be reused by a new domain,
 * so a cached fd could point at a dead domain's memory. */
static int get_ram(xenforeignmemory_handle *fmem, uint32_t dom, uint64_t *size)
{
    struct hv_req q;
    struct hv_rsp r;
    int fd = -1;
    xsim_req_init(&q, HV_OP_GET_RAM, dom);
    if (xsim_call(&fmem->c, &q, &r, &fd, 1, NULL) < 0)
        return -1;
    *size = r.u64[0];
    return fd;
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom,
                            void *addr, int prot, int flags, size_t pages,
                            const xen_pfn_t arr[/*pages*/], int err[/*pages*/])
{
    if (!fmem || pages == 0 || pages > SIZE_MAX / PAGE) {
        errno = EINVAL;
        return NULL;
    }
    uint64_t size;
    int fd = get_ram(fmem, dom, &size);
    if (fd < 0)
        return NULL;
    uint64_t nframes = size / PAGE;
    /* Reserve the whole window, then map runs of consecutive frames over
     * it; frames outside guest RAM stay inaccessible and report -EINVAL. */
    char *base = mmap(addr, pages * PAGE, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | (flags & MAP_FIXED), -1, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    int bad = 0;
    size_t i = 0;
    while (i < pages) {
        if (arr[i] >= nframes) {
            if (err)
                err[i] = -EINVAL;
            bad = EINVAL;
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < pages && arr[j] == arr[j - 1] + 1 && arr[j] < nframes)
            j++;
        void *m = mmap(base + i * PAGE, (j - i) * PAGE, prot,
                       MAP_SHARED | MAP_FIXED, fd, (off_t)(arr[i] * PAGE));
        int e = m == MAP_FAILED ? errno : 0;
        for (size_t k = i; k < j; k++)
            if (err)
                err[k] = -e;
        if (e)
            bad = e;
        i = j;
    }
    close(fd);
    if (bad && !err) {
        munmap(base, pages * PAGE);
        errno = bad;
        return NULL;
    }
    return base;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom,
                           int prot, size_t pages, const xen_pfn_t arr[/*pages*/],
                           int err[/*pages*/])
{
    return xenforeignmemory_map2(fmem, dom, NULL, prot, 0, pages, arr, err);
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr,
                           size_t pages)
{
    (void)fmem;
    return munmap(addr, pages * PAGE);
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
    if (!fmem) {
        errno = EBADF;
        return -1;
    }
    return xsim_conn_restrict(&fmem->c, domid);
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
    xenforeignmemory_handle *fmem, domid_t domid, unsigned int type,
    unsigned int id, unsigned long frame, unsigned long nr_frames,
    void **paddr, int prot, int flags)
{
    if (!fmem) {
        errno = EBADF;
        return NULL;
    }
    struct hv_req q;
    struct hv_rsp r;
    int fd = -1;
    xsim_req_init(&q, HV_OP_MAP_RESOURCE, domid);
    q.a32[0] = type;
    q.id = id;
    q.a64[0] = frame;
    q.a64[1] = nr_frames;
    if (xsim_call(&fmem->c, &q, &r, &fd, 1, NULL) < 0)
        return NULL;
    xenforeignmemory_resource_handle *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    h->len = nr_frames * PAGE;
    h->addr = mmap(paddr ? *paddr : NULL, h->len, prot, MAP_SHARED | flags, fd,
                   (off_t)(frame * PAGE));
    int e = errno;
    close(fd);
    if (h->addr == MAP_FAILED) {
        free(h);
        errno = e;
        return NULL;
    }
    if (paddr)
        *paddr = h->addr;
    return h;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
                                    xenforeignmemory_resource_handle *fres)
{
    (void)fmem;
    if (!fres)
        return 0;
    int rc = munmap(fres->addr, fres->len);
    free(fres);
    return rc;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem,
                                   domid_t domid, unsigned int type,
                                   unsigned int id, size_t *size)
{
    (void)fmem; (void)domid; (void)id;
    if (type != XENMEM_resource_ioreq_server) {
        errno = EOPNOTSUPP;
        return -1;
    }
    *size = 2 * PAGE;   /* buffered ring + one shared ioreq page */
    return 0;
}
