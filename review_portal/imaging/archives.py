"""Safe extraction of uploaded zip archives (no traversal, links, duplicates or bombs); UploadRejected otherwise."""

from __future__ import annotations

import posixpath
import re
import stat
import zipfile
import zlib
from pathlib import Path

__all__ = ["UploadRejected", "expand_zip"]


class UploadRejected(Exception):
    """A whole uploaded archive is refused; ``reason`` is for a clinician."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_CHUNK = 1024 * 1024

# Below this size a high compression ratio is harmless (think of a blank 512 x
# 512 slice, which deflates ~1000:1); the ratio test exists to catch bombs,
# and any bomb's output is far larger than this.
_RATIO_MIN_BYTES = 1024 * 1024
# Many small entries, each under _RATIO_MIN_BYTES, can still add up to a bomb:
# the whole archive's ratio is checked once its output passes this.
_ARCHIVE_RATIO_MIN_BYTES = 64 * 1024 * 1024


def _safe_member_name(name: str) -> str | None:
    """Normalised relative path for an entry, or None when it is to be skipped."""
    if "\x00" in name:
        raise UploadRejected("the archive contains an invalid file name")
    # Windows tools sometimes write backslashes; treat them as separators so
    # "..\\evil" is recognised as traversal on every platform.
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise UploadRejected(f"the archive contains an absolute path ({name!r})")
    normalised = posixpath.normpath(cleaned)
    if normalised == ".." or normalised.startswith("../"):
        raise UploadRejected(f"the archive contains a path that escapes its folder ({name!r})")
    if normalised in ("", "."):
        return None
    parts = normalised.split("/")
    if parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
        return None
    return normalised


def expand_zip(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_entries: int = 20000,
    max_total_bytes: int = 4 * 1024**3,
    max_ratio: int = 200,
    max_entry_bytes: int = 2 * 1024**3 - 1,
    ratio_min_bytes: int = _RATIO_MIN_BYTES,
    max_archive_ratio: int = 100,
    archive_ratio_min_bytes: int = _ARCHIVE_RATIO_MIN_BYTES,
) -> list[tuple[str, Path]]:
    """Extract a user-supplied zip into ``dest_dir`` safely.

    The whole archive is vetted before anything is written, so a refused
    upload leaves nothing behind; if extraction still fails midway (lying
    headers, corrupt data) the files written so far are removed.
    Sizes and ratios are checked for every entry and for the whole archive,
    first as the headers declare them, then again on the bytes really
    inflated while streaming (headers are attacker-controlled).
    Returns (name inside archive, extracted path) for each regular file kept.
    """
    dest_dir = Path(dest_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
        archive_size = max(Path(zip_path).stat().st_size, 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UploadRejected("not a valid .zip archive") from exc

    def check_entry(name: str, size: int, compressed: int) -> None:
        if size > max_entry_bytes:
            raise UploadRejected(
                f"the archive holds a file larger than the upload limit allows ({name!r})"
            )
        if size >= ratio_min_bytes and size > max_ratio * max(compressed, 1):
            raise UploadRejected(f"the archive looks like a zip bomb ({name!r} compresses suspiciously well)")

    def check_archive(total: int) -> None:
        if total > max_total_bytes:
            raise UploadRejected("the archive expands to more data than the upload limit allows")
        if total >= archive_ratio_min_bytes and total > max_archive_ratio * archive_size:
            raise UploadRejected("the archive looks like a zip bomb (its files compress suspiciously well)")

    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise UploadRejected(f"the archive has too many entries ({len(infos)}; limit {max_entries})")

        root = dest_dir.resolve()
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        seen: set[str] = set()
        declared_total = 0
        for info in infos:
            # Vet every name first, even ones we skip, so a hostile entry
            # can't hide behind a directory flag or a __MACOSX prefix.
            relative = _safe_member_name(info.filename)
            target = (root / relative).resolve() if relative else None
            if target is not None and target != root and root not in target.parents:
                raise UploadRejected(
                    f"the archive contains a path that escapes its folder ({info.filename!r})"
                )

            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UploadRejected(f"the archive contains a symbolic link ({info.filename!r})")
            if info.is_dir() or relative is None or target is None:
                continue
            if info.flag_bits & 0x1:
                raise UploadRejected("password-protected archives are not supported")
            if relative in seen:
                # Duplicate names are a known trick for smuggling content
                # past whoever looked at the first copy.
                raise UploadRejected(f"the archive contains the same file twice ({info.filename!r})")
            seen.add(relative)

            declared_total += info.file_size
            check_entry(info.filename, info.file_size, info.compress_size)
            check_archive(declared_total)
            plan.append((info, target))

        # Only now, with the whole archive vetted, does anything touch disk.
        dest_dir.mkdir(parents=True, exist_ok=True)

        written_paths: list[Path] = []
        extracted: list[tuple[str, Path]] = []
        total_written = 0
        try:
            for info, target in plan:
                target.parent.mkdir(parents=True, exist_ok=True)
                entry_written = 0
                # "xb": never overwrite or follow something already at target.
                with archive.open(info) as source, open(target, "xb") as sink:
                    written_paths.append(target)
                    while True:
                        chunk = source.read(_CHUNK)
                        if not chunk:
                            break
                        entry_written += len(chunk)
                        total_written += len(chunk)
                        # Headers are attacker-controlled; count real bytes.
                        if entry_written > info.file_size:
                            raise UploadRejected(
                                f"the archive is corrupt ({info.filename!r} is larger than its header says)"
                            )
                        check_entry(info.filename, entry_written, info.compress_size)
                        check_archive(total_written)
                        sink.write(chunk)
                extracted.append((info.filename, target))
        except UploadRejected:
            _remove_all(written_paths)
            raise
        except (
            zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError
        ) as exc:
            # BadZipFile covers CRC mismatches, i.e. content that differs from
            # what the headers promised; RuntimeError/NotImplementedError are
            # encryption or compression methods zipfile can't read (deflate64).
            _remove_all(written_paths)
            raise UploadRejected("the archive is corrupt or uses an unsupported format") from exc
        except OSError as exc:
            _remove_all(written_paths)
            raise UploadRejected(
                "the archive could not be extracted (conflicting or invalid file names)"
            ) from exc
        except BaseException:
            _remove_all(written_paths)
            raise
    return extracted


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except OSError:
            pass
