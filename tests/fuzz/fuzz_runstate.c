/*
 * libFuzzer target: arbitrary sequences of librunstate operations.  Each
 * input byte picks an operation and its argument; after every step the
 * machine's invariants must hold (live iff no hold, no refused transition,
 * the display a valid state).  The model check in tests/unit compares the
 * rules themselves; this target hunts for crashes and broken invariants on
 * inputs nobody thought of.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "runstate.h"

static void check(const rs_vm *vm)
{
    rs_state s = rs_get_state(vm);
    if (!rs_state_name(s))
        abort();
    if (rs_state_is_live(s) != (rs_get_holds(vm) == 0))
        abort();
    if (rs_invalid_transitions(vm) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rs_vm *vm = rs_vm_new();
    if (!vm)
        return 0;
    rs_err err;
    int status;
    for (size_t i = 0; i < size; i++) {
        uint8_t op = data[i] >> 4;
        rs_state arg = (rs_state)(data[i] & 0x0f);
        switch (op) {
        case 0: rs_cont(vm, &err); break;
        case 1: rs_vm_stop(vm, arg, &err); break;
        case 2: rs_retry(vm, &err); break;
        case 3: rs_hold_acquire(vm, arg, &err); break;
        case 4: rs_hold_release(vm, arg, &err); break;
        case 5: rs_request_vmstop(vm, arg); break;
        case 6: rs_request_reset(vm, (rs_cause)(arg % RS_CAUSE__MAX)); break;
        case 7: rs_request_suspend(vm); break;
        case 8: rs_request_wakeup(vm, (rs_wakeup_reason)(arg % RS_WAKEUP__MAX), &err); break;
        case 9: rs_request_shutdown(vm, (rs_cause)(arg % RS_CAUSE__MAX), -1); break;
        case 10: rs_request_powerdown(vm); rs_request_debug(vm); break;
        case 11: rs_guest_panicked(vm); break;
        case 12: rs_watchdog_expired(vm); break;
        case 13: {
            rs_action_update u = { 0 };
            u.has_shutdown = u.has_panic = u.has_watchdog = u.has_reboot = true;
            u.value.shutdown = (rs_shutdown_action)(arg & 1);
            u.value.reboot = (rs_reboot_action)((arg >> 1) & 1);
            u.value.panic = (rs_panic_action)(arg % RS_PANIC__MAX);
            u.value.watchdog = (rs_watchdog_action)(arg % RS_WATCHDOG__MAX);
            rs_set_actions(vm, &u);
            break;
        }
        case 14: rs_vm_stop_force_state(vm, arg, &err); break;
        default:
            if (rs_process_requests(vm, &status) == 1) {
                check(vm);
                rs_vm_free(vm);
                return 0;
            }
            break;
        }
        if (getenv("FUZZ_TRACE"))   /* replaying a finding: show each step */
            fprintf(stderr, "op %2u arg %2u -> %s holds=%#x W=%d\n", op, arg,
                    rs_state_name(rs_get_state(vm)), rs_get_holds(vm), rs_was_suspended(vm));
        check(vm);
    }
    rs_vm_free(vm);
    return 0;
}
