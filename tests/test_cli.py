"""The `leafrbm` command line: the quick demo end to end, the tools, and clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from leafrbm.cli import main

ARTIFACTS = ["filters.png", "depth.png", "occlusion.png", "leaf_space.png", "imagined.png", "learning_curves.png",
             "training.gif", "tsne.gif", "dream.gif"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    return out


def test_quick_demo_writes_every_artifact(demo):
    for name in ARTIFACTS:
        with Image.open(demo / name) as image:
            image.load()
            grey = np.asarray(image.convert("L"), dtype=np.float64)
            assert grey.std() > 5, f"{name} is blank"
            if name.endswith(".gif"):
                assert image.n_frames > 1, f"{name} has one frame"
    assert (demo / "report.html").stat().st_size > 1000


def test_metrics_hold_the_numbers_shown_in_the_report(demo):
    metrics = json.loads((demo / "metrics.json").read_text())
    report = (demo / "report.html").read_text()
    leaf = metrics["leaf_space"]
    assert f"{leaf['kl_divergence']:.3f}" in report
    assert f"{leaf['leave_one_out_imagined_mse']:.4f}" in report
    for depth, mse in metrics["reconstruction_mse_by_depth"].items():
        assert f"{depth}: MSE {mse:.4f}" in report
    for row in metrics["occlusion"]:
        assert f"{row['mse']:.4f}" in report
    for name in ARTIFACTS:
        assert f'src="{name}"' in report
    # The story holds even in the quick run: the model learned something.
    assert metrics["reconstruction_mse_by_depth"]["depth 1"] < leaf["mean_image_mse"]
    assert leaf["same_species_neighbour_rate"] > 2 * leaf["same_species_chance_rate"]
    assert metrics["data"]["n_images"] == 320


def test_demo_is_reproducible(demo, tmp_path):
    out = tmp_path / "again"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    first = json.loads((demo / "metrics.json").read_text())
    second = json.loads((out / "metrics.json").read_text())
    assert first["reconstruction_mse_by_depth"] == second["reconstruction_mse_by_depth"]
    assert first["occlusion"] == second["occlusion"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from leafrbm.datasets import make_leaves

    folder = tmp_path_factory.mktemp("leaves")
    images, species = make_leaves(6, 4, size=32, random_state=1)
    for i, image in enumerate(images):
        Image.fromarray(255 - image).save(folder / f"leaf_{i}.png")  # dark leaf on white paper
    return folder


def test_train_map_inpaint_dream_on_a_folder(image_folder, tmp_path):
    model = tmp_path / "model.npz"
    assert main(["train", str(image_folder), "--model", str(model), "--layers", "32", "16", "--epochs", "2",
                 "--size", "16"]) == 0
    assert main(["map", str(model), str(image_folder), "--out", str(tmp_path / "map.png")]) == 0
    assert np.load(tmp_path / "map.npy").shape == (24, 2)
    assert main(["inpaint", str(model), str(image_folder), "--steps", "5", "--n", "4",
                 "--out", str(tmp_path / "inpaint.png")]) == 0
    assert main(["dream", str(model), "--steps", "6", "--n", "4", "--out", str(tmp_path / "dream.gif")]) == 0
    for name in ("map.png", "inpaint.png", "dream.gif"):
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 16


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--quick", "--data", "/definitely/not/here"], "no such file or folder"),
        (["map", "/definitely/not/model.npz", "."], "no such model file"),
    ],
)
def test_errors_print_one_clear_line_and_exit_non_zero(argv, message, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_empty_folder_and_bad_size(tmp_path, capsys):
    assert main(["demo", "--quick", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "leafrbm demo: error:" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--size", "3"])
    assert exit_info.value.code == 2
    assert "--size must be between 8 and 256" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "train", "map", "inpaint", "dream"])
def test_every_command_explains_itself(command):
    result = subprocess.run([sys.executable, "-m", "leafrbm", command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: leafrbm " + command in result.stdout
    assert len(result.stdout.splitlines()) > 5
