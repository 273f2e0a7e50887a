"""The shift report: a data set against its reference, as `whybox shift` found it (its
shift.json record), in HTML or PDF."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whybox.dashboard.reports import charts
from whybox.dashboard.reports.report import Charts, page_bytes, render_page, write_page
from whybox.dashboard.reports.wording import shift_verdict

if TYPE_CHECKING:
    from whybox.model_zoo import Dataset, Model
    from whybox.trust.shift import ModelShift, ShiftReport

CHARTED_FEATURES = 10
"""Features with the largest effects whose histograms the report draws; the table has all."""


def shift_record(
    command: list[str],
    reference: Dataset,
    data: Dataset,
    found: ShiftReport,
    model: Model | None = None,
    view: ModelShift | None = None,
) -> dict[str, Any]:
    """shift.json: the command, both tables' summaries, the report and, where a model's view
    was taken, the model's summary with it."""
    return {
        "command": command,
        "reference": reference.summary(),
        "data": data.summary(),
        **found.to_json(),
        "model": None
        if model is None or view is None
        else {**model.summary(), "shift": asdict(view)},
    }


def shift_report_bytes(record: dict[str, Any], fmt: str, paper: str = "a4") -> bytes:
    """The report of a shift.json `record` as HTML (UTF-8) or PDF bytes."""
    return page_bytes(lambda static: _render(record, static, paper), fmt, paper)


def write_shift_report(
    record: dict[str, Any], out: Path, fmt: str | None = None, paper: str = "a4"
) -> Path:
    """Write the report of a shift.json `record` to `out` (format from `fmt` or the
    suffix); return `out`."""
    return write_page(out, fmt, lambda chosen: shift_report_bytes(record, chosen, paper))


def _render(record: dict[str, Any], static: bool, paper: str) -> str:
    from whybox.trust.shift import FeatureShift

    figures = Charts(static)
    features = [FeatureShift(**f) for f in record["features"]]
    context: dict[str, Any] = {
        "record": record,
        "title": f"{record['data']['name']} against {record['reference']['name']}",
        "verdict": shift_verdict(record, shown=len(features)),
        "tables": [
            (
                "reference",
                record["reference"]["name"],
                record["reference"]["rows"],
                record["reference"]["sha256"],
            ),
            ("data", record["data"]["name"], record["data"]["rows"], record["data"]["sha256"]),
        ],
        "features": features,
        "histograms": [figures.add(charts.shift_histogram(f)) for f in features[:CHARTED_FEATURES]],
        "classifier": record["classifier"],
        "classifier_chart": None,
        "model": record["model"],
        "model_charts": [],
        "command": shlex.join(record["command"]),
    }
    test = record["classifier"]
    if test is not None:
        context["classifier_chart"] = figures.add(
            charts.ranked_bars(test["importance"], "mean |tree SHAP| telling data from reference")
        )
    view = record["model"]["shift"] if record["model"] else None
    if view is not None:
        context["model_charts"].append(
            figures.add(charts.shift_histogram(FeatureShift(**view["predictions"])))
        )
        if view["attributions"]:
            method = view["attributions"]["method"]
            context["model_charts"].append(
                figures.add(
                    charts.drift_bars(
                        view["attributions"]["features"], f"mean |attribution| ({method})"
                    )
                )
            )
    return render_page("shift.html.j2", context, figures, paper)
