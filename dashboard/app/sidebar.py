"""The sidebar: model and data (a demo, uploads, or files of the operator's server data
folder), the model's summary, the data dictionary,
the reference data, a second model (B, another version, for the Versions view), the explainer
with widgets made from its parameter spec, the rows, and the Explain button."""

from __future__ import annotations

import copy
import functools
import gc
import threading
from pathlib import Path
from typing import Any

import streamlit as st

from whybox.dashboard import settings
from whybox.dashboard.app import exports, session
from whybox.dashboard.jobs import Source, executor, shared
from whybox.dashboard.reports.dictionary import coded_values, load_dictionary, parse_dictionary
from whybox.dashboard.reports.wording import plain
from whybox.explainers import registry
from whybox.explainers.base import Explainer, Param, parse_row_range, select_rows
from whybox.model_zoo import WhyboxError, demos, load_data, load_model
from whybox.model_zoo.image_data import load_images, parse_floats, parse_image_size
from whybox.model_zoo.limits import LOAD_MEMORY_MB, LOAD_SECONDS, UPLOAD_MB
from whybox.model_zoo.model import Model, file_sha256, resolve_device, sha256_of
from whybox.model_zoo.tables import table_columns

DEMO, UPLOAD, SERVER = "Built-in demo", "Upload files", "Server folder"
ENGINE_WARM_UP_DELAY_S = 3.0
DEFAULT_ROWS = {"tabular": "0:200", "image": "0:8"}
EXPLAINING = "explaining"
"""Session state: the result key of the sidebar's job while it waits or runs."""
IMAGE_DATA = "PNG, JPEG, a zip of them, or .npy"
TABLE_DATA = "CSV, Parquet, Excel .xlsx or R .rds/.RData"


def render() -> None:
    with st.sidebar:
        st.title("whybox")
        st.caption("Which inputs drove each prediction, and how that was computed.")
        folder = None
        with session.guard("reading the server data folder"):
            folder = settings.data_dir()
        choices = (DEMO, UPLOAD) if folder is None else (DEMO, UPLOAD, SERVER)
        source = st.radio("Model and data", choices, key="source", horizontal=True)
        session.collect()
        loaded = None
        with session.guard("loading the model and data"):
            if source == DEMO:
                loaded = _demo()
            elif source == SERVER and folder is not None:
                loaded = _server_folder(folder)
            else:
                loaded = _uploads()
        session.set_inputs(loaded)
        if loaded is None:
            return
        _model_summary(loaded)
        with session.guard("reading the data dictionary"):
            _dictionary(loaded)
        _cohort_choice(loaded)
        with session.guard("reading the reference data"):
            _reference(loaded)
        with session.guard("loading the second model"):
            _second_model(loaded, source)
        with session.guard("explaining"):
            _explain_controls(loaded)
        with session.guard("reading the reason texts"):
            exports.report_options(loaded)


def _demo() -> session.Inputs:
    name = st.selectbox(
        "Demo model",
        list(demos.DEMO_MODELS),
        format_func=lambda n: f"{n}: {demos.DEMO_MODELS[n].description}",
        key="demo_model",
    )
    return session.cached(("demo", name), lambda: copy.deepcopy(load_demo(name)))


def _dictionary(loaded: session.Inputs) -> None:
    """The data dictionary the views show: an upload, else the demo data's own."""
    st.session_state[session.DICTIONARY] = None
    if loaded.images:
        return
    upload = st.file_uploader(
        "Data dictionary (CSV or YAML, optional)",
        type=["csv", "yaml", "yml"],
        key="dictionary_file",
        help="Per column a label, unit, description and names of coded values "
        "(column,label,unit,description,values with values as '1 = rent; 2 = owner'), "
        "shown in every view, reason and report.",
    )
    if upload is not None:
        raw = upload.getvalue()
        parsed = session.cached(
            ("dictionary", upload.name, sha256_of(raw)),
            lambda: parse_dictionary(raw, upload.name),
        )
    else:
        source = loaded.data_source
        path = demos.demo_dictionary(source.demo) if source and source.demo else None
        parsed = (
            None
            if path is None
            else session.cached(("dictionary", str(path)), lambda: load_dictionary(path))
        )
    st.session_state[session.DICTIONARY] = parsed


def _cohort_choice(loaded: session.Inputs) -> None:
    """Which cohort every view shows: every row, or one saved in the Cohorts view."""
    if loaded.images:
        return
    choices = [session.EVERY_ROW, *session.cohorts()]
    if st.session_state.get(session.COHORT) not in choices:
        st.session_state[session.COHORT] = session.EVERY_ROW
    st.selectbox(
        "Cohort",
        choices,
        key=session.COHORT,
        help="The views show this cohort's rows: its importance, performance, shift and "
        "rules. Define cohorts by filters, or take one from the error analysis, in **Cohorts**.",
    )


def _reference(loaded: session.Inputs) -> None:
    """The reference data (what the model learned from) the views compare the data with,
    as a typicality scorer; none until one is uploaded. Reference images are read as the
    data's were (size, mean and std)."""
    st.session_state[session.REFERENCE] = None
    kind = IMAGE_DATA if loaded.images else TABLE_DATA
    upload = st.file_uploader(
        f"Reference data ({kind}, optional)",
        key="reference_file",
        help="The data the model learned from (or an earlier population): each row then "
        "gets a typicality score against it, and the Shift view compares the two tables.",
    )
    if upload is None:
        return
    from whybox.trust.reference import reference_scorer

    raw = upload.getvalue()
    coded = coded_values(st.session_state.get(session.DICTIONARY))
    scorer = session.cached(
        ("reference", *loaded.key, upload.name, sha256_of(raw), str(coded)),
        lambda: reference_scorer(raw, loaded.model, loaded.data, coded, upload.name),
    )
    st.session_state[session.REFERENCE] = scorer
    for note in scorer.reference.notes:
        st.caption(plain(note))


SECOND_MODEL = "Second model (B, a candidate version)"
SECOND_DATA = "second data"
"""The session's slot for the data read for the second model (see session.latest)."""
NO_SECOND = "none"


def _second_model(loaded: session.Inputs, source: str) -> None:
    """The second model (B, a candidate version of the first) that the Versions view
    compares with the first on the session's data: another demo version of the demo, or an
    upload. Loaded by the first model's rules, checked against it, with the data read again
    for it; kept in its own slot, so the first model's inputs and results never change."""
    st.session_state[session.SECOND] = None
    second = _second_demo(loaded) if source == DEMO else _second_upload(loaded)
    if second is None:
        session.forget(SECOND_DATA)
        return
    st.session_state[session.SECOND] = second
    st.caption(
        f"B: {plain(second.model.name)}, SHA-256 `{second.model.sha256[:12]}`; the Versions "
        "view compares it with the first model (A) on this data."
    )


def demo_versions(name: str) -> list[str]:
    """The demo models that are another version of demo `name`: its newer versions (those
    whose `previous` it is) first, then the one it is a newer version of."""
    newer = [n for n, demo in demos.DEMO_MODELS.items() if demo.previous == name]
    previous = demos.DEMO_MODELS[name].previous
    return newer + ([previous] if previous in demos.DEMO_MODELS else [])


def _second_demo(loaded: session.Inputs) -> session.Inputs | None:
    """A demo with other versions offers them as B, its newer version chosen to start with
    (the demo is then A, the current model, and its newer version the candidate)."""
    name = loaded.model_source.demo.removeprefix("demo:") if loaded.model_source else None
    versions = demo_versions(name) if name in demos.DEMO_MODELS else []
    if not versions:
        return None
    previous = demos.DEMO_MODELS[name].previous
    chosen = st.selectbox(
        SECOND_MODEL,
        [NO_SECOND, *versions],
        index=1 if versions[0] != previous else 0,
        format_func=lambda n: (
            n
            if n == NO_SECOND
            else f"{n} ({'the version before' if n == previous else 'a newer version'})"
        ),
        key=f"demo_model_b:{name}",  # a choice per demo, each starting at its newer version
        help="Another version of this demo model: the Versions view shows what changed "
        "between the two on this data.",
    )
    if chosen == NO_SECOND:
        return None
    demo = session.cached(("demo", chosen), lambda: copy.deepcopy(load_demo(chosen)))
    return _read_for(demo.model, loaded, demo.model_source)


def _second_upload(loaded: session.Inputs) -> session.Inputs | None:
    upload = st.file_uploader(
        SECOND_MODEL,
        key="model_b_file",
        help="Optional: another version of the model (a retrained candidate) that takes the "
        "same inputs; the Versions view shows what changed between the two on this data.",
    )
    if upload is None:
        return None
    raw = upload.getvalue()
    model_source = Source.of_upload(raw, upload.name, sha256_of(raw))
    return _read_for(_model(model_source), loaded, model_source)


def _read_for(model: Model, loaded: session.Inputs, model_source: Source) -> session.Inputs:
    """The session's data file read again for `model` (its column order and category
    codes), as the first model's was, with the same options; an image model is normalised
    by the data's mean and std as the first one is."""
    from whybox.trust.versions import check_compatible

    check_compatible(loaded.model, model)  # before reading: the one line says what differs
    data_source = loaded.data_source
    if data_source is None:
        raise WhyboxError("this data cannot be read again for a second model")
    model, data = _read_data(model, data_source, SECOND_DATA)
    return session.Inputs(
        model,
        data,
        (model_source.name, *loaded.source[1:]),
        model_source,
        data_source,
    )


def _model(source: Source) -> Model:
    """The uploaded or server-folder model file, loaded once per session and content."""
    return session.cached(
        ("model", source.name, source.sha256),
        lambda: load_model(source.content(), name=source.name),
    )


def _read_data(model: Model, source: Source, slot: str) -> tuple[Model, Any]:
    """The data of `source` read for `model` with its options, kept in session `slot` until
    other data or options replace it; an image model comes back normalised by the data's
    mean and std (kept per session: the explainers measure a model's network once per
    wrapper)."""
    options = dict(source.options)

    def read() -> Any:
        if source.demo is not None:
            return demos.resolve_data(source.demo, model, **options)
        if model.modality == "image":
            return load_images(source.content(), model.input_shape, name=source.name, **options)
        limited = source.path is None  # the server folder's files are the operator's own
        data = load_data(source.content(), model, name=source.name, limited=limited, **options)
        return shared.share(data, table)

    table = session.table_key(model, source)
    key = ("data", *table)
    data = session.latest(slot, key, read)
    if model.modality == "image":
        base, mean, std = model, data.preprocessing["mean"], data.preprocessing["std"]
        model = session.cached(("normalized", *key), lambda: base.normalized(mean, std))
    return model, data


@functools.cache
def warm_up_engine() -> None:
    """Start the explanation workers (each imports torch, Captum, SHAP and every explainer)
    and import torch and the explainers here, in a background thread, once per server
    process, a few seconds after the first page: that page is not slowed (on two cores the
    imports would compete with the browser drawing it) and the first Explain click finds
    the workers ready."""
    timer = threading.Timer(ENGINE_WARM_UP_DELAY_S, _start_engine)
    timer.daemon = True
    timer.start()


def _start_engine() -> None:
    executor().start()
    resolve_device("auto")  # imports torch where a GPU can be, for the model's own predictions
    for entry in registry.entries():
        entry.explainer  # noqa: B018  (loads the plugin's module, for its supports())
    # The libraries' millions of objects live as long as the server: out of the collector's
    # sight, a full collection no longer stops a page for 0.1 s to walk them again.
    gc.collect()
    gc.freeze()


DEMO_LOCK = threading.Lock()


def load_demo(name: str) -> session.Inputs:
    """Demos are the same for everyone, so they load once per server process (the
    `dashboard` command starts loading the first while the browser opens the page); each
    session gets its own copy (a model's device moves with the session's choice)."""
    with DEMO_LOCK:
        return _load_demo(name)


@functools.cache
def _load_demo(name: str) -> session.Inputs:
    model_ref, data_ref = f"demo:{name}", f"demo:{demos.DEMO_MODELS[name].data}"
    model = demos.resolve_model(model_ref)
    data = demos.resolve_data(data_ref, model)
    return session.Inputs(
        model,
        data,
        (model_ref, data_ref),
        Source.of_demo(model_ref, model.sha256),
        Source.of_demo(data_ref, data.sha256),
    )


def _size_limit_note() -> None:
    """Shown while a box is empty, so also beside Streamlit's own refusal of a bigger file
    (which cannot name the setting)."""
    st.caption(
        f"Files up to {UPLOAD_MB.shown()}, a limit the operator sets with {UPLOAD_MB.setting} "
        "(`whybox limits` lists them all)."
    )


def _uploads() -> session.Inputs | None:
    model_file = st.file_uploader("Model file", key="model_file")
    if model_file is None:
        _size_limit_note()
        st.caption(
            "XGBoost JSON/UBJ, LightGBM text, skops, ONNX, or safetensors with whybox metadata. "
            "Formats that can run code (pickle, TorchScript) are refused unless the operator "
            "enabled trusted loading. A model is first opened in a separate process, within "
            f"{LOAD_SECONDS.shown()} and {LOAD_MEMORY_MB.shown()}."
        )
        return None
    raw_model = model_file.getvalue()
    model_source = Source.of_upload(raw_model, model_file.name, sha256_of(raw_model))
    model = _model(model_source)
    data_file = st.file_uploader(f"Data file ({_expected(model)})", key="data_file")
    data_source = None
    if data_file is not None:
        raw_data = data_file.getvalue()
        data_source = Source.of_upload(raw_data, data_file.name, sha256_of(raw_data))
    loaded = _inputs(model, model_source, data_source)
    if loaded is None:
        _size_limit_note()
    return loaded


def _server_folder(folder: Path) -> session.Inputs | None:
    """A model and a data file of the operator's server data folder (WHYBOX_DATA_DIR),
    chosen by name from those listed there, read on the server without the upload size
    limit; the jobs read them by path, checked by SHA-256."""
    names = settings.server_files(folder)
    if not names:
        st.info("The server data folder has no files yet; the operator puts them there.")
        return None
    model_name = st.selectbox("Model file", names, index=None, key="server_model")
    if model_name is None:
        st.caption("Files the operator put in the server data folder, read on the server.")
        return None
    model_source = _server_source(folder, model_name)
    model = _model(model_source)
    data_name = st.selectbox(
        f"Data file ({_expected(model)})", names, index=None, key="server_data"
    )
    data_source = None if data_name is None else _server_source(folder, data_name)
    return _inputs(model, model_source, data_source)


def _server_source(folder: Path, name: str) -> Source:
    """The listed file `name` by path, its SHA-256 computed once per size and change time."""
    path = settings.server_file(folder, name)
    stat = path.stat()
    digest = ("server-file", str(path), stat.st_size, stat.st_mtime_ns)
    return Source.of_path(path, session.cached(digest, lambda: file_sha256(path)))


def _expected(model: Model) -> str:
    return IMAGE_DATA if model.modality == "image" else TABLE_DATA


def _inputs(
    model: Model, model_source: Source, data_source: Source | None
) -> session.Inputs | None:
    """The model with its data file read by the options chosen here (none until a data file
    is given); `source` names both by file name, as `whybox explain` takes them."""
    if model.modality == "image":
        options = _image_options()
    else:
        columns = (
            []
            if data_source is None
            else session.cached(("columns", *data_source.key), lambda: _columns(data_source))
        )
        options = _table_options(columns)
    if data_source is None:
        return None
    data_source = data_source.with_options(**options)
    model, data = _read_data(model, data_source, "data")
    source = [model_source.name, data_source.name]
    for option, value in options.items():
        if value is not None:  # the CLI reads "224,224" as an image size too
            text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
            source += [f"--{option.replace('_', '-')}", text]
    return session.Inputs(model, data, tuple(source), model_source, data_source)


def _columns(source: Source) -> list[str]:
    """The data's column names, for the identifier box."""
    return [c.strip() for c in table_columns(source.content(), source.name)]


def _table_options(columns: list[str]) -> dict[str, Any]:
    label = st.text_input("Label column (optional)", key="label").strip()
    identifier = st.selectbox(
        "Identifier column",
        [None, *columns],
        key="id_column",
        format_func=lambda c: "none" if c is None else c,
        help="A column naming each row (a customer or case number): kept out of the "
        "features and shown beside each row's results.",
    )
    return {"label": label or None, "id": identifier}


def _image_options() -> dict[str, Any]:
    with st.expander("Image preprocessing"):
        size = st.text_input("Image size HxW (for models of any size)", key="image_size")
        mean = st.text_input("Mean per channel (e.g. 0.485,0.456,0.406)", key="mean")
        std = st.text_input("Std per channel (e.g. 0.229,0.224,0.225)", key="std")
    return {
        "image_size": parse_image_size(size) if size.strip() else None,
        "mean": parse_floats(mean) if mean.strip() else None,
        "std": parse_floats(std) if std.strip() else None,
    }


def _model_summary(loaded: session.Inputs) -> None:
    summary = loaded.model.summary()
    with st.expander(f"Model: {plain(summary['name'])}", expanded=False):
        st.markdown(
            f"**Format** {summary['format']} · **task** {summary['task']} · "
            f"**inputs** {summary['modality']} {tuple(summary['input_shape'])}"
        )
        if summary["class_names"]:
            st.markdown("**Classes** " + ", ".join(map(plain, summary["class_names"])))
        st.markdown("**Output spaces** " + ", ".join(summary["output_spaces"]))
        if summary["feature_names"]:
            st.markdown("**Features** " + ", ".join(map(plain, summary["feature_names"])))
        # Inline code, not st.code: that element's script loads lazily, and the whole
        # sidebar waits for it on the first page.
        st.markdown(f"**SHA-256** `{summary['sha256']}`")
        for note in summary["notes"]:
            st.caption(plain(note))


def supported_explainers(loaded: session.Inputs) -> list[str]:
    names = []
    for entry in registry.entries():
        if entry.explainer is not None and entry.explainer().supports(loaded.model, loaded.data):
            names.append(entry.name)
    return names


def param_widgets(cls: type[Explainer], prefix: str) -> dict[str, Any]:
    """One widget per parameter, from its spec; returns the chosen values."""
    return {p.name: _widget(p, f"{prefix}:{cls.name}:{p.name}") for p in cls.params}


def _widget(param: Param, key: str) -> Any:
    label = param.name.replace("_", " ")
    if param.choices is not None:
        return st.selectbox(label, param.choices, key=key, help=param.help)
    if param.type is bool:
        return st.checkbox(label, value=param.default, key=key, help=param.help)
    if param.type in (int, float):
        bounds = {"min_value": param.low, "max_value": param.upper}
        return st.number_input(
            label,
            value=param.type(param.default),
            key=key,
            help=param.help,
            **{k: param.type(v) for k, v in bounds.items() if v is not None},
        )
    return st.text_input(label, value=str(param.default), key=key, help=param.help)


def _explain_controls(loaded: session.Inputs) -> None:
    names = supported_explainers(loaded)
    name = st.selectbox(
        "Explainer",
        names,
        index=names.index("auto") if "auto" in names else 0,
        key="explainer",
        format_func=lambda n: n,
        help="Only the methods that can explain this model and data are listed.",
    )
    cls = registry.get(name)
    st.caption(cls.summary)
    with st.expander("Parameters"):
        params = param_widgets(cls, "param")
    rows_text = st.text_input(
        f"Rows to explain (of {len(loaded.data)})",
        value=DEFAULT_ROWS[loaded.model.modality],
        key=f"rows:{loaded.model.modality}",
        help="A:B, e.g. 0:200; a single number for one row.",
    )
    targets = ["auto", *loaded.model.output_names] if loaded.model.task == "classification" else []
    target = st.selectbox("Class to explain", targets, key="target") if targets else "auto"
    rows = select_rows(len(loaded.data), parse_row_range(rows_text))
    key = (loaded.key, name, tuple(sorted(params.items())), rows_text, target)
    # A click reruns the page with the button's state set: submit before drawing the button,
    # and wait a little in this run, so a short explanation shows at once.
    if st.session_state.get("explain") and not session.known(key) and not session.pending(key):
        with session.guard("explaining"):
            cls(**params)  # a bad value is refused here, before the queue
            spec = session.job_spec(loaded, name, params, rows, target)
            command = explain_command(loaded, name, params, rows_text, target)
            session.submit(key, spec, loaded, command)
            st.session_state[EXPLAINING] = key
    # One job at a time from the sidebar: its progress stays here whatever changes above.
    followed = st.session_state.get(EXPLAINING)
    if followed is not None:
        with session.guard("explaining"):
            session.outcome(followed)
        if not session.pending(followed):
            del st.session_state[EXPLAINING]
    if session.known(key):
        session.set_current(key)
    busy = EXPLAINING in st.session_state
    st.button("Explain", type="primary", key="explain", disabled=session.known(key) or busy)
    if session.known(key):
        explanation = session.current_explanation()
        st.success(
            f"{explanation.method}: {len(explanation.values)} "
            f"{'images' if loaded.images else 'rows'} in {explanation.seconds:.2f} s"
        )


def explain_command(
    loaded: session.Inputs, name: str, params: dict[str, Any], rows: str, target: str
) -> list[str]:
    """The `whybox explain` command that repeats this run (uploads named by file name)."""
    command = ["whybox", "explain", *loaded.source, "--out", "RUN_DIR", "--explainer", name]
    command += ["--rows", rows] + (["--target", target] if target != "auto" else [])
    return command + [f"--param={k}={v}" for k, v in params.items()]
