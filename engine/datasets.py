"""The managed dataset store: versioned Parquet that pipeline runs write and users roll back.

Layout under the store root (`<data_dir>/datasets`):

    <name>/manifest.json             current version and the history of versions
    <name>/v<N>/part-00000.parquet   the data of version N, complete on its own
    <name>/.staging-<id>/            a write in progress (never read)

A write is staged: parts go to a staging directory; `commit` renames it to `v<N>` (atomic on
one filesystem) and then replaces the manifest through a temp file + `os.replace`, so a
reader sees either the old or the new version, never a half-written one; `abort` deletes the
staging directory and leaves the dataset as it was. An append version hard-links its parent's
parts next to the new ones, so every version stays readable on its own (no copy, no chain).

Concurrency: one asyncio lock per dataset serialises commits and rollbacks within a process.
No file lock: in scaled mode each pipeline has exactly one owning actor across the cluster,
so a dataset written by a pipeline has one writer at a time.

Read-only methods (`read`, `versions`, `schema`, `list`) only touch small files and return
lazily; methods that move data (`preview`, commits, `rollback`) run their I/O in threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

WriteMode = Literal["replace", "append"]

MANIFEST = "manifest.json"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class DatasetError(Exception):
    """Base class for dataset store errors."""


class InvalidDatasetName(DatasetError, ValueError):
    pass


class DatasetNotFound(DatasetError, LookupError):
    pass


class DatasetSchemaError(DatasetError, ValueError):
    """A batch does not fit the schema of the version being written."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: str
    rows: int
    schema: dict[str, str]  # column -> Polars dtype, for display
    parent: int | None
    mode: WriteMode
    parts: list[str]

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def validate_name(name: str) -> str:
    """Refuse names that could escape the store or hide in it (dots, slashes, staging)."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise InvalidDatasetName(
            f"Invalid dataset name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit (at most 128 characters)."
        )
    return name


class DatasetStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- reading -------------------------------------------------------------------------

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST).is_file())

    def exists(self, name: str) -> bool:
        return (self._dir(name) / MANIFEST).is_file()

    def versions(self, name: str) -> list[VersionInfo]:
        return [VersionInfo(**v) for v in self._manifest(name)["versions"]]

    def current_version(self, name: str) -> int | None:
        return self._manifest(name)["current"] if self.exists(name) else None

    def version_info(self, name: str, version: int | None = None) -> VersionInfo:
        manifest = self._manifest(name)
        wanted = manifest["current"] if version is None else version
        for info in manifest["versions"]:
            if info["version"] == wanted:
                return VersionInfo(**info)
        raise DatasetNotFound(f"Dataset {name!r} has no version {wanted}.")

    def read(self, name: str, version: int | None = None) -> pl.LazyFrame:
        info = self.version_info(name, version)
        folder = self._dir(name) / f"v{info.version}"
        return pl.scan_parquet([folder / part for part in info.parts])

    def schema(self, name: str, version: int | None = None) -> pl.Schema:
        info = self.version_info(name, version)
        first_part = self._dir(name) / f"v{info.version}" / info.parts[0]
        return pl.Schema(pl.read_parquet_schema(first_part))

    async def preview(
        self, name: str, limit: int = 100, version: int | None = None
    ) -> pl.DataFrame:
        frame = self.read(name, version).head(limit)
        return await asyncio.to_thread(frame.collect)

    # ---- writing -------------------------------------------------------------------------

    def begin_version(self, name: str, mode: WriteMode = "replace") -> StagedVersion:
        validate_name(name)
        if mode not in ("replace", "append"):
            raise DatasetError(f"Unknown write mode {mode!r}: use 'replace' or 'append'.")
        staging = self._dir(name) / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        base_schema = self.schema(name) if mode == "append" and self._has_current(name) else None
        return StagedVersion(self, name, mode, staging, base_schema)

    async def rollback(self, name: str, to_version: int | None = None) -> int:
        """Make an earlier version current (history is kept); returns the new current."""
        async with self._lock(name):
            return await asyncio.to_thread(self._rollback_sync, name, to_version)

    def purge_staging(self, older_than_s: float = 24 * 3600) -> int:
        """Delete staging directories a crashed process left behind; returns how many.

        Call at start-up: a live write's staging directory is younger than any run.
        """
        cutoff = time.time() - older_than_s
        purged = 0
        for staging in self.root.glob("*/.staging-*"):
            if staging.is_dir() and staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
                purged += 1
        return purged

    # ---- internals -----------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.root / validate_name(name)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _has_current(self, name: str) -> bool:
        return self.exists(name) and self._manifest(name)["current"] is not None

    def _manifest(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / MANIFEST
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DatasetNotFound(f"Dataset {name!r} does not exist.") from None

    def _write_manifest(self, name: str, manifest: dict[str, Any]) -> None:
        path = self._dir(name) / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.{uuid.uuid4().hex}.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not publish an empty file after a crash
        os.replace(tmp, path)

    def _next_version(self, name: str, manifest: dict[str, Any]) -> int:
        # Count directories too: a crash between rename and manifest update leaves a v<N>
        # that the manifest does not know, and it must not be overwritten.
        on_disk = [
            int(p.name[1:])
            for p in self._dir(name).glob("v*")
            if p.is_dir() and p.name[1:].isdigit()
        ]
        known = [v["version"] for v in manifest["versions"]]
        return max([0, *known, *on_disk]) + 1

    def _commit_sync(self, staged: StagedVersion) -> VersionInfo:
        name = staged.name
        manifest = (
            self._manifest(name)
            if self.exists(name)
            else {"name": name, "current": None, "versions": []}
        )
        parent = manifest["current"]
        parts = staged.arrange_parts(self, parent if staged.mode == "append" else None)
        version = self._next_version(name, manifest)
        schema = pl.read_parquet_schema(staged.path / parts[0])
        rows = sum(_parquet_rows(staged.path / part) for part in parts)
        info = VersionInfo(
            version=version,
            created_at=datetime.now(UTC).isoformat(),
            rows=rows,
            schema={column: str(dtype) for column, dtype in schema.items()},
            parent=parent,
            mode=staged.mode,
            parts=parts,
        )
        os.rename(staged.path, self._dir(name) / f"v{version}")
        manifest["versions"].append(info.to_json())
        manifest["current"] = version
        self._write_manifest(name, manifest)
        return info

    def _rollback_sync(self, name: str, to_version: int | None) -> int:
        manifest = self._manifest(name)
        current = manifest["current"]
        known = sorted(v["version"] for v in manifest["versions"])
        if to_version is None:
            earlier = [v for v in known if current is not None and v < current]
            if not earlier:
                raise DatasetError(f"Dataset {name!r} has no version before v{current}.")
            to_version = earlier[-1]
        elif to_version not in known:
            raise DatasetNotFound(f"Dataset {name!r} has no version {to_version}.")
        manifest["current"] = to_version
        manifest.setdefault("history", []).append(
            {
                "event": "rollback",
                "from": current,
                "to": to_version,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        self._write_manifest(name, manifest)
        return to_version


def _parquet_rows(path: Path) -> int:
    # Row count comes from the footer; no data pages are read.
    return pl.scan_parquet(path).select(pl.len()).collect().item()


class StagedVersion:
    """A version being written. Not a Writer itself: `engine.connectors.dataset` wraps it."""

    def __init__(
        self,
        store: DatasetStore,
        name: str,
        mode: WriteMode,
        path: Path,
        base_schema: pl.Schema | None,
    ):
        self.store = store
        self.name = name
        self.mode = mode
        self.path = path
        self.rows = 0
        self._schema = base_schema  # append: the parent's schema; replace: the first batch's
        self._new_parts: list[str] = []
        self._closed = False

    async def write(self, frame: pl.DataFrame) -> None:
        if self._closed:
            raise DatasetError("This version is already committed or aborted.")
        frame = self._conform(frame)
        part = f"new-{len(self._new_parts):05d}.parquet"
        await asyncio.to_thread(frame.write_parquet, self.path / part)
        self._new_parts.append(part)
        self.rows += frame.height

    async def commit(self) -> VersionInfo:
        if self._closed:
            raise DatasetError("This version is already committed or aborted.")
        async with self.store._lock(self.name):
            info = await asyncio.to_thread(self.store._commit_sync, self)
        self._closed = True
        return info

    async def abort(self) -> None:
        self._closed = True
        await asyncio.to_thread(shutil.rmtree, self.path, True)

    def arrange_parts(self, store: DatasetStore, parent: int | None) -> list[str]:
        """Name the final parts: the parent's (hard-linked) first, then the new ones."""
        parts: list[str] = []
        if parent is not None:
            parent_info = store.version_info(self.name, parent)
            parent_dir = store._dir(self.name) / f"v{parent}"
            for part in parent_info.parts:
                parts.append(self._adopt(parent_dir / part, len(parts), link=True))
        for part in self._new_parts:
            parts.append(self._adopt(self.path / part, len(parts), link=False))
        if not parts:  # an empty write still records the schema it would have had
            empty = pl.DataFrame(schema=self._schema or {})
            empty.write_parquet(self.path / "part-00000.parquet")
            parts.append("part-00000.parquet")
        return parts

    def _adopt(self, source: Path, index: int, *, link: bool) -> str:
        target = self.path / f"part-{index:05d}.parquet"
        if not link:
            os.rename(source, target)
            return target.name
        try:
            os.link(source, target)
        except OSError:  # filesystems without hard links: copy instead
            shutil.copy2(source, target)
        return target.name

    def _conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Make every part share one schema (Parquet scans of several parts require it)."""
        if self._schema is None:
            self._schema = frame.schema
            return frame
        if frame.schema == self._schema:
            return frame
        expected, got = set(self._schema), set(frame.columns)
        if expected != got:
            raise DatasetSchemaError(
                f"Columns differ from dataset {self.name!r}: "
                f"missing {sorted(expected - got)}, unexpected {sorted(got - expected)}."
            )
        try:
            return frame.select(list(self._schema)).cast(dict(self._schema))
        except pl.exceptions.PolarsError as exc:
            raise DatasetSchemaError(f"Batch does not fit dataset {self.name!r}: {exc}") from exc
