"""The search index: identifiers from the payload by path, filters, keyset pages, the way
back to the record (a real SQLite file beside real segments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from records_helpers import T0, make_record

from gateway.records import errors, extract, index, segment, storage

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("entry_summary", {"entry_number": ["XYZ12345678"]}),
        ("entry", {"entry_number": ["XYZ12345678"]}),
        ("protest", {"entry_number": ["XYZ12345678"]}),
        ("drawback", {"entry_number": ["XYZ55500012", "XYZ12345678"]}),
        ("reconciliation", {"entry_number": ["XYZ76543210", "XYZ12345678", "XYZ12345686"]}),
        (
            "isf",
            {"bill_of_lading": ["MAEU123456789"], "isf_transaction_number": ["ISFMAEU2026000123"]},
        ),
        ("inbond", {"bill_of_lading": ["MAEU123456789"]}),
        ("manifest.ocean", {"bill_of_lading": ["MAEU123456789"]}),
        ("manifest.rail", {"bill_of_lading": ["CNBOL9988776"]}),
        ("manifest.air", {"bill_of_lading": ["17612345675", "HX1002003"]}),
        ("export.manifest", {"bill_of_lading": ["MAEU987654321"]}),
    ],
)
def test_default_paths_find_the_identifiers_of_each_filing_type(name, expected):
    """The defaults read entry numbers, bills and ISF numbers where the examples keep them."""
    found = extract.extract(make_record(name)["filing"])
    assert found.pop("reference")
    assert found == expected


def test_configured_paths_replace_a_fields_defaults():
    rules = extract.rules_from_config({"bill_of_lading": {"isf": ["payload.consignee.name"]}})
    found = extract.extract(make_record("isf")["filing"], rules)
    assert found["bill_of_lading"] == ["ACMEIMPORTSLLC"]
    assert found["isf_transaction_number"] == ["ISFMAEU2026000123"]  # untouched default


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"bill_of_lading": {"isf": ["payload..x"]}}, r"bill_of_lading\.isf: 'payload\.\.x'"),
        ({"bill_of_lading": {"isf": ["payload.a[x]"]}}, "is not a key"),
        ({"Bad-Name": {"isf": ["reference"]}}, "not a field name"),
        ({"bol": {"isf": "reference"}}, "a list of paths"),
    ],
)
def test_a_bad_configured_path_names_field_type_and_path(config, match):
    with pytest.raises(ValueError, match=match):
        extract.rules_from_config(config)


def build(tmp_path, groups: list[list[dict]], **kw) -> tuple[index.Index, storage.DirectoryStorage]:
    store = storage.DirectoryStorage(tmp_path / "segments")
    idx = index.Index(tmp_path / "index.sqlite", **kw)
    for i, records in enumerate(groups):
        written = segment.write_segment(store, records, created_at=NOW + timedelta(seconds=i))
        assert idx.add(written, records)
    return idx, store


def ids(page: index.Page) -> list[str]:
    return [h.filing_id for h in page.hits]


def test_search_by_reference_finds_the_filing_and_its_record(tmp_path):
    """By reference (any spelling), newest first; locate leads to the exact record."""
    records = [make_record("entry_summary", i, reference=f"XYZ-000000{i}-1") for i in range(5)]
    records.append(make_record("entry_summary", 5, reference="XYZ-0000002-1"))
    idx, store = build(tmp_path, [records[:3], records[3:]])
    page = idx.search(index.Query(terms={"reference": "xyz 0000002 1"}))
    assert ids(page) == ["fil_entry_summary_000005", "fil_entry_summary_000002"]
    assert page.next_cursor is None
    hit = idx.locate("fil_entry_summary_000002")
    assert hit is not None
    assert (hit.position, hit.reference, hit.state) == (2, "XYZ-0000002-1", "acknowledged")
    assert hit.received_at == T0 + timedelta(minutes=2)
    record = segment.open_segment(store, hit.segment).record(hit.filing_id)
    assert record == records[2]
    assert idx.locate("fil_nope") is None


def test_identifiers_inside_the_payload_are_searchable(tmp_path):
    """A bill of lading inside an ISF and a rail manifest's car list; an entry a protest names."""
    rail = make_record("manifest.rail", 1)
    idx, _ = build(tmp_path, [[make_record("isf", 0), rail, make_record("protest", 2)]])
    assert ids(idx.search(index.Query(terms={"bill_of_lading": "MAEU123456789"}))) == [
        "fil_isf_000000"
    ]
    assert ids(idx.search(index.Query(terms={"bill_of_lading": "cnbol9988776"}))) == [
        "fil_manifest_rail_000001"
    ]
    assert ids(idx.search(index.Query(terms={"entry_number": "XYZ-1234567-8"}))) == [
        "fil_protest_000002"
    ]
    assert ids(idx.search(index.Query(identifier="MAEU123456789"))) == ["fil_isf_000000"]
    assert ids(idx.search(index.Query(terms={"isf_transaction_number": "nope"}))) == []
    assert ids(idx.search(index.Query(terms={"never_configured": "x"}))) == []


def test_filters_combine(tmp_path):
    """Filer code, type, environment, state, ack code and a date range, all at once."""
    records = [
        make_record("entry_summary", 0),
        make_record("entry_summary", 1, filer_code="ABC"),
        make_record("entry_summary", 2, environment="production"),
        make_record("entry_summary", 3, status="rejected", ack_codes=("E90",)),
        make_record("isf", 4),
        make_record("entry_summary", 5, received_at=T0 + timedelta(days=40)),
    ]
    idx, _ = build(tmp_path, [records])
    search = idx.search
    assert ids(search(index.Query(filer_code="ABC"))) == ["fil_entry_summary_000001"]
    assert ids(search(index.Query(environment="production"))) == ["fil_entry_summary_000002"]
    assert ids(search(index.Query(state="rejected"))) == ["fil_entry_summary_000003"]
    assert ids(search(index.Query(terms={"ack_code": "e90"}))) == ["fil_entry_summary_000003"]
    assert ids(search(index.Query(filing_type="isf"))) == ["fil_isf_000004"]
    assert ids(
        search(
            index.Query(
                terms={"entry_number": "XYZ-1234567-8"},
                filer_code="XYZ",
                environment="cert",
                state="acknowledged",
                received_from=T0,
                received_to=T0 + timedelta(days=1),
            )
        )
    ) == ["fil_entry_summary_000000"]
    assert ids(search(index.Query(received_from=T0 + timedelta(days=1)))) == [
        "fil_entry_summary_000005"
    ]


def test_pages_follow_a_keyset_cursor_without_gaps_or_repeats(tmp_path):
    """25 matches by 10: three pages, newest first, each filing once; equal times too."""
    same_time = T0 + timedelta(hours=5)
    records = [make_record("isf", i) for i in range(20)]
    records += [make_record("isf", i, received_at=same_time) for i in range(20, 25)]
    idx, _ = build(tmp_path, [records[:7], records[7:19], records[19:]])
    seen, cursor, sizes = [], None, []
    while True:
        page = idx.search(
            index.Query(terms={"bill_of_lading": "MAEU123456789"}, limit=10, cursor=cursor)
        )
        seen += ids(page)
        sizes.append(len(page.hits))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [10, 10, 5]
    assert sorted(seen) == sorted(r["filing"]["id"] for r in records)
    assert seen[:5] == [f"fil_isf_{i:06d}" for i in (24, 23, 22, 21, 20)]
    assert seen[5:] == [f"fil_isf_{i:06d}" for i in range(19, -1, -1)]
    assert [h.filing_id for h in idx.iter_all(index.Query(filer_code="XYZ", limit=3))] == seen


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (index.Query(cursor="not-a-cursor"), "cursor"),
        (index.Query(limit=0), "limit"),
        (index.Query(limit=501), "limit"),
        (index.Query(terms={"reference": " - "}), "reference"),
        (index.Query(terms={"Bad Field": "x"}), "Bad Field"),
        (index.Query(received_from=datetime(2026, 1, 1)), "received_from"),
    ],
)
def test_a_bad_query_names_the_field(tmp_path, query, field):
    idx, _ = build(tmp_path, [[make_record()]])
    with pytest.raises(errors.BadQuery) as caught:
        idx.search(query)
    assert caught.value.field == field
    assert caught.value.status == 422


def test_a_segment_is_indexed_once_and_removed_whole(tmp_path):
    records = [make_record("isf", i) for i in range(3)]
    idx, store = build(tmp_path, [records])
    (name,) = store.list()
    seg = segment.open_segment(store, name)
    written = segment.Written(name=name, sha256=seg.sha256, size=seg.size, header=seg.header)
    assert not idx.add(written, records)
    assert len(idx.search(index.Query(filing_type="isf")).hits) == 3
    assert idx.remove(name) == 3
    assert idx.search(index.Query(filing_type="isf")).hits == []
    assert idx.search(index.Query(terms={"bill_of_lading": "MAEU123456789"})).hits == []
    assert idx.segments() == {}


def test_catch_up_indexes_segments_written_but_not_indexed(tmp_path):
    """After a crash between a segment's put and its add, or into a fresh index file."""
    idx, store = build(tmp_path, [[make_record("isf", 0)]])
    late = [make_record("isf", 1), make_record("isf", 2)]
    written = segment.write_segment(store, late, created_at=NOW + timedelta(hours=1))
    assert index.catch_up(idx, store) == [written.name]
    path = store.path(written.name)  # indexed segments are not read again (verify does)
    path.write_bytes(path.read_bytes()[:-1])
    assert index.catch_up(idx, store) == []
    path.unlink()
    written = segment.write_segment(store, late, created_at=NOW + timedelta(hours=1))
    assert len(idx.search(index.Query(filing_type="isf")).hits) == 3
    idx.close()
    (tmp_path / "index.sqlite").unlink()
    fresh = index.Index(tmp_path / "index.sqlite")
    assert len(index.catch_up(fresh, store)) == 2
    assert ids(fresh.search(index.Query(filing_type="isf"))) == [
        "fil_isf_000002",
        "fil_isf_000001",
        "fil_isf_000000",
    ]


def test_the_index_survives_reopening(tmp_path):
    idx, _ = build(tmp_path, [[make_record("isf", 0)]])
    idx.close()
    with index.Index(tmp_path / "index.sqlite") as again:
        assert ids(again.search(index.Query(identifier="MAEU123456789"))) == ["fil_isf_000000"]


def test_times_in_the_stores_other_spellings_index_alike(tmp_path):
    """PostgreSQL hands datetimes, JSON hands ISO strings: the same instant either way."""
    at = T0 + timedelta(seconds=1, microseconds=7)
    records = [
        make_record("isf", 0, received_at=at, updated_at=None),
        make_record("isf", 1, received_at=at),
    ]
    records[0]["filing"]["received_at"] = at
    records[1]["filing"]["received_at"] = at.isoformat().replace("+00:00", "Z")
    idx, _ = build(tmp_path, [records])
    hits = idx.search(index.Query(filing_type="isf")).hits
    assert {h.received_at for h in hits} == {at}


def test_a_reader_opened_earlier_finds_fields_added_since(tmp_path):
    """The API's index connection sees a field the archiver (another connection) added."""
    reader = index.Index(tmp_path / "index.sqlite")
    assert ids(reader.search(index.Query(terms={"bill_of_lading": "MAEU123456789"}))) == []
    writer, _ = build(tmp_path, [[make_record("isf", 0)]])
    assert ids(reader.search(index.Query(terms={"bill_of_lading": "MAEU123456789"}))) == [
        "fil_isf_000000"
    ]
    assert ids(reader.search(index.Query(identifier="MAEU123456789"))) == ["fil_isf_000000"]
    writer.close()
    reader.close()


def test_a_column_search_walks_the_most_selective_index(tmp_path):
    """Filer code drives, never the state index (few values, most rows alike), and an
    identifier drives over every column filter."""
    idx, _ = build(tmp_path, [[make_record()]])
    plan = idx.plan(index.Query(filer_code="XYZ", filing_type="isf", state="acknowledged"))
    assert "records_filer_type (filer_code=? AND filing_type=?)" in plan[0]
    assert "records_state" not in " ".join(plan)
    plan = idx.plan(index.Query(filer_code="XYZ", state="rejected", environment="cert"))
    assert "records_filer (filer_code=?)" in plan[0]
    plan = idx.plan(index.Query(terms={"reference": "X"}, filer_code="XYZ", state="rejected"))
    assert plan[0].startswith("SEARCH t USING PRIMARY KEY")


def test_a_damaged_index_file_is_a_clear_error_not_a_traceback(tmp_path):
    path = tmp_path / "index.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(errors.StorageError, match=r"not a records index .* rebuilt from"):
        index.Index(path)
