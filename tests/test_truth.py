"""The ground truth: the real Kaggle labels file; a converted dataset's split as its data YAML names it."""

from __future__ import annotations

import pytest

from analysis.scoring.truth import read_truth
from analysis.tuning.rescoring import split_images
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import dataset_split
from tests.fake_dataset import fake_dataset


@pytest.fixture(scope="module")
def real_truth(sample_dir):
    return read_truth(sample_dir / "stage_2_train_labels.csv")


def test_real_labels_as_truth(real_truth):
    assert len(real_truth.truth) == 26684
    assert sum(len(v) for v in real_truth.truth.values()) == 9555
    assert sum(c == "Lung Opacity" for c in real_truth.classes.values()) == 6012
    assert real_truth.notes == []


def test_truth_of_a_split_follows_the_data_yaml(tmp_path):
    """A fold YAML's val is its own list (t1, v1), not the manifest's split column (v1, v2)."""
    root = fake_dataset(tmp_path / "ds")
    plain = read_truth(root / "data.yaml", split="val")
    assert sorted(plain.truth) == ["v1", "v2"] and plain.truth["v1"].tolist() == [[1, 3, 5, 7]]
    fold = read_truth(root / "folds" / "fold1.yaml", split="val")
    assert sorted(fold.truth) == ["t1", "v1"] and fold.truth["t1"].tolist() == [[2, 4, 6, 8]]
    assert fold.classes == {"t1": "Lung Opacity", "v1": "Lung Opacity"}
    assert sorted(read_truth(root, split="train").truth) == ["t1", "t2"]
    assert sorted(read_truth(root).truth) == ["t1", "t2", "v1", "v2"]  # every labelled split
    with pytest.raises(UserError, match="split 'test' has no labels"):  # no test entry: the manifest's
        read_truth(root / "data.yaml", split="test")
    (root / "images" / "val" / "v2.png").unlink()  # a folder split still means the manifest's rows
    assert sorted(read_truth(root / "data.yaml", split="val").truth) == ["v1", "v2"]
    with pytest.raises(UserError, match=r"v2\.png: image listed in the manifest is missing"):
        split_images(*dataset_split(root / "data.yaml", "val"), "val")
    (root / "folds" / "fold1_val.txt").write_text(f"{root}/images/train/zz.png\n")
    with pytest.raises(UserError, match=r"fold1\.yaml: val: 1 image\(s\) not in .*manifest\.csv, e\.g\. zz"):
        read_truth(root / "folds" / "fold1.yaml", split="val")
