"""Plotly figures of explanations, readable with any colour vision.

Colours come from the Okabe-Ito palette only: vermillion for evidence for the explained
output (positive attribution), blue for evidence against, black for totals and for
quantities without a sign. Feature values are coloured on "cividis", a sequential scale
made for colour-blind readers, so they are never mistaken for the sign of an attribution.
Every axis that shows attributions or predictions names the output space and class (see
`output_label`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from scipy.stats import rankdata

from whybox.dashboard.reports.values import (
    categorical,
    feature_text,
    value_text,
    value_texts,
)
from whybox.dashboard.runs.outputs import MIDDLE, NEGATIVE, POSITIVE, SATURATION_PERCENTILE
from whybox.explainers.agreement import check_same_rows, rank_agreement
from whybox.explainers.base import Explanation
from whybox.model_zoo import WhyboxError
from whybox.model_zoo.chunks import chunk_slices, rows_per_chunk

if TYPE_CHECKING:
    from whybox.trust.error_analysis import ErrorAnalysis
    from whybox.trust.glassbox import Shape
    from whybox.trust.rules import RuleSurrogate
    from whybox.trust.shift import FeatureShift


def _hex(rgb: Sequence[int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


BLUE, VERMILLION, WHITE = _hex(NEGATIVE), _hex(POSITIVE), _hex(MIDDLE)  # "#0072B2", "#D55E00"
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": BLUE,
    "vermillion": VERMILLION,
    "reddish purple": "#CC79A7",
}
NEUTRAL = OKABE_ITO["black"]
TABLE_COLOURS = {"reference": OKABE_ITO["sky blue"], "data": OKABE_ITO["orange"]}
"""The reference and the new data in shift charts: neither the colour of a sign."""
VERSION_COLOURS = {"A": OKABE_ITO["sky blue"], "B": OKABE_ITO["orange"]}
"""Model A (current) and B (candidate) in the Versions view and report."""
DIVERGING = [[0.0, BLUE], [0.5, WHITE], [1.0, VERMILLION]]
"""Blue (against) through white (0) to vermillion (for); use with a range symmetric at 0."""
MAGNITUDE = [[0.0, WHITE], [1.0, VERMILLION]]
SEQUENTIAL = "cividis"
FONT_SIZE = 13
AXIS_LINES = 5.4
"""The height of an x axis's tick labels and title, in ems, with their padding."""
CHAR_WIDTH = 0.62
"""A character's width in ems, with the tick labels' padding a little more than the charts'
fonts need (an axis's automargin still widens a margin where a label needs more)."""
MAX_SCATTER_PIXELS = 2500
"""Image maps are block-averaged to at most this many points in `agreement_scatter`."""
BEESWARM_ROWS = 2_000
"""The beeswarm draws at most this many rows (a point per row and feature shown)."""
DEPENDENCE_ROWS = 5_000
"""The dependence plot draws at most this many rows."""
HISTOGRAM_BINS = 50
"""`prediction_histogram` counts the predictions in this many equal bins."""
MEAN_CHUNK_BYTES = 4 * 2**20
"""`mean_abs` takes |values| of this many bytes of rows at a time."""
CHART_SAMPLE_SALT = 0x5EE
"""Mixed with the explanation's seed to draw the rows a chart shows (`row_sample`)."""


TEMPLATE = "whybox"
"""plotly_white, kept to the traces and the flat axes these charts draw (`_white_template`)."""
TEMPLATE_TRACES = ("bar", "box", "heatmap", "icicle", "image", "scatter", "scattergl", "waterfall")
TEMPLATE_LAYOUT = (
    "annotationdefaults",
    "autotypenumbers",
    "coloraxis",
    "colorscale",
    "font",
    "hoverlabel",
    "hovermode",
    "paper_bgcolor",
    "plot_bgcolor",
    "shapedefaults",
    "title",
    "xaxis",
    "yaxis",
)


def _white_template() -> go.layout.Template:
    """plotly_white without its defaults for other traces (3D, maps, polar, tables) and other
    subplots: the same look for these charts, at a third of the figure's size. Plotly copies
    and checks a chart's template each time one is made, so the whole one was two thirds of
    the time to make a waterfall, and of the bytes sent for it at every change of row."""
    white = pio.templates["plotly_white"].to_plotly_json()
    return go.layout.Template(
        data={k: v for k, v in white["data"].items() if k in TEMPLATE_TRACES},
        layout={k: v for k, v in white["layout"].items() if k in TEMPLATE_LAYOUT},
    )


pio.templates[TEMPLATE] = _white_template()


def _layout(
    fig: go.Figure, title: str, x: str, y: str, *, height: int | None = None, **more: Any
) -> go.Figure:
    """The look every chart shares: white template, readable font, Okabe-Ito colourway;
    `more`: the chart's own layout, in plotly's update form (`xaxis={...}`, `margin_l=...`).

    One update for all of it: plotly validates the layout again at each update, a few
    milliseconds each, which a row's waterfall pays at every change of row."""
    return fig.update_layout(
        {
            "template": TEMPLATE,
            "title": {"text": title},
            "font": {"size": FONT_SIZE},
            "colorway": list(OKABE_ITO.values()),
            "xaxis": {"title": {"text": x}, "automargin": True},
            "yaxis": {"title": {"text": y}, "automargin": True},
            "height": height,
            "margin": {"l": 10, "r": 10, "t": 90 if "<br>" in title else 60, "b": 10},
        },
        **more,
    )


def output_label(explanation: Explanation, position: int | None = None) -> str:
    """What the attributions are measured in, e.g. "log-odds of class 'good'".

    With `position`, names that row's class; otherwise the class all rows share, or "the
    explained class" where rows explain different classes. Axes use it as
    "attribution (<label>)".
    """
    space = explanation.output_space
    if space == "value":
        return "predicted value"
    targets = np.asarray(explanation.target if position is None else [explanation.target[position]])
    if len(np.unique(targets)) == 1:
        of = f"of class '{explanation.output_names[int(targets[0])]}'"
    else:
        of = "of the explained class"
    if space == "probability":
        return f"probability {of}"
    if space == "margin":
        return f"{'log-odds' if len(explanation.output_names) <= 2 else 'logit'} {of}"
    return f"{space} {of}"


def _text(name: object) -> str:
    """A user-provided name as literal chart text (plotly would render tags such as <b> or
    <a> in it); None stays None."""
    return None if name is None else html.escape(str(name), quote=False)


def _tabular(explanation: Explanation, chart: str) -> None:
    if explanation.values.ndim != 2 or not explanation.feature_names:
        raise WhyboxError(f"the {chart} chart needs a tabular explanation, not image maps")


def _feature_index(explanation: Explanation, feature: str) -> int:
    _tabular(explanation, "feature")
    try:
        return explanation.feature_names.index(feature)
    except ValueError:
        raise WhyboxError(
            f"no feature named {feature!r}; the features are {', '.join(explanation.feature_names)}"
        ) from None


def _position(explanation: Explanation, position: int) -> int:
    if not 0 <= position < len(explanation.values):
        raise WhyboxError(
            f"position {position} is outside the explanation's {len(explanation.values)} rows"
        )
    return int(position)


def row_sample(explanation: Explanation, limit: int, salt: int = CHART_SAMPLE_SALT) -> np.ndarray:
    """Positions of at most `limit` of `explanation`'s rows, in order: all of them where
    there are no more, else drawn without replacement by a generator seeded with the
    explanation's seed and `salt`, so the same explanation always shows the same rows."""
    count = len(explanation.values)
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng([int(explanation.seed), salt])
    return np.sort(rng.choice(count, size=limit, replace=False))


def sample_note(count: int, limit: int) -> str:
    """Which of `count` rows a chart limited to `limit` rows draws, in words."""
    if count <= limit:
        return f"all {count:,} rows"
    return f"a seeded sample of {limit:,} of {count:,} rows"


def _sampled(count: int, limit: int) -> str:
    """A subtitle naming the sample where a chart limited to `limit` rows draws fewer than
    its `count`; nothing where it draws them all."""
    return "" if count <= limit else f"<br><sup>{sample_note(count, limit)}</sup>"


def mean_abs(explanation: Explanation) -> np.ndarray:
    """Mean |attribution| per feature over every row, summed a chunk of rows at a time so
    that no copy of all the values is ever made."""
    values = explanation.values
    total = np.zeros(values.shape[1])
    for rows in chunk_slices(
        len(values), rows_per_chunk(values.itemsize * values.shape[1], MEAN_CHUNK_BYTES)
    ):
        total += np.abs(values[rows]).sum(axis=0)
    return total / max(len(values), 1)


def _importance_order(
    explanation: Explanation, top: int, means: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Feature indices by mean |attribution| (`means`, where the caller has them already),
    largest first (the first `top`), and the means."""
    means = mean_abs(explanation) if means is None else means
    return np.argsort(-means, kind="stable")[: max(1, int(top))], means


def importance_bar(
    explanation: Explanation, top: int = 20, means: np.ndarray | None = None
) -> go.Figure:
    """Mean |attribution| per feature over every row (`means`, where the caller has
    `mean_abs` already), horizontal bars, the largest at the top."""
    _tabular(explanation, "importance")
    order, means = _importance_order(explanation, top, means)
    names = [_text(feature_text(explanation, explanation.feature_names[i])) for i in order]
    fig = go.Figure(
        go.Bar(
            x=means[order],
            y=names,
            orientation="h",
            marker_color=NEUTRAL,
            hovertemplate="%{y}: %{x:.6g}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    n = len(explanation.feature_names)
    return _layout(
        fig,
        f"Mean |attribution| per feature, {explanation.method} "
        f"({len(order)} of {n} features, {len(explanation.values)} rows)",
        f"mean |attribution| ({_text(output_label(explanation))})",
        "feature",
        height=140 + 26 * len(order),
    )


def _value_ranks(column: np.ndarray) -> np.ndarray:
    """Each value's rank among the column's finite values, scaled to 0 (low) .. 1 (high)."""
    scaled = np.full(len(column), np.nan)
    finite = np.isfinite(column)
    if finite.sum() == 1:
        scaled[finite] = 0.5
    elif finite.any():
        scaled[finite] = (rankdata(column[finite]) - 1) / (finite.sum() - 1)
    return scaled


def _swarm_offsets(x: np.ndarray, bins: int = 100, width: float = 0.4) -> np.ndarray:
    """Deterministic vertical offsets in [-width, width]: points in the same x bin stack
    outward from the centre line, alternately above and below (as SHAP's beeswarm)."""
    span = x.max() - x.min() if len(x) else 0.0
    binned = np.round(bins * (x - x.min()) / span) if span > 0 else np.zeros(len(x))
    order = np.argsort(binned, kind="stable")
    sorted_bins = binned[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_bins)) + 1]
    layer = np.arange(len(x)) - np.repeat(starts, np.diff(np.r_[starts, len(x)]))
    offsets = np.empty(len(x))
    offsets[order] = np.ceil(layer / 2) * np.where(layer % 2 == 1, 1, -1)
    peak = np.abs(offsets).max(initial=0.0)
    return offsets * (width / peak) if peak > 0 else offsets


def beeswarm(
    explanation: Explanation,
    top: int = 20,
    rows: int = BEESWARM_ROWS,
    means: np.ndarray | None = None,
) -> go.Figure:
    """Each row's attribution per feature, coloured by the feature's value as its rank
    among the rows drawn (0 low, 1 high). Features are ordered by mean |attribution| over
    every row (`means`, where the caller has `mean_abs` already), largest at top. Beyond
    `rows` rows, a seeded sample of them is drawn (`row_sample`), and the title says so.

    Points with missing feature values are drawn in black as a second trace.
    """
    _tabular(explanation, "beeswarm")
    order, _ = _importance_order(explanation, top, means)
    drawn = _sampled(len(explanation.values), rows)
    explanation = explanation.subset(row_sample(explanation, rows))
    xs, ys, colours, numbers, texts = [], [], [], [], []
    for rank, feature in enumerate(order):
        attribution = explanation.values[:, feature]
        xs.append(attribution)
        ys.append(len(order) - 1 - rank + _swarm_offsets(attribution))
        colours.append(_value_ranks(explanation.data[:, feature].astype(np.float64)))
        numbers.append(np.asarray(explanation.rows))
        name = explanation.feature_names[feature]
        shown = _text(feature_text(explanation, name))
        texts.extend(  # one string per point: plotly copies each object it is given
            f"{shown}<br>feature value {_text(v)}"
            for v in value_texts(explanation, name, explanation.data[:, feature])
        )
    x, y, colour = np.concatenate(xs), np.concatenate(ys), np.concatenate(colours)
    custom, text = np.concatenate(numbers)[:, None], np.array(texts, dtype=object)
    hover = "%{text}<br>row %{customdata[0]}<br>attribution %{x:.4g}<extra></extra>"
    known = np.isfinite(colour)
    fig = go.Figure(
        go.Scattergl(
            x=x[known],
            y=y[known],
            mode="markers",
            name="rows",
            customdata=custom[known],
            text=text[known],
            hovertemplate=hover,
            marker={
                "color": colour[known],
                "colorscale": SEQUENTIAL,
                "cmin": 0,
                "cmax": 1,
                "size": 5,
                "colorbar": {
                    "title": {"text": "feature value (low → high)", "side": "right"},
                    "tickvals": [0, 1],
                    "ticktext": ["low", "high"],
                },
            },
            showlegend=False,
        )
    )
    if not known.all():
        fig.add_trace(
            go.Scattergl(
                x=x[~known],
                y=y[~known],
                mode="markers",
                name="missing value",
                customdata=custom[~known],
                text=text[~known],
                hovertemplate=hover,
                marker={"color": NEUTRAL, "size": 5},
            )
        )
    fig.add_vline(x=0, line_color=NEUTRAL, line_width=1)
    fig.update_yaxes(
        tickvals=list(range(len(order)))[::-1],
        ticktext=[_text(feature_text(explanation, explanation.feature_names[i])) for i in order],
        range=[-0.6, len(order) - 0.4],
        showgrid=False,
        zeroline=False,
    )
    return _layout(
        fig,
        f"Attributions per row, {explanation.method} ({len(order)} of "
        f"{len(explanation.feature_names)} features by mean |attribution|){drawn}",
        f"attribution ({_text(output_label(explanation))})",
        "feature",
        height=160 + 34 * len(order),
    )


def interaction_feature(explanation: Explanation, feature: str) -> str | None:
    """The other feature whose values best explain the spread of `feature`'s attributions.

    As `shap.utils.approximate_interactions`: rows are sorted by `feature`'s value and cut
    into bins of consecutive rows (a tenth of the rows, 1 to 50 per bin), so within a bin
    `feature` is nearly constant and what remains of its attribution is interaction. For
    each other feature, the |Pearson correlation| between its value and the attribution is
    summed over the bins; where a feature has missing values, whether a value is missing
    counts as a second candidate and the larger sum is kept. Returns the feature with the
    largest sum, or None when no other feature correlates at all (or there is none).
    At most 10,000 rows are used (a fixed sample of them, beyond that).
    """
    index = _feature_index(explanation, feature)
    data = np.asarray(explanation.data, dtype=np.float64)
    attribution = np.asarray(explanation.values[:, index], dtype=np.float64)
    if len(data) > 10_000:
        keep = np.sort(np.random.default_rng(0).choice(len(data), 10_000, replace=False))
        data, attribution = data[keep], attribution[keep]
    others = [i for i in range(data.shape[1]) if i != index]
    if not others or len(data) < 3:
        return None
    order = np.argsort(data[:, index], kind="stable")
    candidates = data[order][:, others]
    missing = np.isnan(candidates)
    present = np.maximum((~missing).sum(axis=0), 1)
    means = np.where(missing, 0.0, candidates).sum(axis=0) / present
    filled = np.where(missing, means, candidates)
    candidates = np.concatenate([filled, missing.astype(np.float64)], axis=1)
    y = attribution[order]
    step = max(min(len(y) // 10, 50), 1)
    scores = np.zeros(candidates.shape[1])
    for start in range(0, len(y), step):
        yb = y[start : start + step] - y[start : start + step].mean()
        xb = candidates[start : start + step] - candidates[start : start + step].mean(axis=0)
        denominator = np.sqrt((yb**2).sum() * (xb**2).sum(axis=0))
        valid = denominator > 1e-12 * max(1.0, float(np.abs(y).max()))
        scores[valid] += np.abs(yb @ xb[:, valid]) / denominator[valid]
    scores = np.maximum(scores[: len(others)], scores[len(others) :])
    if not (scores > 1e-9).any():
        return None
    return explanation.feature_names[others[int(np.argmax(scores))]]


def dependence(
    explanation: Explanation,
    feature: str,
    color_by: str | None = "auto",
    rows: int = DEPENDENCE_ROWS,
) -> go.Figure:
    """`feature`'s attribution against its value, one point per row, coloured by another
    feature's value: `interaction_feature` for "auto", a named feature, or none (None).
    A categorical feature gets a box per category name, its rows as points spread across
    the box; a categorical colour feature a colour (and legend entry) per category. Beyond
    `rows` rows, a seeded sample of them is drawn (`row_sample`), and the title says so."""
    index = _feature_index(explanation, feature)
    if color_by == "auto":
        color_by = interaction_feature(explanation, feature)
    drawn = _sampled(len(explanation.values), rows)
    explanation = explanation.subset(row_sample(explanation, rows))
    name = _text(feature_text(explanation, feature))
    x, y = explanation.data[:, index], explanation.values[:, index]
    colour = "" if color_by is None else f" (colour: {_text(feature_text(explanation, color_by))})"
    fig = go.Figure()
    if categorical(explanation, feature):
        shown = [_text(v) for v in value_texts(explanation, feature, x)]
        codes = np.unique(x)  # sorted, NaN last
        order = list(dict.fromkeys(_text(value_text(explanation, feature, c)) for c in codes))
        fig.add_trace(
            go.Box(
                x=shown,
                y=y,
                boxpoints=False,
                line={"color": NEUTRAL},
                fillcolor="rgba(0,0,0,0)",
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
        # The points on a hidden numeric axis over the categories (category k sits at k),
        # each category's points spread sideways by their attribution as in a beeswarm.
        positions = np.array([order.index(v) for v in shown], dtype=np.float64)
        for k in range(len(order)):
            inside = positions == k
            positions[inside] += _swarm_offsets(y[inside], width=0.3)
        fig.update_layout(
            xaxis2={"overlaying": "x", "range": [-0.5, len(order) - 0.5], "visible": False}
        )
        points = _dependence_points(
            explanation, positions, y, np.array(shown, dtype=object), color_by, name
        )
        fig.add_traces([trace.update(xaxis="x2") for trace in points])
        title = f"Attribution of {name} per category, {explanation.method}{colour}"
        x_title = f"{name} (category)"
    else:
        fig.add_traces(_dependence_points(explanation, x, y, None, color_by, name))
        title = f"Dependence of {name}'s attribution on its value, {explanation.method}{colour}"
        x_title = f"{name} (feature value)"
    if color_by is not None and categorical(explanation, color_by):
        fig.update_layout(legend={"title": {"text": _text(feature_text(explanation, color_by))}})
    fig.add_hline(y=0, line_color=NEUTRAL, line_width=1)
    return _layout(
        fig, title + drawn, x_title, f"attribution of {name} ({_text(output_label(explanation))})"
    )


def _dependence_points(
    explanation: Explanation,
    x: np.ndarray,
    y: np.ndarray,
    shown_x: np.ndarray | None,
    color_by: str | None,
    name: str,
) -> list[go.Scattergl]:
    """The rows as points at (`x`, `y`), hover naming the row, its value (`shown_x`, else
    x) and its attribution; coloured by `color_by`'s value on a colour scale, by its
    categories (a trace and legend entry each), or not at all."""
    rows = np.asarray(explanation.rows)
    value = "%{x:.4g}" if shown_x is None else "%{customdata[1]}"
    hover = f"row %{{customdata[0]}}<br>{name} {value}<br>attribution %{{y:.4g}}"
    x_text = x if shown_x is None else shown_x
    if color_by is None:
        return [_points(x, y, [rows, x_text], hover, {"color": NEUTRAL, "opacity": 0.7})]
    other = explanation.data[:, _feature_index(explanation, color_by)].astype(np.float64)
    colour_name = _text(feature_text(explanation, color_by))
    other_text = np.array([_text(v) for v in value_texts(explanation, color_by, other)])
    hover += f"<br>{colour_name} %{{customdata[2]}}"
    columns = [rows, x_text, other_text]
    if categorical(explanation, color_by):
        palette = [c for c in OKABE_ITO.values() if c != NEUTRAL]
        traces = []
        for k, category in enumerate(dict.fromkeys(other_text[np.argsort(other, kind="stable")])):
            inside = other_text == category
            marker = {"color": palette[k % len(palette)], "opacity": 0.8}
            chosen = [np.asarray(column, dtype=object)[inside] for column in columns]
            traces.append(_points(x[inside], y[inside], chosen, hover, marker, str(category)))
        return traces
    finite = other[np.isfinite(other)]
    low, high = np.percentile(finite, [5, 95]) if len(finite) else (0.0, 1.0)
    marker = {
        "color": other,
        "colorscale": SEQUENTIAL,
        "cmin": float(low),
        "cmax": float(high) if high > low else float(low) + 1.0,
        "colorbar": {"title": {"text": f"{colour_name} (feature value)", "side": "right"}},
    }
    return [_points(x, y, columns, hover, marker)]


def _points(
    x: np.ndarray,
    y: np.ndarray,
    columns: list,
    hover: str,
    marker: dict,
    legend: str | None = None,
) -> go.Scattergl:
    return go.Scattergl(
        x=x,
        y=y,
        mode="markers",
        customdata=np.column_stack([np.asarray(c, dtype=object) for c in columns]),
        marker={"size": 6, **marker},
        hovertemplate=hover + "<extra></extra>",
        name=legend,
        showlegend=legend is not None,
    )


def waterfall(explanation: Explanation, position: int, top: int = 10) -> go.Figure:
    """One row's path from the base value to the prediction, read top to bottom.

    `position` is the row's place in the explanation, not its dataset row number. The
    `top` largest |attributions| get a bar each ("feature = value"), the rest share one.
    Whatever the attributions leave unexplained (the method is not additive, or an
    additive method's gap is visible) gets its own bar, so the bars always end at the
    prediction.
    """
    _tabular(explanation, "waterfall")
    position = _position(explanation, position)
    values = explanation.values[position].astype(np.float64)
    base = float(explanation.base_values[position])
    prediction = float(explanation.predictions[position])
    order = np.argsort(-np.abs(values), kind="stable")
    shown, rest = order[: max(1, int(top))], order[max(1, int(top)) :]
    labels = ["base value"]
    amounts = [base]
    for i in shown:
        feature = explanation.feature_names[i]
        shown_value = value_text(explanation, feature, float(explanation.data[position, i]))
        labels.append(f"{_text(feature_text(explanation, feature))} = {_text(shown_value)}")
        amounts.append(float(values[i]))
    if len(rest):
        labels.append(f"{len(rest)} other feature{'s' if len(rest) > 1 else ''}")
        amounts.append(float(values[rest].sum()))
    residual = prediction - base - float(values.sum())
    scale = max(1.0, float(np.abs(values).sum()), abs(prediction - base))
    note = ""
    if not explanation.additive:
        labels.append("not explained (method is not additive)")
        amounts.append(residual)
        note = f"<br><sup>{explanation.method} is not additive: the gap is shown as a bar</sup>"
    elif abs(residual) > 1e-4 * scale:
        labels.append("additivity gap")
        amounts.append(residual)
    labels.append("prediction")
    amounts.append(prediction)
    measures = ["absolute", *["relative"] * (len(amounts) - 2), "total"]
    text = [f"{base:.4g}", *(f"{a:+.4g}" for a in amounts[1:-1]), f"{prediction:.4g}"]
    label = _text(output_label(explanation, position))
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=amounts,
            measure=measures,
            text=text,
            textposition="outside",
            cliponaxis=False,
            increasing={"marker": {"color": VERMILLION}},
            decreasing={"marker": {"color": BLUE}},
            totals={"marker": {"color": NEUTRAL}},
            connector={"line": {"color": NEUTRAL, "width": 1, "dash": "dot"}},
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    # Room beyond the bars for the value labels printed outside them.
    ends = np.concatenate([[0.0, base, prediction], base + np.cumsum(amounts[1:-1])])
    margin = 0.15 * max(float(np.ptp(ends)), 1e-9)
    # Room for the labels, and below for the x axis's ticks and title, from the start: a
    # margin too narrow for them is widened by a second drawing in the browser (automargin),
    # which doubled the time to draw a row's waterfall.
    longest = max(len(html.unescape(text)) for text in labels)
    row = int(np.asarray(explanation.rows)[position])
    return _layout(
        fig,
        # the units are on the x axis: a title with them too was cut off in the Local view
        f"Row {row}, {explanation.method}: base value {base:.4g} → prediction {prediction:.4g}"
        f"{note}",
        f"model output ({label})",
        "",
        height=160 + 30 * len(labels),
        xaxis_range=[float(ends.min()) - margin, float(ends.max()) + margin],
        yaxis={"autorange": "reversed", "type": "category"},
        margin_l=round(longest * FONT_SIZE * CHAR_WIDTH) + 10,
        margin_b=round(AXIS_LINES * FONT_SIZE),
    )


def prediction_histogram(
    predictions: np.ndarray, label: str, bins: int = HISTOGRAM_BINS
) -> go.Figure:
    """How the model's outputs are spread, in `bins` equal bins counted here, so the browser
    gets the counts and never every prediction; `label` names them, e.g. `output_label(...)`."""
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    counts, edges = np.histogram(predictions[np.isfinite(predictions)], bins=bins)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=np.diff(edges),
            customdata=np.column_stack([edges[:-1], edges[1:]]),
            marker={"color": NEUTRAL, "line": {"color": WHITE, "width": 1}},
            hovertemplate="%{customdata[0]:.4g} to %{customdata[1]:.4g}: %{y} rows<extra></extra>",
        )
    )
    return _layout(
        fig,
        f"Predictions of {len(predictions):,} rows ({_text(label)})",
        f"prediction ({_text(label)})",
        "rows (count)",
    )


def _normalised_map(
    values: np.ndarray, signed: bool, colormap: str, normalization: str
) -> tuple[np.ndarray, float]:
    """The channel-summed map scaled to [-1, 1] ("diverging") or [0, 1] ("magnitude")."""
    if colormap not in ("diverging", "magnitude"):
        raise ValueError(f"colormap must be 'diverging' or 'magnitude', got {colormap!r}")
    if normalization not in ("percentile", "max"):
        raise ValueError(f"normalization must be 'percentile' or 'max', got {normalization!r}")
    heat = np.asarray(values, dtype=np.float64)
    heat = heat.sum(axis=0) if heat.ndim == 3 else heat
    if not signed:
        heat = np.clip(heat, 0, None)
    if colormap == "magnitude":
        heat = np.abs(heat)
    magnitude = np.abs(heat)
    scale = (
        np.percentile(magnitude, SATURATION_PERCENTILE)
        if normalization == "percentile"
        else magnitude.max(initial=0.0)
    )
    low = -1.0 if colormap == "diverging" else 0.0
    scale = float(scale)
    return (np.clip(heat / scale, low, 1.0) if scale > 0 else np.zeros_like(heat)), scale


def image_overlay(
    display: np.ndarray,
    values: np.ndarray,
    *,
    signed: bool,
    colormap: str = "diverging",
    opacity: float = 0.6,
    normalization: str = "percentile",
    label: str | None = None,
) -> go.Figure:
    """A map (C, H, W), summed over channels, as a heat map over a grey copy of `display`.

    "diverging" shows the sum (clipped at 0 for unsigned methods) in blue-white-vermillion,
    symmetric around 0; "magnitude" shows |sum| from white to vermillion. The map is
    divided by its 99th percentile of |value| ("percentile", so one extreme pixel does not
    wash out the rest) or its largest |value| ("max") and clipped to [-1, 1] (or [0, 1]).
    `label` (e.g. `output_label(...)`) names the attribution's units in the colour bar.
    """
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must lie in 0..1, got {opacity}")
    heat, scale = _normalised_map(values, signed, colormap, normalization)
    display = np.asarray(display)
    if display.ndim == 2:
        display = display[..., None]
    if display.shape[:2] != heat.shape:
        raise ValueError(f"the image is {display.shape[:2]} but the map is {heat.shape}")
    grey = display[..., :3].astype(np.float64).mean(axis=2).round().astype(np.uint8)
    how = f"{SATURATION_PERCENTILE}th percentile" if normalization == "percentile" else "maximum"
    bar = f"attribution{f' ({_text(label)})' if label else ''}<br>÷ {scale:.3g} ({how} of |value|)"
    diverging = colormap == "diverging"
    fig = go.Figure(
        [
            go.Image(z=np.repeat(grey[..., None], 3, axis=2), hoverinfo="skip"),
            go.Heatmap(
                z=heat,
                zmin=-1.0 if diverging else 0.0,
                zmax=1.0,
                colorscale=DIVERGING if diverging else MAGNITUDE,
                opacity=opacity,
                colorbar={"title": {"text": bar, "side": "right"}},
                hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>",
            ),
        ]
    )
    axes = {"showticklabels": False, "ticks": "", "showgrid": False, "zeroline": False}
    fig.update_xaxes(**axes, constrain="domain")
    fig.update_yaxes(**axes, autorange="reversed", scaleanchor="x", scaleratio=1)
    if not diverging:
        title = "Attribution strength: white (none) to vermillion (strongest)"
    elif signed:
        title = "Attribution: vermillion for the output, blue against"
    else:
        title = "Attribution (magnitudes only): vermillion where strongest"
    return _layout(fig, title, "", "")


def _pixel_blocks(values: np.ndarray) -> np.ndarray:
    """A map (C, H, W) summed over channels, then block-averaged to at most
    `MAX_SCATTER_PIXELS` points (blocks that do not fit at the right and bottom are left out)."""
    heat = np.asarray(values, dtype=np.float64).reshape(-1, *values.shape[-2:]).sum(axis=0)
    side = int(np.ceil(np.sqrt(heat.size / MAX_SCATTER_PIXELS)))
    if side <= 1:
        return heat
    height, width = (heat.shape[0] // side) * side, (heat.shape[1] // side) * side
    blocks = heat[:height, :width].reshape(height // side, side, width // side, side)
    return blocks.mean(axis=(1, 3))


def agreement_scatter(a: Explanation, b: Explanation, position: int) -> go.Figure:
    """One row's attributions by method `a` against method `b`: a point per feature, or per
    block of pixels (channels summed) for images, with the y = x line of perfect agreement.
    The title gives the Spearman correlation of |attribution| over all inputs."""
    check_same_rows(a, b)
    position = _position(a, position)
    rho = float(
        rank_agreement(a.values[position : position + 1], b.values[position : position + 1])[0]
    )
    if a.values.ndim == 2:
        x, y = a.values[position], b.values[position]
        names = [_text(n) for n in a.feature_names] or [f"x{i}" for i in range(len(x))]
        unit = "feature"
    else:
        x, y = (_pixel_blocks(e.values[position]) for e in (a, b))
        names = [f"pixel block ({r}, {c})" for r in range(x.shape[0]) for c in range(x.shape[1])]
        unit = "pixel block"
    x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    hover = "%{text}<br>" + f"{a.method} %{{x:.4g}}<br>{b.method} %{{y:.4g}}<extra></extra>"
    low = float(min(x.min(), y.min(), 0.0))
    high = float(max(x.max(), y.max(), 0.0))
    fig = go.Figure(
        [
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                name="y = x (perfect agreement)",
                line={"color": NEUTRAL, "dash": "dash", "width": 1},
                hoverinfo="skip",
            ),
            go.Scattergl(
                x=x,
                y=y,
                mode="markers",
                name=unit + "s",
                text=names,
                marker={"color": NEUTRAL, "size": 7 if unit == "feature" else 4, "opacity": 0.6},
                hovertemplate=hover,
            ),
        ]
    )
    row = int(np.asarray(a.rows)[position])
    return _layout(
        fig,
        f"Row {row}: {a.method} vs {b.method}, Spearman ρ of |attribution| = {rho:.3f}",
        f"{a.method} attribution ({_text(output_label(a, position))})",
        f"{b.method} attribution ({_text(output_label(b, position))})",
    )


def shift_histogram(shift: FeatureShift) -> go.Figure:
    """A feature's distribution in the reference and in the data, overlaid: the share of
    each table's rows per bin (numeric) or category."""
    name = _text(shift.feature)
    histogram = shift.histogram
    if "edges" in histogram:
        edges = np.asarray(histogram["edges"])
        x, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        x_title = f"{name} (value)"
    else:
        x, width = [_text(c) for c in histogram["categories"]], None
        x_title = f"{name} (category)"
    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=histogram[table],
                width=width,
                name=label,
                marker_color=colour,
                opacity=0.6,
                hovertemplate=f"{label} %{{y:.1%}}<extra></extra>",
            )
            for table, label, colour in (
                ("reference", "reference", TABLE_COLOURS["reference"]),
                ("data", "data", TABLE_COLOURS["data"]),
            )
        ]
    )
    fig.update_layout(barmode="overlay")
    title = (
        f"{name}: {shift.test}, effect {shift.effect:.3f}, adjusted p {shift.p_adjusted:.2g}"
        if shift.p_adjusted == shift.p_adjusted  # NaN where not part of the tested family
        else f"{name}: {shift.test}, effect {shift.effect:.3f}, p {shift.p_value:.2g}"
    )
    return _layout(fig, title, x_title, "share of rows")


def drift_bars(
    values: dict[str, dict[str, float]],
    what: str,
    top: int = 15,
    sides: dict[str, str] = TABLE_COLOURS,
    errors: dict[str, dict[str, float]] | None = None,
) -> go.Figure:
    """Each feature's `what` (e.g. mean |attribution|) on each side, side by side (the
    reference and the data by default; `sides` maps each side to its colour), the `top`
    features as ordered in `values`; `errors` adds each value's standard error as a bar."""
    features = list(values)[:top]
    fig = go.Figure(
        [
            go.Bar(
                y=[_text(f) for f in features],
                x=[values[f][side] for f in features],
                error_x=None
                if errors is None
                else {"type": "data", "array": [errors[f][side] for f in features]},
                orientation="h",
                name=side,
                marker_color=colour,
            )
            for side, colour in sides.items()
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, f"{what}, {' and '.join(sides)}", what, "feature")


def change_histogram(edges: Sequence[float], counts: Sequence[int], what: str) -> go.Figure:
    """How many rows' `what` (a prediction) changed by how much between two model versions."""
    edges = np.asarray(edges, dtype=np.float64)
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=list(counts),
            width=np.diff(edges),
            marker={"color": NEUTRAL, "line": {"color": WHITE, "width": 1}},
            hovertemplate="%{x:.3g}: %{y} rows<extra></extra>",
            showlegend=False,
        )
    )
    label = _text(what)
    return _layout(fig, f"Change in {label}, B minus A", f"change in {label}", "rows (count)")


def ranked_bars(values: dict[str, float], what: str, top: int = 15) -> go.Figure:
    """One bar per feature, in the order of `values` (largest first), the `top` of them."""
    features = list(values)[:top]
    fig = go.Figure(
        go.Bar(
            y=[_text(f) for f in features],
            x=[values[f] for f in features],
            orientation="h",
            marker_color=NEUTRAL,
            showlegend=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, what, what, "feature")


def error_tree(analysis: ErrorAnalysis) -> go.Figure:
    """The error tree as an icicle: every row at the top, each split below its parent, a
    box as wide as its rows and as red as its error on the held-out half."""
    nodes = analysis.nodes
    by_node = {n.node: n for n in nodes}

    def label(node) -> str:
        parent = by_node.get(node.parent)
        added = [c for c in node.conditions if parent is None or c not in parent.conditions]
        return _text(" and ".join(added) or "every row")

    fig = go.Figure(
        go.Icicle(
            ids=[str(n.node) for n in nodes],
            parents=["" if n.parent is None else str(n.parent) for n in nodes],
            labels=[label(n) for n in nodes],
            values=[n.rows for n in nodes],
            branchvalues="total",
            marker={
                "colors": [n.held_out_error for n in nodes],
                "colorscale": MAGNITUDE,
                "showscale": True,
                "colorbar": {"title": {"text": analysis.metric}},
            },
            customdata=[
                [_text(n.rule), n.held_out_error, *n.interval, n.held_out_rows] for n in nodes
            ],
            hovertemplate="%{customdata[0]}<br>%{value:,} rows; held-out "
            + analysis.metric
            + " %{customdata[1]:.3g} (95 % interval %{customdata[2]:.3g} to "
            "%{customdata[3]:.3g}, %{customdata[4]:,} rows)<extra></extra>",
            tiling={"orientation": "v"},
        )
    )
    return _layout(fig, f"Where the model errs: {analysis.metric} by cohort", "", "")


def shape_function(shape: Shape, output: str) -> go.Figure:
    """An EBM's shape function: a step per bin of a number, a bar per category."""
    scores = shape.scores[output]
    what = "log-odds" if output != "value" else "value"
    axis = f"contribution ({what}{'' if output == 'value' else f' of {_text(output)}'})"
    if shape.categorical:
        trace = go.Bar(x=[_text(x) for x in shape.x], y=scores, marker_color=NEUTRAL)
    else:
        edges = np.asarray(shape.x, dtype=np.float64)
        edges[0] = edges[1] - (edges[2] - edges[1] if len(edges) > 2 else 1.0)
        trace = go.Scatter(x=edges, y=scores, mode="lines", line_shape="hv", line_color=NEUTRAL)
    fig = go.Figure(trace)
    return _layout(fig, f"{_text(shape.feature)}: its shape in the EBM", _text(shape.feature), axis)


def fidelity_curve(surrogate: RuleSurrogate) -> go.Figure:
    """The rules' fidelity on held-out rows against their number, with 95 % intervals, so a
    reader picks how many rules to read for how close a likeness."""
    points = surrogate.curve
    fidelity = np.array([p.fidelity for p in points])
    low, high = (np.array([p.interval[k] for p in points]) for k in (0, 1))
    what = (
        "agreement with the model" if surrogate.measure == "agreement" else "R² against the model"
    )
    fig = go.Figure(
        go.Scatter(
            x=[p.rules for p in points],
            y=fidelity,
            mode="lines+markers",
            line_color=NEUTRAL,
            error_y={"type": "data", "symmetric": False, "array": high - fidelity,
                     "arrayminus": fidelity - low},
            hovertemplate="%{x} rules: %{y:.3f}<extra></extra>",
        )
    )  # fmt: skip
    if surrogate.baseline is not None:
        fig.add_hline(
            y=surrogate.baseline,
            line_dash="dot",
            line_color=OKABE_ITO["vermillion"],
            annotation_text=f"always {_text(surrogate.baseline_outcome)}",
        )
    return _layout(fig, f"Fidelity of the rules ({what}, held-out rows)", "rules", what)
