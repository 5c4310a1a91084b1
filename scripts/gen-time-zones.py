#!/usr/bin/env python3
"""Regenerate time_zones.tsv: libphonenumber's phone-prefix -> IANA time zone table.

The table comes from the `phonenumbers` package on PyPI (the Python port of
libphonenumber), which ships it as `phonenumbers.tzdata.TIMEZONE_DATA`: a dict
from prefix digits (country calling code followed by national digits, no '+')
to a tuple of IANA zone names. Lookups take the longest prefix of the E.164
digits that is in the table.

Usage (from the project root):
    python3 -m venv target/tzenv && target/tzenv/bin/pip install phonenumbers
    target/tzenv/bin/python scripts/gen-time-zones.py [OUTPUT]   (default: domain/data/time_zones.tsv)

Output format: comment lines starting with '# ', then one line per prefix,
sorted by prefix:  <digits>\t<zone>&<zone>...   (zones in the source's order).
Entries whose only zone is "Etc/Unknown" are dropped, and "Etc/Unknown" is
removed from any list that has real zones too.
"""

import os
import sys
from importlib.metadata import version

from phonenumbers.tzdata import TIMEZONE_DATA

UNKNOWN = "Etc/Unknown"
# Past this size only +1 and the finer prefixes of multi-zone countries would be kept;
# the full table is far below it, so every country is kept.
SIZE_LIMIT = 300 * 1024


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else "domain/data/time_zones.tsv"
    pkg_version = version("phonenumbers")

    rows = []
    dropped = 0
    for prefix, zones in TIMEZONE_DATA.items():
        if not prefix.isdigit():
            raise SystemExit(f"unexpected prefix {prefix!r}")
        real = [z for z in zones if z != UNKNOWN]
        if not real:
            dropped += 1
            continue
        for z in real:
            if "&" in z or "\t" in z or not z:
                raise SystemExit(f"unexpected zone name {z!r} for prefix {prefix}")
        rows.append((prefix, real))
    # Sort by the digit string (so a prefix comes right before its extensions).
    rows.sort(key=lambda r: r[0])

    header = [
        f"# Phone number prefix -> IANA time zones, from the Python package phonenumbers {pkg_version}",
        "# (PyPI: phonenumbers, module phonenumbers.tzdata, TIMEZONE_DATA), a port of libphonenumber.",
        "# Copyright (C) The Libphonenumber Authors. Licensed under the Apache License, Version 2.0:",
        "# http://www.apache.org/licenses/LICENSE-2.0",
        f"# Regenerated with: pip install phonenumbers=={pkg_version} && python3 scripts/gen-time-zones.py {out}",
        "# Format: <E.164 digits prefix, without '+'>\\t<zone>&<zone>...; longest matching prefix wins.",
        f"# {len(rows)} prefixes; {dropped} Etc/Unknown-only entries dropped.",
    ]
    body = [f"{p}\t{'&'.join(z)}" for p, z in rows]
    text = "\n".join(header + body) + "\n"
    if len(text.encode()) > SIZE_LIMIT:
        raise SystemExit(
            f"output is {len(text.encode())} bytes, over {SIZE_LIMIT}: trim non-NANP prefixes first"
        )
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {out}: {len(rows)} prefixes, {len(text.encode())} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
