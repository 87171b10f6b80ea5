from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from lightning.pytorch.strategies import FSDPStrategy

from lightning_app.datamodule import LMSequenceDataset, ResumableDataLoader, TextDataModule
from lightning_app.errors import UsageError


@pytest.mark.parametrize(("n", "context", "stride", "expected"), [(11, 4, 4, 2), (11, 4, 1, 7), (10, 4, 2, 3), (5, 4, 4, 1)])
def test_window_count(n, context, stride, expected):
    assert len(LMSequenceDataset(np.arange(n), context, stride)) == expected


def test_windows_shift_targets_by_one_and_follow_stride():
    data = LMSequenceDataset(np.arange(20, dtype=np.uint16), context_len=4, stride=3)
    x, y = data.windows(torch.tensor([0, 2]))
    assert x.shape == (2, 4) and x.dtype == torch.int64
    assert x[1].tolist() == [6, 7, 8, 9] and y[1].tolist() == [7, 8, 9, 10] and x[0].tolist() == [0, 1, 2, 3]


def test_too_few_tokens_for_a_window():
    with pytest.raises(ValueError, match="cannot fill one window"):
        LMSequenceDataset(np.arange(4), context_len=4, stride=1)


def test_split_is_contiguous_and_val_is_the_tail(text_dir: Path):
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, val_fraction=0.1)
    dm.prepare_data()
    dm.setup("fit")
    tokens = np.asarray(dm.corpus.tokens)
    n_val = int(len(tokens) * 0.1)
    assert np.array_equal(np.asarray(dm.train_set.tokens), tokens[:-n_val])
    assert np.array_equal(np.asarray(dm.val_set.tokens), tokens[-n_val:])
    assert dm.val_set.stride == 16


@pytest.mark.parametrize(("stride", "warned"), [(16, False), (20, True), (None, False)])
def test_a_stride_longer_than_the_context_is_warned_about(text_dir: Path, caplog, stride: int | None, warned: bool):
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, stride=stride)
    dm.prepare_data()
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    said = "data.stride 20 is longer than data.context_len 16: training leaves out 4 of every 20 tokens"
    assert (said in caplog.text) is warned


def test_a_bpe_split_falls_where_the_vocabularys_training_text_ends(tail_compresses_better: Path):
    dm = TextDataModule(data_dir=str(tail_compresses_better), vocab="bpe", bpe_vocab_size=300, context_len=16, val_fraction=0.1)
    dm.prepare_data()
    dm.setup("fit")
    tokens, start = np.asarray(dm.corpus.tokens), dm.corpus.val_start
    assert len(tokens) - start < int(len(tokens) * 0.1)  # validation holds fewer than a tenth of the tokens
    assert np.array_equal(np.asarray(dm.train_set.tokens), tokens[:start])
    assert np.array_equal(np.asarray(dm.val_set.tokens), tokens[start:])


@pytest.mark.parametrize("on_device", [True, False])
def test_char_vocab_and_batches(text_dir: Path, on_device: bool):
    dm = TextDataModule(data_dir=str(text_dir), vocab="char", context_len=16, stride=8, batch_size=4, gather_on_device=on_device)
    dm.trainer = SimpleNamespace(training=True, global_rank=0, world_size=1)
    dm.prepare_data()
    dm.setup("fit")
    indices = next(iter(dm.train_dataloader()))
    assert indices.shape == (4,)
    x, y = dm.on_after_batch_transfer(dm.on_before_batch_transfer(indices, 0), 0)
    assert x.shape == (4, 16) and y.shape == (4, 16)
    start = int(indices[0]) * 8  # window i starts at token i * stride
    assert torch.equal(x[0], torch.from_numpy(dm.train_set.tokens[start : start + 16].astype("int64")))
    assert int(x.max()) < dm.tokenizer.vocab_size < 100


def test_default_is_the_embedded_corpus_when_data_is_absent(caplog):
    dm = TextDataModule()
    with caplog.at_level("INFO"):
        dm.prepare_data()
    assert dm.data_dir is None and "embedded default corpus" in caplog.text


def test_default_uses_dot_data_when_it_holds_text():
    Path("data").mkdir()
    (Path("data") / "x.txt").write_text("hello")
    dm = TextDataModule()
    dm.prepare_data()
    assert dm.data_dir == Path("data")


def test_a_home_relative_folder_is_expanded(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "x.txt").write_text("hello world, " * 200)
    dm = TextDataModule(data_dir="~/books", cache_dir="~/cache", context_len=8, batch_size=2)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.data_dir == tmp_path / "books" and any((tmp_path / "cache").glob("*.bin")) and not Path("~").exists()


def test_downloading_into_a_default_folder_that_is_a_file_is_an_error():
    Path("data").write_text("not a folder")
    with pytest.raises(UsageError, match="The default data folder ./data is a file"):
        TextDataModule(download_gutenberg=True).prepare_data()
    assert Path("data").read_text() == "not a folder"


def test_downloading_an_empty_list_of_books_is_an_error():
    with pytest.raises(UsageError, match="data.gutenberg_ids is empty"):
        TextDataModule(download_gutenberg=True, gutenberg_ids=[])


def test_construction_touches_no_files(tmp_path: Path):
    dm = TextDataModule(data_dir=str(tmp_path / "not-yet"))  # may be made later, e.g. by a download step
    assert dm.data_dir is None and dm.stride == dm.hparams.context_len and dm.hparams.stride is None


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda p: None, "does not exist"), (lambda p: p.mkdir(), "holds no .txt files"), (lambda p: p.write_text("x"), "is a file")],
)
def test_named_folder_that_is_missing_empty_or_a_file_is_an_error(tmp_path: Path, make, message: str):
    folder = tmp_path / "nope"
    make(folder)
    dm = TextDataModule(data_dir=str(folder))
    with pytest.raises(UsageError, match=f"data.data_dir {folder} {message}"):
        dm.prepare_data()


@pytest.mark.parametrize(("key", "value"), [("context_len", 0), ("batch_size", -1), ("val_fraction", 1.0), ("stride", -2)])
def test_bad_values_are_clear_errors(key, value):
    with pytest.raises(UsageError, match=f"data.{key}"):
        TextDataModule(**{key: value})


def test_corpus_too_small_says_how_many_tokens(tmp_path: Path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "t.txt").write_text("short text")
    dm = TextDataModule(data_dir=str(tmp_path / "tiny"), context_len=64)
    dm.prepare_data()
    with pytest.raises(UsageError, match=r"The corpus has 10 tokens.*context_len \+ 1 = 65"):
        dm.setup("fit")


@pytest.mark.parametrize("strategy", [None, FSDPStrategy()])
def test_validation_windows_are_shared_across_ranks(text_dir: Path, strategy):
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    counts = []
    for rank in range(4):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=4, strategy=strategy)
        counts.append(sorted(dm.val_dataloader().sampler))
    windows = [i for rank_windows in counts for i in rank_windows]
    assert len(windows) == len(set(windows))  # no window twice
    if strategy is None:  # DDP and single device: every window, so val_bpc covers the whole split
        assert sorted(windows) == list(range(len(dm.val_set)))
    else:  # FSDP: the same number on every rank
        assert len({len(c) for c in counts}) == 1 and len(windows) == len(dm.val_set) - len(dm.val_set) % 4
        assert len(dm.val_set) % 4  # (this corpus does leave windows out)


def test_training_batches_are_always_full(text_dir: Path):
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, batch_size=7)
    dm.trainer = SimpleNamespace(training=True, global_rank=0, world_size=1)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) % 7  # this corpus would leave a short last batch
    assert {len(batch) for batch in dm.train_dataloader()} == {7}


def test_fewer_windows_than_one_batch_per_device_is_a_clear_error(text_dir: Path):
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, batch_size=64)
    dm.prepare_data()
    dm.setup("fit")
    dm.trainer = SimpleNamespace(global_rank=0, world_size=len(dm.train_set) // 32)
    with pytest.raises(UsageError, match="fewer than one batch of data.batch_size 64: lower data.batch_size"):
        dm.train_dataloader()


@pytest.mark.parametrize("vocab", ["byte", "char"])
def test_a_file_that_is_not_utf8_is_named_once_per_run_also_from_the_cache(text_dir: Path, caplog, vocab: str):
    (text_dir / "latin1.txt").write_bytes("Café crème, à la française.\n".encode("latin-1") * 50)
    for run in ("tokenizes", "uses the cache"):
        caplog.clear()
        dm = TextDataModule(data_dir=str(text_dir), vocab=vocab, context_len=16)
        with caplog.at_level("WARNING"):
            dm.prepare_data()
            dm.setup("fit")
        assert caplog.text.count("latin1.txt is not valid UTF-8") == 1, run


def test_setup_names_the_corpus_its_tokens_and_an_epoch_in_one_line(text_dir: Path, caplog):
    dm = TextDataModule(data_dir=str(text_dir), vocab="char", context_len=16, batch_size=4)
    with caplog.at_level("INFO"):
        dm.prepare_data()
        dm.setup("fit")
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Data: ")]
    train, val = dm.train_set, dm.val_set
    assert f"{text_dir} (2 .txt files, " in line and f": {len(dm.corpus.tokens):,} tokens (char vocabulary of " in line
    assert f"training {len(train.tokens):,} tokens in {len(train):,} windows, {len(train) // 4:,} batches of 4" in line
    assert line.endswith(f"validation {len(val.tokens):,} tokens in {len(val):,} windows.")


def test_a_plain_ddp_trainer_keeps_the_datamodules_own_shards(text_dir: Path):
    from lightning.pytorch import Trainer

    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)  # built, not launched
    assert trainer._accelerator_connector.use_distributed_sampler  # Lightning's default: it would shard plain samplers
    dm = TextDataModule(data_dir=str(text_dir), context_len=16, batch_size=4)
    dm.trainer = trainer
    dm.prepare_data()
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        assert not trainer._data_connector._requires_distributed_sampler(loader)


def _loader(world: int, rank: int) -> ResumableDataLoader:
    sampler = DistributedSampler(range(96), num_replicas=world, rank=rank, shuffle=True, seed=3, drop_last=True)
    return ResumableDataLoader(range(96), batch_size=4, sampler=sampler, drop_last=True)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_a_resumed_epoch_skips_what_was_trained_on_any_number_of_devices(world: int):
    first = _loader(1, 0)
    batches = iter(first)
    seen = [int(i) for _ in range(6) for i in next(batches)]  # 6 batches of 4 windows on one device
    state = first.state_dict()
    rest = []
    for rank in range(world):
        resumed = _loader(world, rank)
        resumed.load_state_dict(state)
        rest += [int(i) for batch in resumed for i in batch]
    repeated = 24 % (4 * world)  # whole batches on every rank: part of one batch per device is trained on again
    assert len(set(seen) & set(rest)) == repeated and len(rest) == 96 - 24 + repeated
    assert set(seen) | set(rest) == set(range(96))  # nothing of the epoch is lost


def test_a_checkpoint_that_counts_batches_still_resumes():
    loader = _loader(1, 0)
    loader.load_state_dict({"batches_served": 5})
    assert len(list(loader)) == 96 // 4 - 5
