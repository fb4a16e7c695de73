#!/usr/bin/env python3
"""A disk image checked from the host against the xensim guest's ledger.

usage: ledger_check.py IMAGE LEDGER_HEX SECTORS

LEDGER_HEX is `xensim domain peek DOMID LEDGER 16*SECTORS` (the addresses
are in `xensim guest status --json` under "ledgers").  Every sector the
guest saw acknowledged (ledger: last sequence, the one before) must hold
that write in the image: magic "XSGC", its own LBA, the sequence number
and an FNV-1a checksum (tools/xensim/guest_check.c).  Prints one JSON
object: acked, ok, lost (the previous write is there), stale (an older
one), corrupted (no valid sector of this LBA); exit 0 when it ran."""
import json
import struct
import sys


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def main():
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    image, ledger_hex, sectors = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = bytes.fromhex(open(ledger_hex).read().strip())
    if len(ledger) != 16 * sectors:
        print("ledger: %d bytes, expected %d" % (len(ledger), 16 * sectors), file=sys.stderr)
        return 2
    out = {"acked": 0, "ok": 0, "lost": 0, "stale": 0, "corrupted": 0, "first_bad": []}
    with open(image, "rb") as f:
        for lba in range(sectors):
            last, prev = struct.unpack_from("<QQ", ledger, 16 * lba)
            if last == 0:
                continue   # never acknowledged
            out["acked"] += 1
            f.seek(512 * lba)
            sec = f.read(512)
            magic, = struct.unpack_from("<I", sec, 0) if len(sec) == 512 else (0,)
            valid = (len(sec) == 512 and magic == 0x43475358 and
                     struct.unpack_from("<Q", sec, 8)[0] == lba and
                     struct.unpack_from("<I", sec, 508)[0] == fnv1a(sec[:508]))
            seq = struct.unpack_from("<Q", sec, 16)[0] if valid else None
            if seq == last:
                out["ok"] += 1
                continue
            verdict = ("lost" if seq == prev and prev else
                       "stale" if seq is not None and seq < last else "corrupted")
            out[verdict] += 1
            if len(out["first_bad"]) < 5:
                out["first_bad"].append({"lba": lba, "verdict": verdict, "found": seq,
                                         "acked": last})
    print(json.dumps(out))
    return 0


sys.exit(main())
