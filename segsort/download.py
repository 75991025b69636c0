"""Downloads with a known checksum (resumable) and safe extraction of .tar/.tgz/.zip archives.

Standard library only (urllib). Credentials travel in request headers or in an opener's in-memory
cookie jar, never in a URL: nothing here prints headers, and URLs are printed without user info or
query string.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

from segsort.io import DataError, PipelineError, atomic_path

CHUNK = 1 << 20
TIMEOUT_S = 60
RETRY_PAUSE_S = 5.0          # pause before the second attempt, twice that before the third, ...
DIGEST_LENGTHS = {"md5": 32, "sha256": 64}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class DownloadError(PipelineError):
    """A download that failed or delivered the wrong bytes; the message names the file."""


class UnsafeArchiveError(DataError):
    """An archive member that could land outside the extraction folder; the message names both."""


@dataclass(frozen=True)
class Archive:
    """A file to fetch: its name, the URLs that serve it (tried in order) and 'md5:<hex>' or 'sha256:<hex>'."""
    filename: str
    urls: tuple[str, ...]
    checksum: str


def parse_checksum(checksum: str) -> tuple[str, str]:
    """'md5:<hex>' or 'sha256:<hex>' as (algorithm, lower-case hex digest)."""
    algorithm, _, digest = checksum.partition(":")
    length = DIGEST_LENGTHS.get(algorithm)
    if length is None or not re.fullmatch(f"[0-9a-fA-F]{{{length}}}", digest):
        raise ValueError(f"checksum {checksum!r} is neither 'md5:<32 hex digits>' nor 'sha256:<64 hex digits>'")
    return algorithm, digest.lower()


def file_digest(path: str | Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def public_url(url: str) -> str:
    """The URL as it may be printed: without user:password@ and without the query string (tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


def download(urls: str | tuple[str, ...] | list[str], dest: str | Path, checksum: str, *,
             opener: urllib.request.OpenerDirector | None = None, headers: dict[str, str] | None = None,
             attempts: int = 3) -> Path:
    """Fetch `dest` from the first of `urls` that works, verified against `checksum`.

    An existing `dest` with the right checksum is kept without any request; one with a wrong checksum
    raises (it was placed by hand or damaged since: the user decides what to do with it). The bytes
    arrive in `<dest>.part`: an attempt cut short keeps them, and the next attempt (in this call or a
    later run) asks for the rest with an HTTP Range request; a server that ignores Range sends the
    whole file and the part file starts over. The part file becomes `dest` only once its checksum
    matches; a mismatch deletes it and raises, naming the file and both digests.
    `opener` (e.g. one holding a logged-in session's cookies) and `headers` carry authentication.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    algorithm, expected = parse_checksum(checksum)
    for url in urls:
        if urllib.parse.urlsplit(url).username is not None:
            raise ValueError(f"{public_url(url)}: credentials belong in headers or an opener, not in the URL")
    if dest.is_file():
        actual = file_digest(dest, algorithm)
        if actual != expected:
            raise DownloadError(f"{dest}: {algorithm} is {actual}, expected {expected}; the file is damaged "
                                f"or not the right one: delete it to download it again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    opener = opener or urllib.request.build_opener()
    failures = []
    for url in urls:
        if _fetch_with_retries(opener, url, headers or {}, part, attempts, failures):
            break
    else:
        kept = part.stat().st_size if part.is_file() else 0
        raise DownloadError(f"{dest.name}: download failed from every URL ({'; '.join(failures)}); {kept} bytes "
                            f"are kept in {part} and a rerun continues from there; or place the file by hand "
                            f"at {dest} ({algorithm} {expected})")
    actual = file_digest(part, algorithm)
    if actual != expected:
        part.unlink()
        raise DownloadError(f"{dest}: downloaded file has {algorithm} {actual}, expected {expected}; "
                            f"it was deleted (a rerun downloads it again)")
    os.replace(part, dest)
    return dest


def _fetch_with_retries(opener, url, headers, part, attempts, failures) -> bool:
    """Whether `url` delivered the whole file into `part`; failures are appended to `failures`.

    A dropped connection or a server error is retried; any other HTTP error (404, 403, a redirect
    to a login page) gives up on this URL at once.
    """
    for attempt in range(attempts):
        if attempt:
            time.sleep(RETRY_PAUSE_S * attempt)
        try:
            _fetch(opener, url, headers, part)
            return True
        except urllib.error.HTTPError as err:
            failures.append(f"{public_url(url)}: {err}")
            if err.code < 500:
                return False
        except (OSError, HTTPException) as err:
            failures.append(f"{public_url(url)}: {type(err).__name__}: {err}")
        kept = part.stat().st_size if part.is_file() else 0
        print(f"{part.name}: attempt {attempt + 1} of {attempts} failed ({failures[-1]}); {kept} bytes kept",
              file=sys.stderr)
    return False


def _fetch(opener, url: str, headers: dict[str, str], part: Path) -> None:
    """One request that completes `part`, resuming it if it already holds bytes."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers=headers)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = opener.open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is complete (the checksum decides)
            return
        raise
    with response:
        if not 200 <= response.status < 300:  # an opener that does not follow redirects hands them back
            raise urllib.error.HTTPError(public_url(url), response.status, f"unexpected answer {response.reason}",
                                         response.headers, None)
        if have and response.status == 206:
            start = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if start is None or int(start.group(1)) != have:
                part.unlink()
                raise ConnectionError("the server sent a different range than asked; starting over")
        elif have:
            print(f"{part.name}: the server ignored the Range request; starting over", file=sys.stderr)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        name = part.name.removesuffix(".part")
        print(f"downloading {name} from {public_url(url)}" + (f" (resuming at {_size(have)})" if have else ""),
              file=sys.stderr)
        progress = _Progress(name, total)
        received = have
        with open(part, "ab" if have else "wb") as f:
            while block := response.read(CHUNK):
                f.write(block)
                received += len(block)
                progress.update(received)
        progress.finish(received)
        if total is not None and received < total:  # read() does not raise when the connection drops early
            raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _size(n: float) -> str:
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024:
            break
    return f"{n:.1f} {unit}"


class _Progress:
    """Bytes received, on stderr: a line rewritten in place on a terminal, a new line every 30 s in a log."""

    def __init__(self, name: str, total: int | None):
        self.name, self.total = name, total
        self.tty = sys.stderr.isatty()
        self.interval = 0.5 if self.tty else 30.0
        self.last = time.monotonic()

    def _line(self, received: int) -> str:
        if self.total:
            return f"{self.name}: {_size(received)} of {_size(self.total)} ({100 * received / self.total:.1f}%)"
        return f"{self.name}: {_size(received)}"

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(("\r" if self.tty else "") + self._line(received), end="" if self.tty else "\n",
                  file=sys.stderr, flush=True)

    def finish(self, received: int) -> None:
        print(("\r" if self.tty else "") + self._line(received), file=sys.stderr, flush=True)


def archive_stem(name: str) -> str:
    """The archive's name without .tar / .tgz / .tar.gz / .zip: the folder it is extracted into."""
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    raise DataError(f"{name}: not an archive this code extracts (expected {', '.join(ARCHIVE_SUFFIXES)})")


def extract(archive: str | Path, target: str | Path) -> Path:
    """Extract a .tar, .tgz, .tar.gz or .zip archive into the folder `target`, all or nothing.

    Every member is checked before anything is written: absolute paths, paths that climb out of the
    folder with `..`, members below a symbolic link of the archive, and links whose target is outside
    the folder are refused, naming the archive and the member (tar extraction also runs Python's
    'data' filter, a second guard). The archive is extracted into a temporary folder beside `target`
    and renamed onto it at the end, so `target` only ever exists complete.
    """
    archive, target = Path(archive), Path(target)
    archive_stem(archive.name)  # refuse unknown types before creating anything
    if not archive.is_file():
        raise DataError(f"{archive}: archive is missing")
    print(f"extracting {archive} into {target}", file=sys.stderr, flush=True)
    with atomic_path(target) as tmp:
        tmp.mkdir()
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, tmp)
        else:
            _extract_tar(archive, tmp)
    return target


def _inside(archive: Path, member: str, path: str, links: set[str], verb: str = "refers to") -> str:
    """`path` (relative to the extraction folder) normalised, refused if absolute, if it climbs out of
    the folder, or if it goes through one of the archive's symbolic links `links` on the way."""
    if path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", path):
        raise UnsafeArchiveError(f"{archive}: member {member!r} {verb} the absolute path {path!r}")
    parts: list[str] = []
    for name in path.replace("\\", "/").split("/"):
        if name in ("", "."):
            continue
        if "/".join(parts) in links and parts:
            raise UnsafeArchiveError(f"{archive}: member {member!r} goes through the symbolic link "
                                     f"{'/'.join(parts)!r} of the archive")
        if name == "..":
            if not parts:
                raise UnsafeArchiveError(f"{archive}: member {member!r} {verb} {path!r}, "
                                         f"outside the extraction folder")
            parts.pop()
        else:
            parts.append(name)
    return "/".join(parts)


def _extract_tar(archive: Path, folder: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            links = {_inside(archive, m.name, m.name, set()) for m in members if m.issym()}
            for member in members:
                name = _inside(archive, member.name, member.name, links)
                if member.issym():
                    _inside(archive, member.name, os.path.join(os.path.dirname(name), member.linkname), links,
                            "is a symbolic link to")
                elif member.islnk():
                    _inside(archive, member.name, member.linkname, links, "is a hard link to")
            tar.extractall(folder, filter="data")
    except tarfile.FilterError as err:
        raise UnsafeArchiveError(f"{archive}: member {err.tarinfo.name!r} refused: {err}") from err
    except (tarfile.TarError, EOFError) as err:
        raise DataError(f"{archive}: cannot read the tar archive ({err})") from err


def _extract_zip(archive: Path, folder: Path) -> None:
    """Zip members are checked like tar members; symbolic links are refused outright, since Python's
    zipfile would write them as small files holding the link target, not as links."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _inside(archive, info.filename, info.filename, set())
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link "
                                             f"(to {zf.read(info).decode(errors='replace')!r}); "
                                             f"links in zip archives are refused")
            zf.extractall(folder)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive}: cannot read the zip archive ({err})") from err
