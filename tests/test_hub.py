"""Hugging Face datasets by name (labelbench.data.hub) on local on-disk datasets, offline
refusals, and the resnet18_cifar model."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli, run_here
from labelbench.config import ConfigError
from labelbench.data.hub import Hub
from labelbench.data.lazy import LazyInputs
from labelbench.data.task import NO_LABEL
from labelbench.models.resnet import ResNet18Cifar
from labelbench.run import run

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

CLASSES = ("cat", "dog", "frog")


def _images(n: int, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 images whose mean colour carries the class (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASSES)
    pix = rng.integers(0, 80, size=(n, size, size, 3))
    pix[np.arange(n), :, :, y] += 160  # class c lights up channel c
    return pix.astype(np.uint8), y


def _image_dataset(n: int, seed: int = 0):
    from PIL import Image

    pix, y = _images(n, seed=seed)
    features = datasets.Features(
        {"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES))}
    )
    return datasets.Dataset.from_dict(
        {"img": [Image.fromarray(p) for p in pix], "label": y.tolist()}, features=features
    )


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """A `save_to_disk` DatasetDict: 60 train / 15 test 8x8 RGB images, ClassLabel labels."""
    folder = tmp_path_factory.mktemp("hub") / "tiny_images"
    datasets.DatasetDict(train=_image_dataset(60), test=_image_dataset(15, seed=1)).save_to_disk(
        str(folder)
    )
    return folder


TOPICS = {
    "sport": ["the team won the match", "a goal in the final minute", "the runner set a record"],
    "food": ["fresh bread and soup", "a spicy curry with rice", "the cake needs more sugar"],
    "weather": ["heavy rain this evening", "sunny and warm all week", "snow on the hills"],
}


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    """A folder of parquet files as a hub repo has them (data/train-*.parquet,
    data/test-*.parquet), string labels under `category`: read by `load_dataset(path)`,
    the same call a hub id goes through."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("hub") / "tiny_text"
    (folder / "data").mkdir(parents=True)
    rows = [(f"{s} ({i})", topic) for i in range(4) for topic, ss in TOPICS.items() for s in ss]
    frame = pd.DataFrame(rows, columns=["text", "category"])
    frame.iloc[:27].to_parquet(folder / "data" / "train-00000-of-00001.parquet", index=False)
    frame.iloc[27:].to_parquet(folder / "data" / "test-00000-of-00001.parquet", index=False)
    return folder


class WordCount:
    """A stand-in text encoder: no weights, deterministic, duck-typed like
    labelbench.data.encoders.Encoder."""

    name = "wordcount"

    def accepts(self, modality: str) -> bool:
        return modality == "text"

    def fingerprint(self) -> str:
        return "wordcount-v1"

    def encode(self, items):
        return np.array([[len(t.split()), len(t), t.count("e")] for t in items], np.float32)


# --- loading -------------------------------------------------------------------------------


def test_image_folder_columns_pixels_and_fixed_test_split(image_folder):
    src = Hub(str(image_folder), input_column="img", label_column="label", test_split="test")
    x, y, classes, shape = src.arrays()
    assert shape == (3, 8, 8) and src.modality == "image"  # from the Image column
    assert isinstance(x, LazyInputs) and x.shape == (75, 3, 8, 8)  # read when used
    values = np.asarray(x)
    assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() <= 1.0
    assert classes == CLASSES  # a ClassLabel keeps its own names and order
    pix, labels = _images(60)
    np.testing.assert_array_equal(y[:60], labels)
    # channels first: item 5, channel 2, row 3, column 4 is pixel (3, 4) of channel 2
    assert x[5][2, 3, 4] == pytest.approx(pix[5, 3, 4, 2] / 255)
    tasks = [src.load(seed) for seed in (0, 1)]
    for task in tasks:
        assert task.modality == "image" and task.input_shape == (3, 8, 8)
        np.testing.assert_array_equal(task.split.test, np.arange(60, 75))  # the dataset's own
        assert len(task.split.pool) + len(task.split.val) == 60
    assert not np.array_equal(tasks[0].split.pool, tasks[1].split.pool)


def test_without_test_split_the_test_items_are_cut_from_split(image_folder):
    task = Hub(str(image_folder), input_column="img").load(0)
    assert len(task.x) == 60 and len(task.split.test) == 12  # 20% of each class


def test_text_folder_string_labels_and_encoder(text_folder, tmp_path):
    src = Hub(
        str(text_folder),
        input_column="text",
        label_column="category",
        test_split="test",
        encoder=WordCount(),
        cache_dir=str(tmp_path / "emb"),
        hf_cache_dir=str(tmp_path / "hf"),
    )
    task = src.load(0)
    assert task.modality == "text" and task.input_shape == (3,)
    assert task.classes == ("food", "sport", "weather")  # string labels: sorted
    np.testing.assert_array_equal(task.split.test, np.arange(27, 36))
    frame = datasets.load_dataset(str(text_folder), split="train", cache_dir=str(tmp_path / "hf"))
    first = frame[0]
    assert task.classes[task.y[0]] == first["category"]
    np.testing.assert_array_equal(task.x[0], WordCount().encode([first["text"]])[0])
    assert list((tmp_path / "emb").iterdir())  # encoded once, into the embedding cache


def test_split_slices_work_for_file_folders(text_folder, tmp_path):
    src = Hub(
        str(text_folder),
        input_column="text",
        label_column="category",
        split="train[:12]",
        encoder=WordCount(),
        cache_dir=str(tmp_path / "emb"),
        hf_cache_dir=str(tmp_path / "hf"),
    )
    x, _, classes, _ = src.arrays()
    assert len(x) == 12 and len(classes) == 3


def test_text_without_an_encoder_is_one_line(text_folder, tmp_path):
    src = Hub(
        str(text_folder), "text", "category", hf_cache_dir=str(tmp_path / "hf")
    )  # modality from the column: text
    with pytest.raises(
        ConfigError, match=r"^encoder=None: the inputs are text .*encoder=minilm\)$"
    ):
        src.arrays()
    with pytest.raises(ConfigError, match="choose a text encoder"):
        Hub("some/name", "text", modality="text", encoder=_NoText())


class _NoText(WordCount):
    name = "none"

    def accepts(self, modality: str) -> bool:
        return modality != "text"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"input_column": "image"},
            r"^input_column='image' is not a column of .*tiny_images; columns: img, label$",
        ),
        (
            {"input_column": "img", "label_column": "y"},
            r"^label_column='y' is not a column of .*; columns: img, label$",
        ),
        (
            {"input_column": "img", "split": "validation"},
            r"^split='validation' is not a split of .*; splits: train, test",
        ),
        (
            {"input_column": "img", "test_split": "dev"},
            r"^test_split='dev' is not a split of .*; splits: train, test",
        ),
        ({"input_column": "img", "modality": "text"}, r"^modality='text' does not fit"),
    ],
)
def test_bad_columns_and_splits_are_one_line(image_folder, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        Hub(str(image_folder), **kwargs).arrays()
    assert "\n" not in str(info.value)


def test_input_column_left_out_is_the_only_column_besides_the_label(image_folder):
    src = Hub(str(image_folder), test_split="test")  # columns: img, label
    x, _, classes, shape = src.arrays()
    assert src.input_column == "img" and shape == (3, 8, 8) and x.shape == (75, 3, 8, 8)
    assert classes == CLASSES


def _two_inputs(folder):
    datasets.Dataset.from_dict(
        {"a": [[0.0, 1.0]] * 6, "b": [[1.0]] * 6, "label": [0, 1] * 3}
    ).save_to_disk(str(folder))
    return folder


def test_input_column_left_out_with_several_candidates_lists_the_columns(tmp_path):
    folder = _two_inputs(tmp_path / "two")
    with pytest.raises(ConfigError) as info:
        Hub(str(folder)).arrays()
    assert str(info.value) == (
        f"input_column=null: 2 columns could be the input; columns of {folder}: a, b, label;"
        " set dataset.input_column=..."
    )
    datasets.Dataset.from_dict({"label": [0, 1]}).save_to_disk(str(tmp_path / "bare"))
    with pytest.raises(ConfigError, match=r"^input_column=null: .*bare has no column besides"):
        Hub(str(tmp_path / "bare")).arrays()


def test_cli_input_column_left_out_with_several_candidates_is_one_line(tmp_path):
    folder = _two_inputs(tmp_path / "two")
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run", "dataset=hub", f"dataset.name={folder}", "logger=none",
        f"paths.results_dir={results}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"labelbench-run: error: dataset.input_column=null: 2 columns could be the input;"
        f" columns of {folder}: a, b, label; set dataset.input_column=..."
    ]
    assert not list(results.glob("runs/*.json"))


def test_missing_split_of_a_file_folder_is_one_line(text_folder, tmp_path):
    src = Hub(str(text_folder), "text", "category", split="dev", hf_cache_dir=str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match=r"^split='dev': Unknown split \"dev\"") as info:
        src.arrays()
    assert "\n" not in str(info.value)


def test_unlabelled_items_are_unlabeled_only(tmp_path):
    """A ClassLabel's -1 (STL-10's unlabeled split) marks an item without a label."""
    ds = datasets.Dataset.from_dict(
        {"x": [[0.0, 1.0]] * 4, "label": [0, 1, -1, 0]},
        features=datasets.Features(
            {
                "x": datasets.Sequence(datasets.Value("float32")),
                "label": datasets.ClassLabel(names=["a", "b"]),
            }
        ),
    )
    ds.save_to_disk(str(tmp_path / "one"))
    _, y, classes, _ = Hub(str(tmp_path / "one"), "x").arrays()
    assert y.tolist() == [0, 1, NO_LABEL, 0] and classes == ("a", "b")


def test_vector_column_and_single_saved_split(tmp_path):
    ds = datasets.Dataset.from_dict(
        {"f": [[float(i), float(i % 3)] for i in range(30)], "label": [i % 2 for i in range(30)]}
    )
    ds.save_to_disk(str(tmp_path / "vec"))
    x, _, classes, shape = Hub(str(tmp_path / "vec"), "f").arrays()
    assert shape == (2,) and x.shape == (30, 2) and classes == ("0", "1")
    with pytest.raises(ConfigError, match=r"^test_split='test': .* holds a single split"):
        Hub(str(tmp_path / "vec"), "f", test_split="test").arrays()


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"^modality='audio' is not one of"):
        Hub("a/b", "x", modality="audio")
    with pytest.raises(ConfigError, match=r"^test_split='train' is the training split itself"):
        Hub("a/b", "x", test_split="train")
    with pytest.raises(ConfigError, match=r"^name=\./nowhere is a path that does not exist$"):
        Hub("./nowhere", "x").arrays()


# --- offline -------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_declared_offline_fails_fast_in_one_line(var, monkeypatch, tmp_path):
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(var, "1")
    import huggingface_hub.constants

    before = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        Hub("uoft-cs/cifar10", "img", hf_cache_dir=str(tmp_path / "hf")).arrays()
    assert time.perf_counter() - start < 10  # no retries (~23 s without offline mode)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("name=uoft-cs/cifar10 is not in the local Hugging Face cache")
    assert "offline mode is set" in message and "HF_DATASETS_OFFLINE=1" in message
    assert "dataset=files" in message
    # the loader's offline switches are put back
    assert before == (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    assert os.environ[var] == "1"
    other = {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"} - {var}
    assert all(v not in os.environ for v in other)


def test_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setattr("labelbench.data.hub.hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"and the Hub cannot be reached: download it once"):
        Hub("Davlan/sib200", "text", config="eng_Latn", hf_cache_dir=str(tmp_path)).arrays()
    assert time.perf_counter() - start < 10


def test_cli_offline_hub_name_is_one_line_exit_2_no_record(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache, whatever the user has
    results = tmp_path / "results"
    proc = run_cli(
        "labelbench-run",
        "dataset=cifar10",
        "model=resnet18_cifar",
        "model.width=0.125",
        "logger=none",
        f"paths.results_dir={results}",
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "labelbench-run: error: dataset.name=uoft-cs/cifar10 is not in the local Hugging Face"
        " cache and offline mode is set"
    )
    assert not list(results.glob("runs/*.json"))


def test_cli_missing_column_is_one_line_exit_2(image_folder, tmp_path):
    results = tmp_path / "results"
    proc = run_here(
        "labelbench-run",
        "dataset=hub",
        f"dataset.name={image_folder}",
        "dataset.input_column=pixels",
        "logger=none",
        f"paths.results_dir={results}",
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"labelbench-run: error: dataset.input_column='pixels' is not a column of {image_folder};"
        " columns: img, label"
    ]
    assert not list(results.glob("runs/*.json"))


# --- resnet18_cifar ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
def test_resnet_output_and_embed_shapes(shape):
    net = ResNet18Cifar(shape, num_classes=10).eval()
    x = torch.zeros(2, *shape)
    with torch.no_grad():
        assert net(x).shape == (2, 10)
        assert net.embed(x).shape == (2, 512)
    assert ResNet18Cifar.takes_images is True


def test_resnet_full_width_parameter_count():
    net = ResNet18Cifar((3, 32, 32), num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962  # the CIFAR ResNet-18


def test_resnet_tiny_width_trains_on_cpu():
    torch.manual_seed(0)
    net = ResNet18Cifar((3, 16, 16), num_classes=4, width=0.125)  # 8-16-32-64 channels
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    assert net.embed(x).shape == (6, 64)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"in_shape": (20,)}, r"^in_shape=\(20,\): model resnet18_cifar needs image inputs"),
        ({"in_shape": (3, 32, 32), "width": 0}, r"^width=0 must be positive"),
    ],
)
def test_resnet_bad_arguments(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ResNet18Cifar(num_classes=3, **kwargs)


def test_resnet_on_vectors_is_a_config_error(compose_fast):
    cfg, choices = compose_fast("model=resnet18_cifar")  # synthetic data: vectors
    with pytest.raises(ConfigError, match=r"^model\.in_shape=\(20,\): model resnet18_cifar"):
        run(cfg, choices)


# --- end to end ----------------------------------------------------------------------------


def test_run_tiny_resnet_on_a_local_hub_dataset(image_folder, compose_fast, tmp_path):
    cfg, choices = compose_fast(
        "dataset=hub",
        f"dataset.name={image_folder}",  # input_column left out: img, the only other column
        "dataset.test_split=test",
        "model=resnet18_cifar",
        "model.width=0.125",
        "budget=per_class",
        "budget.per_class=5",
        "strategy.max_steps=20",
        "strategy.eval_every=10",
    )
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert record.choices["dataset"] == "hub[tiny_images]"  # named by its folder
    assert record.choices["model"] == "resnet18_cifar"
    assert 0.0 <= record.metrics["test/acc"] <= 1.0
    stored = json.loads(next((tmp_path / "results" / "runs").glob("*.json")).read_text())
    assert stored["config"]["dataset"]["name"] == str(image_folder)
    assert stored["config"]["dataset"]["input_column"] is None


# --- a frozen image backbone -----------------------------------------------------------------


def test_images_through_a_frozen_backbone_are_cached_embeddings(image_folder, tmp_path):
    """dataset/encoder=resnet18 turns images into the backbone's pooled features once; a
    second load reads the cache; loaded weights change the features; a state_dict of
    another architecture is refused in one line."""
    import functools

    from labelbench.data.encoders import BackboneEncoder

    tiny = functools.partial(ResNet18Cifar, width=0.125)  # 64 features
    encoder = BackboneEncoder(tiny, name="resnet18")
    src = Hub(str(image_folder), input_column="img", test_split="test",
              encoder=encoder, cache_dir=str(tmp_path / "emb"))  # fmt: skip
    task = src.load(0)
    assert task.x.shape == (75, 64) and task.input_shape == (64,) and task.modality == "vector"
    calls = []
    original = BackboneEncoder.encode
    BackboneEncoder.encode = lambda self, items: calls.append(1) or original(self, items)
    try:
        again = Hub(str(image_folder), input_column="img", test_split="test",
                    encoder=encoder, cache_dir=str(tmp_path / "emb")).load(0)  # fmt: skip
    finally:
        BackboneEncoder.encode = original
    assert not calls and np.array_equal(again.x, task.x)

    torch.manual_seed(5)
    trained = tiny(in_shape=(3, 8, 8), num_classes=10)  # another head size: not loaded
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    loaded = BackboneEncoder(tiny, name="resnet18", weights=str(tmp_path / "w.pt"))
    assert loaded.fingerprint() != encoder.fingerprint()
    images = np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = trained.eval().embed(torch.as_tensor(images)).numpy()
    np.testing.assert_allclose(loaded.encode(images), expected, atol=1e-5)
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"lacks \d+ of the backbone's tensors"):
        BackboneEncoder(tiny, weights=str(tmp_path / "other.pt")).encode(images)
    with pytest.raises(ConfigError, match="is not a file"):
        BackboneEncoder(tiny, weights=str(tmp_path / "missing.pt"))


def test_backbone_embeddings_train_a_linear_head_end_to_end(image_folder, compose_fast, tmp_path):
    cfg, choices = compose_fast(
        "dataset=hub", f"dataset.name={image_folder}", "dataset.input_column=img",
        "dataset.test_split=test", "dataset/encoder=resnet18",
        "dataset.encoder.model.width=0.125", f"dataset.cache_dir={tmp_path / 'emb'}",
        "model=linear", "budget=full", "strategy.max_steps=20", "logger=none", fast=False,
    )  # fmt: skip
    record = run(cfg, choices)
    assert record.status == "ok", record.error
    assert 0 <= record.metrics["test/acc"] <= 1
