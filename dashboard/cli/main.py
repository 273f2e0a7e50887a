"""The `whybox` command line: a contract other tools script against.

Bad input of any kind ends with exit status 2 and one line on stderr starting `error:`;
`--debug` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from whybox.dashboard import settings
from whybox.model_zoo import limits
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.settings import TRUST_ENV

if TYPE_CHECKING:
    from whybox.explainers.base import Explainer, Explanation
    from whybox.model_zoo import Dataset, Model
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.images import ImageTypicality
    from whybox.trust.typicality import Typicality

# The engine (torch, Captum, SHAP) is imported inside the commands that use it: `whybox
# --help` and usage errors answer at once.

# Click's UsageError (a bad option or argument), reached through typer's public API: newer
# typer ships its own copy of click, older typer uses click itself.
UsageError = typer.BadParameter.__base__

app = typer.Typer(
    name="whybox",
    help="Explain model predictions: which inputs drove each decision, and how that was computed.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ModelArg = Annotated[str, typer.Argument(help="Model file, or demo:NAME (see `whybox demos`).")]
DataArg = Annotated[
    str,
    typer.Argument(
        help="CSV or Parquet file; for image models PNG, JPEG, a zip or folder of them, or "
        ".npy; or demo:NAME."
    ),
]
StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help=f"The SQLite run history (default: ${settings.STORE_ENV}, else "
        "~/.local/share/whybox/runs.sqlite).",
    ),
]
FavourableOption = Annotated[
    str | None,
    typer.Option(
        help="Report: the favourable class; unfavourable decisions then list their principal "
        "reasons (default: the top features each way)."
    ),
]
ReasonTextsOption = Annotated[
    Path | None,
    typer.Option(
        help="Report: CSV or YAML mapping features to the statements to print as reasons, "
        "and features never to give as reasons (needs --favourable)."
    ),
]
DictionaryOption = Annotated[
    Path | None,
    typer.Option(
        help="Data dictionary (CSV or YAML): per column a label, unit, description and names "
        "of coded values, shown in reasons, charts and the report (demo data: its own)."
    ),
]
PaperOption = Annotated[str, typer.Option(help="Report: PDF paper size, a4 or letter.")]
ConstraintsOption = Annotated[
    Path | None,
    typer.Option(
        help="Recourse: what may change and how (YAML: max_changes, immutable, monotone, "
        "ranges, transitions); demo data: its own; otherwise every feature may change."
    ),
]
ReferenceOption = Annotated[
    str | None,
    typer.Option(
        help="The data the model learned from (a table or demo:NAME): each explained row "
        "gets a typicality score against it, and rows unlike it are marked."
    ),
]


def _explainer(name: str, options: dict, extra: list[str]) -> Explainer:
    """Build explainer `name` from the common options it declares plus KEY=VALUE extras."""
    from whybox.explainers import registry

    cls = registry.get(name)
    declared = {p.name for p in cls.params}
    params = {k: v for k, v in options.items() if v is not None and k in declared}
    given_but_unused = [k for k, v in options.items() if v is not None and k not in declared]
    if given_but_unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in given_but_unused)
        raise WhyboxError(
            f"{name} takes no {flags}; its parameters are {', '.join(sorted(declared))}"
        )
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise WhyboxError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip().replace("-", "_")] = value
    return cls(**params)


def _progress(label: str, unit: str = "eval"):
    """A tqdm bar on stderr (shown only on a terminal) driven by explainer callbacks: done,
    rate and time left."""
    from tqdm import tqdm

    bar = tqdm(desc=label, total=0, file=sys.stderr, disable=None, leave=False, unit=unit)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


@app.command()
def explain(
    context: typer.Context,
    model: ModelArg,
    data: DataArg,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory for the results: attributions.csv (tabular) or attributions.npy, "
            "attributions_index.csv and overlays/ (images), and run.json.",
        ),
    ],
    explainer: Annotated[
        str, typer.Option(help="Explainer name (see `whybox explainers`).")
    ] = "auto",
    rows: Annotated[str | None, typer.Option(help="Rows to explain, A:B (default: all).")] = None,
    target: Annotated[str | None, typer.Option(help="Class to explain (name or index).")] = None,
    output_space: Annotated[
        str | None, typer.Option(help="probability, margin or value (default: the model's).")
    ] = None,
    background: Annotated[
        int | None, typer.Option(help="Background rows for reference methods.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column in the data, if any.")] = None,
    id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Identifier column in the data: not a feature, carried into the results."
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Explainer parameter KEY=VALUE (repeatable).")
    ] = None,
    image_size: Annotated[
        str | None,
        typer.Option(help="Images: resize to HxW (e.g. 224x224) where the model takes any size."),
    ] = None,
    mean: Annotated[
        str | None,
        typer.Option(help="Images: per-channel mean the model expects, e.g. 0.485,0.456,0.406."),
    ] = None,
    std: Annotated[
        str | None,
        typer.Option(help="Images: per-channel std the model expects, e.g. 0.229,0.224,0.225."),
    ] = None,
    trust_model: Annotated[
        bool,
        typer.Option(
            "--trust-model", help="Allow formats that can run code (pickle, TorchScript)."
        ),
    ] = False,
    store: StoreOption = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the run's report to this .html or .pdf file."),
    ] = None,
    favourable: FavourableOption = None,
    reason_texts: ReasonTextsOption = None,
    dictionary: DictionaryOption = None,
    paper: PaperOption = "a4",
    reference: ReferenceOption = None,
    quality: Annotated[
        bool,
        typer.Option(
            "--quality",
            help="Also measure how far to trust the explanation (deletion, insertion, "
            "faithfulness correlation, infidelity) on up to 1,000 rows (32 images): into "
            "run.json and the report.",
        ),
    ] = False,
    quality_metric: Annotated[
        list[str] | None,
        typer.Option(
            help="A quality metric to measure (repeatable; implies --quality): deletion, "
            "insertion, faithfulness_correlation, infidelity, max_sensitivity, "
            "randomisation, or all."
        ),
    ] = None,
    rules: Annotated[
        bool,
        typer.Option(
            "--rules",
            help="Also fit readable rules that mimic the model on DATA, with their fidelity on "
            "held-out rows, and (where DATA has labels) a glass-box model (EBM) beside it: "
            "into run.json and the report.",
        ),
    ] = False,
    recourse: Annotated[
        bool,
        typer.Option(
            "--recourse",
            help="With --favourable: for each unfavourable decision the report shows, what "
            "would make it favourable, within --constraints: into run.json and the report.",
        ),
    ] = False,
    constraints: ConstraintsOption = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Explain on a Ray cluster, ray://HOST:PORT, or `local` (a Ray runtime on this "
            "machine): data read in partitions, attributions/part-*.parquet written as they "
            "finish; the same command again resumes. Needs whybox[ray].",
        ),
    ] = None,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Explain a table larger than memory on this machine, a partition at a time, "
            "into attributions/part-*.parquet (as --cluster does).",
        ),
    ] = False,
    partition_rows: Annotated[
        int | None,
        typer.Option(
            min=1, help="Rows (images) per partition with --stream or --cluster (100,000; 256)."
        ),
    ] = None,
) -> None:
    """Explain the predictions of MODEL on DATA."""
    if cluster is not None or stream:
        refused = {
            "--rows": rows,
            "--quality": quality or quality_metric,
            "--reference": reference,
            "--report": report,
            "--rules": rules,
            "--recourse": recourse,
        }
        given = [option for option, value in refused.items() if value]
        if given:
            raise WhyboxError(
                f"{', '.join(given)} cannot be used with --stream or --cluster yet; explain "
                "every row without them"
            )
        _explain_partitioned(
            context,
            model,
            data,
            out,
            _explainer(
                explainer,
                {
                    "output_space": output_space,
                    "background": background,
                    "seed": seed,
                    "device": device,
                },
                param or [],
            ),
            target,
            label,
            id,
            trust_model,
            cluster,
            partition_rows,
            {"image_size": image_size, "mean": mean, "std": std},
        )
        return
    from whybox.dashboard.reports.dictionary import coded_values, load_dictionary, with_dictionary
    from whybox.dashboard.runs.audit import RunStore
    from whybox.dashboard.runs.records import save_run
    from whybox.explainers.base import parse_row_range
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import ImageSet, parse_floats, parse_image_size

    started = time.perf_counter()
    history = RunStore(store)  # an unwritable store fails here, before the work
    metrics = _quality_metrics(quality, quality_metric or [])
    if report is None and (favourable or reason_texts):
        raise WhyboxError("--favourable and --reason-texts shape a report; give --report FILE")
    if recourse and favourable is None:
        raise WhyboxError("--recourse searches toward the favourable class; give --favourable")
    report_format, texts = (
        _report_inputs(report, None, favourable, reason_texts, paper) if report else (None, None)
    )
    dictionary = dictionary or demos.demo_dictionary(data)
    described = load_dictionary(dictionary) if dictionary is not None else None
    explainer_obj = _explainer(
        explainer,
        {"output_space": output_space, "background": background, "seed": seed, "device": device},
        param or [],
    )
    loaded = demos.resolve_model(model, trusted=trust_model or None)
    preprocessing = {
        "image_size": parse_image_size(image_size) if image_size else None,
        "mean": parse_floats(mean) if mean else None,
        "std": parse_floats(std) if std else None,
    }
    dataset = demos.resolve_data(data, loaded, label=label, id=id, **preprocessing)
    if isinstance(dataset, ImageSet):
        loaded = loaded.normalized(dataset.preprocessing["mean"], dataset.preprocessing["std"])
    elif mean or std or image_size:
        raise WhyboxError("--image-size, --mean and --std apply to image models only")
    selection = parse_row_range(rows) if rows else None
    if rules and isinstance(dataset, ImageSet):
        raise WhyboxError("--rules reads a table's columns; it does not apply to image models")
    scorer = None
    if reference is not None:
        scorer = _typicality(reference, loaded, dataset, coded_values(described))
    bar, update = _progress(explainer)
    with bar:
        explanation = explainer_obj.explain(
            loaded, dataset, rows=selection, target=target, progress=update
        )
    explanation = with_dictionary(explanation, described)
    typical = None
    if scorer is not None:
        from whybox.dashboard.runs.records import typicality_record

        explained = dataset.subset(explanation.rows)
        threshold = settings.typicality_threshold()
        scored = scorer.score(explained)
        typical = typicality_record(scorer, scored, threshold)
    measured, stopped = None, False
    try:
        measured = _quality(explanation, loaded, dataset, metrics) if metrics else None
    except KeyboardInterrupt:  # Ctrl-C stops the quality check; the explanation is kept
        stopped = True
    analyses = _rules_analyses(loaded, dataset, coded_values(described), seed) if rules else {}
    if recourse:
        rules_file = constraints or demos.demo_constraints(data)
        analyses["recourse"] = _recourse_analysis(
            loaded, dataset, explanation.rows, favourable, rules_file, coded_values(described), seed
        )
    command = ["whybox", *context.obj["argv"]]
    run = save_run(
        loaded,
        dataset,
        explanation,
        out,
        command=command,
        typicality=typical,
        quality=measured,
        analyses=analyses,
    )
    history.record(run, source="cli", user=_user(), duration=time.perf_counter() - started)
    unit = "images" if isinstance(dataset, ImageSet) else "rows"
    typer.echo(
        f"explained {len(explanation.values)} {unit} with {explanation.method} in "
        f"{explanation.seconds:.2f} s -> {out}"
    )
    if stopped:
        typer.echo(
            "error: quality check interrupted; the explanation is saved without it", err=True
        )
        raise typer.Exit(130)
    for failure in explanation.failures:
        typer.echo(f"warning: {failure}", err=True)
    if measured is not None:
        _echo_quality(measured)
    if typical is not None:
        outside = sum(row["outside"] for row in typical["rows"])
        typer.echo(
            f"{outside} of {len(typical['rows'])} {unit} are outside the reference (typicality "
            f"below {typical['threshold']:g}): their explanations describe an extrapolation"
        )
    for name, analysis in analyses.items():
        typer.echo(analysis["summary"] if name == "rules" else analysis.get("verdict", ""))
    if report is not None:
        from whybox.dashboard.reports.report import write_report

        write_report(run, report, report_format, favourable, texts, paper)
        typer.echo(f"wrote the {report_format.upper()} report -> {report}")


def _rules_analyses(
    model: Model, data: Dataset, coded: dict[str, dict[float, str]], seed: int
) -> dict[str, Any]:
    """Rules that mimic `model` on `data` and, where it has labels, the glass-box model
    beside it, as run.json records them."""
    from whybox.trust.glassbox import glass_box
    from whybox.trust.rules import fit_rules

    typer.echo("fitting rules that mimic the model...", err=True)
    found = {"rules": fit_rules(model, data, seed=seed, coded=coded).to_dict()}
    if data.labels is not None:
        typer.echo("training a glass-box model (EBM) on the labelled rows...", err=True)
        found["glass_box"] = glass_box(model, data, seed=seed, coded=coded).to_dict()
    return found


def _recourse_analysis(
    model: Model,
    data: Dataset,
    rows: Sequence[int],
    favourable: str,
    constraints: Path | None,
    coded: dict[str, dict[float, str]],
    seed: int,
) -> dict[str, Any]:
    """Recourse toward `favourable` for each of the report's rows the model does not give
    it, as run.json records it (`rows`: row number -> `Recourse.to_dict()`)."""
    from whybox.dashboard.reports.report import MAX_DECISIONS
    from whybox.trust.constraints import load_constraints
    from whybox.trust.recourse import RecourseSearch

    rules = load_constraints(constraints, data, coded) if constraints else None
    search = RecourseSearch(model, data, rules, seed=seed, coded=coded)
    shown = [int(r) for r in rows[:MAX_DECISIONS]]
    target = model.resolve_target(favourable)
    predicted = model.predict(data.values[shown], "probability").argmax(axis=1)
    unfavourable = [r for r, p in zip(shown, predicted, strict=True) if p != target]
    bar, update = _progress("recourse", unit="row")
    found = {}
    with bar:
        for done, row in enumerate(unfavourable, start=1):
            found[str(row)] = search.find(row, favourable).to_dict()
            update(done, len(unfavourable))
    return {
        "constraints": f"the constraints in {constraints.name}"
        if constraints
        else "no constraints",
        "desired": favourable,
        "rows": found,
        "verdict": f"recourse found for {sum(bool(f['counterfactuals']) for f in found.values())} "
        f"of {len(found)} unfavourable decisions",
    }


def _explain_partitioned(
    context: typer.Context,
    model_spec: str,
    data: str,
    out: Path,
    explainer: Explainer,
    target: str | None,
    label: str | None,
    id: str | None,
    trusted: bool,
    cluster: str | None,
    partition_rows: int | None,
    image_options: dict[str, str | None],
) -> None:
    """`whybox explain --stream` or `--cluster`: see `dashboard.jobs.batch`."""
    from whybox.dashboard.jobs import batch
    from whybox.dashboard.jobs.partitions import (
        IMAGE_PARTITION_ROWS,
        PARTITION_ROWS,
        PartitionedImages,
        PartitionedTable,
    )
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import parse_floats, parse_image_size

    started = time.perf_counter()
    model = demos.resolve_model(model_spec, trusted=trusted or None)
    path = demos.data_file(data)
    images = None
    if model.modality == "image":
        table = PartitionedImages(path, partition_rows or IMAGE_PARTITION_ROWS)
        size, mean, std = (image_options[key] for key in ("image_size", "mean", "std"))
        images = {
            "image_size": parse_image_size(size) if size else None,
            "mean": parse_floats(mean) if mean else None,
            "std": parse_floats(std) if std else None,
        }
    elif any(image_options.values()):
        raise WhyboxError("--image-size, --mean and --std apply to image models only")
    else:
        table = PartitionedTable(path, partition_rows or PARTITION_ROWS)
    job, notes = batch.plan(model_spec, model, table, explainer, target, label, id, trusted, images)
    run = batch.BatchRun(job, out, table.rows)
    bar, update = _progress(job.explainer, unit="rows")
    where = "this machine, one process"
    try:
        with bar:
            if cluster is None:
                run.run(table, batch.run_here, update)
            else:
                from whybox.dashboard.jobs.ray_cluster import connected, gpu_workers, run_on_ray

                with connected(cluster) as workers:
                    gpus = gpu_workers(model, job.params.get("device", "auto"))
                    where = f"Ray at {cluster}, " + (f"{gpus} GPUs" if gpus else f"{workers} CPUs")
                    run.run(table, partial(run_on_ray, workers=workers, gpus=gpus), update)
    except KeyboardInterrupt:
        run.save(
            model, ["whybox", *context.obj["argv"]], notes, where, time.perf_counter() - started
        )
        typer.echo(f"error: interrupted; {batch.resume_hint(out)}", err=True)
        raise typer.Exit(130) from None
    command = ["whybox", *context.obj["argv"]]
    record = run.save(model, command, notes, where, time.perf_counter() - started)
    typer.echo(
        f"explained {record['rows']:,} of {table.rows:,} {'images' if images else 'rows'} with "
        f"{job.explainer} in "
        f"{len(record['partitions'])} partitions on {where} in "
        f"{record['wall_seconds']:.1f} s -> {out}"
    )
    for failure in record["failures"]:
        typer.echo(f"warning: {failure}", err=True)
    if record["failed"]:
        for failed in record["failed"]:
            first, last = failed["rows"]
            typer.echo(
                f"error: partition {failed['partition']} (rows {first} to {last}): "
                f"{failed['error']}",
                err=True,
            )
        typer.echo(
            f"error: {len(record['failed'])} partition(s) failed; {batch.resume_hint(out)}",
            err=True,
        )
        raise typer.Exit(1)


def _quality_metrics(asked: bool, names: list[str]) -> tuple[str, ...]:
    """The quality metrics to measure, checked before any work: the cheap ones for
    --quality, those named (or all) by --quality-metric."""
    from whybox.explainers import quality

    if "all" in names:
        return quality.ALL
    unknown = [name for name in names if name not in quality.METRICS]
    if unknown:
        raise WhyboxError(
            f"unknown --quality-metric {', '.join(unknown)}; choose from "
            f"{', '.join(quality.ALL)} or all"
        )
    return tuple(names) or (quality.CHEAP if asked else ())


def _quality(
    explanation: Explanation, model: Model, dataset: Dataset | ImageSet, metrics: tuple[str, ...]
) -> dict[str, Any]:
    """The explanation's quality record, each metric's progress on stderr; the costly ones
    say how long they should take before they start."""
    from whybox.explainers import quality

    for metric in metrics:
        if quality.METRICS[metric].costly and not quality.not_applicable(metric, model):
            seconds = quality.estimate_seconds(metric, explanation, model)
            typer.echo(f"{metric} should take about {seconds:.0f} s", err=True)
    bar, update = _progress("quality")
    with bar:
        measured = quality.assess(
            explanation,
            model,
            dataset,
            metrics,
            progress=lambda metric, done, total: (bar.set_description(metric), update(done, total)),
        )
    return measured.record()


def _echo_quality(measured: dict[str, Any]) -> None:
    for score in measured["scores"]:
        said = score["verdict"] if score["applicable"] else f"not applicable: {score['reason']}"
        value = "" if score["value"] is None else f"{score['value']:.3g}, "
        typer.echo(f"{score['title']}: {value}{said}")


def _typicality(
    reference: str, model: Model, dataset: Dataset | ImageSet, coded: dict[str, dict]
) -> Typicality | ImageTypicality:
    """The typicality scorer of `reference` for `dataset`, built before any explaining, so a
    bad reference fails first."""
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.reference import reference_scorer

    path = demos.data_file(reference)
    if isinstance(dataset, ImageSet) and not path.exists():
        raise WhyboxError(f"no such image file or folder: {reference}")
    return reference_scorer(path, model, dataset, coded)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


def _printable(text: str) -> str:
    """A user-provided name for the terminal: control characters (escape sequences,
    newlines) shown as ?, so a file name cannot rewrite the screen or split a line."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _report_inputs(
    out: Path, fmt: str | None, favourable: str | None, reason_texts: Path | None, paper: str
) -> tuple[str, dict | None]:
    """Check a report's options before any work; returns its format and reason texts. For a
    PDF, Chromium starts now, while the rest is done."""
    from whybox.dashboard.reports.reasons import load_reason_texts
    from whybox.dashboard.reports.report import paper_size, report_format, start_chart_browser

    if reason_texts is not None and favourable is None:
        raise WhyboxError(
            "--reason-texts words the reasons for unfavourable decisions; "
            "give the favourable class with --favourable CLASS"
        )
    fmt = report_format(out, fmt)
    paper_size(paper)
    texts = load_reason_texts(reason_texts) if reason_texts is not None else None
    if fmt == "pdf":
        start_chart_browser()
    return fmt, texts


@app.command()
def report(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory: the --out of `whybox explain`.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The report file to write.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="html or pdf (default: from the --out file's suffix)."),
    ] = None,
    favourable: FavourableOption = None,
    reason_texts: ReasonTextsOption = None,
    dictionary: DictionaryOption = None,
    paper: PaperOption = "a4",
) -> None:
    """Write the report of a run: one self-contained HTML file, or a PDF (a --dictionary
    replaces the one the run was explained with)."""
    from whybox.dashboard.reports.dictionary import load_dictionary, with_dictionary
    from whybox.dashboard.reports.report import write_report
    from whybox.dashboard.runs.records import load_run

    fmt, texts = _report_inputs(out, fmt, favourable, reason_texts, paper)
    described = load_dictionary(dictionary) if dictionary is not None else None
    run = load_run(run_dir)
    run = replace(run, explanation=with_dictionary(run.explanation, described))
    write_report(run, out, fmt, favourable, texts, paper)
    typer.echo(f"wrote the {fmt.upper()} report of run {run.run_id} -> {out}")


@app.command()
def shift(
    context: typer.Context,
    reference: Annotated[
        str, typer.Argument(help="The data the model learned from: a table or demo:NAME.")
    ],
    data: Annotated[str, typer.Argument(help="The new data: a table or demo:NAME.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for shift.json.")],
    model: Annotated[
        str | None,
        typer.Option(help="Also compare the model's predictions, performance and explanations."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column, if any.")] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Identifier column: not a feature.")
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(min=0.0001, max=0.5, help="The chance of flagging shift where there is none."),
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="Random seed (samples, the classifier).")] = 0,
    trust_model: Annotated[
        bool, typer.Option("--trust-model", help="Allow formats that can run code.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write the shift report to this .html or .pdf file.")
    ] = None,
    paper: PaperOption = "a4",
    dictionary: DictionaryOption = None,
) -> None:
    """Has the population moved? Test DATA against REFERENCE, feature by feature and as a
    whole, and with --model, the model's view of it. Columns of codes the data dictionary
    names are tested as categories."""
    from whybox.dashboard.reports.report import paper_size, report_format
    from whybox.dashboard.reports.shift_page import shift_record, write_shift_report
    from whybox.dashboard.reports.wording import shift_verdict
    from whybox.model_zoo import demos
    from whybox.model_zoo.data import load_reference
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.shift import model_shift, shift_report

    if report is not None:  # bad report options fail before the work
        report_format(report)
        paper_size(paper)

    loaded = demos.resolve_model(model, trusted=trust_model or None) if model else None
    new = demos.resolve_data(data, loaded, label=label, id=id)
    if isinstance(new, ImageSet):
        raise WhyboxError("whybox shift compares tables; image models are not supported yet")
    old = load_reference(demos.data_file(reference), new)
    found = shift_report(old, new, alpha=alpha, seed=seed, coded=_coded(dictionary, data))
    view = model_shift(loaded, old, new, seed=seed) if loaded is not None else None
    record = shift_record(["whybox", *context.obj["argv"]], old, new, found, loaded, view)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shift.json").write_text(json.dumps(record, indent=2) + "\n")
    verdict = shift_verdict(record)
    typer.echo(f"{_printable(verdict)} Written to {out / 'shift.json'}")
    if found.classifier is not None:
        test = found.classifier
        typer.echo(
            f"a classifier tells the tables apart with AUC {test.auc:.3f} "
            f"(95 % interval {test.interval[0]:.3f} to {test.interval[1]:.3f})"
        )
    if report is not None:
        write_shift_report(record, report, paper=paper)
        typer.echo(f"wrote the shift report -> {report}")


@app.command()
def diff(
    context: typer.Context,
    model_a: Annotated[
        str, typer.Argument(help="Model A, the current version: a model file or demo:NAME.")
    ],
    model_b: Annotated[
        str, typer.Argument(help="Model B, the candidate: a model file or demo:NAME.")
    ],
    data: Annotated[
        str,
        typer.Argument(
            help="The data both are compared on (labelled where possible): a file or demo:NAME."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for diff.json.")],
    label: Annotated[str | None, typer.Option(help="Label column in the data, if any.")] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Identifier column: not a feature.")
    ] = None,
    favourable: Annotated[
        str | None,
        typer.Option(
            help="The class that is good news for the row (approved, healthy): count the rows "
            "that lose and gain it, and compare the reasons for it."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="The explainer both models are explained by (see `whybox explainers`); auto: "
            "the best one that supports both."
        ),
    ] = "auto",
    alpha: Annotated[
        float,
        typer.Option(
            min=0.0001, max=0.5, help="The chance of reporting a cohort where B is not worse."
        ),
    ] = 0.05,
    seed: Annotated[
        int, typer.Option(help="Random seed (bootstrap, cohort halves, explained rows).")
    ] = 0,
    no_explain: Annotated[
        bool,
        typer.Option(
            "--no-explain", help="Leave the reasons out: decisions, performance, cohorts."
        ),
    ] = False,
    trust_model: Annotated[
        bool,
        typer.Option("--trust-model", help="Allow formats that can run code (for both models)."),
    ] = False,
    store: StoreOption = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the sign-off report to this .html or .pdf file."),
    ] = None,
    paper: PaperOption = "a4",
    dictionary: DictionaryOption = None,
) -> None:
    """What changed from MODEL_A to MODEL_B on DATA: flipped decisions, performance with
    intervals, cohorts where B is worse, and their reasons side by side."""
    from whybox.dashboard.reports.versions_page import (
        save_record,
        versions_record,
        write_versions_report,
    )
    from whybox.dashboard.reports.wording import version_verdict
    from whybox.dashboard.runs.audit import RunStore
    from whybox.explainers import registry
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.versions import check_compatible, diff_models

    started = time.perf_counter()
    history = RunStore(store)  # an unwritable store fails here, before the work
    fmt = _report_inputs(report, None, None, None, paper)[0] if report else None
    if method != "auto":
        registry.get(method)  # an unknown explainer fails before the work
    trusted = trust_model or None
    models = {
        "A": demos.resolve_model(model_a, trusted=trusted),
        "B": demos.resolve_model(model_b, trusted=trusted),
    }
    check_compatible(models["A"], models["B"])
    tables = {side: _read_for(side, data, model, label, id) for side, model in models.items()}
    for side, table in tables.items():
        if isinstance(table, ImageSet):
            preprocessing = table.preprocessing
            models[side] = models[side].normalized(preprocessing["mean"], preprocessing["std"])

    def stage(said: str) -> None:
        typer.echo(f"{said}...", err=True)

    found = diff_models(
        models["A"],
        tables["A"],
        models["B"],
        tables["B"],
        favourable=favourable,
        method=method,
        seed=seed,
        alpha=alpha,
        explain=not no_explain,
        coded=_coded(dictionary, data),
        progress=stage,
    )
    command = ["whybox", *context.obj["argv"]]
    record = versions_record(command, models["A"], models["B"], tables["A"], found)
    written = save_record(record, out)
    history.record_comparison(
        record, out, source="cli", user=_user(), duration=time.perf_counter() - started
    )
    typer.echo(f"{_printable(version_verdict(record))} Written to {written}")
    if report is not None:
        write_versions_report(record, report, fmt, paper)
        typer.echo(f"wrote the sign-off report -> {report}")


def _read_for(
    side: str, data: str, model: Model, label: str | None, id: str | None
) -> Dataset | ImageSet:
    """The data as model `side` reads it; an error says which model could not."""
    from whybox.model_zoo import demos

    try:
        return demos.resolve_data(data, model, label=label, id=id)
    except WhyboxError as exc:
        raise WhyboxError(f"reading the data for model {side}: {exc}") from exc


@app.command()
def recourse(
    context: typer.Context,
    model: ModelArg,
    data: Annotated[str, typer.Argument(help="CSV or Parquet file, or demo:NAME.")],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for recourse.json and recourse.csv.")
    ],
    desired: Annotated[
        str | None,
        typer.Option(
            help="The outcome the person wants (approved, healthy): a class name or index; "
            "by default, for a two-class model, the class the model does not give the row."
        ),
    ] = None,
    rows: Annotated[
        str | None, typer.Option(help="Rows A:B of DATA (default: every row), 0-based.")
    ] = None,
    constraints: ConstraintsOption = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Counterfactuals per row at most.")] = 3,
    threshold: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="The desired class's probability to reach."),
    ] = 0.5,
    label: Annotated[str | None, typer.Option(help="Label column, if any.")] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Identifier column: not a feature.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the search.")] = 0,
    trust_model: Annotated[
        bool, typer.Option("--trust-model", help="Allow formats that can run code.")
    ] = False,
    dictionary: DictionaryOption = None,
) -> None:
    """What would change a decision? For each row of DATA that MODEL does not give the
    desired outcome, up to k small sets of changes that do, each checked with the model,
    kept to the constraints and to values typical of DATA."""
    import pandas as pd

    from whybox.dashboard.runs.outputs import safe_cell
    from whybox.explainers.base import parse_row_range, select_rows
    from whybox.model_zoo import demos
    from whybox.model_zoo.image_data import ImageSet
    from whybox.trust.constraints import load_constraints
    from whybox.trust.recourse import RecourseSearch

    loaded = demos.resolve_model(model, trusted=trust_model or None)
    dataset = demos.resolve_data(data, loaded, label=label, id=id)
    if isinstance(dataset, ImageSet):
        raise WhyboxError("recourse changes a table's columns; it does not apply to images")
    coded = _coded(dictionary, data)
    constraints = constraints or demos.demo_constraints(data)
    rules = load_constraints(constraints, dataset, coded) if constraints else None
    if rules is None:
        typer.echo("no constraints file: every feature may change (at most 3 at once)", err=True)
    chosen = select_rows(len(dataset), parse_row_range(rows) if rows else None)
    search = RecourseSearch(
        loaded, dataset, rules, k=k, threshold=threshold, seed=seed, coded=coded
    )
    wanted = _desired_classes(loaded, dataset, chosen, desired)
    bar, update = _progress("recourse", unit="row")
    answers = []
    with bar:
        for done, (row, toward) in enumerate(zip(chosen, wanted, strict=True), start=1):
            answers.append(search.find(int(row), toward))
            update(done, len(chosen))
    ids = None if dataset.ids is None else dataset.ids.iloc[chosen].astype(str).tolist()
    found = [a.to_dict() | ({"id": ids[i]} if ids else {}) for i, a in enumerate(answers)]
    record = {
        "command": ["whybox", *context.obj["argv"]],
        "model": {"name": loaded.name, "sha256": loaded.sha256},
        "data": {"name": dataset.name, "sha256": dataset.sha256},
        "constraints": None if constraints is None else str(constraints),
        "desired": desired or "the class the model does not give each row",
        "k": k,
        "threshold": threshold,
        "seed": seed,
        "rows": found,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "recourse.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        {
            "row": a.row,
            **({"id": safe_cell(ids[i])} if ids else {}),
            "rank": rank,
            "changes": len(c.changes),
            "probability": c.probability,
            "typicality": c.typicality,
            "recourse": safe_cell(c.sentence),
        }
        for i, a in enumerate(answers)
        for rank, c in enumerate(a.counterfactuals, start=1)
    ]
    columns = ["row", *(["id"] if ids else []), "rank", "changes", "probability",
               "typicality", "recourse"]  # fmt: skip
    pd.DataFrame(lines, columns=columns).to_csv(
        out / "recourse.csv", index=False, float_format="%.6g"
    )
    searched = [a for a in answers if not a.message.startswith("the model already")]
    with_recourse = [a for a in searched if a.found]
    which = f"not predicted {desired}" if desired else "searched"
    typer.echo(
        f"{len(with_recourse)} of {len(searched)} rows {which} have recourse "
        f"({len(chosen) - len(searched)} already are {desired}) -> {out}"
        if desired
        else f"{len(with_recourse)} of {len(searched)} rows {which} have recourse -> {out}"
    )
    for answer in searched[:5]:
        first = answer.counterfactuals[0].sentence if answer.found else answer.message
        typer.echo(f"row {answer.row}: {_printable(first)}")


def _desired_classes(
    model: Model, data: Dataset, rows: Sequence[int], desired: str | None
) -> list[str]:
    """The class to search toward for each row: `desired`, or for a two-class model the
    class it does not give the row (the decision flipped)."""
    from whybox.model_zoo.tables import name_list

    if desired is not None:
        return [desired] * len(rows)
    names = model.output_names
    if len(names) != 2:
        raise WhyboxError(
            f"the model has {len(names)} classes; give --desired CLASS, one of {name_list(names)}"
        )
    predicted = model.predict(data.values[list(rows)], "probability").argmax(axis=1)
    return [str(names[1 - p]) for p in predicted]


@app.command("runs")
def list_runs(
    store: StoreOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show the N newest runs.")] = None,
    identifier: Annotated[
        str | None,
        typer.Option(
            "--id", help="Only the runs that explained the row with this identifier value."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, every field.")] = False,
) -> None:
    """List the recorded explanation runs and model comparisons (`whybox diff`), newest
    first."""
    from whybox.dashboard.runs.audit import RunStore

    history = RunStore(store, create=False)
    entries = history.runs(limit, identifier=identifier)
    if as_json:
        typer.echo(json.dumps([entry.to_json() for entry in entries], indent=2))
        return
    if not entries:
        which = f" that explained {identifier!r}" if identifier is not None else ""
        typer.echo(f"no runs{which} recorded in {history.path}")
        return
    table = [("TIME", "RUN ID", "USER", "MODEL", "EXPLAINER", "ROWS", "SECONDS", "DIRECTORY")]
    table += [
        (
            e.created,
            e.run_id,
            e.user or "-",
            f"{e.model_name} {e.model_sha256[:8]}"
            + (f" vs {e.model_b_name} {e.model_b_sha256[:8]}" if e.comparison else ""),
            f"diff: {e.explainer}" if e.comparison else e.explainer,
            str(e.rows),
            f"{e.seconds:.2f}",
            e.directory,
        )
        for e in entries
    ]
    table = [tuple(_printable(cell) for cell in row) for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        cells = [
            cell.rjust(width) if head in ("ROWS", "SECONDS") else cell.ljust(width)
            for cell, width, head in zip(row, widths, table[0], strict=True)
        ]
        typer.echo("  ".join(cells).rstrip())


@app.command("explainers")
def list_explainers(
    model: Annotated[str | None, typer.Argument(help="Model file or demo:NAME.")] = None,
    data: Annotated[str | None, typer.Argument(help="Data file or demo:NAME.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column in the data, if any.")] = None,
    id: Annotated[
        str | None,
        typer.Option(
            "--id", help="Identifier column in the data: not a feature, carried into the results."
        ),
    ] = None,
    trust_model: Annotated[
        bool, typer.Option("--trust-model", help="Allow formats that can run code.")
    ] = False,
    rank: Annotated[
        bool,
        typer.Option(
            "--rank",
            help="Which method for this model? Run each one on a sample of rows and rank "
            "them by faithfulness (deletion and insertion against random orders), with "
            "their time per row.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed (the sample, the methods).")] = 0,
) -> None:
    """List the registered explainers, or those that support MODEL and DATA."""
    from whybox.explainers import registry
    from whybox.model_zoo import demos

    if (model is None) != (data is None):
        raise WhyboxError("give both MODEL and DATA, or neither")
    if rank and model is None:
        raise WhyboxError("--rank ranks the methods for a model: give MODEL and DATA")
    loaded = demos.resolve_model(model, trusted=trust_model or None) if model else None
    dataset = demos.resolve_data(data, loaded, label=label, id=id) if data else None
    if rank:
        _echo_ranking(loaded, dataset, seed)
        return
    for entry in registry.entries():
        if entry.explainer is None:
            typer.echo(f"{entry.name:22} {entry.summary}")
            continue
        line = f"{entry.name:22} {entry.summary}"
        if loaded is not None:
            support = entry.explainer().supports(loaded, dataset)
            if not support:
                continue
        typer.echo(line)


def _echo_ranking(model: Model, dataset: Dataset | ImageSet, seed: int) -> None:
    from whybox.explainers import quality

    bar, update = _progress("ranking")
    with bar:
        ranking = quality.rank_methods(model, dataset, seed=seed, progress=update)
    unit = "image" if model.modality == "image" else "row"
    typer.echo(
        f"{'method':22} {'faithfulness':>12} {'deletion':>9} {'insertion':>9} "
        f"{'correlation':>11} {'s/' + unit:>9}"
    )
    for r in ranking:
        if r.faithfulness is None:
            continue
        fc = r.scores["faithfulness_correlation"]
        typer.echo(
            f"{r.method:22} {r.faithfulness:12.3f} {r.scores['deletion']:9.3f} "
            f"{r.scores['insertion']:9.3f} {'-' if fc is None else f'{fc:.3f}':>11} "
            f"{r.seconds_per_row:9.4f}"
        )
    for r in ranking:
        if r.faithfulness is None:
            typer.echo(f"{r.method:22} not ranked: {_printable(r.reason)}")
    typer.echo(
        f"faithfulness: the mean of the deletion and insertion ratios against random orders "
        f"(1: no better than random), on {quality.RANKING_ROWS[model.modality]} {unit}s "
        f"drawn with seed {seed}; use one with --explainer NAME, or --param choose=quality "
        "with auto"
    )


@app.command("limits")
def list_limits() -> None:
    """List the limits on uploads and explanations, their values, and the settings (environment
    variables of the server or command) that change them."""
    for limit in limits.ALL:
        value = f"{limit.shown()}" + ("" if limit.value() == limit.default else " (set)")
        typer.echo(f"{limit.setting:28} {value:>18}  {limit.meaning}")


def _coded(dictionary: Path | None, data: str) -> dict[str, dict[float, str]]:
    """The coded values of the data dictionary given (else demo data's own), per column."""
    from whybox.dashboard.reports.dictionary import coded_values, load_dictionary
    from whybox.model_zoo import demos

    dictionary = dictionary or demos.demo_dictionary(data)
    return coded_values(load_dictionary(dictionary) if dictionary is not None else None)


@app.command("demos")
def list_demos(
    write: Annotated[
        Path | None, typer.Option(help="Also write the demo files into this directory.")
    ] = None,
) -> None:
    """List the built-in demo models and data (trained on first use, then cached)."""
    from whybox.model_zoo import demos

    listed = [*demos.DEMO_MODELS.values(), *demos.DEMO_DATA.values()]
    width = max(len(demo.name) for demo in listed)
    for demo in listed:
        newer = (
            f" (a newer version of demo:{demo.previous})" if getattr(demo, "previous", "") else ""
        )
        typer.echo(f"demo:{demo.name:{width}} {demo.description}{newer}")
    if write is not None:
        for path in demos.export(write):
            typer.echo(f"wrote {path}")


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[
        str, typer.Option(help="Address to bind (localhost keeps it private).")
    ] = "localhost",
    trust_model: Annotated[
        bool,
        typer.Option(
            "--trust-model", help="Let uploads use formats that can run code (single-user only)."
        ),
    ] = False,
) -> None:
    """Start the web dashboard."""
    if trust_model:
        os.environ[TRUST_ENV] = "1"
    _one_thread_per_page()
    from streamlit.web import cli as streamlit_cli

    # Streamlit runs in this process. Once it listens, a thread loads the dashboard's modules
    # and the first demo while the browser loads the page, so the first run finds them ready.
    threading.Thread(target=_warm_up, args=(address, port), daemon=True).start()
    sys.argv = [
        "streamlit",
        "run",
        str(Path(__file__).parents[1] / "app" / "main.py"),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--server.maxUploadSize",
        str(limits.UPLOAD_MB.value()),
        "--client.toolbarMode",
        "minimal",
        "--theme.base",
        "light",
        "--theme.primaryColor",
        "#0072B2",
        "--browser.gatherUsageStats",
        "false",
        # Streamlit's defaults for a developer editing the app, costly on a server: a full
        # garbage collection after every page run held the GIL for up to a second with
        # torch loaded (health checks and every other session waited), and the file
        # watcher walked every imported module's path on each run.
        "--runner.postScriptGC",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    streamlit_cli.main(prog_name="streamlit")


def _one_thread_per_page() -> None:
    """Hold this process's OpenMP, BLAS and torch to one thread each, before Streamlit loads.

    Every session's page runs in a thread of this process, and what a page computes here
    (recourse, typicality, rules) is small: several threads per computation only spin while
    they wait for each other, and a row change took several times as long while a browser
    shared the cores. Explanations run in the job workers, with their own budgets
    (jobs.worker.environment), which they set again for themselves."""
    from threadpoolctl import threadpool_limits

    from whybox.dashboard.jobs.worker import THREAD_VARIABLES

    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # for libraries not loaded yet
    threadpool_limits(1)  # and those already loaded (numpy's BLAS)


def _warm_up(address: str, port: int, wait: float = 60) -> None:
    """When the server at `address:port` listens, import the dashboard and every explainer
    and load the first demo (torch, Captum and SHAP come later: sidebar.warm_up_engine)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    from whybox.dashboard.app import sidebar
    from whybox.explainers import registry
    from whybox.model_zoo import demos

    for entry in registry.entries():
        entry.explainer  # noqa: B018  (loads the plugin's module)
    try:
        sidebar.load_demo(next(iter(demos.DEMO_MODELS)))
    except Exception:  # the page shows the same error to whoever asks for the demo
        logging.getLogger("whybox.dashboard").exception("could not preload the first demo")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=args, prog_name="whybox", standalone_mode=False, obj={"argv": args}
        )
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (WhyboxError, UsageError) as exc:
        if debug:
            traceback.print_exc()
        message = exc.format_message() if isinstance(exc, UsageError) else str(exc)
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if debug:
            traceback.print_exc()
        else:
            print(
                f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
                "(rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
