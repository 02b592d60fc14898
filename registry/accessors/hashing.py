"""Hashes of downloaded files: md5, and S3 multipart ETags (``md5-n``).

A multipart ETag is the md5 of the concatenated binary md5 digests of the upload's parts,
followed by ``-N`` (the number of parts). Recomputing it needs the part size the uploader used:
the storage may say (HEAD with ``partNumber=1``); otherwise the usual client defaults are tried
(boto3 and the AWS CLI: 8 MiB; s3fs: 50 MiB, 5 MiB in older versions; 16, 32, 64 MiB... and the
part size implied by the size and N), keeping those that give exactly N parts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
USUAL_PART_SIZES = tuple(m * MIB for m in (8, 5, 50, 16, 32, 64, 100, 128, 256, 512, 1024))
_READ = 4 * MIB
_HEX = re.compile(r"^[0-9a-f]{32}$")


def normalise_hash(value: str) -> str:
    """An md5 (or multipart ETag) as lowercase hex: quotes dropped, base64 digests decoded.

    ``"abc...-3"`` -> ``abc...-3``; a url-safe base64 md5 (as LaminDB stores it) -> hex.
    """
    value = value.strip().strip('"')
    digest, sep, parts = value.partition("-")
    if _HEX.match(digest.lower()):
        return digest.lower() + sep + parts
    try:
        raw = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4))
    except (binascii.Error, ValueError):
        return value
    return (raw.hex() + sep + parts) if len(raw) == 16 else value


def n_parts_of(value: str) -> int | None:
    """The part count of a multipart ETag (``<hex>-N``), else ``None``."""
    _, sep, parts = value.partition("-")
    return int(parts) if sep and parts.isdigit() else None


def part_size_candidates(size: int, n_parts: int, known: int | None = None) -> list[int]:
    """Part sizes that split ``size`` bytes into exactly ``n_parts`` parts, most likely first.

    Args:
        size: object size.
        n_parts: N of the ETag.
        known: the part size the storage reported, tried first (and alone when it fits).
    """

    def fits(part: int) -> bool:
        # S3 parts are at least 5 MiB, except the last (and a single part)
        return (part >= MIN_PART_SIZE or n_parts == 1) and math.ceil(size / part) == n_parts

    if known and fits(known):
        return [known]
    implied = max(math.ceil(size / n_parts / MIB) * MIB, 1) if n_parts else 1
    candidates = [*USUAL_PART_SIZES, implied]
    return [p for i, p in enumerate(candidates) if fits(p) and p not in candidates[:i]]


def hash_file(path: Path, *, md5: bool, part_sizes: Sequence[int] = ()) -> tuple[str, dict]:
    """Read a file once and compute its md5 and/or multipart ETags for several part sizes.

    Returns:
        ``(md5 hex or "", {part_size: "<hex>-N"})``.
    """
    whole = hashlib.md5() if md5 else None
    parts: dict[int, list] = {p: [hashlib.md5(), 0, []] for p in part_sizes}  # hasher, fill, done
    with path.open("rb") as fh:
        while block := fh.read(_READ):
            if whole is not None:
                whole.update(block)
            view = memoryview(block)
            for part_size, state in parts.items():
                offset = 0
                while offset < len(view):
                    take = min(part_size - state[1], len(view) - offset)
                    state[0].update(view[offset : offset + take])
                    state[1] += take
                    offset += take
                    if state[1] == part_size:
                        state[2].append(state[0].digest())
                        state[0], state[1] = hashlib.md5(), 0
    etags = {}
    for part_size, (hasher, fill, done) in parts.items():
        digests = done + ([hasher.digest()] if fill else [])
        etags[part_size] = f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"
    return (whole.hexdigest() if whole is not None else ""), etags


@dataclass(frozen=True)
class HashCheck:
    """The outcome of checking a file against an expected hash.

    Attributes:
        ok: True (matches), False (mismatch) or None (cannot be checked, e.g. unknown type).
        got: what the file hashes to (the closest candidate for multipart ETags).
        note: why it could not be checked.
        part_size: the part size that reproduced a multipart ETag (when it matched).
    """

    ok: bool | None
    got: str = ""
    note: str = ""
    part_size: int | None = None


def check_file_hash(
    path: Path, expected: str, hash_type: str, *, size: int, part_size: int | None = None
) -> HashCheck:
    """Check a file against an ``md5`` or ``md5-n`` hash.

    Args:
        path: the file.
        expected: the expected hash (hex or base64; ``-N`` suffix for multipart ETags).
        hash_type: ``md5`` or ``md5-n``.
        size: the file's size (for part size candidates).
        part_size: the upload's part size if the storage reported it.
    """
    expected = normalise_hash(expected)
    if hash_type == "md5" and "-" not in expected:
        got, _ = hash_file(path, md5=True)
        return HashCheck(got == expected, got)
    if hash_type in {"md5", "md5-n"}:
        n_parts = n_parts_of(expected)
        if n_parts is None:
            return HashCheck(None, note=f"multipart hash {expected!r} does not say its part count")
        candidates = part_size_candidates(size, n_parts, part_size)
        if not candidates:
            return HashCheck(None, note=f"no usual part size splits {size} bytes in {n_parts}")
        _, etags = hash_file(path, md5=False, part_sizes=candidates)
        for candidate, etag in etags.items():
            if etag == expected:
                return HashCheck(True, expected, part_size=candidate)
        return HashCheck(False, etags[candidates[0]])
    return HashCheck(None, note=f"hash type {hash_type!r} is not one this version checks")


#: boto3's multipart threshold and part size (``TransferConfig()``): what uploads here use
UPLOAD_PART_SIZE = 8 * MIB


def upload_hash(path: Path) -> tuple[str, str]:
    """``(hash, hash_type)`` of a file as S3 will report it once uploaded with boto3's defaults:
    ``md5`` under 8 MiB, else the multipart ETag of 8 MiB parts (``md5-n``). One scheme for
    every artifact this instance registers, local or S3, and for verifying cached copies."""
    if path.stat().st_size < UPLOAD_PART_SIZE:  # s3transfer: multipart from the threshold on
        digest, _ = hash_file(path, md5=True)
        return digest, "md5"
    _, etags = hash_file(path, md5=False, part_sizes=[UPLOAD_PART_SIZE])
    return etags[UPLOAD_PART_SIZE], "md5-n"
