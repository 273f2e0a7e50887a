"""Reports of a run for compliance readers: one self-contained HTML file or a PDF.

Both come from one Jinja2 template (templates/report.html.j2) with autoescaping on, so every
name from a model or data file reaches the page as text. The HTML inlines plotly.js once
and keeps its charts interactive; it loads nothing from outside. The PDF (weasyprint) has
the same content with the charts drawn to SVG by kaleido in Chromium, a table of contents
with page numbers, and page numbers on every page.
"""

from __future__ import annotations

import base64
import os
import queue
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from whybox.dashboard.reports import charts
from whybox.dashboard.reports.values import feature_text, row_notes, value_text
from whybox.dashboard.reports.wording import sentence, typicality_text
from whybox.dashboard.runs.outputs import overlay
from whybox.dashboard.runs.records import Run
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.tables import name_list

if TYPE_CHECKING:
    from whybox.dashboard.reports.reasons import ReasonText
    from whybox.explainers import Explanation

FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}
PAPERS = {"a4": "A4", "letter": "Letter"}
MAX_DECISIONS = 200
"""Decisions shown one per page; the rest are in the run's attributions files."""
TOP_FEATURES = 20
REASONS_EACH_WAY = 4
STATIC_WIDTH = 760
"""Pixels across a static chart; it is scaled to the page's width."""
CHART_CONFIG = {"displaylogo": False, "responsive": True}
SECTIONS = {
    "model": "Model identity",
    "data": "Data provenance",
    "method": "Method",
    "performance": "Performance",
    "importance": "Global importance",
    "rules": "Rules and a glass-box model",
    "decisions": "Decisions",
    "quality": "Quality of the explanations",
    "limitations": "Limitations",
    "reproduce": "How to reproduce",
}
METRICS = {
    "rows": "labelled rows",
    "accuracy": "accuracy",
    "auc": "AUC",
    "rmse": "RMSE",
    "r2": "R²",
}
LIMITATIONS = (
    "Attributions are post-hoc approximations of how the model's output responds to its "
    "inputs around each row; they describe the model's arithmetic, not causes in the world, "
    "and not the model's own reasoning.",
    "Correlated features share credit in ways that depend on the method: a feature can get "
    "little attribution because a correlated one carries the same information, and changing "
    "one feature alone can make an input unlike any real one.",
    "Explanations, like the model, are least reliable for inputs unlike the data the model "
    "was trained on and the reference (background) data.",
    "A ranking over few rows describes those rows, not the model as a whole.",
)
KALEIDO_TIMEOUT_S = 30.0
"""Seconds allowed per report for Chromium to start, plus KALEIDO_TIMEOUT_PER_CHART_S each."""
KALEIDO_TIMEOUT_PER_CHART_S = 10.0


def report_format(out: Path, fmt: str | None = None) -> str:
    """The report's format: `fmt` (html or pdf) or, without it, the suffix of `out`."""
    suffix_format = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        if suffix_format is None:
            raise WhyboxError(
                f"cannot tell the report format from {Path(out).name!r}; "
                "name a .html or .pdf file, or give --format html or pdf"
            )
        return suffix_format
    fmt = fmt.lower()
    if fmt not in FORMATS.values():
        raise WhyboxError(f"the report format must be html or pdf, got {fmt!r}")
    if suffix_format not in (None, fmt):
        raise WhyboxError(
            f"--format {fmt} does not match the file name {Path(out).name!r}; "
            f"name a .{fmt} file or leave --format out"
        )
    return fmt


def paper_size(paper: str) -> str:
    """The CSS page size for `paper` (a4 or letter, any case)."""
    try:
        return PAPERS[paper.lower()]
    except KeyError:
        raise WhyboxError(f"the paper size must be a4 or letter, got {paper!r}") from None


def report_bytes(
    run: Run,
    fmt: str,
    favourable: str | None = None,
    texts: dict[str, ReasonText] | None = None,
    paper: str = "a4",
) -> bytes:
    """The report of `run` as HTML (UTF-8) or PDF bytes, e.g. for a download button.

    With a `favourable` class, each classification decision gets its principal reasons
    (the features that pushed toward the unfavourable outcome, worded by `texts` where
    given); without one, the features that pushed each way.
    """
    return page_bytes(
        lambda static: render_html(
            run, static=static, favourable=favourable, texts=texts, paper=paper
        ),
        fmt,
        paper,
    )


def write_report(
    run: Run,
    out: Path,
    fmt: str | None = None,
    favourable: str | None = None,
    texts: dict[str, ReasonText] | None = None,
    paper: str = "a4",
) -> Path:
    """Write the report of `run` to `out` (format from `fmt` or the suffix); return `out`."""
    return write_page(out, fmt, lambda chosen: report_bytes(run, chosen, favourable, texts, paper))


def write_page(out: Path, fmt: str | None, content: Callable[[str], bytes]) -> Path:
    """Write a report to `out`: `content(format)` makes its bytes, the format being `fmt`
    or, without it, the suffix of `out` (checked before any work); return `out`."""
    out = Path(out)
    made = content(report_format(out, fmt))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(made)
    return out


def render_html(
    run: Run,
    *,
    static: bool = False,
    favourable: str | None = None,
    texts: dict[str, ReasonText] | None = None,
    paper: str = "a4",
) -> str:
    """The report as HTML: interactive charts, or (`static`) SVG charts and print CSS."""
    figures = Charts(static)
    context = _context(run, figures, favourable, texts)
    return render_page("report.html.j2", context | {"sections": SECTIONS}, figures, paper)


def render_page(template: str, context: dict[str, Any], figures: Charts, paper: str) -> str:
    """A report template rendered with its `figures` (interactive, or SVG for print)."""
    return (
        _environment()
        .get_template(template)
        .render(
            **context,
            charts=figures.render(),
            static=figures.static,
            page_size=paper_size(paper),
            plotlyjs=None if figures.static else Markup(_plotlyjs()),
        )
    )


def page_bytes(render: Callable[[bool], str], fmt: str, paper: str) -> bytes:
    """A report as HTML (UTF-8) or PDF bytes; `render(static)` makes its HTML."""
    if fmt not in ("html", "pdf"):
        raise WhyboxError(f"the report format must be html or pdf, got {fmt!r}")
    paper_size(paper)
    if fmt == "pdf":
        start_chart_browser()  # Chromium starts in its own process while this one
        _import_weasyprint()  # loads weasyprint and builds the report
    html = render(fmt == "pdf")
    return html.encode() if fmt == "html" else _pdf(html)


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("whybox.dashboard.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["num"] = fmt_value
    return environment


@cache
def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@dataclass
class Charts:
    """The report's figures, numbered as they are added, rendered all at once at the end
    (so the PDF's go to Chromium in one go)."""

    static: bool
    figures: list[go.Figure] = field(default_factory=list)

    def add(self, figure: go.Figure) -> int:
        self.figures.append(figure)
        return len(self.figures) - 1

    def render(self) -> list[dict[str, Any]]:
        titles = [figure.layout.title.text or "chart" for figure in self.figures]
        if self.static:
            images = _svgs(self.figures)
            return [
                {"uri": _data_uri(svg, "image/svg+xml"), "alt": title}
                for svg, title in zip(images, titles, strict=True)
            ]
        return [
            {
                "html": Markup(
                    pio.to_html(
                        figure,
                        include_plotlyjs=False,
                        full_html=False,
                        config=CHART_CONFIG,
                        div_id=f"chart-{i}",
                        default_height=f"{figure.layout.height or 450}px",
                    )
                ),
                "alt": title,
            }
            for i, (figure, title) in enumerate(zip(self.figures, titles, strict=True))
        ]


def _data_uri(content: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def fmt_value(value: Any) -> str:
    """A value as the reports print it: 4 significant digits, lists joined, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def _context(
    run: Run,
    figures: Charts,
    favourable: str | None,
    texts: dict[str, ReasonText] | None,
) -> dict[str, Any]:
    record, explanation = run.record, run.explanation
    model = record["model"]
    if favourable is not None:
        classes = model["class_names"] or []
        if model["task"] != "classification" or favourable not in classes:
            raise WhyboxError(
                f"the favourable class {favourable!r} is not one of the model's classes"
                + (f": {name_list(classes)}" if classes else " (it is a regression model)")
            )
    shown = min(len(explanation.values), MAX_DECISIONS)
    return {
        "record": record,
        "title": f"{model['name']} on {record['data']['name']}",
        "model_facts": _model_facts(model),
        "data_facts": _data_facts(record["data"], run.explanation),
        "method": _method(record),
        "performance": _performance(record.get("performance")),
        "importance": _importance(explanation, figures),
        "rules": _rules(record.get("rules")),
        "glass_box": _glass_box(record.get("glass_box")),
        "decisions": [
            _decision(run, position, figures, favourable, texts) for position in range(shown)
        ],
        "decisions_left_out": len(explanation.values) - shown,
        "favourable": favourable,
        "quality_facts": _quality_facts(record, explanation),
        "quality": _quality(record.get("quality")),
        "limitations": _limitations(record, explanation, favourable),
        "command": shlex.join(record["command"]),
        "reproduce_facts": [
            ("run id", record["run_id"]),
            ("created", record["created"]),
            ("whybox version", record["versions"].get("whybox", "unknown")),
            ("Python version", record["versions"].get("python", "unknown")),
        ],
    }


def _model_facts(model: dict[str, Any]) -> list[tuple[str, str]]:
    normalization = model.get("normalization")
    return [
        ("name", model["name"]),
        ("format", model["format"]),
        ("kind", model["kind"]),
        ("task", model["task"]),
        ("inputs", f"{model['modality']} {tuple(model['input_shape'])}"),
        ("classes", fmt_value(model["class_names"])),
        ("output spaces", fmt_value(model["output_spaces"])),
        (
            "normalisation inside the model",
            "none"
            if normalization is None
            else f"mean {fmt_value(normalization['mean'])}; std {fmt_value(normalization['std'])}",
        ),
        ("SHA-256 of the model file", model["sha256"]),
    ]


def _data_facts(data: dict[str, Any], explanation: Explanation) -> list[tuple[str, str]]:
    facts = [("file", data["name"]), ("SHA-256 of the data file", data["sha256"])]
    if "images" in data:
        facts += [("images", fmt_value(data["images"])), ("image shape", fmt_value(data["shape"]))]
        facts += [(k, fmt_value(v)) for k, v in data.get("preprocessing", {}).items()]
    else:
        facts += [
            ("rows", fmt_value(data["rows"])),
            ("features", fmt_value(len(data["features"]))),
            ("label column", data["label"] or "none"),
            ("identifier column", data.get("id") or "none"),
        ]
        if explanation.categories:
            facts.append(("categorical columns", fmt_value(list(explanation.categories))))
        facts += [
            (f"column {column}", _described(entry))
            for column, entry in explanation.dictionary.items()
        ]
    return facts


def _described(entry: dict[str, Any]) -> str:
    """A data dictionary entry in one line: label, unit, description, named codes."""
    parts = [
        entry.get("label"),
        entry.get("unit") and f"unit {entry['unit']}",
        entry.get("description"),
    ]
    named = entry.get("values", {})
    if named:
        parts.append("; ".join(f"{code} = {name}" for code, name in named.items()))
    return ", ".join(p for p in parts if p)


def _method(record: dict[str, Any]) -> dict[str, Any]:
    from whybox.explainers import registry

    params = record["params"]
    try:
        cls = registry.get(record["method"])
        specs = {spec.name: spec for spec in cls.params}
        about = f"{cls.display_name}: {cls.summary}"
    except WhyboxError as exc:
        specs, about = {}, f"not installed here, so its parameters are not described ({exc})"
    rows = [
        (name, fmt_value(params.get(name, spec.default)), spec.help) for name, spec in specs.items()
    ]
    rows += [
        (
            name,
            fmt_value(value),
            "set by the auto explainer, which chose this method (see Limitations)",
        )
        if name == "chosen_by"
        else (name, fmt_value(value), "")
        for name, value in params.items()
        if name not in specs
    ]
    background = record.get("background")
    return {
        "name": record["method"],
        "about": about,
        "params": rows,
        "facts": [
            ("output space", record["output_space"]),
            ("explained class", fmt_value(record["target"]) if record["target"] else "-"),
            ("background", background_text(background, params.get("baseline"))),
            ("seed", fmt_value(record["seed"])),
            ("device", record["device"]),
            ("rows explained", fmt_value(record["rows"])),
            ("duration", f"{record['seconds']:.3g} s"),
        ],
    }


def background_text(background: dict[str, int] | None, baseline: str | None) -> str:
    if background is not None:
        return (
            f"{background['rows']:,} of the data's {background['of']:,} rows, "
            f"sampled with seed {background['seed']}"
        )
    if baseline is not None:
        return "none: the reference input is black (all zeros), as the baseline parameter says"
    return "none: the method takes no reference rows from the data"


def _performance(performance: dict[str, float] | None) -> list[tuple[str, str]]:
    if not performance:
        return []
    return [(METRICS.get(name, name), fmt_value(value)) for name, value in performance.items()]


def _importance(explanation: Explanation, figures: Charts) -> dict[str, Any]:
    """Tables: features by mean |attribution|. Images: the mean |map| over the mean image."""
    n = len(explanation.values)
    if explanation.values.ndim == 2:
        return {
            "chart": figures.add(charts.importance_bar(explanation, top=TOP_FEATURES)),
            "caption": f"Features ranked by their mean |attribution| over the {n} explained "
            f"row{'s' if n > 1 else ''} (the {min(TOP_FEATURES, explanation.values.shape[1])} "
            "largest).",
        }
    mean_image = np.moveaxis(np.asarray(explanation.data, dtype=np.float64).mean(axis=0), 0, -1)
    display = (mean_image * 255).clip(0, 255).astype(np.uint8)
    figure = charts.image_overlay(
        display,
        np.abs(explanation.values).mean(axis=0),
        signed=False,
        colormap="magnitude",
        label=charts.output_label(explanation),
    )
    return {
        "chart": figures.add(figure),
        "caption": f"Where the maps are strongest on average: the mean |attribution| over the "
        f"{n} explained image{'s' if n > 1 else ''}, drawn over their mean image.",
    }


def _rules(rules: dict[str, Any] | None) -> dict[str, Any] | None:
    """The surrogate's rules as the report's table: rule, outcome, held-out rows covered,
    and the model's agreement there (or the mean gap for a regressor)."""
    if rules is None:
        return None
    rows = []
    for rule in rules["rules"]:
        condition = " and ".join(c["text"] for c in rule["conditions"]) or "every row"
        if rule["agreement"] is not None:
            low, high = rule["interval"]
            fit = f"{rule['agreement']:.1%} ({low:.1%} to {high:.1%})"
        else:
            fit = "" if rule["mean_error"] is None else f"{rule['mean_error']:.4g}"
        rows.append((condition, fmt_value(rule["outcome"]), f"{rule['rows']:,}", fit))
    measure = "agreement (95 % interval)" if rules["measure"] == "agreement" else "mean |gap|"
    return rules | {"rows": rows, "fit_heading": measure}


def _glass_box(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """The EBM beside the model: its verdict and each metric side by side."""
    if found is None:
        return None
    rows = []
    for name, m in found["performance"].items():
        low, high = m["change_interval"]
        change = f"{m['change']:+.3f} ({low:+.3f} to {high:+.3f})"
        rows.append((METRICS.get(name, name), fmt_value(m["a"]), fmt_value(m["b"]), change))
    return found | {"rows": rows}


def _reason_rows(explanation: Explanation, reasons: list) -> list[tuple[str, str, str, str]]:
    return [
        (feature_text(explanation, r.feature), r.shown, f"{r.contribution:+.4g}", r.statement)
        for r in reasons
    ]


def _decision(
    run: Run,
    position: int,
    figures: Charts,
    favourable: str | None,
    texts: dict[str, ReasonText] | None,
) -> dict[str, Any]:
    """One explained row: its prediction, the decision and its principal reasons."""
    explanation, record = run.explanation, run.record
    row = int(explanation.rows[position])
    predicted = (record.get("predicted_classes") or [None] * (position + 1))[position]
    label = charts.output_label(explanation, position)
    facts = [("predicted class", predicted)] if predicted is not None else []
    facts += [
        ("prediction", f"{explanation.predictions[position]:.4g} ({label})"),
        ("base value", f"{explanation.base_values[position]:.4g}"),
    ]
    if explanation.standard_errors is not None:
        largest = float(np.max(explanation.standard_errors[position]))
        facts.append(("largest standard error in this row", f"{largest:.3g}"))
    typical = record["typicality"]["rows"][position] if "typicality" in record else None
    if typical is not None:
        said = typicality_text(typical["typicality"], record["typicality"]["threshold"])
        facts.append(("typicality", f"{typical['typicality']:.3g}: {said}"))
    decision: dict[str, Any] = {
        "row": row,
        "facts": facts,
        "outcome": None,
        "reasons": [],
        "flagged": [],
        "note": "",
        "row_notes": [],
        "recourse": None,
    }
    if typical is not None and typical["outside"]:
        decision["row_notes"] = [f"Unlike the reference: {said}" for said in typical["reasons"]]
    if favourable is not None:
        decision["outcome"] = "favourable" if predicted == favourable else "unfavourable"
    if run.images:
        source = record["data"].get("explained_sources", [None] * (position + 1))[position]
        decision["heading"] = f"Image {row}" + (f": {source}" if source else "")
        decision["image"] = _data_uri(_overlay_png(run, position), "image/png")
        decision["caption"] = (
            f"The map over the image ({label}): vermillion where pixels raised it, blue where "
            "they lowered it."
            if explanation.signed
            else f"The map over the image ({label}): vermillion where the evidence is "
            "strongest (magnitudes only)."
        )
        return decision
    decision["heading"] = f"Row {row}"
    if "explained_ids" in record["data"]:
        identifier = record["data"]["explained_ids"][position]
        decision["heading"] += f", {record['data']['id']} {identifier}"
    model = record["model"]
    decision["row_notes"] = (
        row_notes(explanation, position, model.get("categories", {}), model.get("unseen", {}))
        + decision["row_notes"]
    )
    decision["chart"] = figures.add(charts.waterfall(explanation, position))
    if "recourse" in record:
        found = record["recourse"]["rows"].get(str(row))
        decision["recourse"] = found and found | {"constraints": record["recourse"]["constraints"]}
    if favourable is not None and predicted is not None:
        from whybox.dashboard.reports.reasons import decide

        decided = decide(explanation, position, favourable, predicted, texts)
        decision["flagged"] = _reason_rows(explanation, decided.flagged)
        if decided.favourable:
            decision["note"] = f"The decision is favourable ({favourable}): no adverse reasons."
        else:
            decision["reasons_title"] = "Principal reasons"
            decision["contribution_label"] = "push toward unfavourable"
            decision["reasons"] = _reason_rows(explanation, decided.reasons)
            if not decided.reasons:
                decision["note"] = "No allowed feature pushed toward the unfavourable outcome."
        return decision
    decision["reasons_title"] = "The features that pushed each way"
    decision["contribution_label"] = "attribution"
    decision["reasons"] = [
        (feature, shown, f"{attribution:+.4g}", sentence(feature, shown, attribution, label))
        for sign in (1, -1)
        for name, value, attribution in explanation.top_reasons(REASONS_EACH_WAY, position, sign)
        for feature, shown in [
            (feature_text(explanation, name), value_text(explanation, name, value))
        ]
    ]
    return decision


def _overlay_png(run: Run, position: int) -> bytes:
    """The image's overlay as the run wrote it, or drawn again from the run's data."""
    explanation = run.explanation
    row = int(explanation.rows[position])
    written = sorted((run.directory / "overlays").glob(f"{row:05d}_*.png"))
    if written:
        return written[0].read_bytes()
    display = (np.moveaxis(explanation.data[position], 0, -1) * 255).clip(0, 255)
    buffer = BytesIO()
    overlay(display, explanation.values[position], explanation.signed).save(buffer, "PNG")
    return buffer.getvalue()


def _quality_facts(record: dict[str, Any], explanation: Explanation) -> list[tuple[str, str]]:
    spread = np.abs(explanation.predictions - explanation.base_values)
    facts = [
        (
            "additive",
            "yes: each row's attributions plus its base value equal its prediction"
            if record["additive"]
            else "no: the attributions do not add up to the prediction; read them as "
            "relative importance",
        )
    ]
    if record["additivity_gap"] is not None:
        facts.append(
            (
                "largest additivity (completeness) gap",
                f"{record['additivity_gap']:.3g}, against a largest |prediction - base value| "
                f"of {float(spread.max(initial=0.0)):.3g}",
            )
        )
    errors = explanation.standard_errors
    facts.append(
        (
            "standard errors",
            "none: the values are computed, not sampled"
            if errors is None
            else f"largest {float(errors.max()):.3g}, mean {float(errors.mean()):.3g} "
            "(the values are sampled estimates)",
        )
    )
    facts.append(("signed", "yes" if record["signed"] else "no: magnitudes only"))
    return facts


def _quality(measured: dict[str, Any] | None) -> dict[str, Any] | None:
    """run.json's `quality` as the report's table: values with their intervals, in words."""
    if measured is None:
        return None
    scores = []
    for score in measured["scores"]:
        interval = score["interval"]
        value = fmt_value(score["value"]) + (
            f" ({fmt_value(interval[0])} to {fmt_value(interval[1])})" if interval else ""
        )
        reference = score["reference"]
        control = score["control"] + ("" if reference is None else f": {fmt_value(reference)}")
        scores.append(score | {"value": value, "control": control})
    summary = (
        f"{measured['method']} on {measured['rows']:,} rows, seed {measured['seed']}; "
        f"a removed input is set to {measured['baseline']}."
    )
    return {"summary": " ".join([summary, *measured["notes"]]), "scores": scores}


def _limitations(record: dict[str, Any], explanation: Explanation, favourable: str | None):
    items = list(LIMITATIONS)
    if favourable is not None:
        items.append(
            "Principal reasons rank the features that pushed this model's output toward the "
            "unfavourable outcome; changing one of them does not necessarily change the "
            "decision by the amount shown."
        )
    if len(explanation.values) > MAX_DECISIONS:
        items.append(
            f"Only the first {MAX_DECISIONS} of {len(explanation.values)} decisions are shown; "
            "every row's values are in the run's attribution files."
        )
    if "typicality" in record:
        typical = record["typicality"]
        outside = sum(row["outside"] for row in typical["rows"])
        reference = typical["reference"]
        items.append(
            f"Typicality against the reference {reference['name']} ({reference['rows']:,} "
            f"rows, SHA-256 {reference['sha256'][:12]}): {typical['method']}. {outside} of "
            f"{len(typical['rows'])} explained rows are below {typical['threshold']:g}, "
            "outside the training data; their explanations describe an extrapolation."
        )
    else:
        items.append(
            "No reference data was given, so whether each row is like the data the model "
            "learned from is not checked (give it with --reference)."
        )
    notes = [f"Check failed: {failure}" for failure in explanation.failures]
    notes += [f"Method: {n}" for n in record["notes"]]
    notes += [f"Model: {n}" for n in record["model"]["notes"]]
    notes += [f"Data: {n}" for n in record["data"]["notes"]]
    return items + notes


_START_LOCK = threading.Lock()
_DRAW_LOCK = threading.Lock()
"""Kaleido's server answers one caller at a time (the dashboard has a thread per session)."""


def start_chart_browser() -> None:
    """Start the Chromium that draws a PDF's charts (once per process; it takes seconds, so
    callers may start it ahead of other work). A WhyboxError says how to get Chromium."""
    import kaleido
    from choreographer.browsers.chromium import Chromium

    path = os.environ.get("BROWSER_PATH") or Chromium.find_browser(skip_local=False)
    if not path or not Path(path).is_file():
        raise WhyboxError(
            "PDF reports draw their charts with Chromium, which is not installed; install it "
            "(e.g. apt-get install chromium) or set BROWSER_PATH, or write an HTML report"
        )
    with _START_LOCK:
        kaleido.start_sync_server(mathjax=False, silence_warnings=True)


def _svgs(figures: list[go.Figure]) -> list[bytes]:
    """Each figure as SVG, drawn by Chromium; a WhyboxError if it does not answer in time
    (kaleido's server waits forever when its browser died)."""
    if not figures:
        return []
    import kaleido

    answer: queue.Queue = queue.Queue()

    def draw() -> None:
        try:
            start_chart_browser()
            with _DRAW_LOCK:
                answer.put(
                    [
                        kaleido.calc_fig_sync(
                            figure.to_dict(),
                            opts={
                                "format": "svg",
                                "width": STATIC_WIDTH,
                                "height": figure.layout.height or 450,
                            },
                        )
                        for figure in figures
                    ]
                )
        except Exception as exc:  # handed to the caller's thread
            answer.put(exc)

    threading.Thread(target=draw, daemon=True, name="whybox-report-charts").start()
    timeout = KALEIDO_TIMEOUT_S + KALEIDO_TIMEOUT_PER_CHART_S * len(figures)
    try:
        result = answer.get(timeout=timeout)
    except queue.Empty:
        raise WhyboxError(
            f"Chromium did not draw the report's charts within {timeout:.0f} s; "
            "check that it starts (chromium --headless), or write an HTML report"
        ) from None
    if isinstance(result, WhyboxError):
        raise result
    if isinstance(result, Exception):
        raise WhyboxError(f"drawing the report's charts failed: {result}") from result
    return result


def _import_weasyprint() -> None:
    """Import weasyprint, undoing the process-wide switch it makes on import: Pillow
    accepting truncated images. Uploaded images must still be refused when damaged."""
    import weasyprint  # noqa: F401
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False


def _pdf(html: str) -> bytes:
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # Everything the report shows is inline (data: URIs); nothing is fetched from outside.
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=("data",))).write_pdf()
