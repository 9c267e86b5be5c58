"""`callrate bench`: realistic generated CDRs rated by the per-call and the batch path."""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.rating.batch import BatchRater
from service.rating.numbering import MOBILE_PREFIX_FIRST
from service.rating.rejections import Rejected
from service.rating.scalar import Rater

DEFAULT_ROWS = 2_000_000
PLANS = ("gotone", "mzone", "easyown", "easyown_easy", "easyown_home")
# Unix seconds: both tariff versions (2009-07 .. 2010-12) and a few calls before any tariff.
FROM_EPOCH_S = 1_246_377_600  # 2009-07-01T00:00:00+08:00 (as UTC seconds, close enough)
UNTIL_EPOCH_S = 1_293_811_200  # 2011-01-01
BEFORE_TARIFFS_S = 1_199_145_600  # 2008-01-01
CST_OFFSET_S = 8 * 3600
SCALAR_SAMPLE = 100_000

Strings = npt.NDArray[np.bytes_]


def _pick(rng: np.random.Generator, n: int, weights: dict[str, float]) -> npt.NDArray[np.str_]:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return np.array(names)[rng.choice(len(names), size=n, p=p / p.sum())]


def _digits(rng: np.random.Generator, n: int, low: int, high: int) -> Strings:
    """Decimal text of random integers in [low, high)."""
    return rng.integers(low, high, size=n).astype("S")


def _join(*parts: Strings | bytes) -> Strings:
    out = np.asarray(parts[0], dtype="S")
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part, dtype="S"))
    return out


def _choose(kind: npt.NDArray[np.str_], options: dict[str, Strings], n: int) -> Strings:
    out = np.full(n, b"", dtype="S40")
    for name, values in options.items():
        rows = kind == name
        out[rows] = values[rows]
    return out


def _text_column(values: Strings, null: npt.NDArray[np.bool_] | None = None) -> pa.Array:
    return pa.array(values, type=pa.binary(), mask=null).cast(pa.string())


def generate_cdrs(rater: Rater, rows: int, *, seed: int = 0) -> pa.Table:
    """N realistic CDRs (SPEC §3.1 columns): every class, dial, roaming state, leg, plan and
    tariff version, with about 3% invalid or unratable records."""
    rng = np.random.default_rng(seed)
    numbering = rater.numbering
    n = rows
    known_slots = np.flatnonzero(numbering.mobile_area >= 0)
    unknown_slots = np.flatnonzero(numbering.mobile_area < 0)
    cmcc_slots = known_slots[numbering.mobile_cmcc[known_slots]]

    def mobiles(slots: npt.NDArray[np.intp]) -> tuple[Strings, npt.NDArray[np.int64]]:
        slot = rng.choice(slots, size=n).astype(np.int64)
        number = (slot + MOBILE_PREFIX_FIRST) * 10_000 + rng.integers(0, 10_000, size=n)
        return number.astype("S"), slot

    caller_national, home_slot = mobiles(cmcc_slots)
    caller_kind = _pick(
        rng,
        n,
        {"plain": 0.9, "+86": 0.04, "86": 0.02, "0086": 0.02, "unknown": 0.005, "bad": 0.005},
    )
    caller = _choose(
        caller_kind,
        {
            "plain": caller_national,
            "+86": _join(b"+86", caller_national),
            "86": _join(b"86", caller_national),
            "0086": _join(b"0086", caller_national),
            "unknown": mobiles(unknown_slots)[0],
            "bad": _join(b"1380013", _digits(rng, n, 0, 1000)),
        },
        n,
    )
    home_area = numbering.mobile_area[home_slot].astype(np.int64)

    area_codes = np.array([c.encode() for c in numbering.area_codes], dtype="S4")
    same_province = np.array(
        [
            rng.choice(np.flatnonzero(numbering.area_province == numbering.area_province[a]))
            for a in range(len(area_codes))
        ],
        dtype=np.int64,
    )
    area_digits = area_codes[rng.integers(0, len(area_codes), size=n)]
    home_digits = area_codes[np.maximum(home_area, 0)]

    def landline(code: Strings) -> Strings:
        return _join(b"0", code, _digits(rng, n, 20_000_000, 100_000_000))

    callee_kind = _pick(
        rng,
        n,
        {
            "local_bare": 0.22,
            "ld": 0.2,
            "home_landline": 0.05,
            "mobile": 0.25,
            "mobile_0": 0.01,
            "mobile_86": 0.02,
            "special": 0.03,
            "area_special": 0.005,
            "hmt": 0.04,
            "intl": 0.09,
            "nanp": 0.04,
            "plus7": 0.01,
            "satellite": 0.005,
            "info": 0.003,
            "letters": 0.003,
            "unknown_area": 0.003,
            "unknown_country": 0.002,
            "empty": 0.001,
        },
    )
    national_callee = mobiles(known_slots)[0]
    callee_number = _choose(
        callee_kind,
        {
            "local_bare": _digits(rng, n, 20_000_000, 100_000_000),
            "ld": landline(area_digits),
            "home_landline": landline(home_digits),
            "mobile": national_callee,
            "mobile_0": _join(b"0", national_callee),
            "mobile_86": _join(np.array([b"+86", b"0086"])[rng.integers(0, 2, n)], national_callee),
            "special": np.array([b"10086", b"110", b"120", b"12315", b"95588", b"96110"])[
                rng.integers(0, 6, n)
            ],
            "area_special": _join(b"0", area_digits, b"10086"),
            "hmt": _join(
                np.array([b"00852", b"+853", b"00886"])[rng.integers(0, 3, n)],
                _digits(rng, n, 20_000_000, 100_000_000),
            ),
            "intl": _join(
                np.array([b"0044", b"0081", b"0049", b"+33", b"0061", b"0082", b"0034", b"00234"])[
                    rng.integers(0, 8, n)
                ],
                _digits(rng, n, 100_000_000, 1_000_000_000),
            ),
            "nanp": _join(
                np.array([b"001212", b"+1415", b"001604", b"001876", b"001907", b"001808"])[
                    rng.integers(0, 6, n)
                ],
                _digits(rng, n, 2_000_000, 10_000_000),
            ),
            "plus7": _join(
                np.array([b"007495", b"+7727"])[rng.integers(0, 2, n)],
                _digits(rng, n, 1_000_000, 10_000_000),
            ),
            "satellite": _join(
                np.array([b"00870", b"+8816"])[rng.integers(0, 2, n)],
                _digits(rng, n, 10_000_000, 100_000_000),
            ),
            "info": _join(b"1680", _digits(rng, n, 1000, 10_000)),
            "letters": _join(b"021", _digits(rng, n, 100, 1000), b"ABC"),
            "unknown_area": landline(np.full(n, b"123", dtype="S3")),  # no area code 0123
            "unknown_country": _join(b"00999", _digits(rng, n, 1_000_000, 10_000_000)),
            "empty": np.full(n, b"", dtype="S1"),
        },
        n,
    )
    leg = _pick(
        rng,
        n,
        {"": 0.5, "originating": 0.3, "terminating": 0.1, "forwarded": 0.095, "transit": 0.005},
    )
    dial = _pick(rng, n, {"": 0.8, "17951": 0.1, "12593": 0.1})
    # An IP prefix on a forwarded-to number is rejected: keep it rare there.
    ip = np.isin(callee_kind, ["ld", "mobile", "hmt", "intl", "nanp", "home_landline"]) & (
        (leg != "forwarded") | (rng.random(n) < 0.05)
    )
    callee = np.where(ip, _join(dial.astype("S"), callee_number), callee_number)

    forward_kind = np.where(
        leg == "forwarded",
        _pick(rng, n, {"unconditional": 0.5, "conditional": 0.49, "": 0.01}),
        "",
    )
    visited_kind = _pick(
        rng,
        n,
        {"": 0.7, "same": 0.03, "province": 0.1, "other": 0.16, "hmt": 0.005, "bad": 0.005},
    )
    visited = _choose(
        visited_kind,
        {
            "": np.full(n, b"", dtype="S1"),
            "same": _join(b"0", home_digits),
            "province": _join(b"0", area_codes[same_province[np.maximum(home_area, 0)]]),
            "other": _join(b"0", area_digits),
            "hmt": np.full(n, b"852", dtype="S3"),
            "bad": np.full(n, b"0123", dtype="S4"),
        },
        n,
    )
    plan = _pick(rng, n, {**{p: 0.198 for p in PLANS}, "": 0.005, "prepaid_x": 0.005})
    package_kind = rng.choice(4, size=n, p=[0.8, 0.15, 0.045, 0.005])
    package_values = pa.array(
        [None, ["ld_night"], [], ["ld_night", "data_1g"]], type=pa.list_(pa.string())
    )
    packages = package_values.take(pa.array(package_kind))

    epoch = rng.integers(FROM_EPOCH_S, UNTIL_EPOCH_S, size=n)
    epoch = np.where(rng.random(n) < 0.003, BEFORE_TARIFFS_S, epoch)
    local_text = np.datetime_as_string((epoch + CST_OFFSET_S).astype("datetime64[s]")).astype("S")
    utc_text = np.datetime_as_string(epoch.astype("datetime64[s]")).astype("S")
    start_kind = _pick(
        rng, n, {"offset": 0.85, "naive": 0.07, "utc": 0.05, "fraction": 0.025, "bad": 0.005}
    )
    start = _choose(
        start_kind,
        {
            "offset": _join(local_text, b"+08:00"),
            "naive": local_text,
            "utc": _join(utc_text, b"Z"),
            "fraction": _join(local_text, b".250+08:00"),
            "bad": np.array([b"2010-02-30T10:00:00+08:00", b"2010-03-01 25:00:00", b"yesterday"])[
                rng.integers(0, 3, n)
            ],
        },
        n,
    )
    duration = np.minimum(rng.geometric(1 / 90, size=n), 7200).astype(np.int64)
    duration = np.where(rng.random(n) < 0.05, rng.integers(0, 7, size=n), duration)
    duration = np.where(rng.random(n) < 0.002, 90_000, duration)

    ids = pc.binary_join_element_wise(
        f"s{seed}-", pa.array(np.arange(n, dtype=np.int64)).cast(pa.string()), ""
    )
    return pa.table(
        {
            "id": ids,
            "caller": _text_column(caller),
            "callee": _text_column(callee),
            "start": _text_column(start),
            "duration_s": pa.array(duration, type=pa.int64()),
            "type": _text_column(leg.astype("S"), leg == ""),
            "forward_kind": _text_column(forward_kind.astype("S"), forward_kind == ""),
            "visited_area": _text_column(visited, visited_kind == ""),
            "plan": _text_column(plan.astype("S"), plan == ""),
            "packages": packages,
        }
    )


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Throughputs measured in one `callrate bench` run."""

    rows: int
    scalar_rows: int
    scalar_per_s: float
    batch_per_s: float
    copy_per_s: float
    rejected: int

    def lines(self) -> list[str]:
        """The report `callrate bench` prints."""
        return [
            f"rows: {self.rows:,} generated, {self.rejected:,} of them rejected",
            f"per-call path (Rater.rate_raw, {self.scalar_rows:,} rows): "
            f"{self.scalar_per_s:,.0f} CDRs/s",
            f"batch path (BatchRater.rate, one core): {self.batch_per_s:,.0f} CDRs/s",
            f"memory-copy baseline (same columns): {self.copy_per_s:,.0f} CDRs/s",
            f"batch / per-call: {self.batch_per_s / self.scalar_per_s:,.1f}x",
            f"memory copy / batch: {self.copy_per_s / self.batch_per_s:,.1f}x",
        ]


def _best_of(runs: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def _copy_columns(table: pa.Table) -> list[list[pa.Buffer | None]]:
    """Copy every buffer of every column: the floor any pass over the columns pays."""
    copies = []
    for column in table.columns:
        for chunk in column.chunks:
            copies.append([None if b is None else pa.py_buffer(bytes(b)) for b in chunk.buffers()])
    return copies


def run_bench(
    rater: Rater, rows: int, *, seed: int = 0, scalar_rows: int = SCALAR_SAMPLE
) -> BenchResult:
    """Generate `rows` CDRs and time both paths and a memory copy on one core."""
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    table = generate_cdrs(rater, rows, seed=seed).combine_chunks()
    batch_rater = BatchRater(rater)
    rated = batch_rater.rate(table)  # warm: prices every case key once
    rejected = rows - rated.column("reason").null_count
    batch_s = _best_of(3, lambda: batch_rater.rate(table))
    copy_s = _best_of(3, lambda: _copy_columns(table))
    sample = table.slice(0, min(scalar_rows, rows)).to_pylist()

    def per_call() -> None:
        for raw in sample:
            with contextlib.suppress(Rejected):
                rater.rate_raw(raw)

    scalar_s = _best_of(1, per_call)
    return BenchResult(
        rows=rows,
        scalar_rows=len(sample),
        scalar_per_s=len(sample) / scalar_s,
        batch_per_s=rows / batch_s,
        copy_per_s=rows / copy_s,
        rejected=rejected,
    )


def single_thread_environment() -> dict[str, str]:
    """Thread limits for numeric libraries, applied before they start (one-core figures)."""
    return {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def apply_single_thread() -> None:
    """Limit numeric libraries to one thread (only effective before their pools start)."""
    for name, value in single_thread_environment().items():
        os.environ.setdefault(name, value)


# -- `callrate bench --engine spark`: the local and the Spark engine on the same file ---------

SAMPLE_S = 0.2
GENERATE_CHUNK = 1_000_000


@dataclass(frozen=True, slots=True)
class EngineRun:
    """One `callrate rate` run: wall time and the peak RSS of its whole process tree."""

    engine: str
    rows: int
    seconds: float
    peak_rss: int

    def line(self) -> str:
        """One line of the comparison."""
        return (
            f"{self.engine}: {self.seconds:,.1f} s, {self.rows / self.seconds:,.0f} CDRs/s, "
            f"peak RSS {self.peak_rss / 2**20:,.0f} MiB (process tree)"
        )


def write_cdr_file(rater: Rater, rows: int, path: Path, *, seed: int = 0) -> None:
    """`rows` generated CDRs as one Parquet file, generated a million at a time."""
    with pq.ParquetWriter(path, generate_cdrs(rater, 1, seed=seed).schema) as writer:
        for part, start in enumerate(range(0, rows, GENERATE_CHUNK)):
            count = min(GENERATE_CHUNK, rows - start)
            writer.write_table(generate_cdrs(rater, count, seed=seed * 1_000 + part))


def measure(command: list[str]) -> tuple[float, int]:
    """Run a command; its wall time and the peak of the summed RSS of it and its children
    (sampled every 0.2 s: the JVM and Python workers of Spark included)."""
    from service.tools.loadtest import tree_rss_kib

    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    peak_kib = 0
    while process.poll() is None:
        peak_kib = max(peak_kib, tree_rss_kib(process.pid))  # the tree grows as Spark starts
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return seconds, peak_kib * 1024


def compare_engines(source: Path, workdir: Path, *, tariffs: Path, master: str) -> list[EngineRun]:
    """`callrate rate` on `source` with the local engine, then with Spark on `master`."""
    rows = pq.ParquetFile(source).metadata.num_rows
    callrate = [sys.executable, "-m", "service.cli", "--tariffs", str(tariffs), "rate"]
    runs = []
    for engine, extra in (
        ("local", ["-o", str(workdir / "local.parquet")]),
        (
            f"spark {master}",
            ["-o", str(workdir / "spark"), "--engine", "spark", "--master", master],
        ),
    ):
        seconds, peak = measure([*callrate, str(source), *extra])
        runs.append(EngineRun(engine, rows, seconds, peak))
    return runs
