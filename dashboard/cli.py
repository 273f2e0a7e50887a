"""The `whybox` command line: a contract other tools script against.

Bad input of any kind ends with exit status 2 and one line on stderr starting `error:`;
`--debug` (anywhere on the line) shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer._click.exceptions import UsageError  # typer ships its own click

from model_zoo import settings
from model_zoo.errors import WhyboxError

if TYPE_CHECKING:
    from explainers.base import Explainer

# The engine (torch, Captum, SHAP) is imported inside the commands that use it: `whybox
# --help` and usage errors answer at once.

app = typer.Typer(
    name="whybox",
    help="Explain model predictions: which inputs drove each decision, and how that was computed.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

MAX_UPLOAD_MB = 200
"""Per uploaded file; the same as .streamlit/config.toml, for runs from other directories."""

ModelArg = Annotated[str, typer.Argument(help="Model file, or demo:NAME (see `whybox demos`).")]
DataArg = Annotated[
    str,
    typer.Argument(
        help="CSV or Parquet file; for image models PNG, JPEG, a zip or folder of them, or "
        ".npy; or demo:NAME."
    ),
]


def _explainer(name: str, options: dict, extra: list[str]) -> Explainer:
    """Build explainer `name` from the common options it declares plus KEY=VALUE extras."""
    from explainers import registry

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


def _progress(label: str):
    """A tqdm bar on stderr (shown only on a terminal) driven by explainer callbacks."""
    from tqdm import tqdm

    bar = tqdm(desc=label, total=0, file=sys.stderr, disable=None, leave=False, unit="eval")

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


@app.command()
def explain(
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
) -> None:
    """Explain the predictions of MODEL on DATA."""
    from dashboard.run_record import save_run
    from explainers.base import parse_row_range
    from model_zoo import demos
    from model_zoo.images import ImageSet, parse_floats, parse_image_size

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
    dataset = demos.resolve_data(data, loaded, label=label, **preprocessing)
    if isinstance(dataset, ImageSet):
        loaded = loaded.normalized(dataset.preprocessing["mean"], dataset.preprocessing["std"])
    elif mean or std or image_size:
        raise WhyboxError("--image-size, --mean and --std apply to image models only")
    selection = parse_row_range(rows) if rows else None
    bar, update = _progress(explainer)
    with bar:
        explanation = explainer_obj.explain(
            loaded, dataset, rows=selection, target=target, progress=update
        )
    save_run(loaded, dataset, explanation, out, command=["whybox", *sys.argv[1:]])
    unit = "images" if isinstance(dataset, ImageSet) else "rows"
    typer.echo(
        f"explained {len(explanation.values)} {unit} with {explanation.method} in "
        f"{explanation.seconds:.2f} s -> {out}"
    )


@app.command("explainers")
def list_explainers(
    model: Annotated[str | None, typer.Argument(help="Model file or demo:NAME.")] = None,
    data: Annotated[str | None, typer.Argument(help="Data file or demo:NAME.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column in the data, if any.")] = None,
    trust_model: Annotated[
        bool, typer.Option("--trust-model", help="Allow formats that can run code.")
    ] = False,
) -> None:
    """List the registered explainers, or those that support MODEL and DATA."""
    from explainers import registry
    from model_zoo import demos

    if (model is None) != (data is None):
        raise WhyboxError("give both MODEL and DATA, or neither")
    loaded = demos.resolve_model(model, trusted=trust_model or None) if model else None
    dataset = demos.resolve_data(data, loaded, label=label) if data else None
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


@app.command("demos")
def list_demos(
    write: Annotated[
        Path | None, typer.Option(help="Also write the demo files into this directory.")
    ] = None,
) -> None:
    """List the built-in demo models and data (trained on first use, then cached)."""
    from model_zoo import demos

    for demo in demos.DEMO_MODELS.values():
        typer.echo(f"demo:{demo.name:18} {demo.description}")
    for demo in demos.DEMO_DATA.values():
        typer.echo(f"demo:{demo.name:18} {demo.description}")
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
        os.environ[settings.TRUST_ENV] = "1"
    from streamlit.web import cli as streamlit_cli

    # Streamlit runs in this process, so the first page finds the engine and the first demo
    # loaded. (Loading them in a thread while the server starts was not faster: the GIL.)
    _warm_up()
    sys.argv = [
        "streamlit",
        "run",
        str(Path(__file__).with_name("app.py")),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--server.maxUploadSize",
        str(MAX_UPLOAD_MB),
        "--client.toolbarMode",
        "minimal",
        "--theme.base",
        "light",
        "--theme.primaryColor",
        "#0072B2",
        "--browser.gatherUsageStats",
        "false",
    ]
    streamlit_cli.main(prog_name="streamlit")


def _warm_up() -> None:
    """Import the dashboard, every explainer and the first demo ahead of the first page."""
    from dashboard import sidebar
    from explainers import registry
    from model_zoo import demos

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
        result = command.main(args=args, prog_name="whybox", standalone_mode=False)
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
