"""The three files of ``chatpersona generate`` follow CONTRACTS.md, exactly and reproducibly."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from chatpersona.datagen import (
    CATEGORIES,
    CHANNELS,
    DEVICES,
    EVENT_TYPES,
    SEGMENT_NAMES,
    USER_COLUMNS,
    GenerationResult,
    generate,
    generate_events,
    generate_truth,
    generate_users,
    load_utterances,
    read_events,
)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PAYLOAD_KEYS = {
    "chat_started": [{"chat_id"}],
    "message": [{"chat_id", "text", "intent", "category"}],
    "chat_ended": [{"chat_id", "resolved", "handle_time_s"}],
    "feedback": [{"chat_id", "csat"}, {"chat_id", "csat", "nps"}],
}


def _lines(result: GenerationResult) -> list[dict]:
    with result.events_path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate(400, 5, tmp_path / "a")
    b = generate(400, 5, tmp_path / "b")
    c = generate(400, 6, tmp_path / "c")
    for name in ("users.csv", "events.jsonl", "truth.csv"):
        assert (a.out_dir / name).read_bytes() == (b.out_dir / name).read_bytes(), name
    assert (a.out_dir / "events.jsonl").read_bytes() != (c.out_dir / "events.jsonl").read_bytes()
    assert (a.out_dir / "users.csv").read_bytes() != (c.out_dir / "users.csv").read_bytes()
    assert a.to_dict() | {"out_dir": "", "users_path": "", "events_path": "", "truth_path": ""} == (
        b.to_dict()
        | {
            "out_dir": "",
            "users_path": "",
            "events_path": "",
            "truth_path": "",
            "seconds": a.seconds,
        }
    )


def test_no_temporary_files_left(generated: GenerationResult) -> None:
    names = sorted(p.name for p in generated.out_dir.iterdir())
    assert names == ["events.jsonl", "truth.csv", "users.csv"]


def test_in_memory_frames_equal_the_files(generated: GenerationResult) -> None:
    users = pl.read_csv(generated.users_path, infer_schema=False)
    assert users.equals(generate_users(generated.n_users, generated.seed))
    assert read_events(generated.events_path).equals(
        generate_events(generated.n_users, generated.seed)
    )
    truth = pl.read_csv(generated.truth_path, infer_schema=False)
    assert truth.equals(generate_truth(generated.n_users, generated.seed))


def test_users_csv_columns_and_duplicate_ids(generated: GenerationResult) -> None:
    users = pl.read_csv(generated.users_path, infer_schema=False)
    assert tuple(users.columns) == USER_COLUMNS
    assert users.height == generated.n_user_rows
    assert users["user_id"].n_unique() == generated.n_users
    dups = users.height - generated.n_users
    assert dups == generated.mess["duplicate_rows"]
    assert 0.01 * generated.n_users <= dups <= 0.02 * generated.n_users
    # The latest updated_at of a duplicated id is unique, so "latest wins" is well defined.
    stamps = users.with_columns(pl.col("updated_at").str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))
    latest = stamps.group_by("user_id").agg(
        n=pl.len(), top=(pl.col("updated_at") == pl.col("updated_at").max()).sum()
    )
    assert latest.filter(pl.col("n") > 1)["top"].to_list() == [1] * dups
    assert stamps["updated_at"].null_count() == 0


def test_users_mess_counts_match_the_file(generated: GenerationResult) -> None:
    users = pl.read_csv(generated.users_path, infer_schema=False)
    mess = generated.mess
    age = users["age"].cast(pl.Int64)
    assert age.null_count() == mess["missing_age"]
    assert ((age < 18) | (age > 90)).sum() == mess["age_outliers"]
    assert users["gender"].null_count() == mess["blank_gender"]
    assert users["is_vip"].null_count() == mess["blank_is_vip"]
    assert users["newsletter"].null_count() == mess["blank_newsletter"]
    assert users["monthly_spend"].null_count() == mess["blank_monthly_spend"]
    assert users["notes"].null_count() == mess["blank_notes"]
    dates = users["signup_date"]
    assert dates.null_count() == 0
    assert dates.str.contains(r"^\d{4}-\d{2}-\d{2}$").sum() == mess["date_iso"]
    assert dates.str.contains(r"^\d{2}/\d{2}/\d{4}$").sum() == mess["date_dmy"]
    assert dates.str.contains(r"^[A-Z][a-z]{2} \d{1,2} \d{4}$").sum() == mess["date_mon"]
    assert dates.str.contains(r"^\d{9,10}$").sum() == mess["date_epoch"]
    spend = users["monthly_spend"].drop_nulls()
    assert spend.str.contains(r"^\$\d{1,3}(,\d{3})*\.\d{2}$").sum() == mess["currency_dollar"]
    assert spend.str.contains(r"^USD \d+(\.\d{2})?$").sum() == mess["currency_usd_code"]
    assert spend.str.contains(r"^\d{1,3}(\.\d{3})*,\d{2} €$").sum() == mess["currency_eur_suffix"]
    assert spend.str.contains(r"^€ \d{1,3}(\.\d{3})*,\d{2}$").sum() == mess["currency_eur_prefix"]


@pytest.mark.parametrize(
    ("key", "rate", "tolerance"),
    [
        ("missing_age", 0.05, 0.015),
        ("age_outliers", 0.01, 0.006),
        ("blank_gender", 0.03, 0.012),
        ("blank_monthly_spend", 0.04, 0.012),
        ("date_iso", 0.40, 0.04),
        ("date_epoch", 0.15, 0.03),
    ],
)
def test_mess_rates_within_tolerance(
    generated: GenerationResult, key: str, rate: float, tolerance: float
) -> None:
    assert abs(generated.mess[key] / generated.n_user_rows - rate) <= tolerance


def test_users_values_use_the_documented_vocabularies(generated: GenerationResult) -> None:
    users = pl.read_csv(generated.users_path, infer_schema=False)
    booleans = {"Y", "Yes", "true", "1", "N", "No", "false", "0"}
    assert set(users["is_vip"].drop_nulls()) <= booleans
    assert set(users["newsletter"].drop_nulls()) <= booleans
    assert len(set(users["is_vip"].drop_nulls())) == len(booleans)  # every spelling occurs
    regions = {r.strip().lower() for r in users["region"]}
    assert regions == {"north", "south", "east", "west", "central"}
    assert len(set(users["region"])) > 5  # case / whitespace variants exist
    assert {p.strip().lower() for p in users["plan"]} == {"basic", "pro", "premium"}
    assert {g.strip().lower() for g in users["gender"].drop_nulls()} <= {
        "f",
        "female",
        "m",
        "male",
        "non-binary",
        "nb",
    }
    assert users["email"].str.strip_chars().str.contains(r"^[\w.]+@[\w.]+$").all()
    assert users["notes"].drop_nulls().str.contains("\u00a0|\uff36|  ").any()  # needs NFKC/trim


def test_events_follow_the_contract(generated: GenerationResult) -> None:
    events = _lines(generated)
    assert len(events) == generated.n_events
    keys = {"event_id", "user_id", "type", "ts", "channel", "device", "payload"}
    utterances = load_utterances()
    known = set(zip(utterances["text"], utterances["intent"], utterances["category"], strict=True))
    for e in events:
        assert set(e) == keys
        assert e["type"] in EVENT_TYPES
        assert set(e["payload"]) in PAYLOAD_KEYS[e["type"]]
        assert e["channel"] in CHANNELS and e["device"] in DEVICES
        assert TS_RE.match(e["ts"]) and UUID_RE.match(e["event_id"])
        p = e["payload"]
        if e["type"] == "message":
            assert p["category"] in CATEGORIES
            assert (p["text"], p["intent"], p["category"]) in known
        elif e["type"] == "chat_ended":
            assert isinstance(p["resolved"], bool) and isinstance(p["handle_time_s"], float)
        elif e["type"] == "feedback":
            assert p["csat"] in range(1, 6)
            assert p.get("nps", 0) in range(11)
    assert len({e["event_id"] for e in events}) == len(events)
    stamps = [e["ts"] for e in events]
    assert stamps == sorted(stamps)
    assert Counter(e["type"] for e in events) == generated.event_counts


def test_every_event_belongs_to_a_user_and_every_user_chats(generated: GenerationResult) -> None:
    events = read_events(generated.events_path)
    users = pl.read_csv(generated.users_path, infer_schema=False)
    assert set(events["user_id"]) == set(users["user_id"])
    starts = events.filter(pl.col("type") == "chat_started")
    assert starts["user_id"].n_unique() == generated.n_users
    assert starts.height == generated.n_chats


def test_chats_are_well_formed(generated: GenerationResult) -> None:
    ev = read_events(generated.events_path).unnest("payload").with_row_index("line")
    per_chat = ev.group_by("chat_id").agg(
        users=pl.col("user_id").n_unique(),
        channels=pl.col("channel").n_unique(),
        devices=pl.col("device").n_unique(),
        started=(pl.col("type") == "chat_started").sum(),
        ended=(pl.col("type") == "chat_ended").sum(),
        messages=(pl.col("type") == "message").sum(),
        feedback=(pl.col("type") == "feedback").sum(),
        intents=pl.col("intent").drop_nulls().n_unique(),
        t_start=pl.col("ts").filter(pl.col("type") == "chat_started").first(),
        t_msg_min=pl.col("ts").filter(pl.col("type") == "message").min(),
        t_msg_max=pl.col("ts").filter(pl.col("type") == "message").max(),
        t_end=pl.col("ts").filter(pl.col("type") == "chat_ended").first(),
        t_fb=pl.col("ts").filter(pl.col("type") == "feedback").first(),
        handle=pl.col("handle_time_s").drop_nulls().first(),
    )
    assert per_chat.height == generated.n_chats
    for col in ("users", "channels", "devices", "started", "ended", "intents"):
        assert (per_chat[col] == 1).all(), col
    assert (per_chat["messages"] >= 1).all()
    assert per_chat["feedback"].is_in([0, 1]).all()
    ordered = per_chat.filter(
        (pl.col("t_start") < pl.col("t_msg_min"))
        & (pl.col("t_msg_max") < pl.col("t_end"))
        & (pl.col("t_fb").is_null() | (pl.col("t_end") < pl.col("t_fb")))
    )
    assert ordered.height == per_chat.height
    as_dt = per_chat.with_columns(
        pl.col("t_start", "t_end").str.to_datetime("%Y-%m-%dT%H:%M:%SZ")
    ).with_columns(span=(pl.col("t_end") - pl.col("t_start")).dt.total_seconds())
    diff = (as_dt["handle"] - as_dt["span"]).to_numpy()
    assert ((diff >= 0) & (diff < 1)).all()


def test_events_fall_in_the_window(generated: GenerationResult) -> None:
    ev = read_events(generated.events_path).filter(pl.col("type") == "chat_started")
    first = datetime.fromisoformat(ev["ts"][0].replace("Z", "+00:00")).date()
    last = datetime.fromisoformat(ev["ts"][-1].replace("Z", "+00:00")).date()
    assert generated.start <= first and last < generated.end


def test_truth_covers_every_user_once(generated: GenerationResult) -> None:
    truth = pl.read_csv(generated.truth_path, infer_schema=False)
    users = pl.read_csv(generated.users_path, infer_schema=False)
    assert truth.columns == ["user_id", "segment"]
    assert truth["user_id"].is_unique().all()
    assert set(truth["user_id"]) == set(users["user_id"])
    assert set(truth["segment"]) == set(SEGMENT_NAMES)
    counts = truth["segment"].value_counts()
    assert dict(zip(counts["segment"], counts["count"], strict=True)) == generated.segment_counts
