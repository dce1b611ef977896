"""An input's text encoding: its lines decoded, or transcoded to the UTF-8 that orjson
parses, and what is said of bytes that are not text in it.

Every encoding :class:`~vupsert.config.settings.ReadOptions` accepts writes a newline and
every other ASCII character as that one byte, and no character as bytes that hold one: the
readers find lines, quotes, brackets and delimiters in the bytes as read, so positions
stay byte positions of the input whatever its encoding. UTF-8 is read as it is, with
nothing decoded or copied on the way to orjson.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import option
from ..config.settings import check_encoding

_GUESSES = (("cp1252", "Windows' Western European"), ("latin-1", "ISO 8859-1"))
"""What a file that is not UTF-8 most likely is, most likely first: cp1252 is Latin-1
with letters where Latin-1 has control characters, and Latin-1 decodes any byte."""
_SHOWN = 60
"""Characters of a line a hint shows around its first bad byte."""


class Text:
    """How one input's bytes are text: ``encoding`` as the user named it, and ``warn`` to
    say once, at its first line that is not UTF-8, which option reads it (``inline``: say
    it in that line's reason instead)."""

    __slots__ = ("_codec", "_hinted", "_inline", "_warn", "encoding", "transcode", "utf8")

    def __init__(
        self,
        encoding: str = "utf-8",
        warn: Callable[[str], None] | None = None,
        *,
        inline: bool = False,
    ) -> None:
        """``Text(reading.options.encoding, reading.on_warning)`` for an input."""
        self.encoding = encoding
        self._inline = inline
        self._codec = check_encoding(encoding)
        self.utf8 = self._codec == "utf-8"
        self.transcode: Callable[[bytes], bytes] | None = None if self.utf8 else self._transcode
        """Bytes in this encoding as UTF-8 (``UnicodeDecodeError`` if they are not text in
        it), ``None`` for UTF-8 itself: the readers test it once per line."""
        self._warn = warn
        self._hinted = False

    @property
    def name(self) -> str:
        """The encoding as messages name it."""
        return "UTF-8" if self.utf8 else self.encoding

    def _transcode(self, data: bytes) -> bytes:
        return data.decode(self._codec).encode("utf-8")

    def decode(self, data: bytes) -> str:
        """``data`` as text; ``UnicodeDecodeError`` if it is not text in this encoding."""
        return data.decode(self._codec)

    def lenient(self, data: bytes) -> str:
        """``data`` as text, a byte that is not text kept as a lone surrogate (which
        :meth:`shown` turns back into that byte)."""
        return data.decode(self._codec, "surrogateescape")

    def shown(self, data: bytes) -> str:
        """``data`` as text fit to show or keep, a byte that is not text as ``\\xNN``."""
        return data.decode(self._codec, "backslashreplace")

    def error(self, data: bytes) -> UnicodeDecodeError | None:
        """Why ``data`` is not text in this encoding, if it is not."""
        try:
            data.decode(self._codec)
        except UnicodeDecodeError as exc:
            return exc
        return None

    def invalid(
        self, exc: UnicodeDecodeError, data: bytes, source: str, line: int, what: str
    ) -> str:
        """The reason to reject ``data`` (``what``: "the line", "the element"), item
        ``line`` of ``source``. At the input's first that is not UTF-8, the hint names the
        option that reads it: said once through ``warn``, or in this reason."""
        reason = f"invalid {self.name} at byte {exc.start + 1} of {what}"
        if not self.utf8 or self._hinted or (self._warn is None and not self._inline):
            return reason
        self._hinted = True
        hint = encoding_hint(data, exc.start, what)
        if self._warn is None:
            return f"{reason} ({hint})"
        self._warn(f"{source}:{line}: {reason}: {hint}")
        return reason


def encoding_hint(data: bytes, at: int, what: str = "the line") -> str:
    """What to do about ``data`` (``what``), not UTF-8 from byte ``at``: the option, with
    the encoding it most likely is and how the text reads in it when it reads as text."""
    for guess, called in _GUESSES:
        text = _decoded(data, guess)
        if text is not None and all(c < "\x80" or c in _WESTERN for c in text):
            start = max(0, at - _SHOWN // 2)
            shown = text[start : start + _SHOWN].strip("\r\n")
            return (
                f"the file may be in another encoding: as {guess} ({called}) {what} reads "
                f"{shown!r}; if that is right, give {option('encoding', guess)}"
            )
    return (
        f"if the file is in another encoding than UTF-8, give it with {option('encoding')} "
        "(cp1252, latin-1, iso-8859-15, cp1251, ...)"
    )


_WESTERN = frozenset(
    "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßàáâãäåæçèéêëìíîïñòóôõöøùúûüýŒœŠšŽž€…«»°£§©®·¿¡ºª"
    "\u2018\u2019\u201c\u201d\u2013\u2014\xa0"  # quotes, dashes, no-break space
)
"""What text in Western European languages holds beyond ASCII: a line that reads as
only these in a guessed encoding is most likely in it."""


def _decoded(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None
