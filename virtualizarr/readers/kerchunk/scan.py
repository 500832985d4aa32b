"""Kerchunk JSON scanned with NumPy: chunk references straight into columns.

``ujson.loads`` of a million-reference document builds a dict of a million lists of a
string and two ints -- about 1 s and 600 MB before any manifest exists. A reference
entry has a rigid shape, ``"air/0.0.0": ["file:///a.nc", 16001, 14]``, so the document is
instead read as bytes with a handful of vectorised passes:

1. the positions of the unescaped double quotes (block by block) give every string;
2. the top-level object is walked in Python only as far as its ``"refs"`` key (version 1)
   -- a version-0 document is all references;
3. the bytes *between* consecutive strings of the references say what each entry is:
   after a key comes ``:`` or ``: [``, after a URL ``, N , N ] ,`` (or ``] ,``), after
   a string value ``,``, and the gap holding ``}`` ends the references. Gaps are read as
   byte matrices from a zero-copy sliding-window view of the document and classified in
   bulk, the cheapest way first: the short forms by their first four bytes looked up as
   one integer (:func:`_short_kinds`), ``,N,N],`` by parsing its two digit runs and
   rebuilding the gap from them (:func:`_url3_compact`), the same with whitespace by a
   stricter matrix check (:func:`_url3`), anything else by its token sequence
   (:func:`_general_kinds`). Any other shape -- nested objects, negative or fractional
   numbers, anything unexpected -- makes :func:`scan_document` return None, and the
   caller parses the document with ujson;
4. the two integers of every ``[url, offset, length]`` come from those gaps
   (``np.fromstring`` over their digits); keys and URLs are left as byte positions for
   :mod:`~virtualizarr.readers.kerchunk.columns`.

Entries that are not ``[url, offset, length]`` -- metadata documents, inline chunks,
whole-file ``[url]`` references -- are few; they are parsed one by one with ``json`` into
an ordinary references dict.
:func:`~virtualizarr.readers.kerchunk.columns.columnarize` then turns the chunk keys into
grid coordinates per array and the URLs into path ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import ujson

__all__ = ["Positions", "Scan", "digits", "rows", "scan_document"]

_BLOCK = 1 << 22
"""Bytes of the document compared at once when looking for quotes."""
_ROWS = 1 << 17
"""Gaps, keys or URLs gathered into one byte matrix at once."""
_MAX_GAP = 64
"""Bytes of a gap between two strings classified (a longer gap can only be the one that
ends the references: its first tokens say so)."""
_MAX_WIDTH = 1024
"""Longest key or URL handled in columns (longer ones are parsed one by one)."""
_MAX_TOP_LEVEL = 100_000
"""Bytes of top-level values before ``"refs"`` walked in Python at most."""

# token classes of the bytes between strings (4 bits each in a gap's signature)
_WS, _COMMA, _COLON, _OPEN_LIST, _CLOSE_LIST, _OPEN_OBJ, _CLOSE_OBJ, _DIGIT, _OTHER = range(9)
_LUT = np.full(256, _OTHER, np.uint8)
for _b, _c in ((b" \t\n\r", _WS), (b",", _COMMA), (b":", _COLON), (b"[", _OPEN_LIST)):
    _LUT[list(_b)] = _c
for _b, _c in ((b"]", _CLOSE_LIST), (b"{", _OPEN_OBJ), (b"}", _CLOSE_OBJ), (b"0123456789", _DIGIT)):
    _LUT[list(_b)] = _c
_MAX_TOKENS = 15
"""Tokens of a gap kept in its signature (a 64-bit integer, 4 bits a token)."""

# what a gap between two strings of the references is
(
    _UNKNOWN,
    _KEY_TO_STRING,  # "key": "value"            : after the key
    _KEY_TO_LIST,  # "key": ["url"...          : [ after the key
    _VALUE,  # "value", "next key"         , after a string value
    _URL1,  # ["url"], "next key"         ] , after a URL
    _URL3,  # ["url", 1, 2], "next key"   , N , N ] , after a URL
    _VALUE_END,  # "value"}                    } (the references end)
    _URL1_END,  # ["url"]}                    ] }
    _URL3_END,  # ["url", 1, 2]}              , N , N ] }
) = range(9)
_PATTERNS = {  # token sequences (whitespace dropped, a digit run one token)
    _KEY_TO_STRING: (_COLON,),
    _KEY_TO_LIST: (_COLON, _OPEN_LIST),
    _VALUE: (_COMMA,),
    _URL1: (_CLOSE_LIST, _COMMA),
    _URL3: (_COMMA, _DIGIT, _COMMA, _DIGIT, _CLOSE_LIST, _COMMA),
}
_END_PATTERNS = {  # ... and prefixes (what follows the references is the document's)
    _VALUE_END: (_CLOSE_OBJ,),
    _URL1_END: (_CLOSE_LIST, _CLOSE_OBJ),
    _URL3_END: (_COMMA, _DIGIT, _COMMA, _DIGIT, _CLOSE_LIST, _CLOSE_OBJ),
}
_SHORT_FORMS = {  # gaps of up to 4 bytes, as compact and spaced writers write them
    form.encode(): kind
    for kind, forms in (
        (_KEY_TO_STRING, (":", ": ", " :", " : ")),
        (_KEY_TO_LIST, (":[", ": [", ":[ ", ": [ ", " :[", " : [")),
        (_VALUE, (",", ", ", " ,", " , ", ",\n", ", \n")),
        (_URL1, ("],", "], ", "] ,", " ],", "] , ", " ], ")),
    )
    for form in forms
}

Int64s = npt.NDArray[np.int64]
Positions = npt.NDArray[np.signedinteger[Any]]
"""Byte positions in the document (``int32`` below 2 GiB)."""


@dataclass(frozen=True, slots=True)
class Scan:
    """A kerchunk JSON document, scanned.

    Attributes
    ----------
    document : dict
        The document with only the irregular references in ``"refs"`` (metadata
        documents, inline chunks, ``[url]`` references), or for a version-0 document those
        references themselves: what :func:`~virtualizarr.readers.kerchunk.parse.parse_kerchunk_dict`
        takes.
    key_start, key_end, url_start, url_end : ndarray of int32 or int64
        Per ``[url, offset, length]`` reference, in document order: the byte positions of
        the opening and closing quotes of its key and URL.
    offsets, lengths : ndarray of int64
        Its offset and length.
    """

    document: dict[str, Any]
    key_start: Positions
    key_end: Positions
    url_start: Positions
    url_end: Positions
    offsets: Int64s
    lengths: Int64s


# ---------------------------------------------------------------------- strings
def _quotes(a: npt.NDArray[np.uint8]) -> Positions:
    """Positions of the double quotes that open or close strings (not escaped ones), as
    ``int32`` when the document is under 2 GiB."""
    kind = np.int32 if len(a) < 2**31 else np.int64
    found = [
        (np.flatnonzero(a[i : i + _BLOCK] == 34) + i).astype(kind) for i in range(0, len(a), _BLOCK)
    ]
    q: Positions = np.concatenate(found) if found else np.zeros(0, kind)
    if not len(q):
        return q
    # a quote after an odd run of backslashes is escaped: count the runs (of the few
    # quotes after a backslash)
    behind = q - 1
    cand = np.flatnonzero((behind >= 0) & (a[np.maximum(behind, 0)] == 92))
    if not len(cand):
        return q
    pos = behind[cand]
    run = np.zeros(len(cand), np.int64)
    active = np.ones(len(cand), bool)
    while active.any():
        run[active] += 1
        pos[active] -= 1
        active &= pos >= 0
        active[active] = a[pos[active]] == 92
    unescaped: Positions = np.delete(q, cand[run % 2 == 1])
    return unescaped


def _controls_in_strings(a: npt.NDArray[np.uint8], q: npt.NDArray[Any]) -> bool:
    """Whether a control character (which JSON forbids there) sits inside a string."""
    found = [np.flatnonzero(a[i : i + _BLOCK] < 32) + i for i in range(0, len(a), _BLOCK)]
    controls = np.concatenate(found) if found else np.zeros(0, np.int64)
    return bool(len(controls) and (np.searchsorted(q, controls) % 2).any())


def _skip_ws(raw: bytes, pos: int) -> int:
    while pos < len(raw) and raw[pos] in b" \t\n\r":
        pos += 1
    return pos


class _Walker:
    """Walks the top level of the document in Python, jumping over strings."""

    def __init__(self, raw: bytes, starts: Positions, ends: Positions) -> None:
        self.raw, self.starts, self.ends = raw, starts, ends

    def string_at(self, pos: int) -> int | None:
        """The index of the string opening at ``pos``, or None."""
        i = int(np.searchsorted(self.starts, pos))
        return i if i < len(self.starts) and self.starts[i] == pos else None

    def skip_value(self, pos: int) -> int | None:
        """The position just after the JSON value starting at ``pos``."""
        raw, depth, limit = self.raw, 0, pos + _MAX_TOP_LEVEL
        while pos < min(len(raw), limit):
            c = raw[pos]
            if c == 34:  # a string: jump to its end
                i = self.string_at(pos)
                if i is None:
                    return None
                pos = int(self.ends[i]) + 1
            elif c in b"{[":
                depth += 1
                pos += 1
            elif c in b"}]":
                depth -= 1
                pos += 1
            elif c in b",:" and depth == 0:
                return pos
            else:
                pos += 1
            if depth == 0 and c in b'}]"':
                return pos
            if depth < 0:
                return None
        return None


_V1_KEYS = frozenset({"version", "refs", "templates", "gen", "virtualizarr"})


def _find_refs(raw: bytes, walker: _Walker) -> tuple[int, bool] | None:
    """The position of the references object's ``{`` and whether the document is
    version 1 (references under ``"refs"``) rather than version 0 (all references)."""
    top = _skip_ws(raw, 0)
    if top >= len(raw) or raw[top] != 123:
        return None
    pos = _skip_ws(raw, top + 1)
    first = True
    while pos < len(raw) and raw[pos] == 34:
        i = walker.string_at(pos)
        if i is None:
            return None
        try:
            key = json.loads(raw[pos : int(walker.ends[i]) + 1])
        except ValueError:
            return None
        if first and key not in _V1_KEYS:
            return top, False  # version 0: the document is the references
        first = False
        pos = _skip_ws(raw, int(walker.ends[i]) + 1)
        if pos >= len(raw) or raw[pos] != 58:
            return None
        pos = _skip_ws(raw, pos + 1)
        if key == "refs":
            return (pos, True) if pos < len(raw) and raw[pos] == 123 else None
        end = walker.skip_value(pos)
        if end is None:
            return None
        pos = _skip_ws(raw, end)
        if pos >= len(raw) or raw[pos] != 44:
            return None
        pos = _skip_ws(raw, pos + 1)
    return None


# ---------------------------------------------------------------------- gaps
def rows(a: npt.NDArray[np.uint8], starts: Positions, width: int) -> npt.NDArray[np.uint8]:
    """``width`` bytes of the document from each start (zero-padded past its end): fancy
    indexing of a sliding-window view, one row copied per start, no index per byte."""
    if not len(starts):
        return np.zeros((0, width), np.uint8)
    limit = len(a) - width
    if int(starts.max()) <= limit:
        out: npt.NDArray[np.uint8] = np.lib.stride_tricks.sliding_window_view(a, width)[starts]
        return out
    out = np.zeros((len(starts), width), np.uint8)
    inside = starts <= limit
    if inside.any():
        out[inside] = np.lib.stride_tricks.sliding_window_view(a, width)[starts[inside]]
    for i in np.flatnonzero(~inside).tolist():  # the last few bytes of the document
        tail = a[int(starts[i]) :]
        out[i, : len(tail)] = tail
    return out


def _signature_block(
    a: npt.NDArray[np.uint8], starts: Positions, lengths: Positions, width: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """Signatures (tokens packed 4 bits each, first lowest) and token counts of gaps
    (their first ``width`` bytes)."""
    cls = _LUT[rows(a, starts, width)]
    cls[np.arange(width) >= lengths[:, None]] = _WS
    digit = cls == _DIGIT
    keep = cls != _WS
    keep[:, 1:] &= ~(digit[:, 1:] & digit[:, :-1])  # a run of digits is one token
    rank = np.cumsum(keep, axis=1, dtype=np.uint8)
    shift = (np.minimum(rank, _MAX_TOKENS + 1).astype(np.uint64) - 1) * np.uint64(4)
    packed = np.where(keep & (rank <= _MAX_TOKENS), cls.astype(np.uint64) << shift, 0)
    sig: npt.NDArray[np.uint64] = np.bitwise_or.reduce(packed, axis=1)
    return sig, rank[:, -1].astype(np.int64)


def _pack(pattern: tuple[int, ...]) -> tuple[np.uint64, np.uint64]:
    value = sum(t << (4 * k) for k, t in enumerate(pattern))
    return np.uint64(value), np.uint64((1 << (4 * len(pattern))) - 1)


def _general_kinds(a: npt.NDArray[np.uint8], starts: Positions, lengths: Positions) -> Int64s:
    """The kinds of gaps of any shape, from their token sequences (the slow way)."""
    n = len(starts)
    kinds = np.full(n, _UNKNOWN, np.int64)
    if not n:
        return kinds
    width = max(min(int(lengths.max()), _MAX_GAP), 1)
    for lo in range(0, n, _ROWS):
        hi = min(lo + _ROWS, n)
        sig, count = _signature_block(a, starts[lo:hi], lengths[lo:hi], width)
        whole = lengths[lo:hi] <= width  # a longer gap can only be the references' end
        got = np.full(hi - lo, _UNKNOWN, np.int64)
        for kind, pattern in _END_PATTERNS.items():
            value, mask = _pack(pattern)
            got[(got == _UNKNOWN) & ((sig & mask) == value)] = kind
        for kind, pattern in _PATTERNS.items():
            value, _ = _pack(pattern)
            got[whole & (sig == value) & (count == len(pattern))] = kind
        kinds[lo:hi] = got
    return kinds


def _short_kinds(a: npt.NDArray[np.uint8], starts: Positions, lengths: Positions) -> Int64s:
    """The kinds of gaps of up to four bytes in the usual forms (_SHORT_FORMS), else
    _UNKNOWN: four bytes packed in an integer, looked up."""
    head = rows(a, starts, 4).copy()
    head[np.arange(4) >= lengths[:, None]] = 0
    words = head.view("<u4").ravel().astype(np.int64) | (
        np.minimum(lengths, 5).astype(np.int64) << 32
    )
    table = {
        int.from_bytes(f.ljust(4, b"\0"), "little") | (len(f) << 32): k
        for f, k in _SHORT_FORMS.items()
    }
    codes = np.array(sorted(table), np.int64)
    kinds_of = np.array([table[c] for c in sorted(table)], np.int64)
    i = np.minimum(np.searchsorted(codes, words), len(codes) - 1)
    return np.where(codes[i] == words, kinds_of[i], _UNKNOWN)


_POWERS = 10 ** np.arange(1, 19, dtype=np.int64)


def digits(x: Int64s) -> Int64s:
    """Decimal digits of non-negative integers (1 for 0)."""
    out: Int64s = np.searchsorted(_POWERS, x, side="right") + 1
    return out


def _url3_compact(
    a: npt.NDArray[np.uint8], starts: Positions, lengths: Positions
) -> tuple[npt.NDArray[np.bool_], Int64s]:
    """Gaps that are exactly ``,N,N],`` and their integers (the usual case, checked
    cheaply): the digit runs are parsed, then the gap is rebuilt from them -- its length
    and where its commas and bracket must be -- and compared with the document."""
    n = len(starts)
    ok = np.zeros(n, bool)
    numbers = np.zeros((n, 2), np.int64)
    if not n or int(lengths.max()) > _MAX_GAP:
        return ok, numbers
    width = int(lengths.max())
    cols = np.arange(width)
    for lo in range(0, n, _ROWS):
        hi = min(lo + _ROWS, n)
        block = rows(a, starts[lo:hi], width)
        text = np.full((hi - lo, width + 1), 32, np.uint8)  # a space ends each row
        digit = (block - np.uint8(48) < 10) & (cols < lengths[lo:hi, None])
        text[:, :-1] = np.where(digit, block, np.uint8(32))
        parsed = np.fromstring(text.tobytes(), dtype=np.int64, sep=" ")
        if parsed.size != 2 * (hi - lo) or (parsed < 0).any():
            continue  # some gap has not two digit runs: the careful way for this block
        values = parsed.reshape(-1, 2)
        g, length = starts[lo:hi], lengths[lo:hi]
        n_off = digits(values[:, 0])
        good = (length == n_off + digits(values[:, 1]) + 4) & (values < 10**18).all(axis=1)
        g_ok = np.where(good, g, 0)
        length_ok = np.where(good, length, 4)
        good &= a[g_ok] == 44
        good &= a[g_ok + np.where(good, 1 + n_off, 0)] == 44
        good &= a[g_ok + length_ok - 2] == 93
        good &= a[g_ok + length_ok - 1] == 44
        ok[lo:hi] = good
        numbers[lo:hi] = values
    return ok, numbers


def _url3(a: npt.NDArray[np.uint8], starts: Positions, lengths: Positions) -> tuple[Int64s, Int64s]:
    """Gaps after a URL of the form ``, N , N ] ,`` (or ``... ] }``: the end) and their
    integers: per gap its kind (_URL3, _URL3_END or _UNKNOWN) and the two integers.

    The form is checked on a byte matrix: before the first ``]`` only commas, digits and
    whitespace, as ``, D , D``; after it only whitespace and one comma (or first a ``}``).
    """
    n = len(starts)
    kinds = np.full(n, _UNKNOWN, np.int64)
    numbers = np.zeros((n, 2), np.int64)
    if not n:
        return kinds, numbers
    width = max(min(int(lengths.max()), _MAX_GAP), 1)
    cols = np.arange(width)
    for lo in range(0, n, _ROWS):
        hi = min(lo + _ROWS, n)
        block = rows(a, starts[lo:hi], width)
        cls = _LUT[block]
        cls[cols >= lengths[lo:hi, None]] = _WS
        close = np.argmax(cls == _CLOSE_LIST, axis=1)
        before = cols < close[:, None]
        digit = (cls == _DIGIT) & before
        comma = cls == _COMMA
        comma_before = comma & before
        run = digit.copy()
        run[:, 1:] &= ~digit[:, :-1]
        first_comma = np.argmax(comma_before, axis=1)
        second_comma = np.argmax(comma_before & (cols > first_comma[:, None]), axis=1)
        first_run = np.argmax(run, axis=1)
        ok = (
            (cls[np.arange(hi - lo), close] == _CLOSE_LIST)
            & ~((cls != _WS) & ~digit & ~comma & before).any(axis=1)
            & (comma_before.sum(axis=1) == 2)
            & (run.sum(axis=1) == 2)
            & (first_comma < first_run)
            & (first_run < second_comma)
        )
        after = (cols > close[:, None]) & (cls != _WS)
        first_after = cls[np.arange(hi - lo), np.argmax(after, axis=1)]
        ends = ok & after.any(axis=1) & (first_after == _CLOSE_OBJ)
        whole = lengths[lo:hi] <= width  # the gap's end is in sight (the end's needn't be)
        middle = ok & whole & ((comma & after).sum(axis=1) == 1)
        middle &= ~(after & ~comma).any(axis=1)
        if width > 18 and (digit.sum(axis=1) > 18).any():
            for i in np.flatnonzero(digit.sum(axis=1) > 18):
                edges = np.flatnonzero(np.diff(np.concatenate([[0], digit[i].view(np.int8), [0]])))
                if (edges[1::2] - edges[::2]).max() > 18:
                    ok[i] = middle[i] = ends[i] = False
        kinds[lo:hi] = np.where(middle, _URL3, np.where(ends, _URL3_END, _UNKNOWN))
        good = np.flatnonzero(middle | ends)
        if len(good):
            text = np.full((len(good), width + 1), 32, np.uint8)  # a space ends each row
            text[:, :-1] = np.where(digit[good], block[good], np.uint8(32))
            values = np.fromstring(text.tobytes(), dtype=np.int64, sep=" ")
            numbers[lo + good] = values.reshape(-1, 2)
    return kinds, numbers


# ---------------------------------------------------------------------- the document
def scan_document(raw: bytes) -> Scan | None:
    """Scan a kerchunk JSON document; None if it has a shape the scan does not handle.

    Parameters
    ----------
    raw : bytes
        The document.

    Returns
    -------
    Scan or None
    """
    a = np.frombuffer(raw, np.uint8)
    q = _quotes(a)
    if len(q) % 2 or _controls_in_strings(a, q):
        return None
    starts, ends = q[0::2], q[1::2]
    walker = _Walker(raw, starts, ends)
    found = _find_refs(raw, walker)
    if found is None:
        return None
    r0, v1 = found
    first = int(np.searchsorted(starts, r0))
    s, e = starts[first:], ends[first:]
    if not len(s) or raw[r0 + 1 : int(s[0])].strip() != b"":
        return None  # an empty "refs" (or one not opening with a key): ujson's business
    m = len(s) // 2
    if not m:
        return None
    ks, ke, vs, ve = s[0 : 2 * m : 2], e[0 : 2 * m : 2], s[1 : 2 * m : 2], e[1 : 2 * m : 2]
    after_value_end = np.empty(m, np.int64)  # where the gap after each value ends
    after_value_end[:-1] = ks[1:]
    after_value_end[-1] = s[2 * m] if len(s) > 2 * m else len(raw)
    # after each key: ':' or ': [' (most in a short form, the rest the slow way)
    gk, lk = ke + 1, vs - ke - 1
    key_kind = _short_kinds(a, gk, lk)
    unknown = np.flatnonzero(key_kind == _UNKNOWN)
    key_kind[unknown] = _general_kinds(a, gk[unknown], lk[unknown])
    del gk, lk
    # after each value: by the key's gap, a string value's or a URL's
    gv, lv = ve + 1, after_value_end - ve - 1
    del after_value_end
    value_kind = np.full(m, _UNKNOWN, np.int8)
    nums = np.zeros((m, 2), np.int64)
    have = np.zeros(m, bool)  # whose integers are read
    listed = np.flatnonzero(key_kind == _KEY_TO_LIST)
    compact, got = _url3_compact(a, gv[listed], lv[listed])
    value_kind[listed[compact]], nums[listed[compact]] = _URL3, got[compact]
    have[listed[compact]] = True
    rest = listed[~compact]  # spaced, [url], or the end: the careful way
    value_kind[rest], nums[rest] = _url3(a, gv[rest], lv[rest])
    have[rest] = np.isin(value_kind[rest], (_URL3, _URL3_END))
    del listed, compact, got
    unknown = np.flatnonzero(value_kind == _UNKNOWN)
    value_kind[unknown] = _short_kinds(a, gv[unknown], lv[unknown])
    unknown = unknown[value_kind[unknown] == _UNKNOWN]
    value_kind[unknown] = _general_kinds(a, gv[unknown], lv[unknown])
    string = key_kind == _KEY_TO_STRING
    is_list = key_kind == _KEY_TO_LIST
    valid = (string & (value_kind == _VALUE)) | (is_list & np.isin(value_kind, (_URL1, _URL3)))
    ending = (string & (value_kind == _VALUE_END)) | (
        is_list & np.isin(value_kind, (_URL1_END, _URL3_END))
    )
    if not ending.any():
        return None
    last = int(np.argmax(ending))
    if not valid[:last].all():
        return None
    is_list = is_list[: last + 1]
    three = np.isin(value_kind[: last + 1], (_URL3, _URL3_END))
    redo = np.flatnonzero(three & ~have[: last + 1])  # found the slow way: read them now
    if len(redo):
        redone, nums[redo] = _url3(a, gv[redo], lv[redo])
        if not np.isin(redone, (_URL3, _URL3_END)).all():
            return None
    nums = nums[: last + 1]
    # where the references end: the first '}' after the last value
    r1 = raw.find(b"}", int(ve[last]) + 1)
    rest_bytes = raw[:r0] + b"{}" + raw[r1 + 1 :] if v1 else b"{}"
    if not v1 and raw[r1 + 1 :].strip():
        return None
    try:
        try:
            rest = ujson.loads(rest_bytes)
        except ValueError:
            rest = json.loads(rest_bytes)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rest, dict):
        return None
    # regular: [url, offset, length] with key and URL within the width limit
    ks, ke, vs, ve = ks[: last + 1], ke[: last + 1], vs[: last + 1], ve[: last + 1]
    regular = three & ((ke - ks) <= _MAX_WIDTH) & ((ve - vs) <= _MAX_WIDTH)
    irregular: dict[str, Any] = {}
    try:
        for j in np.flatnonzero(~regular).tolist():
            key = json.loads(raw[int(ks[j]) : int(ke[j]) + 1])
            text = json.loads(raw[int(vs[j]) : int(ve[j]) + 1])
            if not is_list[j]:
                irregular[key] = text
            elif three[j]:
                irregular[key] = [text, int(nums[j, 0]), int(nums[j, 1])]
            else:
                irregular[key] = [text]
    except (ValueError, UnicodeDecodeError):
        return None
    document = {**rest, "refs": irregular} if v1 else irregular
    return Scan(
        document,
        ks[regular],
        ke[regular],
        vs[regular],
        ve[regular],
        nums[regular, 0].copy(),
        nums[regular, 1].copy(),
    )
