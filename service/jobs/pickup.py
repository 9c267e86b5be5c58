"""File pickup (SPEC §3.4, `callrate ingest`): CDR files in their switch's format ingested with
§6.2's semantics, each file in its own transaction (a large native file: per chunk of
records), idempotent per record; a directory's files moved to `done/` once their records are
committed, to `failed/` with a `.reason` file when a file could not be read whole."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.ingest.freeswitch import map_leg
from service.ingest.mediated import ingest_mapped, mapped_answer
from service.ingest.mediation_file import Mediation
from service.ingest.msc_files import HELD_CODE, ingest_msc_file
from service.ingest.pipeline import ingest_body
from service.rating.batch import BatchRater
from service.rating.scalar import Rater

FORMATS = ("auto", "native", "freeswitch", "3gpp")
DONE, FAILED = "done", "failed"
# Lines of a native NDJSON file committed together (POST /v1/cdrs's batch limit).
NATIVE_CHUNK = 10_000
_NATIVE_LIMIT = 1 << 40  # a native JSON array file: one batch however long


@dataclass
class FileResult:
    """What one file gave: records per result, held partial parts, and why it failed."""

    path: Path
    format: str
    counts: dict[str, int] = field(
        default_factory=lambda: {"rated": 0, "duplicate": 0, "rejected": 0}
    )
    held: int = 0  # partial records waiting in suspense for their call's last part
    codes: dict[str, int] = field(default_factory=dict)  # rejection codes, how many each
    failure: str | None = None  # the file was not read whole: why

    def add(self, answer: dict[str, Any]) -> None:
        """Count an ingest answer's results."""
        for result in answer["results"]:
            if result.get("code") == HELD_CODE:
                self.held += 1
                continue
            self.counts[result["result"]] += 1
            if result["result"] == "rejected":
                self.codes[result["code"]] = self.codes.get(result["code"], 0) + 1

    def add_counts(self, counts: dict[str, int]) -> None:
        for result, count in counts.items():
            self.counts[result] += count


def sniff(data: bytes, name: str) -> str:
    """A file's format by its name (FreeSWITCH's err-log-dir: `*.cdr.json`, `*.cdr.xml`) and
    its first bytes."""
    if name.endswith((".cdr.json", ".cdr.xml")):
        return "freeswitch"
    head = data.lstrip()[:1]
    if head == b"<" or data.startswith(b"cdr="):
        return "freeswitch"
    if head in (b"{", b"["):
        first = data.lstrip()[:4096]
        return "freeswitch" if b'"variables"' in first and b'"callflow"' in data else "native"
    return "3gpp"


def files_of(paths: list[Path]) -> Iterator[tuple[Path, bool]]:
    """(file, picked up from a directory) for each path: a directory's files in name order,
    skipping hidden and `.tmp` files (a transfer in progress) and done/ and failed/."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                hidden = child.name.startswith(".") or child.name.endswith((".tmp", ".part"))
                if child.is_file() and not hidden:
                    yield child, True
        else:
            yield path, False


@dataclass
class Pickup:
    """What ingesting a file needs: sessions, the tariffs, the mediation file."""

    sessions: sessionmaker[Session]
    rater: Rater
    mediation: Mediation
    default_plan: str | None
    batch: Callable[[], BatchRater | None]  # the batch kernels, warmed on first use

    def ingest(self, path: Path, data: bytes, file_format: str) -> FileResult:
        """One file, committed (a native file per chunk)."""
        chosen = sniff(data, path.name) if file_format == "auto" else file_format
        result = FileResult(path, chosen)
        if chosen == "native":
            self._native(data, result)
        elif chosen == "freeswitch":
            content_type = "text/xml" if data.lstrip()[:1] == b"<" else "application/json"
            mapped = [map_leg(data, content_type, switch_areas=self.mediation.switch_areas)]
            with self.sessions() as session:
                outcomes = ingest_mapped(
                    session,
                    mapped=mapped,
                    rater=self.rater,
                    batch=None,
                    default_plan=self.default_plan,
                )
                session.commit()
            result.add(mapped_answer(mapped, outcomes))
        else:
            with self.sessions() as session:
                answer = ingest_msc_file(
                    session,
                    data=data,
                    mediation=self.mediation,
                    rater=self.rater,
                    batch=self.batch(),
                    default_plan=self.default_plan,
                )
                session.commit()
            result.add(answer)
            if answer["file"]["failed"]:
                offset = answer["file"]["fault_offset"]
                result.failure = f"not a whole record from byte {offset}: truncated or corrupt"
        return result

    def _native(self, data: bytes, result: FileResult) -> None:
        """A §3.1 NDJSON file in chunks of NATIVE_CHUNK lines; a JSON array file whole."""
        ndjson = data.lstrip()[:1] != b"["
        chunks = _line_chunks(data) if ndjson else [data]
        for chunk in chunks:
            with self.sessions() as session:
                answer = ingest_body(
                    session,
                    body=chunk,
                    ndjson=ndjson,
                    max_records=_NATIVE_LIMIT,
                    rater=self.rater,
                    batch=self.batch(),
                    default_plan=self.default_plan,
                )
                session.commit()
            result.add_counts(answer["counts"])
            results = answer["results"]
            if answer["counts"]["rejected"] and isinstance(results, list):
                # rated records of the column lane are JSON text (orjson.Fragment), not dicts
                rejected = [r for r in results if isinstance(r, dict) and r["result"] == "rejected"]
                for item in rejected:
                    result.codes[item["code"]] = result.codes.get(item["code"], 0) + 1


def _line_chunks(data: bytes) -> Iterator[bytes]:
    """NDJSON cut at every NATIVE_CHUNK-th newline (a record's bytes are never split)."""
    start = 0
    while start < len(data):
        end = start
        for _ in range(NATIVE_CHUNK):
            end = data.find(b"\n", end) + 1
            if end == 0:
                end = len(data)
                break
        yield data[start:end]
        start = end


def settle(path: Path, result: FileResult) -> Path:
    """A picked-up file moved to done/ (its records committed) or failed/ (with a `.reason`
    file saying why); its new path."""
    target_dir = path.parent / (FAILED if result.failure else DONE)
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    os.replace(path, target)
    if result.failure:
        (target_dir / (path.name + ".reason")).write_text(result.failure + "\n", encoding="utf-8")
    return target


def fail(path: Path, reason: str) -> Path:
    """A picked-up file that could not be ingested at all, to failed/ with its reason."""
    result = FileResult(path, "unknown", failure=reason)
    return settle(path, result)
