import inspect

import pytest

from seqrec.config import (
    DataConfig,
    RunConfig,
    apply_overrides,
    config_hash,
    from_dict,
    profile,
    to_dict,
    valid_keys,
)
from seqrec.data.lastfm import read_events


def test_overrides_parse_by_field_type():
    cfg = apply_overrides(profile("thesis"), ["lr=0.01", "seq_len=5", "retrain=false",
                                              "ks=1,10", "model.name=dnc", "item_key=mbid"])
    assert cfg.train.lr == 0.01
    assert cfg.data.seq_len == 5
    assert cfg.train.retrain is False
    assert cfg.eval.ks == (1, 10)
    assert cfg.model.name == "dnc"
    assert cfg.data.item_key == "mbid"
    # untouched fields keep the thesis defaults
    assert cfg.data.threshold == 20 and cfg.model.hidden_size == 1000


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ValueError, match="valid keys: .*seq_len"):
        apply_overrides(RunConfig(), ["seqlen=5"])


def test_bad_values_are_clear_errors():
    with pytest.raises(ValueError, match="seq_len"):
        apply_overrides(RunConfig(), {"seq_len": 1})
    with pytest.raises(ValueError, match="expected a value of type"):
        apply_overrides(RunConfig(), ["epochs=many"])
    with pytest.raises(ValueError, match="unknown profile"):
        profile("huge")
    with pytest.raises(ValueError, match="item_key"):
        DataConfig(item_key="isrc")
    with pytest.raises(ValueError, match="memory_cells"):
        apply_overrides(RunConfig(), ["memory_cells=0"])
    with pytest.raises(ValueError, match="input_dropout"):
        apply_overrides(RunConfig(), ["input_dropout=1.0"])
    with pytest.raises(ValueError, match="controller_clip"):
        apply_overrides(RunConfig(), ["controller_clip=-1"])
    with pytest.raises(ValueError, match="interface_clip"):
        apply_overrides(RunConfig(), ["interface_clip=-0.5"])


def test_flat_keys_are_unique_across_sections():
    keys = valid_keys()
    assert len(keys) == len(set(keys))


def test_hash_is_stable_and_sensitive():
    a, b = profile("smoke"), profile("smoke")
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(apply_overrides(a, {"threshold": 3}))
    assert from_dict(to_dict(a)) == a
    assert config_hash(from_dict(to_dict(a))) == config_hash(a)


@pytest.mark.parametrize("setting", [
    "eval_batch_size=0", "weight_decay=-1", "user_weight_decay=-0.5", "grad_clip=-1",
    "seed=-1", "lr=nan", "lr=inf", "batch_size=0", "epochs=0", "patience=-1", "seeds=0",
    "train_frac=1.0", "threshold=-1", "chunks=0", "ks=0", "ties=random",
])
def test_every_setting_is_validated_before_any_work(setting):
    # eval_batch_size=0 used to fail only after training ("range() arg 3 must not be zero")
    # and weight_decay=-1 was accepted.
    key = setting.split("=")[0]
    with pytest.raises(ValueError, match=key):
        apply_overrides(RunConfig(), [setting])


def test_the_readers_default_item_key_is_the_configs():
    # Before, read_events keyed items by title alone unless told otherwise while DataConfig
    # defaults to artist + title: two defaults for one setting (issue 20).
    assert (inspect.signature(read_events).parameters["item_key"].default
            == DataConfig().item_key == "artist_title")
