import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, need
from ltdd_utils.checks import ConfigError
from ltdd_utils.data import DatasetNotFoundError, load_dataset, resolve_dataset
from ltdd_utils.data.longtail import class_groups, longtail_counts, longtail_indices, make_longtail


@need("MNIST/raw")
@pytest.mark.parametrize("name, n_train", [("mnist", 60000), ("fashionmnist", 60000)])
def test_idx_datasets_load(name, n_train):
    tr, te = load_dataset(name, train=True), load_dataset(name, train=False)
    assert tr.images.shape == (n_train, 1, 28, 28) and tr.images.dtype == torch.uint8
    assert te.images.shape == (10000, 1, 28, 28) and len(tr.classes) == 10
    assert te.class_counts() == [1000] * 10 if name == "fashionmnist" else sum(te.class_counts()) == 10000


@need("cifar10-jpeg")
def test_cifar10_jpeg_folder_in_official_order():
    tr = load_dataset("cifar10", train=True)
    assert tr.images.shape == (50000, 3, 32, 32) and "JPEG" in tr.source
    assert tr.class_counts() == [5000] * 10 and tr.classes[0] == "airplane"
    clean = np.load(SHARED_DATA / "CIFAR-10N" / "CIFAR-10_human.npz")["clean_label"]
    assert (tr.labels.numpy() == clean).all()       # official training order, as CIFAR-10N needs
    assert load_dataset("cifar10", train=False).class_counts() == [1000] * 10


def test_digits_needs_no_files(tmp_path):
    tr, te = load_dataset("digits", tmp_path, True), load_dataset("digits", tmp_path, False)
    assert len(tr) + len(te) == 1797 and tr.images.max() == 255


def test_missing_dataset_names_files_and_root(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path) in msg and "train-images-idx3-ubyte.gz" in msg and "LTDD_DATA" in msg


def test_auto_falls_back_to_fashionmnist(tmp_path):
    (tmp_path / "FashionMNIST").symlink_to(SHARED_DATA / "FashionMNIST")
    assert resolve_dataset("auto", tmp_path, download=False) == "fashionmnist"


def test_longtail_counts_match_ltdd_table():
    assert longtail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(longtail_counts(5000, 10, 10)) == 20431
    assert sum(longtail_counts(5000, 10, 200)) == 11203
    assert longtail_counts(5000, 10, 1) == [5000] * 10


def test_longtail_split_is_seeded_and_recorded():
    labels = torch.arange(10).repeat_interleave(100)
    a, b, c = (longtail_indices(labels, 10, seed=s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.bincount(labels[a]).tolist() == longtail_counts(100, 10, 10)
    assert len(set(a.tolist())) == len(a)            # without replacement


def test_make_longtail_keeps_indices_into_the_full_split():
    tr = load_dataset("digits", train=True)
    lt = make_longtail(tr, 10, seed=0)
    assert lt.class_counts() == longtail_counts(min(tr.class_counts()), 10, 10)
    assert torch.equal(tr.labels[lt.indices], lt.labels)
    sub = lt.subset([0, 5])
    assert torch.equal(tr.labels[sub.indices], sub.labels)


def test_class_groups():
    counts = longtail_counts(5000, 10, 100)
    assert class_groups(counts) == {"many": [0, 1, 2], "medium": [3, 4, 5, 6], "few": [7, 8, 9]}
    g = class_groups([500, 150, 100, 50, 20, 19, 5], "shots")
    assert g == {"many": [0, 1], "medium": [2, 3, 4], "few": [5, 6]}


def test_tinyimagenet_folder_layout(tmp_path, monkeypatch):
    """A miniature tiny-imagenet-200 tree made here: train/<wnid>/images, val/images + val_annotations.txt."""
    from PIL import Image
    monkeypatch.setenv("LTDD_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (base).mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids))
    (base / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
    ann = []
    for k, w in enumerate(wnids):
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (64, 64), (100 * k, 50, 20 * i)).save(base / "train" / w / "images" / f"{w}_{i}.JPEG")
        (base / "val" / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (100 * k, 0, 0)).save(base / "val" / "images" / f"val_{k}.JPEG")
        ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann))
    tr = load_dataset("tinyimagenet", tmp_path, train=True)
    te = load_dataset("tinyimagenet", tmp_path, train=False)
    assert tr.images.shape == (6, 3, 64, 64) and tr.class_counts() == [3, 3]
    assert te.labels.tolist() == [0, 1] and tr.classes == ["goldfish", "European fire salamander"]
    assert int(tr.images[3, 0].float().mean()) in range(95, 106)     # second class is the red-100 one


def test_a_seeded_tail_order_assigns_the_profile_by_rank():
    from ltdd_utils.data.longtail import held_out, tail_order
    tr = load_dataset("digits", train=True)
    assert tail_order(10) == list(range(10))
    order = tail_order(10, seed=0)
    assert sorted(order) == list(range(10)) and order != list(range(10)) and order == tail_order(10, seed=0)
    lt = make_longtail(tr, 10, seed=0, n_max=100, order=order)
    counts = lt.class_counts()
    assert [counts[c] for c in order] == longtail_counts(100, 10, 10)
    assert class_groups(counts)["many"] == sorted(order[:3]) and class_groups(counts)["few"] == sorted(order[-3:])
    with pytest.raises(ConfigError, match="permutation"):
        make_longtail(tr, 10, order=[0] * 10)
    val = held_out(tr, [lt], 20)
    assert val.class_counts() == [20] * 10 and not set(val.indices.tolist()) & set(lt.indices.tolist())
    with pytest.raises(ConfigError, match="val_per_class"):
        held_out(tr, [lt], 10_000)


@need("cifar10-jpeg")
def test_a_packed_data_root_keeps_the_first_images_per_class_and_says_so(tmp_path):
    """pack-data: the first N training images of each class in the official order, the whole test set, and a data
    source (so a fingerprint and every record) that names the subset; bad input fails before copying."""
    from ltdd_utils.data.pack import pack
    sizes = pack(tmp_path / "root", 3, datasets=["cifar10"])
    assert 0 < sizes["cifar10"] < 20e6
    full, sub = load_dataset("cifar10", train=True), load_dataset("cifar10", tmp_path / "root", train=True)
    first = torch.cat([(full.labels == c).nonzero().flatten()[:3] for c in range(10)]).sort().values
    assert len(sub) == 30 and sub.class_counts() == [3] * 10
    assert torch.equal(sub.images, full.images[first]) and torch.equal(sub.labels, full.labels[first])
    assert "packed subset: the first 3 training images" in sub.source and sub.fingerprint() != full.subset(first).fingerprint()
    assert len(load_dataset("cifar10", tmp_path / "root", train=False)) == 10000
    with pytest.raises(ConfigError, match="per_class"):
        pack(tmp_path / "bad", 0)
    with pytest.raises(ConfigError, match="datasets"):
        pack(tmp_path / "bad", 3, datasets=["imagenet"])
    pack(tmp_path / "small", 3, datasets=["cifar10"], test_per_class=5)
    test = load_dataset("cifar10", tmp_path / "small", train=False)
    assert test.class_counts() == [5] * 10 and "first 5 test images of each class" in test.source


def test_chapter_00_ranks_the_classes_per_seed_and_keeps_its_balanced_control(tmp_path):
    """With PERMUTE_CLASSES two seeds give the head to different classes (the same profile of counts), the class
    groups follow the seed's ranking, and the balanced control of the most imbalanced split's size is one split."""
    from ltdd_utils.config import make_config
    from ltdd_utils.experiment import Run
    from ltdd_utils.studies.longtail_baselines import Study
    st = Study(Run(make_config("longtail_baselines", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path),
                               seeds=[0, 1])))
    a, b = (st.split(st.hi, s).class_counts() for s in (0, 1))
    assert sorted(a) == sorted(b) and a != b
    assert a.index(max(a)) == st.order(0)[0] and b.index(max(b)) == st.order(1)[0]
    assert st.groups(0)["many"] != st.groups(1)["many"] or st.groups(0)["few"] != st.groups(1)["few"]
    assert st.split(st.control, 0) is not None and torch.equal(st.split(st.control, 0).indices,
                                                               st.split(st.control, 1).indices)
    fixed = Study(Run(make_config("longtail_baselines", "smoke", cache_dir=str(tmp_path), results_dir=str(tmp_path),
                                  seeds=[0, 1], permute_classes=False)))
    assert fixed.split(fixed.hi, 0).class_counts() == fixed.split(fixed.hi, 1).class_counts()
