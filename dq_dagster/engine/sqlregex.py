r"""The contract's regex dialect (Rust's ``regex`` crate, as polars runs it) translated into the
regex dialects of SQL engines, exactly or not at all.

``translate(pattern, flavor)`` returns a pattern that matches exactly the same strings in the
target engine, or raises ``Untranslatable`` saying why that cannot be promised. An engine that
gets no pattern reports the rule as not evaluated: a wrong count is never an option.

How exactness is reached: the pattern is parsed here (a subset of the Rust syntax), and every
construct whose meaning differs between dialects is rewritten into one both read alike:

* ``.`` is "any character but ``\n``" in Rust; Postgres' ``.`` also matches ``\n`` -> ``[^\n]``;
* ``\d``, ``\s``, ``\w`` (and ``\p{..}``) are Unicode classes in Rust, ASCII in RE2 and
  locale-dependent in Postgres -> explicit code-point ranges, computed by asking polars itself
  which characters the class matches (so they are exactly the crate's tables);
* POSIX classes ``[[:alpha:]]`` are ASCII in Rust -> explicit ASCII ranges;
* ``\A`` / ``\z`` -> ``^`` / ``$`` (without the ``m`` flag they mean the same in all three);
* laziness (``*?``) is dropped: it never changes whether a string matches.

Refused (``Untranslatable``): flags (``(?i)``, ``(?m)``, ``(?s)``, ``(?x)``: case folding and line modes
differ), word boundaries ``\b`` / ``\B``, repetition counts over 255 (Postgres' limit), and any
syntax this parser does not know. Flavors: ``postgres`` (Postgres ARE, a database in UTF-8) and
``re2`` (DuckDB). No SQL here: the SQL engine wraps the result in its dialect's match operator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import polars as pl

__all__ = ["FLAVORS", "Untranslatable", "translate"]

FLAVORS = ("postgres", "re2")
_MAX_REPEAT = 255
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_ESCAPED_CHARS = {"n": 0x0A, "t": 0x09, "r": 0x0D, "f": 0x0C, "v": 0x0B, "a": 0x07}

Ranges = list[tuple[int, int]]


class Untranslatable(Exception):
    """The pattern cannot be promised to match the same strings in the target dialect."""


@functools.lru_cache(maxsize=64)
def _class_ranges(escape: str) -> tuple[tuple[int, int], ...]:
    r"""Code-point ranges a class escape (``\d``, ``\p{L}``, ...) matches, asked of polars."""
    points = [c for c in range(_MAX_CODE_POINT + 1) if not _SURROGATES[0] <= c <= _SURROGATES[1]]
    chars = pl.Series([chr(c) for c in points], dtype=pl.String)
    hits = chars.str.contains(f"^{escape}$").to_list()
    ranges: list[tuple[int, int]] = []
    for cp, hit in zip(points, hits, strict=True):
        if not hit:
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        elif ranges and ranges[-1][1] == _SURROGATES[0] - 1 and cp == _SURROGATES[1] + 1:
            ranges[-1] = (ranges[-1][0], cp)  # a class spanning the surrogate gap stays one range
        else:
            ranges.append((cp, cp))
    return tuple(ranges)


_META = frozenset("\\^$.|?*+()[]{}-&~#")


def _char(cp: int) -> str:
    r"""One code point as both dialects read it, inside or outside ``[]``: regex punctuation
    escaped with a backslash (literal in both), everything else as the character itself (hex
    escapes differ: Postgres' ``\x`` takes any number of digits, RE2's two or ``{..}``).
    """
    if cp == 0:
        raise Untranslatable("NUL characters (SQL text cannot hold them)")
    ch = chr(cp)
    return "\\" + ch if ch in _META else ch


def _bracket(ranges: Ranges, negated: bool) -> str:
    parts = []
    for lo, hi in _merge(ranges):
        lo = max(lo, 1)  # SQL text never holds NUL: leaving it out changes no match
        if lo > hi:
            continue
        if lo == hi:
            parts.append(_char(lo))
        elif hi == lo + 1:
            parts.append(_char(lo) + _char(hi))
        else:
            parts.append(f"{_char(lo)}-{_char(hi)}")
    if not parts:
        raise Untranslatable("an empty character class")
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def _merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _complement(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in _merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_CODE_POINT:
        out.append((nxt, _MAX_CODE_POINT))
    return [r for r in out if not (r[0] >= _SURROGATES[0] and r[1] <= _SURROGATES[1])]


@dataclass
class _Parser:
    src: str
    flavor: str
    pos: int = 0

    def peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise Untranslatable("unexpected end of pattern")
        self.pos += 1
        return ch

    # alternation / sequence ------------------------------------------------------------------
    def alternation(self, depth: int) -> str:
        branches = [self.sequence(depth)]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence(depth))
        return "|".join(branches)

    def sequence(self, depth: int) -> str:
        out = []
        while self.peek() and self.peek() not in "|)":
            atom = self.atom(depth)
            out.append(atom + self.quantifier())
        if self.peek() == ")" and depth == 0:
            raise Untranslatable("unbalanced ')'")
        return "".join(out)

    def quantifier(self) -> str:
        ch = self.peek()
        if ch in ("*", "+", "?"):
            self.pos += 1
            q = ch
        elif ch == "{":
            end = self.src.find("}", self.pos)
            body = self.src[self.pos + 1 : end] if end > 0 else ""
            nums = body.split(",")
            if (
                end < 0
                or len(nums) > 2
                or not all(n.strip().isdigit() or (i == 1 and not n.strip()) for i, n in enumerate(nums))
            ):
                raise Untranslatable(f"repetition {{{body}}}")
            if any(n.strip() and int(n) > _MAX_REPEAT for n in nums):
                raise Untranslatable(f"repetition count over {_MAX_REPEAT}")
            self.pos = end + 1
            q = "{" + ",".join(n.strip() for n in nums) + "}"
        else:
            return ""
        if self.peek() == "?":
            self.pos += 1  # lazy or greedy: the same strings match
        if self.peek() in ("*", "+", "?", "{") and self.peek():
            raise Untranslatable("a quantifier on a quantifier")
        return q

    # atoms --------------------------------------------------------------------------------------
    def atom(self, depth: int) -> str:
        ch = self.take()
        if ch == "(":
            if self.peek() == "?":
                self.pos += 1
                if self.src.startswith("P<", self.pos) or self.peek() == "<":
                    end = self.src.find(">", self.pos)
                    if end < 0:
                        raise Untranslatable("unterminated group name")
                    self.pos = end + 1
                elif self.peek() == ":":
                    self.pos += 1
                else:
                    raise Untranslatable("inline flags")
            inner = self.alternation(depth + 1)
            if self.take() != ")":
                raise Untranslatable("unbalanced '('")
            return f"(?:{inner})"
        if ch == "[":
            return self.bracket()
        if ch == ".":
            return "[^\n]"  # a bracket holding a literal newline
        if ch in "^$":
            return ch
        if ch == "\\":
            return self.escape()
        if ch in "*+?{":
            raise Untranslatable(f"quantifier {ch!r} without an atom")
        return _char(ord(ch))

    def escape(self) -> str:
        ch = self.take()
        if ch == "A":
            return "^"
        if ch == "z":
            return "$"
        ranges = self.class_escape(ch)
        if ranges is not None:
            return _bracket(list(ranges), False)
        return _char(self.char_escape(ch))

    def class_escape(self, ch: str) -> Ranges | None:
        if ch in "dswDSW":
            base = list(_class_ranges("\\" + ch.lower()))
            return _complement(base) if ch.isupper() else base
        if ch in "pP":
            if self.peek() == "{":
                end = self.src.find("}", self.pos)
                if end < 0:
                    raise Untranslatable("unterminated \\p{")
                name = self.src[self.pos : end + 1]
                self.pos = end + 1
            else:
                name = self.take()
            return list(_class_ranges("\\" + ch + name))
        return None

    def char_escape(self, ch: str) -> int:
        if ch in _ESCAPED_CHARS:
            return _ESCAPED_CHARS[ch]
        if ch == "x":
            if self.peek() == "{":
                end = self.src.find("}", self.pos)
                digits, self.pos = self.src[self.pos + 1 : end], end + 1
            else:
                digits = self.src[self.pos : self.pos + 2]
                self.pos += 2
            try:
                return int(digits, 16)
            except ValueError as exc:
                raise Untranslatable(f"bad \\x escape {digits!r}") from exc
        if not ch.isalnum():
            return ord(ch)  # an escaped punctuation character is itself
        raise Untranslatable(f"escape \\{ch}")

    def bracket(self) -> str:
        negated = False
        if self.peek() == "^":
            negated = True
            self.pos += 1
        ranges: Ranges = []
        first = True
        while True:
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "[":
                if self.peek() == ":":
                    end = self.src.find(":]", self.pos)
                    name = self.src[self.pos + 1 : end] if end > 0 else ""
                    neg = name.startswith("^")
                    cls = _POSIX.get(name.lstrip("^"))
                    if cls is None:
                        raise Untranslatable(f"class [:{name}:]")
                    self.pos = end + 2
                    ranges += _complement(cls) if neg else cls
                    continue
                raise Untranslatable("nested classes or set operations")
            if ch in "&~-" and self.peek() == ch:
                raise Untranslatable("class set operations")
            if ch == "\\":
                esc = self.take()
                cls_ranges = self.class_escape(esc)
                if cls_ranges is not None:
                    ranges += cls_ranges
                    continue
                lo = self.char_escape(esc)
            else:
                lo = ord(ch)
            if self.peek() == "-" and self.src[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end_ch = self.take()
                hi = self.char_escape(self.take()) if end_ch == "\\" else ord(end_ch)
                if hi < lo:
                    raise Untranslatable("reversed range")
                ranges.append((lo, hi))
            else:
                ranges.append((lo, lo))
        return _bracket(ranges, negated)


def translate(pattern: str, flavor: str) -> str:
    """``pattern`` (contract dialect) in ``flavor``; raises ``Untranslatable`` saying why not."""
    if flavor not in FLAVORS:
        raise Untranslatable(f"no exact translation into the {flavor} regex dialect is known")
    if "\\b" in pattern or "\\B" in pattern:
        raise Untranslatable("word boundaries differ between dialects")
    parser = _Parser(pattern, flavor)
    out = parser.alternation(0)
    if parser.pos != len(pattern):
        raise Untranslatable("unbalanced ')'")
    return out
