/* xsc_text: exact matching and safe rendering of node values (xsc_text.h). */
#include "xsc_text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const cmd_names[XSC_CMD__MAX] = {
    [XSC_CMD_UNKNOWN] = "unknown",
    [XSC_CMD_SAVE] = "save",
    [XSC_CMD_CONTINUE] = "continue",
    [XSC_CMD_PCI_INS] = "pci-ins",
    [XSC_CMD_PCI_REM] = "pci-rem",
    [XSC_CMD_STOP] = "stop",
    [XSC_CMD_RETRY] = "retry",
    [XSC_CMD_RESET] = "reset",
    [XSC_CMD_POWERDOWN] = "powerdown",
    [XSC_CMD_WAKEUP] = "wakeup",
};

bool xsc_value_is(const void *value, size_t len, const char *word)
{
    size_t wlen = strlen(word);

    /* Both length and bytes: a stored "sav" is not "save", "save\0x" is
     * not "save" either (memcmp would stop at neither). */
    return value && len == wlen && memcmp(value, word, wlen) == 0;
}

xsc_cmd xsc_cmd_parse(const void *value, size_t len)
{
    for (int c = XSC_CMD_UNKNOWN + 1; c < XSC_CMD__MAX; c++)
        if (xsc_value_is(value, len, cmd_names[c]))
            return (xsc_cmd)c;
    return XSC_CMD_UNKNOWN;
}

const char *xsc_cmd_name(xsc_cmd c)
{
    return (unsigned)c < XSC_CMD__MAX ? cmd_names[c] : cmd_names[XSC_CMD_UNKNOWN];
}

int xsc_logdirty_parse(const void *value, size_t len)
{
    if (xsc_value_is(value, len, "enable"))
        return 1;
    if (xsc_value_is(value, len, "disable"))
        return 0;
    return -EINVAL;
}

size_t xsc_escape(char *out, size_t size, const void *value, size_t len, size_t max_in)
{
    const unsigned char *v = value;
    size_t o = 0;
    size_t shown = len < max_in ? len : max_in;

    if (!out || size == 0)
        return 0;
    for (size_t i = 0; v && i < shown; i++) {
        char tmp[5];
        size_t n;
        unsigned char c = v[i];

        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            n = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            tmp[0] = (char)c;
            n = 1;
        } else {
            snprintf(tmp, sizeof(tmp), "\\x%02x", c);
            n = 4;
        }
        if (o + n >= size)
            break;            /* never split an escape */
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    if (shown < len) {
        int n = snprintf(out + o, size - o, "...(%zu bytes)", len);
        if (n > 0)
            o += (size_t)n < size - o ? (size_t)n : size - o - 1;
    }
    return o;
}

int xsc_runstate_format(char *out, size_t size, rs_state state,
                        const rs_state *holds, size_t nholds)
{
    const char *sn = rs_state_name(state);
    size_t o;
    int n;

    if (!out || size == 0)
        return -ENOSPC;
    n = snprintf(out, size, "%s holds=", sn ? sn : "unknown");
    if (n < 0 || (size_t)n >= size)
        return -ENOSPC;
    o = (size_t)n;
    for (size_t i = 0; i < nholds; i++) {
        const char *hn = rs_state_name(holds[i]);
        n = snprintf(out + o, size - o, "%s%s", i ? "," : "", hn ? hn : "unknown");
        if (n < 0 || (size_t)n >= size - o)
            return -ENOSPC;
        o += (size_t)n;
    }
    return 0;
}
