"""Latent segments drive clearly different behaviour; parameters are validated; data ships."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chatpersona.cli.main import app
from chatpersona.datagen import (
    SEGMENT_NAMES,
    SEGMENTS,
    GenerationResult,
    expected_events_per_user,
    generate,
    generate_events,
    generate_truth,
    generate_users,
    get_segment,
    load_utterances,
    read_events,
)
from chatpersona.exceptions import NotFoundError, ParameterError

BILLING = ["INVOICE", "PAYMENT", "REFUND"]


@pytest.fixture(scope="module")
def per_segment(generated: GenerationResult) -> pl.DataFrame:
    """Behaviour per latent segment, computed from the written files."""
    ev = read_events(generated.events_path).unnest("payload")
    ev = ev.with_columns(t=pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))
    truth = pl.read_csv(generated.truth_path)
    ev = ev.join(truth, on="user_id")
    starts = ev.filter(pl.col("type") == "chat_started").with_columns(
        hour=pl.col("t").dt.hour(), weekend=pl.col("t").dt.weekday() >= 6
    )
    chats = starts.group_by("segment").agg(
        chats_per_user=pl.len() / pl.col("user_id").n_unique(),
        weekend=pl.col("weekend").mean(),
        mobile_device=(pl.col("device") == "mobile").mean(),
        mobile_app=(pl.col("channel") == "mobile_app").mean(),
        phone_or_whatsapp=pl.col("channel").is_in(["phone", "whatsapp"]).mean(),
        evening=pl.col("hour").is_between(18, 22).mean(),
        office=pl.col("hour").is_between(9, 13).mean(),
    )
    msgs = (
        ev.filter(pl.col("type") == "message")
        .group_by("segment")
        .agg(
            billing=pl.col("category").is_in(BILLING).mean(),
            shopping=pl.col("category").is_in(["ORDER", "DELIVERY", "SHIPPING"]).mean(),
            account=(pl.col("category") == "ACCOUNT").mean(),
            complaint=(pl.col("intent") == "complaint").mean(),
        )
    )
    fb = (
        ev.filter(pl.col("type") == "feedback")
        .group_by("segment")
        .agg(csat=pl.col("csat").mean(), nps=pl.col("nps").mean())
    )
    ended = (
        ev.filter(pl.col("type") == "chat_ended")
        .group_by("segment")
        .agg(resolved=pl.col("resolved").mean(), handle=pl.col("handle_time_s").mean())
    )
    history = (
        ev.filter(pl.col("type") == "message")
        .group_by("segment", "user_id")
        .agg(had_billing=pl.col("category").is_in(BILLING).any())
        .group_by("segment")
        .agg(users_with_billing=pl.col("had_billing").mean())
    )
    out = chats.join(msgs, on="segment").join(fb, on="segment").join(ended, on="segment")
    return out.join(history, on="segment").sort("segment")


def _top(per_segment: pl.DataFrame, column: str) -> str:
    return str(per_segment.sort(column, descending=True)["segment"][0])


@pytest.mark.parametrize(
    ("column", "segment"),
    [
        ("chats_per_user", "at_risk_complainer"),
        ("billing", "billing_focused"),
        ("shopping", "mobile_shopper"),
        ("mobile_app", "mobile_shopper"),
        ("evening", "mobile_shopper"),
        ("weekend", "mobile_shopper"),
        ("office", "billing_focused"),
        ("phone_or_whatsapp", "at_risk_complainer"),
        ("complaint", "at_risk_complainer"),
        ("handle", "at_risk_complainer"),
        ("csat", "loyal_premium"),
        ("nps", "loyal_premium"),
        ("resolved", "loyal_premium"),
        ("account", "new_explorer"),
    ],
)
def test_segment_leads_its_behaviour(per_segment: pl.DataFrame, column: str, segment: str) -> None:
    assert _top(per_segment, column) == segment


def test_segments_differ_by_wide_margins(per_segment: pl.DataFrame) -> None:
    row = {r["segment"]: r for r in per_segment.iter_rows(named=True)}
    assert row["loyal_premium"]["csat"] - row["at_risk_complainer"]["csat"] >= 1.5
    assert row["at_risk_complainer"]["chats_per_user"] >= 3 * row["new_explorer"]["chats_per_user"]
    assert row["billing_focused"]["billing"] >= 0.6
    # The chatbot demo looks for a past billing issue: common in at least one segment.
    assert row["billing_focused"]["users_with_billing"] >= 0.8


def test_demographics_follow_segments(generated: GenerationResult) -> None:
    users = pl.read_csv(generated.users_path, infer_schema=False).unique("user_id", keep="first")
    truth = pl.read_csv(generated.truth_path)
    df = users.join(truth, on="user_id").with_columns(
        age=pl.col("age").cast(pl.Int64),
        region=pl.col("region").str.strip_chars().str.to_lowercase(),
    )
    ages = (
        df.filter(pl.col("age").is_between(18, 90))
        .group_by("segment")
        .agg(pl.col("age").median())
        .sort("age")
    )
    assert ages["segment"].to_list()[0] == "mobile_shopper"
    assert ages["segment"].to_list()[-1] == "loyal_premium"
    north = df.group_by("segment").agg(north=(pl.col("region") == "north").mean())
    assert north.sort("north")["segment"][-1] == "loyal_premium"


def test_events_per_user_scales_the_volume() -> None:
    default = generate_events(1500, 2)
    assert default.height / 1500 == pytest.approx(expected_events_per_user(), rel=0.1)
    more = generate_events(1500, 2, events_per_user=25)
    assert more.height / 1500 == pytest.approx(25, rel=0.1)
    assert more.filter(pl.col("type") == "chat_started")["user_id"].n_unique() == 1500


def test_window_options_move_the_events() -> None:
    ev = generate_events(200, 1, start=date(2025, 1, 1), end=date(2025, 3, 1))
    starts = ev.filter(pl.col("type") == "chat_started")["ts"].str.slice(0, 10)
    assert starts.min() >= "2025-01-01" and starts.max() < "2025-03-01"
    ev = generate_events(200, 1, months=2)
    starts = ev.filter(pl.col("type") == "chat_started")["ts"].str.slice(0, 10)
    assert starts.min() >= "2026-09-01" and starts.max() < "2026-11-01"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "The 'n_users' parameter of generate must be an int >= 1. Got 0 instead."),
        ({"seed": -1}, "The 'seed' parameter of generate must be an int >= 0. Got -1 instead."),
        (
            {"months": 0},
            "The 'months' parameter of generate must be an int in 1..120. Got 0 instead.",
        ),
        (
            {"start": date(2026, 10, 20)},
            "The 'end' parameter of generate must be at least 28 days after start 2026-10-20. "
            "Got '2026-11-01' instead.",
        ),
        (
            {"start": date(2026, 1, 1), "months": 3},
            "The 'months' parameter of generate must be None when 'start' is given. Got 3 instead.",
        ),
    ],
)
def test_bad_parameters_are_clear_errors(kwargs: dict, message: str, tmp_path: Path) -> None:
    args = {"n_users": 10, "seed": 1, "out_dir": tmp_path} | kwargs
    with pytest.raises(ParameterError) as err:
        generate(**args)
    assert str(err.value) == message
    assert list(tmp_path.iterdir()) == []


def test_too_few_events_per_user_is_rejected() -> None:
    with pytest.raises(ParameterError, match="'events_per_user' parameter of generate"):
        generate_events(10, 1, events_per_user=1)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_users=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_invariants_hold_for_any_seed(n_users: int, seed: int) -> None:
    users = generate_users(n_users, seed)
    events = generate_events(n_users, seed)
    truth = generate_truth(n_users, seed)
    assert users["user_id"].n_unique() == n_users == truth.height
    assert set(events["user_id"]) == set(truth["user_id"])
    assert events["event_id"].is_unique().all()
    assert events["ts"].is_sorted()
    types = events.group_by(pl.col("payload").struct.field("chat_id")).agg(
        first=pl.col("type").first(),
        last_but=pl.col("type").filter(pl.col("type") != "feedback").last(),
    )
    assert (types["first"] == "chat_started").all() and (types["last_but"] == "chat_ended").all()


def test_segment_profiles_are_public() -> None:
    assert len(SEGMENTS) == 5 == len(set(SEGMENT_NAMES))
    assert get_segment("loyal_premium").vip_rate > get_segment("new_explorer").vip_rate
    with pytest.raises(NotFoundError, match="Unknown segment 'nope'"):
        get_segment("nope")


def test_bundled_utterances_ship_inside_the_package() -> None:
    data = resources.files("chatpersona").joinpath("data")
    csv = data.joinpath("support_utterances.csv")
    assert csv.is_file() and data.joinpath("LICENSE.txt").is_file()
    assert "CDLA-Sharing-1.0" in data.joinpath("ORIGIN.md").read_text(encoding="utf-8")
    assert "Community Data License Agreement" in data.joinpath("LICENSE.txt").read_text(
        encoding="utf-8"
    )
    size = sum(len(p.read_bytes()) for p in data.iterdir() if p.is_file())
    assert size < 300_000
    utt = load_utterances()
    assert utt["intent"].n_unique() == 27
    assert utt.group_by("intent").len()["len"].max() <= 30


def test_cli_generate_writes_the_files(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "d"
    res = runner.invoke(app, ["generate", "--users", "60", "--seed", "3", "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["n_users"] == 60 and payload["n_events"] > 60
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "truth.csv", "users.csv"]
    assert (out / "events.jsonl").read_bytes() == (
        generate(60, 3, tmp_path / "api").events_path.read_bytes()
    )


def test_cli_generate_help_and_bad_date(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--help"])
    assert res.exit_code == 0
    for option in (
        "--users",
        "--seed",
        "--out",
        "--events-per-user",
        "--start",
        "--end",
        "--months",
    ):
        assert option in res.output
    from chatpersona.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--users", "5", "-o", str(tmp_path), "--start", "05/01/2026"])
    assert exit_info.value.code == 2


def test_latent_segments_are_recoverable_by_plain_kmeans(generated: GenerationResult) -> None:
    """Per-user behaviour (shares of channel, device, category, time; counts; CSAT) plus age
    separates the segments: a plain K-Means(5) matches the truth with ARI >= 0.8."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score
    from sklearn.preprocessing import StandardScaler

    from chatpersona.datagen import CATEGORIES, CHANNELS, DEVICES

    ev = read_events(generated.events_path).unnest("payload")
    ev = ev.with_columns(t=pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%SZ"))
    starts = ev.filter(pl.col("type") == "chat_started").with_columns(hour=pl.col("t").dt.hour())
    hour = pl.col("hour")
    chats = starts.group_by("user_id").agg(
        [(pl.col("channel") == c).mean().alias(c) for c in CHANNELS]
        + [(pl.col("device") == d).mean().alias(d) for d in DEVICES]
        + [
            pl.len().log1p().alias("n"),
            (hour < 6).mean().alias("night"),
            hour.is_between(6, 11).mean().alias("morning"),
            hour.is_between(12, 17).mean().alias("afternoon"),
            (pl.col("t").dt.weekday() >= 6).mean().alias("weekend"),
        ]
    )
    cats = (
        ev.filter(pl.col("type") == "message")
        .group_by("user_id")
        .agg(*[(pl.col("category") == c).mean().alias(c) for c in CATEGORIES])
    )
    csat = ev.filter(pl.col("type") == "feedback").group_by("user_id").agg(pl.col("csat").mean())
    users = (
        pl.read_csv(generated.users_path, infer_schema=False)
        .unique("user_id", keep="first")
        .select("user_id", age=pl.col("age").cast(pl.Int64))
        .with_columns(age=pl.when(pl.col("age").is_between(18, 90)).then("age"))
    )
    truth = pl.read_csv(generated.truth_path)
    table = (
        truth.join(chats, on="user_id", how="left")
        .join(cats, on="user_id", how="left")
        .join(csat, on="user_id", how="left")
        .join(users, on="user_id", how="left")
    )
    table = table.with_columns(
        pl.col("csat").fill_null(pl.col("csat").mean()),
        pl.col("age").fill_null(pl.col("age").median()),
    )
    x = table.drop("user_id", "segment").fill_null(0).to_numpy().astype(np.float64)
    labels = KMeans(5, n_init=10, random_state=0).fit_predict(StandardScaler().fit_transform(x))
    ari = adjusted_rand_score(table["segment"].to_list(), labels)
    print(f"ARI {ari:.3f}")
    assert ari >= 0.8
