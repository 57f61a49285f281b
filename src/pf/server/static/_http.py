"""HTTP header logic for static responses: media types, Accept-Encoding, Range, validators.

Pure functions over strings, so they are cheap to test and hold no state but small caches.
"""

from __future__ import annotations

import mimetypes
import re
from email.utils import formatdate, parsedate_to_datetime

# Fixed answers for what pf serves most, so they never depend on the host's /etc/mime.types
# (browsers compile .wasm streaming only as application/wasm, and load modules only as
# text/javascript).
MEDIA_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xml": "application/xml",
    ".wat": "text/plain; charset=utf-8",
    ".ll": "text/plain; charset=utf-8",
    ".s": "text/plain; charset=utf-8",
    ".c": "text/plain; charset=utf-8",
    ".h": "text/plain; charset=utf-8",
    ".rs": "text/plain; charset=utf-8",
    ".f90": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
}
OCTET_STREAM = "application/octet-stream"

_COMPRESSIBLE_PREFIXES = ("text/", "application/wasm", "application/json", "image/svg+xml")
_COMPRESSIBLE_EXACT = frozenset(
    {
        "application/javascript",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "application/ld+json",
        "image/x-icon",
        "font/ttf",
        "font/otf",
    }
)

# A content hash in a file name (app.3f2a9c1b.js, chunk-5d1e9a7f0c.wasm): at least 8 hex
# digits holding both a digit and a letter, so dates and plain words do not qualify.
_HASHED_NAME = re.compile(r"[.-](?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\.[A-Za-z0-9]+$")


def media_type_for(name: str) -> str:
    """The Content-Type for a file name."""
    dot = name.rfind(".")
    if dot >= 0:
        suffix = name[dot:].lower()
        known = MEDIA_TYPES.get(suffix)
        if known is not None:
            return known
        guessed, _ = mimetypes.guess_type("x" + suffix, strict=False)
        if guessed is not None:
            return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed
    return OCTET_STREAM


def is_compressible(media_type: str) -> bool:
    """Whether brotli/gzip pay off for this type (text, JS, JSON, wasm, SVG...)."""
    base = media_type.split(";", 1)[0].strip().lower()
    return base.startswith(_COMPRESSIBLE_PREFIXES) or base in _COMPRESSIBLE_EXACT


def is_hashed_name(name: str) -> bool:
    """Whether a file name carries a content hash, so its URL can be cached forever."""
    return _HASHED_NAME.search(name) is not None


def http_date(epoch_seconds: float) -> str:
    return formatdate(epoch_seconds, usegmt=True)


def parse_http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_ENCODING_CACHE: dict[str, tuple[str, ...]] = {}
_ENCODING_CACHE_MAX = 256


def accepted_codings(header: str) -> tuple[str, ...]:
    """The codings among ``br`` and ``gzip`` the client accepts, best first (q-values, RFC 9110).

    Ties go to brotli, the smaller of the two. Browsers send a handful of distinct headers,
    so answers are memoised in a small dict that is cleared when full.
    """
    cached = _ENCODING_CACHE.get(header)
    if cached is not None:
        return cached
    quality: dict[str, float] = {}
    star: float | None = None
    for part in header.split(","):
        token, _, params = part.partition(";")
        name = token.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        if name == "x-gzip":
            name = "gzip"
        if name == "*":
            star = q
        elif name in ("br", "gzip"):
            quality[name] = max(q, quality.get(name, 0.0))
    if star is not None:
        for name in ("br", "gzip"):
            quality.setdefault(name, star)
    order = {"br": 0, "gzip": 1}
    result = tuple(
        sorted((n for n, q in quality.items() if q > 0.0), key=lambda n: (-quality[n], order[n]))
    )
    if len(_ENCODING_CACHE) >= _ENCODING_CACHE_MAX:
        _ENCODING_CACHE.clear()
    _ENCODING_CACHE[header] = result
    return result


class Unsatisfiable(Exception):
    """The Range asks only for bytes past the end of the file (answer 416)."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range ``[start, end)`` asked for, or None to ignore the header.

    Malformed headers and multi-range requests are ignored (RFC 9110 lets a server answer
    them with the whole file); a range that starts past the end raises Unsatisfiable.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, size if last == "" else min(int(last) + 1, size)


def etag_matches(header: str, etags: frozenset[str]) -> str | None:
    """The entity tag of ``etags`` that If-None-Match names (weak comparison), or None.

    ``*`` matches any existing file: the first tag (the identity one) is returned then.
    """
    stripped = header.strip()
    if stripped == "*":
        return "*"
    for raw in stripped.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag in etags:
            return tag
    return None
