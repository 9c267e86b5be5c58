"""`callrate bench mediation`: the switch formats (SPEC §3.4, docs/mediation.md) on one core.

3GPP: generated MO/MT records encoded in BER by pycrate, decoded and mapped by
`service.ingest.threegpp.read_file`; then one file of them ingested as `callrate ingest` does,
beside the same calls as a native NDJSON file, each into a fresh SQLite database, in the same
run. FreeSWITCH: mod_json_cdr legs (as posted with `encode=true`) mapped by `map_leg`."""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from service.ingest.freeswitch import map_leg
from service.ingest.mediation_file import Mediation
from service.ingest.threegpp import read_file
from service.rating.batch import BatchRater
from service.rating.scalar import Rater

MSC = "8613900210"
AREAS = {"fs-sh-1": "021"}
# callees: fixed lines of a few areas (international form), mobiles
_AREA_NUMBERS = ("862188", "861065", "8657188", "8675588")


def _tbcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _address(digits: str) -> bytes:
    return b"\x91" + _tbcd(digits)


def encode_records(count: int, *, seed: int = 0) -> list[bytes]:
    """`count` MO and MT CallEventRecords (TS 32.298 CSRecord), BER, encoded by pycrate."""
    from pycrate_asn1dir import CDR

    record = CDR.CSChargingDataTypes.CSRecord
    rng = random.Random(seed)  # noqa: S311 - test data
    out = []
    for i in range(count):
        mobile = f"861380013{rng.randrange(10**4):04d}"
        if rng.random() < 0.5:
            other = f"{rng.choice(_AREA_NUMBERS)}{rng.randrange(10**6):06d}"
        else:
            other = f"861391234{rng.randrange(10**4):04d}"
        day, hour = rng.randrange(1, 29), rng.randrange(24)
        answer = bytes.fromhex(f"1003{day:02d}{hour:02d}{rng.randrange(60):02d}00") + b"+\x08\x00"
        mo = rng.random() < 0.7
        value: dict[str, Any] = {
            "recordType": 1 if mo else 2,
            "servedMSISDN": _address(mobile),
            "recordingEntity": _address(MSC),
            "answerTime": answer,
            "callDuration": rng.randrange(1, 600),
            "causeForTerm": 0,
            "callReference": i.to_bytes(4, "big"),
        }
        if mo:
            value["calledNumber"] = _address(other)
        else:
            value["servedIMSI"] = _tbcd("460001234567890")
            value["callingNumber"] = _address(other)
        record.set_val(("moCallRecord" if mo else "mtCallRecord", value))
        out.append(bytes(record.to_ber()))
    return out


def _pycrate_map(raw: bytes, areas: dict[str, str]) -> object:
    """One record decoded by pycrate alone and mapped (the library's own rate)."""
    from service.ingest.threegpp import library_record, map_record

    record = library_record()
    record.from_ber(raw)
    return map_record(record.get_val(), raw, 0, areas)


def _per_second(count: int, action: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return count / best


def _fs_leg(index: int) -> bytes:
    uuid = f"00000000-0000-4000-8000-{index:012d}"
    variables = {
        "uuid": uuid,
        "sip_from_user": "13800138000",
        "sip_req_user": "02188001234",
        "answer_epoch": "1267408800",
        "answer_uepoch": "1267408800250000",
        "start_uepoch": "1267408793250000",
        "billsec": "124",
        "billmsec": "124200",
        "callrate_plan": "gotone",
    }
    profile = {"caller_id_number": "13800138000", "destination_number": "02188001234"}
    document = {
        "switchname": "fs-sh-1",
        "variables": {k: quote(v, safe="") for k, v in variables.items()},
        "callflow": [{"profile_index": "1", "caller_profile": profile}],
    }
    return urlencode({"cdr": json.dumps(document)}).encode()


def _ingest_seconds(
    path: Path, database: Path, file_format: str, *, rater: Rater, batch: BatchRater, plan: str
) -> float:
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.jobs.pickup import Pickup

    url = f"sqlite:///{database}"
    upgrade(url=url, migrations_dir=Path(__file__).resolve().parents[2] / "migrations")
    engine = make_engine(url, pool_size=2)
    pickup = Pickup(
        sessions=make_sessionmaker(engine),
        rater=rater,
        mediation=Mediation(msc_areas={MSC: "021"}),
        default_plan=plan,
        batch=lambda: batch,
    )
    try:
        started = time.perf_counter()
        result = pickup.ingest(path, path.read_bytes(), file_format)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    assert result.counts["rejected"] == 0, (file_format, result.codes)
    return seconds


def run_mediation_bench(rater: Rater, records: int, *, seed: int = 0) -> list[str]:
    """The figures, one line each."""
    from service.jobs.rerate import warm_batch_kernels

    lines = []
    encoded = encode_records(records, seed=seed)
    data = b"".join(encoded)
    areas = {MSC: "021"}
    parsed = read_file(data, msc_areas=areas)
    assert all(p.mapped.cdr is not None for p in parsed.parts)
    rate = _per_second(records, lambda: read_file(data, msc_areas=areas))
    lines.append(
        f"3gpp decode+map (ber_fast, pycrate fallback; one core): {rate:,.0f} records/s "
        "(target 20,000)"
    )
    sample = encoded[: min(records, 5_000)]
    rate = _per_second(len(sample), lambda: [_pycrate_map(raw, areas) for raw in sample], runs=1)
    lines.append(f"3gpp decode+map (pycrate alone; one core): {rate:,.0f} records/s")
    batch = warm_batch_kernels(rater)
    plan = "gotone"
    with tempfile.TemporaryDirectory(prefix="callrate-bench-") as work:
        directory = Path(work)
        ber = directory / "calls.ber"
        ber.write_bytes(data)
        ndjson = directory / "calls.ndjson"
        ndjson.write_bytes(
            b"".join(json.dumps(p.mapped.cdr).encode() + b"\n" for p in parsed.parts)
        )
        native_s = _ingest_seconds(
            ndjson, directory / "n.sqlite3", "native", rater=rater, batch=batch, plan=plan
        )
        gpp_s = _ingest_seconds(
            ber, directory / "g.sqlite3", "3gpp", rater=rater, batch=batch, plan=plan
        )
    lines.append(f"ingest native NDJSON, {records:,} calls (SQLite): {records / native_s:,.0f}/s")
    lines.append(f"ingest 3GPP file, the same calls (SQLite): {records / gpp_s:,.0f}/s")
    lines.append(f"3gpp / native ingest rate: {native_s / gpp_s:.2f} (target >= 0.5)")
    legs = [_fs_leg(i) for i in range(2_000)]
    content_type = "application/x-www-form-urlencoded"
    rate = _per_second(
        len(legs), lambda: [map_leg(leg, content_type, switch_areas=AREAS) for leg in legs]
    )
    lines.append(f"freeswitch map (encode=true JSON leg, one core): {rate:,.0f} legs/s")
    return lines


def _native_leg_batch(start: int, size: int) -> bytes:
    """The same legs as §3.1 NDJSON (their own ids: they are other records in the database)."""
    lines = []
    for index in range(start, start + size):
        cdr = {
            "id": f"native-{index}",
            "caller": "13800138000",
            "callee": "02188001234",
            "start": "2010-03-01T10:00:00.250000+08:00",
            "duration_s": 125,
            "visited_area": "021",
            "plan": "gotone",
        }
        lines.append(json.dumps(cdr).encode())
    return b"\n".join(lines) + b"\n"


def run_freeswitch_http(
    database_url: str, *, workers: int = 2, connections: int = 8, seconds: float = 5.0
) -> list[str]:
    """`serve --workers N` on a throwaway PostgreSQL schema: FreeSWITCH legs posted one per
    request by `connections` keep-alive clients, then the same legs as native NDJSON batches
    of 100, in the same run."""
    from service.db.migrate import throwaway_schema
    from service.tools import loadgen, loadtest
    from service.tools.bench_service import KEYS, MIGRATIONS, server

    legs = 40_000  # more than answered in `seconds` at the target: each leg posted once
    with (
        throwaway_schema(database_url, prefix="benchfs", migrations_dir=MIGRATIONS) as url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        mediation = Path(scratch) / "mediation.toml"
        mediation.write_text('[freeswitch.switch_areas]\n"fs-sh-1" = "021"\n', encoding="utf-8")
        env = {
            "CALLRATE_DATABASE_URL": url,
            "CALLRATE_API_KEYS": ",".join(f"{role}={key}" for role, key in KEYS.items()),
            "CALLRATE_DATA_DIR": scratch,
            "CALLRATE_MEDIATION_FILE": str(mediation),
        }
        port = loadtest.free_port()
        command = [sys.executable, "-m", "service.cli", "serve", "--workers", str(workers)]
        client = loadtest.HttpClient("http://127.0.0.1", max_connections=1)
        auth = {"Authorization": f"Bearer {KEYS['switch']}"}
        form = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
        fs_requests = [
            client.render("POST", "/v1/cdrs/freeswitch?uuid=x", _fs_leg(i), form)
            for i in range(legs)
        ]
        ndjson = {**auth, "Content-Type": "application/x-ndjson"}
        native_requests = [
            client.render("POST", "/v1/cdrs", _native_leg_batch(i * 100, 100), ndjson)
            for i in range(legs // 100)
        ]
        single_requests = [  # the floor a leg per request has: the store and commit of one
            client.render("POST", "/v1/cdrs", _native_leg_batch(legs + i, 1), ndjson)
            for i in range(legs)
        ]
        with server(
            [*command, "--port", str(port)],
            env,
            port,
            Path(scratch) / "serve.log",
            application_name="callrate-bench-fs",
        ) as served:
            fs = loadgen.run(
                served.base, fs_requests, mode="closed", connections=connections, seconds=seconds
            )
            native = loadgen.run(
                served.base,
                native_requests,
                mode="closed",
                connections=connections,
                seconds=seconds,
            )
            single = loadgen.run(
                served.base,
                single_requests,
                mode="closed",
                connections=connections,
                seconds=seconds,
            )
    return [
        f"freeswitch over HTTP, serve --workers {workers}, {connections} keep-alive clients, "
        f"one leg a request: {fs['per_s']:,.0f} legs/s (target 1,000) {fs['statuses']}",
        f"the same legs as native NDJSON batches of 100: {native['per_s'] * 100:,.0f} legs/s "
        f"{native['statuses']}",
        f"the same legs as native NDJSON, one a request: {single['per_s']:,.0f} legs/s "
        f"{single['statuses']}",
    ]
