"""Network factory, model folders and the preprocessing shared by training and inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_livertumor.errors import ModelError
from napari_livertumor.models import (
    ModelMetadata,
    NetworkConfig,
    build_inference_network,
    build_training_network,
    load_model,
    make_untrained_model,
    read_metadata,
    save_model,
)
from napari_livertumor.models import preprocess as pp

TINY = NetworkConfig(out_channels=3, init_filters=4)
ROI = (16, 32, 32)


def _meta(stage="tumor", network=TINY):
    return ModelMetadata(
        stage=stage,
        network=network,
        hu_window=(-200.0, 250.0),
        target_spacing=(2.5, 1.5, 1.5),
        roi_size=ROI,
        label_map={"0": "background", "1": "liver", "2": "tumor"},
    )


# --------------------------------------------------------------------------- factory
def test_training_network_returns_logits_and_vae_loss_in_train_mode():
    torch.manual_seed(0)
    net = build_training_network(TINY, ROI).train()
    logits, vae_loss = net(torch.rand(2, 1, *ROI))
    assert logits.shape == (2, 3, *ROI)
    assert vae_loss.ndim == 0 and torch.isfinite(vae_loss)
    net.eval()
    with torch.no_grad():
        logits, vae_loss = net(torch.rand(1, 1, *ROI))
    assert vae_loss is None


def test_training_patch_must_be_divisible_by_eight():
    with pytest.raises(ValueError, match="divisible"):
        build_training_network(TINY, (15, 32, 32))


def test_unknown_network_field_is_refused():
    with pytest.raises(ValueError, match="unknown network fields"):
        NetworkConfig.from_dict({**TINY.to_dict(), "bogus": 1})


def test_blocks_up_of_another_length_than_blocks_down_less_one_is_refused():
    """A network's up path has one level fewer than its down path: another count (a recipe's
    or a model's edited blocks_up) is refused by name when the settings are read, before any
    network is built."""
    for up in ([1, 1], [1, 1, 1, 1]):
        with pytest.raises(ValueError, match="blocks_up needs one entry fewer than blocks_down"):
            NetworkConfig.from_dict({**TINY.to_dict(), "blocks_up": up})
    assert NetworkConfig.from_dict(TINY.to_dict()) == TINY


def test_trunk_loads_the_vae_weights_and_accepts_any_size(tmp_path):
    torch.manual_seed(1)
    vae = build_training_network(TINY, ROI).eval()
    save_model(tmp_path / "m", vae.state_dict(), _meta())
    loaded = load_model(tmp_path / "m", stage="tumor")
    x = torch.rand(1, 1, *ROI)
    with torch.no_grad():
        expected, _ = vae(x)
        got = loaded.network(x)
        other = loaded.network(torch.rand(1, 1, 24, 40, 56))
    torch.testing.assert_close(got, expected)
    assert other.shape == (1, 3, 24, 40, 56)
    assert not loaded.network.training


def test_a_saved_model_holds_the_trunk_only_not_the_training_vae_branch(tmp_path):
    """Inference never uses the VAE branch: save_model leaves it out of model.safetensors
    (its fully-connected layers would only make the file larger)."""
    from safetensors.torch import load_file

    vae = build_training_network(TINY, ROI)
    assert any(k.startswith("vae_") for k in vae.state_dict())
    save_model(tmp_path / "m", vae.state_dict(), _meta())
    stored = load_file(tmp_path / "m" / "model.safetensors")
    assert set(stored) == set(build_inference_network(TINY).state_dict())


def test_each_networks_settings_keep_their_own_trunk_names():
    """The trunk's parameter names are read once for each network settings: a network of
    other levels or another norm, after one read, keeps its own."""
    from napari_livertumor.models import trunk_state_dict

    shallow = NetworkConfig(out_channels=3, init_filters=4, blocks_down=(1, 2, 2), blocks_up=(1, 1))
    group = NetworkConfig(out_channels=3, init_filters=4, norm="group", norm_groups=2)
    for cfg in (TINY, group, shallow, TINY):
        vae = build_training_network(cfg, ROI).state_dict()
        assert set(trunk_state_dict(vae, cfg)) == set(build_inference_network(cfg).state_dict())


def test_half_precision_storage_loads_back_as_float32(tmp_path):
    vae = build_training_network(TINY, ROI)
    save_model(tmp_path / "m", vae.state_dict(), _meta(), half=True)
    loaded = load_model(tmp_path / "m")
    assert all(p.dtype == torch.float32 for p in loaded.network.parameters())


def test_half_precision_storage_writes_float16_weights(tmp_path):
    """half=True must store IEEE float16 (10-bit mantissa); bfloat16 keeps only 7 bits and
    would change the weights, and the masks, far more than the halved file promises."""
    from safetensors import safe_open

    vae = build_training_network(TINY, ROI)
    save_model(tmp_path / "m", vae.state_dict(), _meta(), half=True)
    [weights] = (tmp_path / "m").glob("*.safetensors")
    with safe_open(str(weights), framework="pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes
    assert torch.bfloat16 not in dtypes and torch.float32 not in dtypes


# --------------------------------------------------------------------------- group norm
def _monai_segresnet(seed: int, **kw):
    """A MONAI SegResNet as a researcher builds it (MONAI's defaults: group norm, 8 groups),
    its norm layers' scales and shifts drawn too (fresh, they are 1 and 0: the same net with
    or without them)."""
    from monai.networks.nets import SegResNet

    torch.manual_seed(seed)
    net = SegResNet(spatial_dims=3, in_channels=1, out_channels=2, **kw).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net


@pytest.mark.parametrize(
    ("monai_norm", "fields"),
    [
        (None, {}),  # MONAI's default, the metadata giving no count: MONAI's 8
        (None, {"norm_groups": 8}),
        (("GROUP", {"num_groups": 4}), {"norm_groups": 4}),
    ],
)
def test_a_monai_default_group_norm_segresnet_loads_and_gives_its_logits(
    tmp_path, monai_norm, fields
):
    """A SegResNet trained with MONAI's defaults (MONAI Label, a bundle, a script of one's
    own) could not be used: the metadata's norm took only instance or batch."""
    src = _monai_segresnet(0, **({} if monai_norm is None else {"norm": monai_norm}))
    # as docs/training.md, "Model folder format", writes a folder; then metadata.json as written
    # by hand (the network fields the file must give, norm_groups as given)
    cfg = NetworkConfig(out_channels=2, init_filters=8, norm="group", dropout_prob=None)
    meta = _meta("liver", cfg)
    meta.label_map = {"0": "background", "1": "liver"}
    folder = save_model(tmp_path / "liver", src.state_dict(), meta)
    d = json.loads((folder / "metadata.json").read_text())
    assert d["network"]["norm_groups"] == 8  # the count used, written out
    d["network"] = {
        **{k: d["network"][k] for k in ("in_channels", "out_channels", "init_filters")},
        **{k: d["network"][k] for k in ("blocks_down", "blocks_up", "norm")},
        **fields,
    }
    (folder / "metadata.json").write_text(json.dumps(d))
    loaded = load_model(folder, stage="liver")
    norms = [m for m in loaded.network.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and {m.num_groups for m in norms} == {fields.get("norm_groups", 8)}
    x = torch.randn(1, 1, 16, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x), src(x))
    assert loaded.metadata.network.groups == fields.get("norm_groups", 8)


def test_weights_of_one_norm_under_metadata_of_another_are_refused_and_named(tmp_path):
    """MONAI's instance norm has no weights, its group norm a scale and shift per layer:
    group-norm weights under instance-norm metadata (the only one taken before) or the
    reverse do not load, and the message says which norm the weights are."""
    group = NetworkConfig(out_channels=2, init_filters=8, norm="group")
    meta = _meta("liver", group)
    meta.label_map = {"0": "background", "1": "liver"}
    folder = save_model(tmp_path / "g", _monai_segresnet(1).state_dict(), meta)
    d = json.loads((folder / "metadata.json").read_text())
    d["network"]["norm"] = "instance"
    del d["network"]["norm_groups"]
    (folder / "metadata.json").write_text(json.dumps(d))
    with pytest.raises(
        ModelError, match=r"50 unexpected.*a group-norm network's.*set network norm to 'group'"
    ):
        load_model(folder)
    inst = NetworkConfig(out_channels=2, init_filters=8, norm="instance")
    meta.network = inst
    folder = save_model(tmp_path / "i", build_inference_network(inst).state_dict(), meta)
    d = json.loads((folder / "metadata.json").read_text())
    d["network"]["norm"] = "group"
    (folder / "metadata.json").write_text(json.dumps(d))
    with pytest.raises(ModelError, match=r"50 missing.*an instance-norm network's"):
        load_model(folder)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"norm_groups": 2.5}, "network norm_groups must be a whole number, got 2.5"),
        ({"norm_groups": "8"}, "network norm_groups must be a whole number, got '8'"),
        ({"norm_groups": True}, "network norm_groups must be a whole number, got True"),
        ({"norm_groups": 0}, "network norm_groups must be at least 1, got 0"),
        ({"init_filters": 12}, r"init_filters 12 is not divisible by norm_groups 8 \(MONAI's"),
        ({"norm_groups": 3}, "network init_filters 8 is not divisible by norm_groups 3"),
        ({"norm": "instance", "norm_groups": 4}, r"norm_groups \(4\) is for norm 'group' only"),
        ({"norm": "batch", "norm_groups": 8}, r"norm_groups \(8\) is for norm 'group' only"),
    ],
)
def test_group_norm_settings_a_network_cannot_take_are_refused_by_name(fields, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig.from_dict({"init_filters": 8, "norm": "group", **fields})


def test_group_norm_trains_with_counts_the_vae_branch_takes_and_old_networks_are_as_before():
    cfg = NetworkConfig.from_dict({**TINY.to_dict(), "norm": "group", "norm_groups": 2})
    torch.manual_seed(0)
    net = build_training_network(cfg, ROI).train()
    assert {m.num_groups for m in net.modules() if isinstance(m, torch.nn.GroupNorm)} == {2}
    logits, vae_loss = net(torch.rand(1, 1, *ROI))
    assert logits.shape == (1, 3, *ROI) and torch.isfinite(vae_loss)
    # 32 groups fit 32 filters (it loads), not the VAE branch's 16 channels: said, not a traceback
    wide = NetworkConfig.from_dict({"init_filters": 32, "norm": "group", "norm_groups": 32})
    build_inference_network(wide)
    with pytest.raises(ValueError, match="norm_groups 32 does not divide 16"):
        build_training_network(wide, ROI)
    # instance and batch networks' metadata as before: no norm_groups written or needed
    assert "norm_groups" not in TINY.to_dict()
    assert "norm_groups" not in NetworkConfig(norm="batch").to_dict()
    assert NetworkConfig.from_dict(TINY.to_dict()) == TINY


# --------------------------------------------------------------------------- model folders
@pytest.fixture
def model_dir(tmp_path):
    return make_untrained_model(tmp_path / "tumor", "tumor")


def test_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(ModelError, match="nowhere.*not found"):
        load_model(tmp_path / "nowhere")


def test_missing_metadata_is_reported(model_dir):
    (model_dir / "metadata.json").unlink()
    with pytest.raises(ModelError, match="metadata.json"):
        load_model(model_dir)


def test_missing_weights_are_reported(model_dir):
    (model_dir / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors.*missing"):
        load_model(model_dir)


def test_corrupt_weights_are_reported_not_unpickled(model_dir):
    (model_dir / "model.safetensors").write_bytes(b"\x80\x04garbage that is not safetensors")
    with pytest.raises(ModelError, match="model.safetensors.*corrupt"):
        load_model(model_dir)


def test_a_pytorch_pickle_in_place_of_the_weights_is_named_as_one(model_dir):
    torch.save({"w": torch.zeros(2)}, model_dir / "model.safetensors")
    with pytest.raises(ModelError, match="looks like a PyTorch checkpoint.*never loaded"):
        load_model(model_dir)
    import io
    import pickle

    legacy = io.BytesIO()  # torch.save(..., _use_new_zipfile_serialization=False): a pickle
    pickle.dump({"w": [0.0]}, legacy, protocol=2)
    (model_dir / "model.safetensors").write_bytes(legacy.getvalue())
    with pytest.raises(ModelError, match="looks like a PyTorch checkpoint"):
        load_model(model_dir)


def test_a_truncated_safetensors_file_is_not_called_a_pickle(model_dir):
    """A header of 1664 bytes starts the file with 80 06: taken for a pickle's first byte,
    a truncated model was "a PyTorch checkpoint ... save its state_dict with safetensors"."""
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (1664 - len(header))
    data = struct.pack("<Q", len(header)) + header + b"\0" * 8
    assert data[:2] == b"\x80\x06"
    (model_dir / "model.safetensors").write_bytes(data[:1000])  # cut short
    with pytest.raises(ModelError, match="corrupt.*cut short") as info:
        load_model(model_dir)
    assert "PyTorch checkpoint" not in str(info.value)
    # cut anywhere inside the header: "invalid header length" before; 4 bytes: "too small"
    for size in (20, 4):
        (model_dir / "model.safetensors").write_bytes(data[:size])
        with pytest.raises(ModelError, match="the file is cut short"):
            load_model(model_dir)


@pytest.mark.parametrize("bad", ["nan", "inf", "int"])
def test_weights_that_no_trained_network_has_are_refused(model_dir, bad):
    """NaN weights (a diverged run) gave 'no liver found', blaming the scan; whole-number
    weights gave no tumor without a word."""
    from safetensors.torch import load_file, save_file

    sd = load_file(str(model_dir / "model.safetensors"))
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    if bad == "int":
        sd[key] = sd[key].to(torch.int32)
        match = "whole numbers.*not weights"
    else:
        sd[key] = sd[key].clone()
        sd[key].view(-1)[0] = float(bad)
        match = "NaN or infinite values.*diverged"
    save_file(sd, str(model_dir / "model.safetensors"))
    with pytest.raises(ModelError, match=f"model.safetensors.*{match}"):
        load_model(model_dir)


def test_a_newer_releases_model_with_unknown_settings_is_refused(model_dir):
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["version"] = "9.0.0"
    assert read_metadata(model_dir).stage == "tumor"  # newer, nothing unknown: fine
    meta["calibration_v9"] = {"temperature": 1.3}
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="newer than this.*calibration_v9.*update"):
        read_metadata(model_dir)
    for version in ("0.0.1", "0.1.0rc1", "0.1.dev3"):  # older, or a pre-release: loads, and
        meta["version"] = version  # the field it does not know is warned of
        (model_dir / "metadata.json").write_text(json.dumps(meta))
        with pytest.warns(UserWarning, match="'calibration_v9' unknown to napari-livertumor"):
            assert read_metadata(model_dir).stage == "tumor"


def test_truncated_weights_are_reported(model_dir):
    data = (model_dir / "model.safetensors").read_bytes()
    (model_dir / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="model.safetensors"):
        load_model(model_dir)


def test_a_cut_short_or_unreadable_weights_file_is_said_in_plain_words(model_dir, monkeypatch):
    """safetensors said "incomplete metadata" (read as metadata.json) of a cut file, and
    "No such file or directory" of one that could not be read."""
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelError, match="cut short: an incomplete copy") as info:
        load_model(model_dir)
    assert "metadata" not in str(info.value).split("model.safetensors", 1)[1]
    from napari_livertumor.models import checkpoint

    def denied(path, *args, **kwargs):  # a file without read permission (the tests run as root)
        if str(path) == str(weights):
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    with pytest.raises(ModelError, match="model.safetensors: Permission denied"):
        load_model(model_dir)


def test_weights_holding_more_than_the_described_network_are_refused(model_dir):
    """metadata.json edited to blocks_down [1, 2, 2, 2] loaded the shipped [1, 2, 2, 4]
    weights cut to that network: another segmentation, no word. The training network's own
    VAE branch is still left out (test_trunk_loads_the_vae_weights...)."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["network"]["blocks_down"] = [1, 2, 2, 2]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    # said before a network is built, by the tensors' names
    with pytest.raises(ModelError, match=r"do not match.*hold blocks_down \[1, 2, 2, 4\]"):
        load_model(model_dir)
    meta["network"]["blocks_down"] = [1, 2, 2, 4, 2]
    meta["network"]["blocks_up"] = [1, 1, 1, 1]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"metadata.json says \[1, 2, 2, 4, 2\], \[1, 1, 1, 1\]"):
        load_model(model_dir)


@pytest.mark.parametrize(
    ("blocks_down", "blocks_up"),
    [([1, 2, 2, 100000], [1, 1, 1]), ([1] * 12, [1] * 11)],
)
def test_a_network_beyond_any_this_tool_makes_is_refused_before_it_is_built(
    model_dir, blocks_down, blocks_up, monkeypatch
):
    """blocks_down [1, 2, 2, 100000] or twelve levels in an edited metadata.json built
    gigabytes (or for minutes) and ended in torch's 'can't allocate memory' traceback."""
    from napari_livertumor.models import checkpoint

    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["network"]["blocks_down"], meta["network"]["blocks_up"] = blocks_down, blocks_up
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    built = []
    monkeypatch.setattr(checkpoint, "build_inference_network", lambda *a: built.append(a))
    with pytest.raises(ModelError, match="metadata.json.*beyond 8 levels of at most 32 blocks"):
        load_model(model_dir)
    assert not built


def test_a_network_that_cannot_be_built_is_said_not_a_traceback(model_dir, monkeypatch):
    from napari_livertumor.models import checkpoint

    def out_of_memory(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: can't allocate memory"
        )

    monkeypatch.setattr(checkpoint, "build_inference_network", out_of_memory)
    with pytest.raises(
        ModelError,
        match="metadata.json: the network it describes cannot be built here .*can't allocate",
    ):
        load_model(model_dir)


def test_model_for_the_other_stage_is_refused(model_dir):
    with pytest.raises(ModelError, match="tumor model; a liver model is needed"):
        load_model(model_dir, stage="liver")


def test_weights_that_do_not_fit_the_declared_network(model_dir):
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["network"]["init_filters"] = 8
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="model.safetensors.*do not match"):
        load_model(model_dir)


def test_broken_metadata_json_is_reported(model_dir):
    (model_dir / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError, match="metadata.json.*unreadable"):
        read_metadata(model_dir)
    (model_dir / "metadata.json").write_text(json.dumps({"stage": "tumor"}))
    with pytest.raises(ModelError, match="incomplete"):
        read_metadata(model_dir)


def test_logit_bias_round_trips_and_a_wrong_length_is_refused(model_dir):
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert read_metadata(model_dir).logit_bias is None  # absent: plain argmax
    meta["logit_bias"] = [0.0, 0.0, -1.5]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    assert read_metadata(model_dir).logit_bias == (0.0, 0.0, -1.5)
    meta["logit_bias"] = [0.0, -1.5]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="logit_bias needs 3"):
        read_metadata(model_dir)


def test_inference_network_has_no_vae_branch():
    names = set(build_inference_network(TINY).state_dict())
    assert not any(n.startswith("vae_") for n in names)


# --------------------------------------------------------------------------- preprocess
def test_hu_window_maps_to_unit_interval():
    out = pp.window_hu(np.array([-1000, -200, 25, 250, 3000], np.int16), (-200, 250))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])
    assert out.dtype == np.float32


def test_stage_grid_covers_the_same_field_of_view():
    assert pp.stage_shape((200, 512, 512), (2.5, 0.8, 0.8), (4.0, 3.0, 3.0)) == (125, 137, 137)
    assert pp.stage_shape((1, 4, 4), (2.5, 0.8, 0.8), (4.0, 3.0, 3.0)) == (1, 1, 1)
    # a header's rounding of the spacing does not move the grid by a voxel (81.5 either way)
    assert pp.stage_shape((163, 1, 1), (2.4999997, 1, 1), (5.0, 1, 1))[0] == 82
    assert pp.stage_shape((163, 1, 1), (2.5, 1, 1), (5.0, 1, 1))[0] == 82
    assert pp.stage_shape((161, 1, 1), (2.5, 1, 1), (5.0, 1, 1))[0] == 81  # 80.5: up too


def test_resampling_keeps_a_constant_and_a_ramp():
    const = np.full((10, 20, 30), 0.25, np.float32)
    np.testing.assert_allclose(pp.resample(const, (4, 7, 45)), 0.25, atol=1e-6)
    ramp = np.broadcast_to(np.arange(12, dtype=np.float32)[:, None, None], (12, 3, 3)).copy()
    down = pp.resample(ramp, (4, 3, 3))
    np.testing.assert_allclose(down[:, 0, 0], [1, 4, 7, 10])  # centres of 3-voxel bins


def test_stage_input_is_prepared_on_the_devices_own_grid_when_it_grows():
    """A stage grid finer than the CT (5 mm slices for the tumor stage's 2.5 mm, coarse pixels)
    is interpolated on the device that holds the CT: the coordinates were left on the CPU and
    CUDA refused them. Here on torch's "meta" device, with CUDA's rule checked on every torch
    call (its in-place operations do not check it themselves): no tensor of another device,
    a CPU scalar (0-dim) apart."""
    from torch.overrides import TorchFunctionMode

    class OneDevice(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            held = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
            devices = {a.device for a in held if a.dim() > 0 or a.device.type != "cpu"}
            assert len(devices) <= 1, f"{func.__name__} on {devices}"
            return func(*args, **kwargs)

    ct = np.full((8, 12, 12), 40, np.int16)
    with OneDevice():
        for shape in ((16, 12, 12), (8, 30, 30), (16, 20, 6)):  # z grows; y, x grow; mixed
            out = pp.prepare_stage_input(ct, shape, (-200, 250), device=torch.device("meta"))
            assert out.device.type == "meta" and tuple(out.shape) == shape
        t = torch.zeros((4, 5, 6), device="meta")
        assert tuple(pp.resample(t, (9, 2, 11)).shape) == (9, 2, 11)


def test_a_fill_outside_the_liver_the_ct_s_integers_cannot_hold_is_used_as_given():
    """A model's outside_hu of -40000 (metadata allows ±100 000) on an int16 CT, or -1000 on
    an unsigned one (training reads a NIfTI in its stored type): an OverflowError."""
    mask = np.zeros((4, 6, 6), bool)
    mask[:, 2:4, 2:4] = True
    for dtype, fill in ((np.int16, -40000.0), (np.uint16, -1000.0)):
        ct = np.full((4, 6, 6), 100, dtype)
        out = pp.prepare_stage_input(ct, (4, 6, 6), (-50000, 250), mask=mask, outside_hu=fill)
        inside = (100 + 50000) / 50250
        np.testing.assert_allclose(out[mask].numpy(), inside, rtol=1e-6)
        np.testing.assert_allclose(out[~mask].numpy(), (fill + 50000) / 50250, rtol=1e-6)


def test_mask_survives_the_trip_to_the_stage_grid_and_back():
    z, y, x = np.ogrid[:20, :60, :60]
    src = ((z - 10) / 7) ** 2 + ((y - 30) / 20) ** 2 + ((x - 28) / 15) ** 2 <= 1
    low_shape = (10, 20, 20)
    score = pp.resample(torch.from_numpy(src.astype(np.float32)), low_shape) - 0.5
    out = np.zeros(src.shape, np.uint8)
    region = pp.stage_region((score > 0).numpy(), src.shape)
    pp.upsample_mask(score, src.shape, out, region=region, chunk=7)
    dice = 2 * (out.astype(bool) & src).sum() / (out.sum() + src.sum())
    assert dice > 0.97


def test_label_resampling_picks_the_majority_class():
    labels = np.zeros((2, 4, 6), np.uint8)
    labels[:, :, 1:] = 2  # x bins of 3 voxels: [0, 2, 2] and [2, 2, 2]
    labels[:, 2:, 4:] = 1  # lower right: [1, 1] of 3 in the second bin
    out = pp.resample_labels(labels, (1, 2, 2), n_classes=3)
    assert out.tolist() == [[[2, 2], [2, 1]]]


def test_label_resampling_splits_exact_ties_evenly():
    """A stage voxel's centre halfway between two slices (10 mm slices on a 4 mm grid) is a
    tie: it went to the background, and a slab lost 2 mm of its thickness on average."""
    kept = []
    for start in range(2, 6):
        labels = np.zeros((20, 4, 40), np.uint8)
        labels[start : start + 3] = 1  # 30 mm thick
        out = pp.resample_labels(labels, pp.stage_shape(labels.shape, (10, 0.6, 0.6), (4, 3, 3)), 2)
        kept.append(out[:, 0, :].sum(axis=0).mean() * 4.0)
    assert np.mean(kept) == pytest.approx(30.0, abs=0.5)


def test_ensemble_averages_its_members_and_refuses_what_does_not_fit(tmp_path, capsys):
    """``livertumor ensemble`` writes one folder whose output is the members' mean logits; members
    of another recipe, a single member, an existing output and an ensemble as --init are refused."""
    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1, logit_bias=(0.0, 0.0, 1.0))
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    assert main(["ensemble", str(tmp_path / "ens"), str(a), str(b)]) == 0
    assert "ensemble of 2 networks" in capsys.readouterr().out
    ens = load_model(tmp_path / "ens", stage="tumor")
    assert ens.metadata.members == 2 and list(ens.metadata.logit_bias) == [0.0, 0.0, 0.5]
    assert ens.metadata.training["ensemble_of"] == [str(a.resolve()), str(b.resolve())]
    x = torch.randn(1, 1, 16, 32, 48)  # any size, like a single trunk
    with torch.no_grad():
        want = (load_model(a).network(x) + load_model(b).network(x)) / 2
        got = ens.network(x)
    assert torch.allclose(got, want, atol=1e-5)
    # the ensemble runs through the pipeline like any tumor model
    from napari_livertumor.io import CTVolume
    from napari_livertumor.pipeline import InferenceConfig, Segmenter

    liver = make_untrained_model(tmp_path / "liver", "liver")
    seg = Segmenter(
        InferenceConfig(liver_model=liver, tumor_model=tmp_path / "ens", device="cpu"),
    )
    ct = CTVolume(np.full((24, 64, 64), 60, np.int16), spacing=(5.0, 4.0, 4.0))
    res = seg.segment(ct)
    assert res.labels.shape == ct.array.shape

    with pytest.raises(ModelError, match="already there"):
        make_ensemble(tmp_path / "ens", [a, b])
    make_ensemble(tmp_path / "ens", [a, b], force=True)
    with pytest.raises(ModelError, match="at least two"):
        make_ensemble(tmp_path / "one", [a])
    capsys.readouterr()
    assert main(["ensemble", str(tmp_path / "one"), str(a)]) == 2  # a usage error (cli.md)
    assert "needs at least two different model folders" in capsys.readouterr().err
    assert main(["ensemble", str(tmp_path / "one"), str(a), str(a)]) == 2  # the same one twice
    assert "needs at least two different model folders" in capsys.readouterr().err
    # each field that differs with both values (the names alone sent the user to both files),
    # and a liver model beside a tumor model said as that, not as 7 fields that differ
    other = make_untrained_model(
        tmp_path / "c", "tumor", target_spacing=(3.0, 3.0, 3.0), hu_window=(-100.0, 300.0)
    )
    mine = read_metadata(a)
    with pytest.raises(ModelError, match="not one recipe") as refused:
        make_ensemble(tmp_path / "bad", [a, other])
    assert "hu_window [-100, 300] vs " + json.dumps([int(v) for v in mine.hu_window]) in str(
        refused.value
    )
    assert "target_spacing [3, 3, 3] vs " in str(refused.value)
    liver_b = make_untrained_model(tmp_path / "lb", "liver")
    with pytest.raises(ModelError, match="is a liver model and .* a tumor model") as refused:
        make_ensemble(tmp_path / "bad", [a, liver_b])
    assert "network" not in str(refused.value)
    with pytest.raises(ModelError, match="itself an ensemble"):
        make_ensemble(tmp_path / "bad", [tmp_path / "ens", a])
    assert main(["ensemble", str(tmp_path / "x"), str(a), str(tmp_path / "missing")]) != 0
    assert "missing" in capsys.readouterr().err


def test_an_ensemble_stopped_while_replacing_a_model_leaves_no_mismatched_folder(
    tmp_path, monkeypatch
):
    """Stopped between its weights and its metadata, --force left the ensemble's weights
    beside the old model's metadata: a folder that no longer loaded ("33 missing")."""
    from napari_livertumor.models import checkpoint
    from napari_livertumor.models.ensemble import make_ensemble

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    out = make_untrained_model(tmp_path / "out", "tumor", seed=3)  # the model replaced
    (out / "split.json").write_text(json.dumps({"train": ["X"], "test": ["Y"]}))
    real = checkpoint.atomic_write_bytes

    def stop_at_metadata(path, data, *args, **kwargs):
        if path.name == "metadata.json":
            raise KeyboardInterrupt
        return real(path, data, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", stop_at_metadata)
    with pytest.raises(KeyboardInterrupt):
        make_ensemble(out, [a, b], force=True)
    monkeypatch.undo()
    with pytest.raises(ModelError, match="metadata"):  # no model there: never a mismatched one
        load_model(out)
    assert not (out / "split.json").exists() or "Y" not in (out / "split.json").read_text()
    make_ensemble(out, [a, b], force=True)  # --force finishes the job
    assert load_model(out).metadata.members == 2


def test_an_ensemble_keeps_a_shift_and_lesion_filter_all_its_members_share(tmp_path, capsys):
    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble

    kw = dict(logit_bias=(0.0, 0.0, 2.0))
    a = make_untrained_model(tmp_path / "a", "tumor", seed=1, **kw)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2, **kw)
    for folder in (a, b):
        meta = read_metadata(folder)
        meta.lesion_filter = {"min_ml": 0.1, "min_peak": 2.0}
        (folder / "metadata.json").write_text(json.dumps(meta.to_dict()))
    make_ensemble(tmp_path / "same", [a, b])
    same = read_metadata(tmp_path / "same")
    assert list(same.logit_bias) == [0.0, 0.0, 2.0]
    assert same.lesion_filter == {"min_ml": 0.1, "min_peak": 2.0}
    c = make_untrained_model(tmp_path / "c", "tumor", seed=3, logit_bias=(0.0, 0.0, 1.0))
    make_ensemble(tmp_path / "mixed", [a, c])
    mixed = read_metadata(tmp_path / "mixed")
    # differing shifts: their mean, which averages the members as each segments (dropped, the
    # ensemble ran unshifted and found less tumor than either member); no shared lesion filter
    assert list(mixed.logit_bias) == [0.0, 0.0, 1.5] and mixed.lesion_filter is None
    assert mixed.training["member_logit_bias"] == [[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]]
    ens = load_model(tmp_path / "mixed")
    x = torch.rand(1, 1, 16, 32, 32)
    shifted = [
        load_model(m).network(x) + torch.tensor(read_metadata(m).logit_bias).view(1, -1, 1, 1, 1)
        for m in (a, c)
    ]
    with torch.no_grad():
        mine = ens.network(x) + torch.tensor(mixed.logit_bias).view(1, -1, 1, 1, 1)
        torch.testing.assert_close(mine, (shifted[0] + shifted[1]) / 2, atol=1e-4, rtol=1e-4)
    # no shift and a zero shift are the same shift
    z = make_untrained_model(tmp_path / "z", "tumor", seed=4, logit_bias=(0.0, 0.0, 0.0))
    n = make_untrained_model(tmp_path / "n", "tumor", seed=5)
    assert main(["ensemble", str(tmp_path / "zero"), str(z), str(n)]) == 0
    said = capsys.readouterr().out
    assert "differ" not in said and "no logit shift" in said, said
    assert read_metadata(tmp_path / "zero").logit_bias is None
    # the same shift, other lesion filters: the shift is kept, the filter is the default one
    meta = read_metadata(b)
    meta.lesion_filter = {"min_ml": 0.1, "min_peak": 4.0}
    (b / "metadata.json").write_text(json.dumps(meta.to_dict()))
    assert main(["ensemble", str(tmp_path / "filters"), str(a), str(b)]) == 0
    said = capsys.readouterr().out
    assert "the members' lesion filters differ" in said and "calibrate_lesions.py" in said
    assert "shared logit shift [0, 0, 2] is kept" in said
    filters = read_metadata(tmp_path / "filters")
    assert list(filters.logit_bias) == [0.0, 0.0, 2.0] and filters.lesion_filter is None
    assert main(["ensemble", str(tmp_path / "shifts"), str(a), str(c)]) == 0
    assert "the members' logit shifts differ: it adds their mean [0, 0, 1.5]" in (
        capsys.readouterr().out
    )


def test_ensemble_refuses_outputs_that_would_lose_something(tmp_path, capsys, caplog):
    """A member as OUT (its weights replaced), a models root, a folder of other files and a file
    are refused with the reason; twins (the same weights twice) are allowed with a warning."""
    import logging
    import shutil

    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    weights_a = (a / "model.safetensors").read_bytes()
    with pytest.raises(ModelError, match="one of the members"):
        make_ensemble(a, [a, b], force=True)
    assert (a / "model.safetensors").read_bytes() == weights_a
    root = tmp_path / "root"
    shutil.copytree(a, root / "tumor")
    make_untrained_model(root / "liver", "liver")
    with pytest.raises(ModelError, match="models root"):
        make_ensemble(root, [a, b], force=True)
    notes = tmp_path / "occupied"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="not empty"):
        make_ensemble(notes, [a, b])
    a_file = tmp_path / "notafolder.txt"
    a_file.write_text("{}")
    assert main(["ensemble", str(a_file), str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "notafolder.txt" in err and "Traceback" not in err
    twin = tmp_path / "twin"
    shutil.copytree(a, twin)
    with caplog.at_level(logging.WARNING):
        make_ensemble(tmp_path / "twins", [a, twin])
    assert "same weights" in caplog.text
    # members that validated poorly still warn as an ensemble (their mean score)
    from napari_livertumor.pipeline import model_quality_warning

    for folder, score in ((a, 0.12), (b, 0.16)):
        meta = read_metadata(folder)
        meta.metrics = {"score": score, "n_val": 10 if folder == a else 4, "n_val_with_class": 4}
        (folder / "metadata.json").write_text(json.dumps(meta.to_dict()))
    make_ensemble(tmp_path / "weak", [a, b])
    said = model_quality_warning(load_model(tmp_path / "weak"))
    assert "an ensemble of 2" in said and "mean validation Dice of 0.14 on 4 validation" in said
    # a member none of whose validation patients had tumor (its 0 a convention) is left out of
    # the mean; it silenced the warning for the whole ensemble
    meta = read_metadata(b)
    meta.metrics = {"score": 0.0, "n_val": 2, "n_val_with_class": 0}
    (b / "metadata.json").write_text(json.dumps(meta.to_dict()))
    make_ensemble(tmp_path / "weak2", [a, b])
    said = model_quality_warning(load_model(tmp_path / "weak2"))
    assert "mean validation Dice of 0.12 on 10 validation" in said
    meta = read_metadata(a)  # b's metadata over a's weights: refused (weights_sha1)
    meta.metrics = {"score": 0.0, "n_val": 2, "n_val_with_class": 0}
    (a / "metadata.json").write_text(json.dumps(meta.to_dict()))
    make_ensemble(tmp_path / "weak3", [a, b])
    assert model_quality_warning(load_model(tmp_path / "weak3")) is None  # no score at all
    # one folder twice is a typo, not an ensemble; an output inside a member is refused
    with pytest.raises(ModelError, match="given twice"):
        make_ensemble(tmp_path / "dup", [a, tmp_path / "x" / ".." / "a"])
    with pytest.raises(ModelError, match="inside the member"):
        make_ensemble(a / "sub", [a, b])
    assert not (a / "sub").exists() and not (tmp_path / "dup").exists()
    # a training run's folder: its last/ would go on training over the ensemble
    run = tmp_path / "run"
    shutil.copytree(a, run)
    (run / "last").mkdir()
    with pytest.raises(ModelError, match="holds a training run"):
        make_ensemble(run, [a, b], force=True)
    # a model with its split, replaced: the split (of the model that is gone) goes too
    replaced = tmp_path / "replaced"
    shutil.copytree(a, replaced)
    (replaced / "split.json").write_text('{"train": [], "test": ["HCC_001"]}')
    (replaced / "MODEL_CARD.md").write_text("# Model card: default tumor model")
    make_ensemble(replaced, [a, b], force=True)
    assert not (replaced / "split.json").exists()
    assert not (replaced / "MODEL_CARD.md").exists()  # it described the model replaced


def test_ensemble_never_replaces_a_model_of_the_other_stage(tmp_path, capsys):
    """--force replaced a liver model with a tumor ensemble ("wrote RA3/liver: tumor ensemble"),
    the liver model gone; and a folder named liver/ took a tumor ensemble, which segment then
    refused as its models root's liver model. Both are refused, the old model kept."""
    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    held = make_untrained_model(tmp_path / "RA3" / "keep", "liver")
    weights = (held / "model.safetensors").read_bytes()
    assert main(["ensemble", "--force", str(held), str(a), str(b)]) == 1
    err = capsys.readouterr().err
    assert "holds a liver model, and this is a tumor ensemble" in err and str(held) in err
    assert "even with --force" in err and "wrote" not in err
    assert read_metadata(held).stage == "liver"
    assert (held / "model.safetensors").read_bytes() == weights
    # a folder named for the other stage: refused, new or holding a model of the ensemble's
    with pytest.raises(ModelError, match=r"is named liver/, and this is a tumor ensemble"):
        make_ensemble(tmp_path / "models" / "liver", [a, b])
    assert not (tmp_path / "models" / "liver" / "metadata.json").exists()
    la = make_untrained_model(tmp_path / "la", "liver", seed=1)
    lb = make_untrained_model(tmp_path / "lb", "liver", seed=2)
    with pytest.raises(ModelError, match=r"is named Tumor/, and this is a liver ensemble"):
        make_ensemble(tmp_path / "models" / "Tumor", [la, lb])
    # its own stage's folder, and a same-stage model replaced with --force: as before
    make_ensemble(tmp_path / "models" / "tumor", [a, b])
    make_ensemble(tmp_path / "models" / "tumor", [a, b], force=True)
    make_ensemble(held, [la, lb], force=True)
    assert read_metadata(held).members == 2


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("hu_window", [250, -150], "hu_window must be two finite values, low < high"),
        # a window of no width: every HU mapped by a division by zero
        ("hu_window", [50, 50], "hu_window must be two finite values, low < high"),
        ("target_spacing", [0, 3.5, 3.5], "target_spacing must be three positive sizes"),
        ("roi_size", [0, 0, 0], "roi_size must be three sizes, each a positive multiple"),
        ("roi_size", [16, 30, 32], "roi_size must be three sizes, each a positive multiple"),
        ("roi_size", [16.5, 32, 32], "roi_size must hold whole numbers"),
        ("roi_size", ["16", 32, 32], "roi_size must hold whole numbers"),
        ("mask_outside_liver", "false", "mask_outside_liver must be true or false"),
        ("outside_hu", "abc", "outside_hu must be a finite number"),
        ("roi_margin_mm", -40, "roi_margin_mm must lie between 0 and 1000"),
        ("roi_margin_mm", 1e12, "roi_margin_mm must lie between 0 and 1000"),
        ("outside_hu", -1e9, "outside_hu must lie between -100000 and 100000"),
        ("hu_window", [-1e308, 1e308], "hu_window must lie within ±100000 HU"),
        ("label_map", {"0": "tumor", "1": "Tumor", "2": "tumor"}, "names 'tumor' for more"),
        ("roi_margin_mm", None, "roi_margin_mm must be a finite number"),
        ("label_map", ["background", "liver"], "label_map must map output channels"),
        ("label_map", {"0": "background", "7": "liver"}, "label_map entry '7'"),
        # one past the last of the network's 3 channels: the tumor read from a channel
        # the output does not have
        ("label_map", {"0": "background", "1": "liver", "3": "tumor"}, "label_map entry '3'"),
        ("label_map", {"liver": "1"}, "label_map entry 'liver'"),
        ("members", 1.5, "members must hold whole numbers"),
        ("target_spacing", [500, 3.5, 3.5], "target_spacing must lie between 0.2 and 20 mm"),
        ("target_spacing", [2.5, 0.01, 0.01], "target_spacing must lie between 0.2 and 20 mm"),
        # MONAI refused these only when building the network (a traceback), and fine-tuning
        # read the summaries as objects (another)
        ("network", {"norm": "layer"}, "network norm must be one of"),
        # group norm with MONAI's 8 groups over TINY's 4 filters: GroupNorm's traceback
        ("network", {"norm": "group"}, r"init_filters 4 is not divisible by norm_groups 8"),
        ("network", {"norm_groups": 2}, r"norm_groups \(2\) is for norm 'group' only"),
        ("network", {"dropout_prob": 1.5}, "network dropout_prob must be at least 0 and below 1"),
        # (a dropout of 1 zeroes every activation it is applied to)
        ("network", {"dropout_prob": 1.0}, "network dropout_prob must be at least 0 and below 1"),
        ("training", ["a list"], "training must be an object of fields, not list"),
        ("metrics", "good", "metrics must be an object of fields, not str"),
        # a string read one character a value; sizes that built gigabytes before the weights
        # were compared; one output channel (no softmax) crashed the pipeline per case
        ("logit_bias", "12", "logit_bias must be a list of numbers"),
        ("hu_window", "-150", "hu_window must be a list of numbers"),
        ("network", {"init_filters": 256}, "init_filters 256 is beyond 128"),
        ("members", 400, "members must be from 1 to 64"),
        ("network", {"out_channels": 1}, "out_channels must be at least 2"),
        # a null read as "'NoneType' object is not iterable"; true read as 1 mm; a map
        # without the stage's class: the pipeline took the last channel, unsaid
        ("target_spacing", None, "missing field.*target_spacing"),
        ("target_spacing", [True, 2, 2], "target_spacing must hold numbers, got True"),
        ("lesion_filter", {"min_ml": True}, "lesion_filter min_ml must hold numbers"),
        ("lesion_filter", {"min_peak": -0.5}, "lesion_filter values must be finite and >= 0"),
        ("label_map", {"0": "background", "1": "liver", "2": "lesion"}, "names no 'tumor'.*class$"),
        # a liver model's folder stamped 'tumor': said so
        ("label_map", {"0": "background", "1": "liver"}, "is a liver model's: is 'stage' wrong"),
        ("weights_sha1", "ABC", "weights_sha1 must be 40 lower-case hex digits"),
        ("target_spacing", ["2", "2", "2"], "target_spacing must hold numbers, got '2'"),
        ("hu_window", [None, 250], "hu_window must hold numbers, got None"),
    ],
)
def test_metadata_values_the_pipeline_cannot_use_are_refused_on_load(model_dir, key, value, match):
    """They failed later, per case, with a division by zero or a tensor size mismatch."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta[key] = {**meta[key], **value} if key == "network" else value
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=match) as info:
        read_metadata(model_dir)
    assert "metadata.json" in str(info.value)


def test_weights_swapped_under_another_models_metadata_are_refused(tmp_path):
    """Weights of the same shapes loaded silently under metadata calibrated for others."""
    import hashlib

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    for folder in (a, b):  # save_model records the SHA-1 of the bytes it wrote
        sha = hashlib.sha1((folder / "model.safetensors").read_bytes()).hexdigest()
        assert read_metadata(folder).weights_sha1 == sha
        assert load_model(folder).metadata.weights_sha1 == sha
    (a / "model.safetensors").write_bytes((b / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="not the weights this model's metadata.json was") as e:
        load_model(a)
    assert str(a / "model.safetensors") in str(e.value)
    assert "delete the weights_sha1 line" in str(e.value)
    meta = json.loads((a / "metadata.json").read_text())
    del meta["weights_sha1"]  # the way out the message gives: loads, unchecked
    (a / "metadata.json").write_text(json.dumps(meta))
    assert load_model(a).metadata.weights_sha1 is None


def test_weights_narrower_than_metadata_says_are_refused_before_building(model_dir):
    """init_filters edited from 4 to 64 built the network (gigabytes for larger values) before
    the weights were found not to fit."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    was = meta["network"].get("init_filters", 8)
    meta["network"]["init_filters"] = was * 2
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(
        ModelError, match=rf"first layer is \[{was}, 1, 3, 3, 3\].* says \[{was * 2}, 1, 3, 3, 3\]"
    ):
        load_model(model_dir)
    meta["network"]["init_filters"] = was
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    from safetensors.torch import load_file, save_file

    weights = model_dir / "model.safetensors"
    sd = load_file(str(weights))
    good = dict(sd)
    sd["convInit.conv.weight"] = sd["convInit.conv.weight"].reshape(-1)[:1]  # a damaged tensor
    save_file(sd, str(weights))
    with pytest.raises(ModelError, match=r"first layer is \[1\]"):  # (an IndexError before)
        load_model(model_dir)
    save_file(good, str(weights))
    meta["members"] = 3
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="says 3 members; the weights hold 0"):
        load_model(model_dir)


def test_model_folder_mistakes_are_said_plainly(tmp_path, capsys):
    """A metadata.json without 'stage' gave Python's "__init__() missing 1 required positional
    argument"; a file for a folder gave "model folder not found"; --stage both with one
    model's folder named <folder>/liver as missing."""
    import json

    from napari_livertumor.cli import main

    a = make_untrained_model(tmp_path / "a", "liver", seed=1)
    meta = json.loads((a / "metadata.json").read_text())
    del meta["stage"]
    (a / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"missing field\(s\) stage"):
        read_metadata(a)
    (tmp_path / "recipe.json").write_text("{}")
    with pytest.raises(ModelError, match="not a folder: a model is a folder"):
        read_metadata(tmp_path / "recipe.json")
    b = make_untrained_model(tmp_path / "b", "liver", seed=1)
    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stage", "both",
               "--init", str(b)])  # fmt: skip
    assert rc == 1
    assert (
        "is one model; --stage both starts from a folder holding liver/" in capsys.readouterr().err
    )


def test_a_models_root_or_a_file_where_a_model_folder_goes_is_named_as_such(tmp_path, capsys):
    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble

    root = tmp_path / "root"
    make_untrained_model(root / "liver", "liver")
    make_untrained_model(root / "tumor", "tumor")
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    with pytest.raises(ModelError, match="holds liver/ and tumor/ \\(a models root\\): give its "):
        make_ensemble(tmp_path / "ens", [root, b])
    # a root of one stage's model (a fine-tune of the tumor alone): named as it is
    make_untrained_model(tmp_path / "mine" / "tumor", "tumor")
    with pytest.raises(
        ModelError, match="holds tumor/ \\(a models root\\): give its tumor/ folder"
    ):
        make_ensemble(tmp_path / "ens", [tmp_path / "mine", b])
    from napari_livertumor.io.nifti import write_nifti
    from napari_livertumor.io.volume import CTVolume

    write_nifti(CTVolume(np.zeros((4, 8, 8), np.int16)), tmp_path / "a.nii.gz")
    (tmp_path / "list.csv").write_text("path\na.nii.gz\n")
    assert main(["segment", str(tmp_path / "a.nii.gz"), "--models", str(tmp_path / "list.csv"),
                 "-o", str(tmp_path / "o")]) == 1  # fmt: skip
    assert "list.csv: is a file: --models takes the folder" in capsys.readouterr().err


def test_ensemble_refuses_a_runs_last_checkpoint_and_keeps_a_weak_members_warning(tmp_path, capsys):
    """`livertumor ensemble OUT runA/tumor runB/tumor/last` took the resume checkpoint (no
    calibrated shift, no validation score): the ensemble's shift was the calibrated one averaged
    with 0, its metadata lost `metrics.score`, and `segment --models OUT` no longer warned
    "expect unreliable masks" as runA/tumor alone did. A member without a score (a run with no
    validation patients) dropped that warning the same way."""
    import shutil

    from napari_livertumor.cli import main
    from napari_livertumor.models.ensemble import make_ensemble
    from napari_livertumor.pipeline import model_quality_warning

    weak = {"score": 0.11, "n_val": 1, "n_val_with_class": 1}
    a = make_untrained_model(
        tmp_path / "runA" / "tumor", "tumor", seed=1, logit_bias=(0.0, 0.0, 3.0), metrics=weak
    )
    b = make_untrained_model(
        tmp_path / "runB" / "tumor", "tumor", seed=2, logit_bias=(0.0, 0.0, 1.5), metrics=weak
    )
    last = make_untrained_model(
        b / "last", "tumor", seed=3, metrics={"note": "last checkpoint (epoch)"}
    )
    (last / "train_state.pt").write_bytes(b"state")
    out = tmp_path / "ens"
    assert main(["ensemble", str(out), str(a), str(last)]) == 1
    err = capsys.readouterr().err
    assert "last/ checkpoint" in err and "--resume" in err, err
    assert f"saved best model ({b})" in err and "Traceback" not in err, err
    assert not (out / "metadata.json").exists()
    # a copy of last/ as written (no train_state.pt, still no shift nor score) is refused too
    copy = tmp_path / "copy"
    shutil.copytree(last, copy, ignore=shutil.ignore_patterns("train_state.pt"))
    with pytest.raises(ModelError, match="last/ checkpoint"):
        make_ensemble(out, [a, copy])
    # a member with no score leaves the mean to the scored ones: the warning stays
    unscored = make_untrained_model(
        tmp_path / "noval", "tumor", seed=4, metrics={"note": "no validation patients"}
    )
    make_ensemble(out, [a, unscored])
    metrics = read_metadata(out).metrics
    assert metrics["score"] == pytest.approx(0.11) and "1 of 2 members" in metrics["score_is"]
    said = model_quality_warning(load_model(out))
    assert said and "expect unreliable masks" in said, said


def test_an_ensemble_carries_its_members_shared_test_split(tmp_path, caplog):
    """No split.json came with an ensemble: evaluate scored every patient, the members'
    training patients included."""
    import json

    from napari_livertumor.models.ensemble import make_ensemble
    from napari_livertumor.training.data import read_split

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    (a / "split.json").write_text(json.dumps({"train": ["HCC_001"], "val": ["HCC_002"],
                                               "test": ["HCC_009"]}))  # fmt: skip
    (b / "split.json").write_text(json.dumps({"train": ["HCC_003"], "val": ["HCC_001"],
                                               "test": ["HCC_009"]}))  # fmt: skip
    make_ensemble(tmp_path / "ens", [a, b])
    split = read_split(tmp_path / "ens" / "split.json")
    assert split["test"] == ["HCC_009"] and set(split["train"]) == {"HCC_001", "HCC_002", "HCC_003"}

    (b / "split.json").write_text(json.dumps({"train": ["HCC_004"], "test": ["HCC_002"]}))
    with caplog.at_level("WARNING"):
        make_ensemble(tmp_path / "ens2", [a, b])
    assert "not tested on one shared set of patients" in caplog.text
    # no shared test list, but who trained a member is kept: evaluate names those patients
    # (without the file, HCC_004, trained on by b, was scored as held out, unsaid)
    split = read_split(tmp_path / "ens2" / "split.json", require_train=False)
    assert split["test"] == [] and set(split["train"]) == {"HCC_001", "HCC_002", "HCC_004"}
    from napari_livertumor.training.evaluate import _seen_in_training

    (tmp_path / "root").mkdir()
    (tmp_path / "ens2").rename(tmp_path / "root" / "tumor")
    seen = _seen_in_training(["HCC_004", "HCC_009"], tmp_path / "root", {})
    assert seen == {"tumor": ["HCC_004"]}
    # members without splits: no file (nothing to tell)
    (a / "split.json").unlink()
    (b / "split.json").unlink()
    make_ensemble(tmp_path / "ens3", [a, b])
    assert not (tmp_path / "ens3" / "split.json").exists()


def test_members_trained_with_other_settings_are_warned_of(tmp_path, caplog):
    """Members of another learning rate were combined without a word (the ensemble records the
    first's recipe); folds' own settings (fold, seed, where they ran) are no warning."""
    import json

    from napari_livertumor.models.ensemble import make_ensemble

    folders = []
    for i, lr in enumerate((1e-3, 2e-3, 1e-3)):
        folder = make_untrained_model(tmp_path / f"m{i}", "tumor", seed=i)
        meta = json.loads((folder / "metadata.json").read_text())
        meta["training"] = {"config": {"lr": lr, "fold": i, "seed": i, "out": f"runs/f{i}"}}
        (folder / "metadata.json").write_text(json.dumps(meta))
        folders.append(folder)
    with caplog.at_level("WARNING"):
        make_ensemble(tmp_path / "ab", folders[:2])
    assert "the members were trained with other settings (lr)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        make_ensemble(tmp_path / "ac", [folders[0], folders[2]])
    assert "other settings" not in caplog.text


def test_an_ensemble_is_never_written_over_a_shipped_model(tmp_path, monkeypatch):
    """`ensemble --force resources/models/tumor A B` replaced the shipped tumor model (training
    into that folder was refused)."""
    import shutil

    import napari_livertumor.models.checkpoint as checkpoint
    from napari_livertumor.models.ensemble import make_ensemble

    shipped = tmp_path / "shipped"  # a copy stands for it: a broken guard must not write there
    shutil.copytree(checkpoint.default_model_dir("tumor"), shipped / "tumor")
    monkeypatch.setattr(checkpoint, "default_model_dir", lambda stage: shipped / stage)
    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    before = (shipped / "tumor" / "metadata.json").read_bytes()
    with pytest.raises(ModelError, match="shipped default model's folder"):
        make_ensemble(shipped / "tumor", [a, b], force=True)
    assert (shipped / "tumor" / "metadata.json").read_bytes() == before


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_each_shipped_model_card_names_its_weights_by_their_digest(stage):
    """The card's SHA-1 ties a segment run's model_stamps (and evaluate's weights_sha1) to it."""
    import hashlib
    import re

    from napari_livertumor.models import default_model_dir
    from napari_livertumor.provenance import file_digest

    folder = default_model_dir(stage)
    sha = hashlib.sha1((folder / "model.safetensors").read_bytes()).hexdigest()
    card = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert re.search(rf"`model.safetensors` SHA-1 `{sha}`", card)
    assert file_digest(folder / "model.safetensors") == sha  # evaluate's, whole
    assert read_metadata(folder).weights_sha1 == sha  # and load_model checks the pair


def test_weights_brought_from_elsewhere_are_told_what_a_model_folder_needs(tmp_path, caplog):
    """A MONAI-trained network's folder: weights without metadata.json were 'holds no liver/ or
    tumor/ model folder'; a torch.save file beside metadata.json was 'missing
    model.safetensors', with no word of why the .pt was not taken."""
    import shutil

    from napari_livertumor.models import make_untrained_model
    from napari_livertumor.pipeline import InferenceConfig

    made = make_untrained_model(tmp_path / "liver", "liver")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(made / "model.safetensors", alone / "model.safetensors")
    with pytest.raises(ModelError, match=r"holds weights \(model.safetensors\) but no metadata"):
        InferenceConfig.from_models_dir(alone)
    pt = tmp_path / "pt"
    pt.mkdir()
    shutil.copy(made / "metadata.json", pt / "metadata.json")
    torch.save({"w": torch.zeros(1)}, pt / "model.pt")
    with pytest.raises(ModelError, match=r"model.pt here: PyTorch checkpoints are never loaded"):
        load_model(pt)
    # one liver model with --stages liver: no tumor model is used, so none is said to be
    caplog.clear()
    with caplog.at_level("WARNING"):
        InferenceConfig.from_models_dir(made, stages="liver")
    assert "the shipped tumor model is used" not in caplog.text
    with caplog.at_level("WARNING"):
        InferenceConfig.from_models_dir(made)
    assert "is one liver model: the shipped tumor model is used with it" in caplog.text


# --------------------------------------------------------------------------- metadata.json fields
@pytest.mark.parametrize(
    ("key", "value", "meant"),
    [
        ("mask_outside_livers", True, "mask_outside_liver"),  # the tumor stage ran unmasked
        ("logit_biases", [0.0, 0.0, -4.0], "logit_bias"),  # 1580 mL of tumor for 11
        ("Lesion_Filter", {"min_ml": 0.5}, "lesion_filter"),
    ],
)
def test_a_misspelt_metadata_field_is_refused_with_the_field_meant(model_dir, key, value, meant):
    """A misspelt setting was dropped without a word, and the model ran without it."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta[key] = value
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=rf"metadata.json.*'{key}'.*did you mean '{meant}'\?"):
        read_metadata(model_dir)
    # a later release's settings are still said as such, not as typos
    meta["version"] = "99.0.0"
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=f"newer than this.*{key}.*update"):
        read_metadata(model_dir)


def test_an_unknown_metadata_field_is_warned_of_and_notes_are_not(model_dir, recwarn):
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["#"] = "a comment"
    meta["_notes"] = {"by": "me"}
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    assert read_metadata(model_dir).stage == "tumor"
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    meta["my_extra_key"] = 1
    meta["train"] = {}  # like "training", not enough to be taken for it: warned, with a guess
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="metadata.json.*'my_extra_key', 'train'.*not used") as w:
        assert load_model(model_dir).metadata.stage == "tumor"
    assert "did you mean 'training' for 'train'?" in str(w[0].message)


def test_every_metadata_the_package_writes_loads_without_a_warning(tmp_path):
    """Shipped models, save_model (training), ensembles and the calibration writers."""
    import shutil
    import warnings

    from napari_livertumor.models import default_model_dir
    from napari_livertumor.models.ensemble import make_ensemble
    from napari_livertumor.training.calibrate import write_lesion_filter, write_shift

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stage in ("liver", "tumor"):
            shipped = default_model_dir(stage)
            if (shipped / "metadata.json").is_file():
                assert read_metadata(shipped).stage == stage
                # and with every field written out as the package writes them
                raw = json.loads((shipped / "metadata.json").read_text())
                assert set(raw) <= set(ModelMetadata.__dataclass_fields__)
        make_ensemble(tmp_path / "ens", [a, b])
        assert load_model(tmp_path / "ens").metadata.members == 2
        c = tmp_path / "c"
        shutil.copytree(a, c)
        write_shift(c, -1.0, {"grid": [0.0], "mean": [0.5], "per_case": [[0.5]]}, "a test")
        write_lesion_filter(c, [0.5, 2.0, 0.25], {"measured_on": "a test"})
        assert load_model(c).metadata.lesion_filter == {"min_ml": 0.25, "min_peak": 2.0}


def test_a_model_taking_more_than_one_input_channel_is_refused_on_load(tmp_path):
    """It loaded, then every case failed with torch's 'expected input[...] to have 2
    channels, but got 1 channels instead'."""
    cfg = NetworkConfig(in_channels=2, out_channels=3, init_filters=4)
    folder = save_model(
        tmp_path / "in2", build_inference_network(cfg).state_dict(), _meta(network=cfg)
    )
    with pytest.raises(ModelError, match=r"metadata.json.*network.in_channels is 2.*one input"):
        load_model(folder)


@pytest.mark.parametrize("field", ["init_filters", "out_channels", "blocks_down", "norm"])
def test_a_network_field_missing_from_metadata_is_named_not_defaulted(model_dir, field):
    """A missing init_filters took the default 8, and the mismatch was then said as
    'metadata.json says [8, 1, 3, 3, 3]', a value the file does not hold; a missing
    out_channels took 2 and loaded when it happened to fit."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    del meta["network"][field]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=rf"metadata.json.*missing field\(s\) network.{field}"):
        load_model(model_dir)
    # the fields that play no part at inference may be left out; a training recipe's
    # network takes defaults for all
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["network"][field] = TINY.to_dict()[field]
    for optional in ("dropout_prob", "vae_nz", "vae_estimate_std", "vae_default_std"):
        del meta["network"][optional]
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    assert load_model(model_dir).metadata.network.init_filters == TINY.init_filters
    assert NetworkConfig.from_dict({"init_filters": 16}).out_channels == 2


def test_a_renamed_weights_file_is_pointed_at(model_dir):
    weights = model_dir / "model.safetensors"
    weights.rename(model_dir / "weights.safetensors")
    with pytest.raises(
        ModelError,
        match=r"missing model.safetensors \(weights.safetensors here: rename it model.safetensors",
    ):
        load_model(model_dir)


def test_weights_torch_cannot_allocate_are_out_of_memory_not_corrupt(model_dir, monkeypatch):
    """QA s49fixrev: out of memory while the models load is said as out of memory (the
    command says it, with what to do), not "corrupt or unreadable weights"."""
    torch_said = (
        "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
        "memory: you tried to allocate 442368 bytes. Error code 12 (Cannot allocate memory)"
    )

    def out_of_memory(data):
        raise RuntimeError(torch_said)

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load", out_of_memory)
    with pytest.raises(RuntimeError, match="can't allocate memory") as info:
        load_model(model_dir)
    assert not isinstance(info.value, ModelError)


@pytest.mark.parametrize(
    ("key", "meant"),
    [("weights_sha256", "weights_sha1"), ("versions", "version"), ("metric", "metrics"),
     ("trainings", "training")],
)  # fmt: skip
def test_a_near_miss_of_a_descriptive_field_is_warned_of_not_refused(model_dir, key, meant):
    """QA s49fixrev: "weights_sha256", "versions", "metric" refused the whole model with "a
    misspelt field is not used, which changes the results": false of a field that changes no
    result. Warned of, as other unknown keys are; a near-miss of a setting is still refused."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta[key] = "x"
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=rf"'{key}' unknown .*not used.*'{meant}' for '{key}'"):
        assert read_metadata(model_dir).stage == "tumor"
    meta["roi_sizes"] = [8, 8, 8]  # a setting's near-miss beside it: refused
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"'roi_sizes' \(did you mean 'roi_size'\?\)"):
        read_metadata(model_dir)


@pytest.mark.parametrize("prefix", ["module.", "model.", "module.model."])
def test_weights_saved_from_a_wrapper_are_told_which_prefix_to_take_off(model_dir, prefix):
    """QA models58: weights saved from DataParallel ("module.") or a Lightning module's
    self.model ("model."), or both ("module.model.": a Lightning module trained under DDP),
    got "33 missing (e.g. convInit.conv.weight); 33 unexpected (e.g. model.down_layers…)",
    with nothing to say why. The prefix is named with how to take it off (and the folder so
    mended loads)."""
    from safetensors.torch import load_file, save_file

    weights = model_dir / "model.safetensors"
    sd = load_file(weights)
    save_file({prefix + k: v for k, v in sd.items()}, weights)
    meta = json.loads((model_dir / "metadata.json").read_text())
    del meta["weights_sha1"]  # (the file was rewritten: its digest would be said first)
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=rf"every tensor name starts with '{prefix}'") as info:
        load_model(model_dir)
    said = str(info.value)
    assert "missing" not in said and f"k.removeprefix('{prefix}')" in said
    # the line it gives, run: the folder loads
    code = said.split("`")[1]
    exec(code, {})  # noqa: S102 - the message's own Python line
    assert load_model(model_dir).metadata.stage == "tumor"


def test_an_ensemble_saved_from_a_wrapper_is_told_which_prefix_to_take_off(tmp_path, capsys):
    """An ensemble folder whose weights were saved from DataParallel (members.0. under
    module.) was refused as "metadata.json says 2 members; the weights hold 0": both members
    are there, under the wrapper's prefix. The prefix is named with how to take it off (and
    the folder so mended loads)."""
    from safetensors.torch import load_file, save_file

    from napari_livertumor.cli import main

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    assert main(["ensemble", str(tmp_path / "ens"), str(a), str(b)]) == 0
    capsys.readouterr()
    weights = tmp_path / "ens" / "model.safetensors"
    save_file({"module." + k: v for k, v in load_file(weights).items()}, weights)
    meta = json.loads((tmp_path / "ens" / "metadata.json").read_text())
    del meta["weights_sha1"]  # (the file was rewritten: its digest would be said first)
    (tmp_path / "ens" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="every tensor name starts with 'module.'") as info:
        load_model(tmp_path / "ens")
    said = str(info.value)
    assert "members.0.convInit.conv.weight" in said and "weights hold 0" not in said
    assert "weights do not match" not in said
    # `segment --list`'s check (no network built) says it in the same words
    from napari_livertumor.models.checkpoint import check_model_folder

    with pytest.raises(ModelError) as listed:
        check_model_folder(tmp_path / "ens")
    assert str(listed.value) == said
    exec(said.split("`")[1], {})  # noqa: S102 - the message's own Python line
    assert load_model(tmp_path / "ens").metadata.members == 2


def test_an_ensemble_missing_a_member_is_said_so_by_the_run_and_by_list(tmp_path, capsys):
    """QA rev59b: an ensemble whose weights hold one of its two members got "33 missing"
    from the run (it said "metadata.json says 2 members; the weights hold 1" before), and
    `--list` advice to take 'members.0.' off as a wrapper's prefix, which made it worse."""
    from safetensors.torch import load_file, save_file

    from napari_livertumor.cli import main
    from napari_livertumor.models.checkpoint import check_model_folder

    a = make_untrained_model(tmp_path / "a", "tumor", seed=1)
    b = make_untrained_model(tmp_path / "b", "tumor", seed=2)
    assert main(["ensemble", str(tmp_path / "ens"), str(a), str(b)]) == 0
    capsys.readouterr()
    weights = tmp_path / "ens" / "model.safetensors"
    save_file({k: v for k, v in load_file(weights).items() if k.startswith("members.0.")}, weights)
    meta = json.loads((tmp_path / "ens" / "metadata.json").read_text())
    del meta["weights_sha1"]
    (tmp_path / "ens" / "metadata.json").write_text(json.dumps(meta))
    for check in (load_model, check_model_folder):
        with pytest.raises(ModelError, match="metadata.json says 2 members; the weights hold 1"):
            check(tmp_path / "ens")


def test_list_reads_bfloat16_weights_for_nan_as_the_run_does(model_dir):
    """QA rev59b: `--list` passed bfloat16 weights holding NaN (numpy has no bfloat16: not
    looked at), which the run refuses at once."""
    import hashlib

    from safetensors.torch import load_file, save_file

    from napari_livertumor.models.checkpoint import check_model_folder

    weights = model_dir / "model.safetensors"
    sd = {k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}
    meta = json.loads((model_dir / "metadata.json").read_text())
    save_file(sd, weights)
    meta["weights_sha1"] = hashlib.sha1(weights.read_bytes()).hexdigest()
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    assert check_model_folder(model_dir).stage == "tumor"  # finite: passes
    first = sorted(sd)[0]
    sd[first] = sd[first].clone()
    sd[first].view(-1)[0] = float("inf")
    save_file(sd, weights)
    meta["weights_sha1"] = hashlib.sha1(weights.read_bytes()).hexdigest()
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    for check in (load_model, check_model_folder):
        with pytest.raises(ModelError, match=r"1 tensor\(s\) hold NaN or infinite values"):
            check(model_dir)


@pytest.mark.parametrize(
    ("prefix", "found"),
    [("module.", "module."), ("model.", "model."), ("module.model.", "module.model."),
     ("net.", "net."), ("", None), ("a.b.c.d.", None)],
)  # fmt: skip
def test_wrapper_prefix_is_told_alike_from_the_network_and_from_the_names_alone(prefix, found):
    """`segment --list` tells a wrapper's prefix from the tensor names alone (no torch), the
    run from the built network's names: the two must agree, or --list says "segment" of a
    folder the run refuses (a "net." prefix did: --list looked for module./model. only).
    Names without one, or under more than three parts, are not a wrapper's."""
    from napari_livertumor.models.checkpoint import _wrapper_prefix, _wrapper_prefix_by_name

    net = build_inference_network(NetworkConfig(out_channels=3, init_filters=8))
    sd = {prefix + k: v for k, v in net.state_dict().items()}
    sd[prefix + "vae_fc1.weight"] = torch.zeros(1)  # (the VAE branch, kept beside the trunk)
    assert _wrapper_prefix_by_name(list(sd)) == found
    assert _wrapper_prefix(net, sd) == found


def _group_norm_folder(tmp_path, groups_used, groups_trained):
    cfg = NetworkConfig(out_channels=2, init_filters=8, norm="group", norm_groups=4)
    meta = _meta("liver", cfg)
    meta.label_map = {"0": "background", "1": "liver"}
    meta.training = {"config": {"network": cfg.to_dict(), "stage": "liver"}}
    folder = save_model(tmp_path / "liver", build_inference_network(cfg).state_dict(), meta)
    d = json.loads((folder / "metadata.json").read_text())
    if groups_used is None:
        del d["network"]["norm_groups"]
    else:
        d["network"]["norm_groups"] = groups_used
    d["training"]["config"]["network"]["norm_groups"] = groups_trained
    (folder / "metadata.json").write_text(json.dumps(d))
    return folder


@pytest.mark.parametrize(
    ("used", "said"), [(8, "is 8"), (2, "is 2"), (None, "is not given, so MONAI's default 8")]
)
def test_a_group_count_other_than_the_one_trained_with_is_refused_naming_both(tmp_path, used, said):
    """QA models58: the same group-norm weights found a 14920 mL liver with the 4 groups they
    were trained with, 20907 mL with norm_groups 8 or with the key removed, 9164 mL with 2:
    no error, no note, though metadata.json's training.config says 4."""
    folder = _group_norm_folder(tmp_path, used, 4)
    with pytest.raises(
        ModelError,
        match=rf"network.norm_groups {said}.*training.config.network.norm_groups.*is 4",
    ):
        read_metadata(folder)
    # the count it was trained with loads
    folder = _group_norm_folder(tmp_path / "same", 4, 4)
    assert load_model(folder).metadata.network.groups == 4


@pytest.mark.parametrize("version", ["banana", 2, "", pytest.param("2", id="text-2")])
def test_a_version_that_is_not_a_release_is_warned_of(model_dir, version):
    """QA models58: "version": "banana" and "version": 2 loaded without a word; a newer
    release's settings are refused by the version, which then cannot be read. A release is
    major.minor[.patch] as save_model writes it: "2" alone (a format number?) is none, and
    read as release 2 it would pass for a newer release than this one."""
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["version"] = version
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with pytest.warns(
        UserWarning, match=rf"version {version!r} is not a napari-livertumor release"
    ):
        assert load_model(model_dir).metadata.stage == "tumor"


def test_a_model_folder_that_cannot_be_entered_is_named_not_a_file_in_it(model_dir, monkeypatch):
    """QA models58: a model folder with mode 000 was said as "tumor/metadata.json: Permission
    denied", a file the user could not see was there; the folder is what cannot be read."""
    from _permissions import deny_entering

    deny_entering(monkeypatch, model_dir)
    with pytest.raises(ModelError, match="this folder cannot be read") as info:
        load_model(model_dir)
    assert info.value.path == model_dir
