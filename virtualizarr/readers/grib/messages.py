"""Where the GRIB messages of a file are, and whether each is well formed (pure).

A GRIB file is a sequence of messages, each ``GRIB`` ... ``7777``, possibly with bytes
between them (ecCodes and cfgrib skip those). Section 0 gives the edition and the
message's length: 3 bytes at offset 4 for edition 1, 8 bytes at offset 8 for edition 2.

Before ecCodes sees a message, its sections are walked here: every section length must
stay inside the message and the message must end with ``7777``. A damaged message is
refused with :class:`~virtualizarr.errors.FileFormatError` naming its offset, instead of
being handed to a C library that trusts its lengths. An edition-2 message holding more
than one field (repeated sections 2 to 7) is refused too: cfgrib reads such fields
through ecCodes' multi-field mode, and one reference per message could not address them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from virtualizarr.errors import FileFormatError, UnsupportedFeatureError

__all__ = ["MAGIC", "Message", "check_message", "scan_messages"]

MAGIC: Final = b"GRIB"
END: Final = b"7777"
SEARCH_BLOCK: Final = 1 << 16
"""Bytes read at a time while looking for the next ``GRIB`` after junk."""

ReadAt = Callable[[int, int], bytes]
"""``read(offset, size)``: up to ``size`` bytes at ``offset`` (fewer at the end)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message: its byte range and edition."""

    offset: int
    length: int
    edition: int


def _message_length(head: bytes, offset: int, where: str) -> tuple[int, int]:
    edition = head[7]
    if edition == 1:
        length = int.from_bytes(head[4:7], "big")
        if length & 0x800000:
            raise UnsupportedFeatureError(
                f"{where}: the GRIB 1 message at byte {offset} uses the large-message length "
                "encoding (over 8 MiB), which is not supported."
            )
    elif edition == 2:
        length = int.from_bytes(head[8:16], "big")
    else:
        raise FileFormatError(
            f"{where}: the message at byte {offset} claims GRIB edition {edition}; expected 1 "
            "or 2. The file is corrupt."
        )
    if length < 16 + len(END):
        raise FileFormatError(
            f"{where}: the GRIB message at byte {offset} claims a length of {length} bytes, "
            "shorter than its own sections; the file is corrupt."
        )
    return edition, length


def scan_messages(read: ReadAt, size: int, where: str) -> Iterator[Message]:
    """The messages of a GRIB file, in order (bytes between messages are skipped).

    Parameters
    ----------
    read : callable
        ``read(offset, size)`` returns the file's bytes.
    size : int
        The file's size.
    where : str
        The file, for messages.

    Yields
    ------
    Message

    Raises
    ------
    FileFormatError
        If a message runs past the end of the file or claims an impossible length.
    """
    offset = 0
    while offset < size:
        head = read(offset, 16)
        if head[:4] != MAGIC:
            found = -1
            pos = offset
            while found < 0 and pos < size:
                block = read(pos, SEARCH_BLOCK + 3)
                found = block.find(MAGIC)
                if found >= 0:
                    found += pos
                elif len(block) <= 3:
                    break
                pos += len(block) - 3
            if found < 0:
                return
            offset = found
            head = read(offset, 16)
        if len(head) < 16:
            raise FileFormatError(
                f"{where}: the GRIB message at byte {offset} is cut short by the end of the "
                "file; the file is truncated."
            )
        edition, length = _message_length(head, offset, where)
        if offset + length > size:
            raise FileFormatError(
                f"{where}: the GRIB message at byte {offset} claims {length} bytes but the file "
                f"ends after {size - offset}; the file is truncated or corrupt."
            )
        yield Message(offset, length, edition)
        offset += length


def check_message(data: bytes, offset: int, where: str) -> None:
    """Walk a message's sections; refuse a damaged or multi-field message.

    Parameters
    ----------
    data : bytes
        The whole message.
    offset : int
        Its offset in the file, for messages.
    where : str
        The file, for messages.

    Raises
    ------
    FileFormatError
        If a section length leaves the message or ``7777`` is missing.
    UnsupportedFeatureError
        For an edition-2 message with more than one field.
    """
    n = len(data)
    bad = FileFormatError(
        f"{where}: the GRIB message at byte {offset} is damaged (its section lengths do not "
        "add up to the message, or it does not end with '7777'); the file is corrupt."
    )
    if n < 20 or data[:4] != MAGIC or data[-4:] != END:
        raise bad
    edition = data[7]
    if edition == 1:
        _walk_grib1(data, bad)
        return
    pos, fields = 16, 0
    last = 0
    while pos < n - 4:
        if pos + 5 > n - 4:
            raise bad
        length = int.from_bytes(data[pos : pos + 4], "big")
        number = data[pos + 4]
        if length < 5 or pos + length > n - 4 or number < 1 or number > 7:
            raise bad
        if number < last and number not in (2, 3, 4):
            raise bad
        fields += number == 7
        last = number
        pos += length
    if pos != n - 4 or fields == 0:
        raise bad
    if fields > 1:
        raise UnsupportedFeatureError(
            f"{where}: the GRIB 2 message at byte {offset} holds {fields} fields; messages "
            "with several fields are not supported (one reference addresses one message)."
        )


def _walk_grib1(data: bytes, bad: FileFormatError) -> None:
    n = len(data)
    pos = 8
    if pos + 8 > n - 4:
        raise bad
    sec1 = int.from_bytes(data[pos : pos + 3], "big")
    if sec1 < 28 or pos + sec1 > n - 4:
        raise bad
    flags = data[pos + 7]
    pos += sec1
    for present in (flags & 0x80, flags & 0x40):  # grid description, bitmap
        if present:
            if pos + 3 > n - 4:
                raise bad
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length < 3 or pos + length > n - 4:
                raise bad
            pos += length
    if pos + 3 > n - 4:
        raise bad
    length = int.from_bytes(data[pos : pos + 3], "big")
    if length < 11 or pos + length > n - 4:
        raise bad
