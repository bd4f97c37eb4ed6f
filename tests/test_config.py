import pytest
import torch

from ltdd_utils.config import ConfigError, chapter_names, describe, make_config, notebook_config, presets, rate, resolve_device


def test_presets_validate():
    assert "longtail_baselines" in chapter_names()
    for preset in presets("longtail_baselines"):
        cfg = make_config("longtail_baselines", preset, check_data=False)
        assert cfg.preset == preset and cfg.ipc >= 1


def test_override_beats_preset_and_is_case_insensitive():
    cfg = make_config("longtail_baselines", "smoke", IPC=7, seeds=(3, 4), check_data=False)
    assert cfg.ipc == 7 and cfg.seeds == [3, 4]


@pytest.mark.parametrize("kw, fragment", [
    ({"IPCC": 3}, "did you mean 'IPC'"),
    ({"ipc": 0}, "'ipc' = 0"),
    ({"imbalance_factors": [1, 0.5]}, "imbalance_factors[1]"),
    ({"dataset": "cifar11"}, "did you mean 'cifar10'"),
    ({"model": "resnet99"}, "'model' = 'resnet99'"),
    ({"seeds": []}, "'seeds'"),
    ({"eval_aug": "mixup"}, "'eval_aug'"),
    ({"device": "tpu:0"}, "'device'"),
])
def test_bad_parameters_raise_clear_errors(kw, fragment):
    with pytest.raises(ConfigError) as e:
        make_config("longtail_baselines", "smoke", check_data=False, **kw)
    assert fragment in str(e.value)


def test_unknown_preset_and_chapter():
    with pytest.raises(ConfigError, match="preset"):
        make_config("longtail_baselines", "tpu")
    with pytest.raises(ConfigError, match="chapter"):
        make_config("longtail_baseline", "cpu")


def test_rate_check():
    rate("noise_rate", 0.0)
    rate("noise_rate", 0.6)
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ConfigError, match=r"\[0, 1\)"):
            rate("noise_rate", bad)


def test_notebook_config_catches_misspelt_injected_name():
    ns = {"PRESET": "smoke", "IPC": None, "IMBALANCE_FACTOR": [10], "In": [], "torch": torch, "_x": 1}
    with pytest.raises(ConfigError, match="did you mean 'IMBALANCE_FACTORS'"):
        notebook_config("longtail_baselines", ns, check_data=False)
    ns.pop("IMBALANCE_FACTOR")
    assert notebook_config("longtail_baselines", ns, check_data=False).ipc == 2   # None keeps the preset


def test_missing_dataset_fails_at_config_time(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        make_config("longtail_baselines", "smoke", dataset="fashionmnist", data_root=str(tmp_path))


def test_device_and_describe():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda")
    assert "IPC" in describe("longtail_baselines")
