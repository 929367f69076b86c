"""The export writers: CSV read back with the csv module, JSON/NDJSON, atomicity."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tracker.export import CHUNK, CSV_COLUMNS, export, neutralise

ODD_NAMES = [
    'Zoë "the, quoted" name',
    "multi\nline\r\nname",
    "🙂👍🏽 emoji",
    "\u202eRTL override\u202c مرحبا",
    "tab\tinside",
    "'already quoted",
    "",
]


def rec(uid: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": uid, "first_name": f"User{uid}", "last_name": None, "username": f"user{uid}",
        "language_code": "en", "is_bot": False, "is_premium": None,
        "first_seen": "2024-01-02T03:04:05Z", "last_seen": "2024-02-03T04:05:06Z",
        "messages": uid * 2, "source": None, "blocked": False, "blocked_at": None,
    }
    record.update(fields)
    return record


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        return list(reader)


def test_csv_columns_and_formats(tmp_path: Path) -> None:
    target = tmp_path / "users.csv"
    records = [rec(1, is_premium=True, source="ads", blocked=True, language_code=None),
               rec(2, is_bot=True, is_premium=False, username=None)]
    assert export(records, target) == 2
    rows = read_csv(target)
    assert rows[0] == {
        "id": "1", "username": "user1", "first_name": "User1", "last_name": "", "language_code": "",
        "is_bot": "false", "is_premium": "true", "first_seen": "2024-01-02T03:04:05Z",
        "last_seen": "2024-02-03T04:05:06Z", "messages": "2", "source": "ads", "blocked": "true",
    }
    assert (rows[1]["is_bot"], rows[1]["is_premium"], rows[1]["username"]) == ("true", "false", "")
    raw = target.read_bytes()
    assert b"\r\n" not in raw and not raw.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_formula_cells_are_neutralised(tmp_path: Path, prefix: str) -> None:
    target = tmp_path / "users.csv"
    payload = f"{prefix}HYPERLINK(\"http://x\")"
    export([rec(1, first_name=payload, last_name=payload, source=payload)], target)
    row = read_csv(target)[0]
    assert row["first_name"] == row["last_name"] == row["source"] == "'" + payload
    export([rec(1, first_name=payload)], target, safe=False)
    assert read_csv(target)[0]["first_name"] == payload


def test_harmless_cells_are_not_touched() -> None:
    for text in ("Anna", "1+1", "a=b", "", "'quoted"):
        assert neutralise(text) == text
    assert neutralise("-1") == "'-1"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_round_trip_csv(tmp_path: Path, name: str) -> None:
    target = tmp_path / "users.csv"
    export([rec(7, first_name=name, last_name=name)], target, safe=False)
    row = read_csv(target)[0]
    assert row["first_name"] == name and row["last_name"] == name


def test_odd_names_round_trip_json_and_ndjson(tmp_path: Path) -> None:
    records = [rec(i, first_name=name) for i, name in enumerate(ODD_NAMES, 1)]
    records[0]["extra_field"] = {"kept": [1, 2]}
    export(records, tmp_path / "u.json", fmt="json")
    assert json.loads((tmp_path / "u.json").read_text(encoding="utf-8")) == records
    export(records, tmp_path / "u.ndjson", fmt="ndjson")
    lines = (tmp_path / "u.ndjson").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert [json.loads(line) for line in lines[:-1]] == records


def test_empty_exports_are_valid(tmp_path: Path) -> None:
    export([], tmp_path / "e.json", fmt="json")
    assert json.loads((tmp_path / "e.json").read_text()) == []
    export([], tmp_path / "e.ndjson", fmt="ndjson")
    assert (tmp_path / "e.ndjson").read_bytes() == b""
    export([], tmp_path / "e.csv")
    assert read_csv(tmp_path / "e.csv") == []


def test_excel_has_bom_and_crlf(tmp_path: Path) -> None:
    target = tmp_path / "users.csv"
    export([rec(1, first_name="Ärger\nzwei")], target, excel=True)
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.split(b"\r\n")[0] == b"\xef\xbb\xbf" + ",".join(CSV_COLUMNS).encode()
    with open(target, newline="", encoding="utf-8-sig") as fh:
        assert next(csv.DictReader(fh))["first_name"] == "Ärger\nzwei"


def test_odd_records_fall_back_without_losing_rows(tmp_path: Path) -> None:
    target = tmp_path / "users.csv"
    records = [rec(1), {"id": 2, "first_name": -5, "is_bot": "yes"}, rec(3, first_name="=1")]
    assert export(records, target) == 3
    rows = read_csv(target)
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["first_name"] == "'-5" and rows[1]["is_bot"] == "yes" and rows[1]["blocked"] == ""
    assert rows[2]["first_name"] == "'=1"


def test_failure_leaves_no_half_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "users.csv"
    target.write_text("old export\n")

    def records() -> Iterator[dict[str, Any]]:
        for i in range(CHUNK + 10):
            yield rec(i)
        raise KeyboardInterrupt

    for fmt in ("csv", "json", "ndjson"):
        with pytest.raises(KeyboardInterrupt):
            export(records(), target, fmt=fmt)
        assert target.read_text() == "old export\n"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["users.csv"]


def test_missing_folder_is_one_line_error(tmp_path: Path) -> None:
    from tracker.export import ExportError

    with pytest.raises(ExportError, match=r"cannot write .*nope/u\.csv: No such file"):
        export([rec(1)], tmp_path / "nope" / "u.csv")


def test_written_in_chunks_with_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    count = export((rec(i) for i in range(2 * CHUNK + 5)), tmp_path / "u.ndjson", fmt="ndjson",
                   progress=seen.append)
    assert count == 2 * CHUNK + 5 and seen == [CHUNK, CHUNK, 5]
    assert (tmp_path / "u.ndjson").read_bytes().count(b"\n") == count
    assert oct((tmp_path / "u.ndjson").stat().st_mode & 0o777) == "0o600"


def test_csv_to_a_text_stream_matches_the_file(tmp_path: Path) -> None:
    from tracker.export import write_csv

    buffer = io.StringIO(newline="")
    records = [rec(1, first_name="@x"), rec(2)]
    write_csv(records, buffer)
    export(records, tmp_path / "u.csv")
    assert buffer.getvalue() == (tmp_path / "u.csv").read_text(encoding="utf-8")
