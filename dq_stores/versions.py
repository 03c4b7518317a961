"""Numeric-aware version ordering as a sortable string key, so that every backend (SQL ``ORDER BY``
on a ``COLLATE "C"`` column, a sorted file listing, Python ``sorted``) orders versions the same.

``1.10.0 > 1.9.0``; a pre-release sorts below its release (``1.0.0-rc.1 < 1.0.0``) with semver
precedence between pre-releases; up to four numeric components (``1.2`` ties with ``1.2.0``; ties
are broken by the newest revision). Anything that is not such a version sorts below every one that
is, lexically among themselves.
"""

from __future__ import annotations

import re

__all__ = ["version_key"]

_SEMVERISH = re.compile(r"v?(\d{1,10}(?:\.\d{1,10}){0,3})(?:-([0-9A-Za-z._-]+))?")
_WIDTH = 10


def version_key(version: str) -> str:
    match = _SEMVERISH.fullmatch(version)
    if match is None:
        return "0" + version
    core, pre = match.groups()
    parts = [int(p) for p in core.split(".")]
    parts += [0] * (4 - len(parts))
    key = "1" + ".".join(f"{p:0{_WIDTH}d}" for p in parts)
    if pre is None:
        # '~' sorts above '!' (which starts every pre-release), so a release beats its pre-releases.
        return key + "~"
    idents = []
    for ident in pre.split("."):
        # Numeric identifiers sort numerically and below alphanumeric ones (semver rule 11).
        idents.append(
            "0" + f"{int(ident):0{_WIDTH}d}" if ident.isdigit() and len(ident) <= _WIDTH else "1" + ident
        )
    # ' ' sorts below every allowed id character, so a shorter identifier list sorts first.
    return key + "!" + " ".join(idents)
