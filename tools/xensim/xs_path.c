/* xs_path.c: path canonicalisation and validation, following xenstored's
 * canonicalize(): a path that breaks the rules gets EINVAL, never a crash,
 * and relative paths are resolved against the caller's home. */
#include "xs_store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <xen/io/xs_wire.h>

static bool valid_chars(const char *s)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz"
                             "0123456789-/_@";
    return s[strspn(s, ok)] == '\0';
}

bool xs_path_is_special(const char *path)
{
    return path[0] == '@';
}

size_t xs_path_home_prefix_len(const struct xs_caller *c)
{
    char buf[40];
    return (size_t)snprintf(buf, sizeof(buf), "/local/domain/%u/", (unsigned)c->domid);
}

int xs_path_canonical(const struct xs_caller *c, const char *in, bool allow_special,
                      char *out, bool *relative)
{
    if (!in || !*in || !valid_chars(in))
        return EINVAL;
    if (in[0] == '@' && !allow_special)
        return EINVAL;
    *relative = in[0] != '/' && in[0] != '@';
    size_t len = strlen(in);
    if (*relative) {
        int n = snprintf(out, XS_PATH_BUF, "/local/domain/%u/", (unsigned)c->domid);
        if (len > XENSTORE_REL_PATH_MAX || (size_t)n + len >= XS_PATH_BUF)
            return EINVAL;
        memcpy(out + n, in, len + 1);
        len += (size_t)n;
    } else {
        if (len >= XS_PATH_BUF)
            return EINVAL;
        memcpy(out, in, len + 1);
    }
    if (len > XENSTORE_ABS_PATH_MAX)
        return EINVAL;
    if (strstr(out, "//") || (len > 1 && out[len - 1] == '/'))
        return EINVAL;
    /* Xen's path-max quota: an unprivileged domain may use at most 2048
     * bytes below /local/domain/<N>/ (its own or another's). */
    if (!c->privileged) {
        unsigned d;
        int off = 0;
        size_t below = len;
        if (sscanf(out, "/local/domain/%5u/%n", &d, &off) == 1 && off > 0)
            below = len - (size_t)off;
        if (below > XENSTORE_REL_PATH_MAX)
            return EINVAL;
    }
    return 0;
}
