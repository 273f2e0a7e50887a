"""The model change sign-off report: model B (the candidate) against model A (the current
one) on the same data, as `whybox diff` found it (its diff.json record), in HTML or PDF."""

from __future__ import annotations

import itertools
import json
import shlex
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whybox.dashboard.reports import charts
from whybox.dashboard.reports.report import (
    METRICS,
    TOP_FEATURES,
    Charts,
    background_text,
    fmt_value,
    page_bytes,
    render_page,
    write_page,
)
from whybox.dashboard.reports.wording import version_verdict

if TYPE_CHECKING:
    from whybox.model_zoo import Dataset, Model
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.versions import VersionDiff

LOSS = {"classification": "error rate", "regression": "mean absolute error"}
"""What a cohort's `a_loss` and `b_loss` measure, by task."""


def versions_record(
    command: list[str],
    model_a: Model,
    model_b: Model,
    data: Dataset | ImageSet,
    diff: VersionDiff,
) -> dict[str, Any]:
    """diff.json: the command, both models' and the data's summaries and everything the
    diff found (`VersionDiff.to_json()`, whose `models` the summaries extend), with an id,
    the time and the library versions for the audit trail."""
    from whybox.dashboard.runs.records import library_versions

    return {
        "run_id": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        **diff.to_json(),
        "models": {"A": model_a.summary(), "B": model_b.summary()},
        "data": data.summary(),
        "versions": library_versions(),
    }


def save_record(record: dict[str, Any], out: Path) -> Path:
    """Write the record as `out`/diff.json (the folder made where needed)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "diff.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def versions_report_bytes(record: dict[str, Any], fmt: str, paper: str = "a4") -> bytes:
    """The sign-off report of a diff.json `record` as HTML (UTF-8) or PDF bytes."""
    return page_bytes(lambda static: _render(record, static, paper), fmt, paper)


def write_versions_report(
    record: dict[str, Any], out: Path, fmt: str | None = None, paper: str = "a4"
) -> Path:
    """Write the sign-off report of a diff.json `record` to `out` (format from `fmt` or the
    suffix); return `out`."""
    return write_page(out, fmt, lambda chosen: versions_report_bytes(record, chosen, paper))


def _render(record: dict[str, Any], static: bool, paper: str) -> str:
    from whybox.trust.versions import BOOTSTRAP

    figures = Charts(static)
    models, data, decisions = record["models"], record["data"], record["decisions"]
    context: dict[str, Any] = {
        "record": record,
        "title": f"{models['B']['name']} (B) against {models['A']['name']} (A) on {data['name']}",
        "verdict": version_verdict(record),
        "files": [
            *(
                (
                    f"model {side} ({role})",
                    f"{models[side]['name']} ({models[side]['format']})",
                    None,
                    models[side]["sha256"],
                )
                for side, role in (("A", "current"), ("B", "candidate"))
            ),
            ("data", data["name"], record["rows"], data["sha256"]),
        ],
        "change_chart": figures.add(
            charts.change_histogram(
                decisions["change"]["edges"], decisions["change"]["counts"], decisions["output"]
            )
        ),
        "change_facts": _change_facts(decisions),
        "largest": _largest(decisions),
        "performance": _performance(record["performance"]),
        "bootstrap": BOOTSTRAP,
        "loss": LOSS[record["task"]],
        "cohorts": [_cohort(c, record["task"]) for c in record["cohorts"] or ()],
        "search": _search(record),
        "reasons": None,
        "method": None,
        "notes": _notes(record),
        "command": shlex.join(record["command"]),
    }
    reasons = record["reasons"]
    if reasons is not None:
        features = reasons["features"]
        what = f"mean |attribution| ({reasons['method']})"
        context["reasons"] = {
            "chart": figures.add(
                charts.drift_bars(
                    {f["feature"]: {"A": f["a"], "B": f["b"]} for f in features},
                    what,
                    top=TOP_FEATURES,
                    sides=charts.VERSION_COLOURS,
                    errors={f["feature"]: {"A": f["a_se"], "B": f["b_se"]} for f in features},
                )
            ),
            "features": features,
            "rows": [_side_by_side(row, decisions) for row in reasons["rows"]],
            "explained": reasons["rows_explained"],
        }
        context["method"] = _method(record)
    return render_page("versions.html.j2", context, figures, paper)


def _interval(pair: list[float] | None, signed: bool = False) -> str:
    if pair is None:
        return "-"
    shape = "{:+.3f} to {:+.3f}" if signed else "{:.3f} to {:.3f}"
    return shape.format(*pair)


def _change_facts(decisions: dict[str, Any]) -> list[tuple[str, str]]:
    change = decisions["change"]
    quantiles = change["quantiles"]
    facts = [
        ("compared output", decisions["output"]),
        ("mean change (B minus A)", f"{change['mean']:+.4g}"),
        ("mean absolute change", f"{change['mean_absolute']:.4g}"),
        ("median change", f"{quantiles['0.5']:+.4g}"),
        ("middle 90 % of the changes", f"{quantiles['0.05']:+.4g} to {quantiles['0.95']:+.4g}"),
        ("middle 98 % of the changes", f"{quantiles['0.01']:+.4g} to {quantiles['0.99']:+.4g}"),
    ]
    return facts


def _largest(decisions: dict[str, Any]) -> list[dict[str, str]]:
    """The rows that changed most, as the report's table shows them."""
    return [
        {
            "row": str(entry["row"]),
            "id": entry["id"] or "",
            "a": fmt_value(entry["a"]),
            "b": fmt_value(entry["b"]),
            "change": f"{entry['change']:+.4g}",
            "class_a": entry.get("class_a", ""),
            "class_b": entry.get("class_b", ""),
            "flipped": entry.get("class_a") != entry.get("class_b"),
        }
        for entry in decisions["largest"]
    ]


def _performance(performance: dict[str, dict[str, Any]] | None) -> list[dict[str, str]]:
    """Each metric of A and B and the change, with their 95 % intervals."""
    return [
        {
            "metric": METRICS.get(name, name),
            "a": f"{v['a']:.3f}",
            "a_interval": _interval(v["a_interval"]),
            "b": f"{v['b']:.3f}",
            "b_interval": _interval(v["b_interval"]),
            "change": f"{v['change']:+.3f}",
            "change_interval": _interval(v["change_interval"], signed=True),
            "noise": v["change_interval"] is not None
            and v["change_interval"][0] <= 0 <= v["change_interval"][1],
        }
        for name, v in (performance or {}).items()
    ]


def _cohort(cohort: dict[str, Any], task: str) -> dict[str, Any]:
    relative = task == "regression"
    gap, (low, high) = cohort["gap"], cohort["gap_interval"]
    return {
        "rule": cohort["rule"],
        "rows": f"{cohort['rows']:,}",
        "a_loss": f"{cohort['a_loss']:.3f}",
        "b_loss": f"{cohort['b_loss']:.3f}",
        "sign_test": f"B worse on {cohort['worse']:,}, better on {cohort['better']:,} "
        f"of {cohort['held_out_rows']:,} (p {cohort['p_value']:.2g})",
        "p_adjusted": f"{cohort['p_adjusted']:.2g}",
        "gap": f"{100 * gap:+.0f} % of A's" if relative else f"{gap:+.3f}",
        "gap_interval": f"{100 * low:+.0f} % to {100 * high:+.0f} %"
        if relative
        else f"{low:+.3f} to {high:+.3f}",
        "performance": _performance(cohort["performance"]),
    }


def _search(record: dict[str, Any]) -> str:
    """How the cohorts were looked for, in words (or why they were not)."""
    search = record["cohort_search"]
    if record["performance"] is None:
        return "The data has no label column, so performance and cohorts were not measured."
    if search is None:
        return "Cohorts are looked for in tables; these models take images."
    task = record["task"]
    gap = (
        f"at least {100 * search['min_gap']:.0f} points of error rate"
        if task == "classification"
        else f"at least {100 * search['min_gap']:.0f} % more mean absolute error than A's"
    )
    said = (
        f"A regression tree of depth {search['depth']} (leaves of at least "
        f"{search['min_rows']} rows) was fitted to the change in each row's {LOSS[task]} "
        f"between A and B on a random half of the rows ({search['fitted_rows']:,}, seed "
        f"{record['seed']}); {search['candidates']} of its leaves, where B was worse, were "
        f"read as rules and tested on the other half ({search['tested_rows']:,} rows) with a "
        "one-sided sign test of the rows B gets worse against those it gets better, "
        f"Holm-corrected at {record['alpha']:g}. A rule is reported where the adjusted p is "
        f"below {record['alpha']:g} and B is worse by {gap}."
    )
    return said


def _side_by_side(row: dict[str, Any], decisions: dict[str, Any]) -> dict[str, Any]:
    """One compared row: its decisions under A and B and its top reasons under each."""
    decided = next((d for d in decisions["largest"] if d["row"] == row["row"]), None)
    heading = f"Row {row['row']}" + (f", id {row['id']}" if row["id"] is not None else "")
    if decided is not None and "class_a" in decided:
        heading += f": {decided['class_a']} under A, {decided['class_b']} under B"
    elif decided is not None:
        heading += f": {decided['a']:.4g} under A, {decided['b']:.4g} under B"

    def said(reasons: list[dict[str, Any]]) -> list[str]:
        return [f"{r['feature']} = {r['value']} ({r['attribution']:+.3g})" for r in reasons]

    return {
        "heading": heading,
        "pairs": list(itertools.zip_longest(said(row["a"]), said(row["b"]), fillvalue="")),
        "changes": [
            (what, ", ".join(row[key]))
            for what, key in (
                ("appeared under B", "appeared"),
                ("disappeared under B", "disappeared"),
                ("changed sign", "changed_sign"),
            )
            if row[key]
        ],
    }


def _method(record: dict[str, Any]) -> dict[str, Any]:
    """How both models were explained: one method, background, output space, class, seed."""
    reasons = record["reasons"]
    params = reasons["params"]
    size = params.get("background")
    background = (
        None
        if size is None
        else {"rows": min(int(size), record["rows"]), "of": record["rows"], "seed": reasons["seed"]}
    )
    target = reasons["target"]
    return {
        "facts": [
            ("method", reasons["method"]),
            ("output space", reasons["output_space"]),
            ("explained class", "-" if target is None else str(target)),
            ("background", background_text(background, params.get("baseline"))),
            ("seed", str(reasons["seed"])),
            (
                "rows explained",
                f"{reasons['rows_explained']:,} sampled with seed {reasons['seed']}"
                ", plus the rows compared side by side",
            ),
        ],
        "params": [(name, fmt_value(value)) for name, value in params.items()],
    }


def _notes(record: dict[str, Any]) -> list[str]:
    notes = list(record["notes"])
    for side in ("A", "B"):
        notes += [f"Model {side}: {note}" for note in record["models"][side].get("notes", [])]
    notes += [f"Data: {note}" for note in record["data"].get("notes", [])]
    return notes
