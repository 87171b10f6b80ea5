import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from lightning_app.cli import TrainerCLI, main
from lightning_app.errors import UsageError
from lightning_app.language_model import LanguageModel

TINY = [
    "--model.dim=32", "--model.depth=1", "--model.heads=2", "--data.context_len=32", "--data.batch_size=8",
    "--trainer.max_steps=6", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false", "--sample.length=40",
]  # fmt: skip


def fit(*args: str) -> None:
    main(["fit", *TINY, *args])


def test_fit_writes_checkpoint_with_tokenizer_and_prints_sample(text_dir: Path, capsys):
    fit(f"--data.data_dir={text_dir}", "--data.vocab=char", "--sample.prompt=It was")
    out = capsys.readouterr().out
    assert "--- sample" in out and "It was" in out
    ckpt = torch.load("checkpoints/model.ckpt", weights_only=True)
    assert ckpt["tokenizer"]["kind"] == "char" and "I" in ckpt["tokenizer"]["chars"]
    assert Path("checkpoints/version_0/last.ckpt").is_file()
    metrics = Path("lightning_logs/version_0/metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "train_bpc", "val_loss", "val_bpc"} <= set(metrics)


def test_each_run_writes_into_folders_of_its_own(text_dir: Path):
    fit(f"--data.data_dir={text_dir}", "--sample.length=0")
    first = Path("checkpoints/version_0/model.ckpt").read_bytes()
    fit(f"--data.data_dir={text_dir}", "--sample.length=0", "--model.pos_encoding=rotary")
    assert Path("checkpoints/version_0/model.ckpt").read_bytes() == first  # the second run left the first one's alone
    for run in ("version_0", "version_1"):
        assert {p.name for p in Path("checkpoints", run).glob("*.ckpt")} == {"model.ckpt", "last.ckpt"}
        assert {"metrics.csv", "config.yaml", "hparams.yaml"} <= {p.name for p in Path("lightning_logs", run).iterdir()}
    assert os.readlink("checkpoints/model.ckpt") == "version_1/model.ckpt"  # the newest best model
    config = yaml.safe_load(Path("lightning_logs/version_1/config.yaml").read_text())
    assert config["checkpoint"]["dirpath"] == "checkpoints" and config["trainer"]["logger"]["init_args"]["version"] is None
    assert config["model"]["pos_encoding"] == "rotary"


def test_validate_and_test_score_with_the_checkpoints_own_settings(text_dir: Path, capsys):
    fit(f"--data.data_dir={text_dir}", "--data.vocab=char", "--data.context_len=24", "--data.val_fraction=0.2", "--sample.length=0")
    best = torch.load("checkpoints/model.ckpt", weights_only=True)
    score = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint"))["best_model_score"]
    for command in ("validate", "test"):
        main([command, "--ckpt_path=checkpoints/model.ckpt", "--trainer.limit_val_batches=2", "--trainer.limit_test_batches=2"])
        printed = float(re.search(r"val_bpc\s+([\d.]+)", capsys.readouterr().out).group(1))
        assert abs(printed - float(score)) < 1e-4  # scored on the data, vocabulary and sizes it was trained with
    for context_len in (16, 256):  # free to change: not the weights (256 is also the default)
        main(["validate", "--ckpt_path=last", f"--data.context_len={context_len}", "--data.batch_size=4"])


@pytest.mark.parametrize("subcommand", ["validate", "test", "predict"])
def test_scoring_needs_a_checkpoint_and_predict_is_not_offered(subcommand: str, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([subcommand])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and exit_.value.code == (2 if subcommand == "predict" else 1)
    assert ("invalid choice: 'predict'" if subcommand == "predict" else "pass --ckpt_path") in err


@pytest.mark.parametrize(
    ("args", "built"),
    [(["fit", "--print_config"], ["fit"]), (["validate", "--help"], ["validate"]), (["fti"], ["fit", "validate", "test"])],
)
def test_a_named_subcommand_builds_only_its_own_parser(args: list[str], built: list[str], monkeypatch, capsys):
    seen = []
    prepare = TrainerCLI._prepare_subcommand_parser

    def spy(self, klass, subcommand, **kwargs):
        seen.append(subcommand)
        return prepare(self, klass, subcommand, **kwargs)

    monkeypatch.setattr(TrainerCLI, "_prepare_subcommand_parser", spy)
    with pytest.raises(SystemExit):  # --print_config and --help exit when done; a misspelt name is an error
        main(args)
    assert seen == built


def test_last_without_a_checkpoint_folder_says_where_it_looked(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--ckpt_path=last", "--checkpoint.dirpath=null"])
    assert "no last.ckpt under the runs' log folders (checkpoint.dirpath is null)" in capsys.readouterr().err


def test_a_home_relative_folder_means_the_home_folder_everywhere(text_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folders = ["--checkpoint.dirpath=~/ckpt", "--data.cache_dir=~/cache", "--trainer.logger.init_args.save_dir=~/logs"]
    fit(f"--data.data_dir={text_dir}", "--sample.length=0", *folders)
    home = tmp_path / "home"
    assert (home / "ckpt/version_0/model.ckpt").is_file() and (home / "logs/lightning_logs/version_0/metrics.csv").is_file()
    assert any((home / "cache").glob("*.bin")) and not Path("~").exists()


def test_checkpoint_loads_without_arguments(text_dir: Path):
    fit(f"--data.data_dir={text_dir}", "--sample.length=0")
    model = LanguageModel.load_from_checkpoint("checkpoints/model.ckpt")
    assert model.tokenizer.kind == "byte" and model.model.config.context_len == 32 and not model.training
    assert model.device.type == "cpu"  # wherever it was trained, as from_checkpoint (the one loader) does
    assert model(torch.zeros(1, 4, dtype=torch.long)).shape == (1, 4, 256)
    with pytest.raises(UsageError, match="drop strict"):
        LanguageModel.load_from_checkpoint("checkpoints/model.ckpt", strict=False)


def test_print_config_round_trip(text_dir: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *TINY, f"--data.data_dir={text_dir}", "--print_config"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    Path("run.yaml").write_text(printed)
    with pytest.raises(SystemExit):
        main(["fit", "--config=run.yaml", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(printed)
    config = yaml.safe_load(printed)
    assert config["data"]["context_len"] == 32 and "context_len" not in config["model"]  # linked from data
    assert config["checkpoint"]["filename"] == "model" and config["trainer"]["gradient_clip_val"] == 1.0


def test_defaults_are_the_seed_trainers(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--print_config"])
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"] | {"data_dir": None} == config["data"]
    assert (config["data"]["vocab"], config["data"]["context_len"], config["data"]["batch_size"]) == ("byte", 256, 32)
    assert (config["data"]["stride"], config["data"]["val_fraction"], config["data"]["download_gutenberg"]) == (None, 0.1, False)
    model = config["model"]
    assert (model["dim"], model["depth"], model["heads"], model["dropout"]) == (256, 6, 8, 0.0)
    assert (model["lr"], model["weight_decay"]) == (3e-4, 0.01)
    assert (config["trainer"]["max_epochs"], config["trainer"]["gradient_clip_val"]) == (2, 1.0)
    assert config["trainer"]["devices"] == 1  # one process, as the single-file trainer, on a machine with several GPUs too
    assert config["checkpoint"]["dirpath"] == "checkpoints" and config["checkpoint"]["monitor"] == "val_bpc"
    assert config["sample"] == {"length": 200, "prompt": "The", "temperature": 1.0, "top_k": 0, "top_p": 1.0}


def test_config_files_parse(capsys):
    repo = Path(__file__).resolve().parents[1]
    for config in sorted((repo / "configs").glob("*.yaml")):
        with pytest.raises(SystemExit) as exit_:
            main(["fit", f"--config={config}", "--print_config"])
        assert exit_.value.code == 0, config.name


def test_user_error_is_one_line_and_nonzero(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        fit(f"--data.data_dir={tmp_path / 'missing'}")
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.data_dir") and "\n" not in err


def test_tensorboard_logger_works(text_dir: Path):
    fit(f"--data.data_dir={text_dir}", "--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger", "--trainer.logger.save_dir=tb")
    assert list(Path("tb/lightning_logs/version_0").glob("events.out.tfevents.*")) and Path("checkpoints/version_0/model.ckpt").is_file()


def test_warnings_a_user_cannot_act_on_are_hidden():
    import warnings

    from lightning_app import cli

    hidden = [
        "The number of training batches (22) is smaller than the logging interval Trainer(log_every_n_steps=50).",
        "It is recommended to use `self.log('val_bpc', ..., sync_dist=True)` when logging on epoch level in distributed"
        " setting to accumulate the metric across devices.",  # Lightning 2.6's words
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cli._quiet_console()
        for message in [*hidden, "Something a user should see."]:
            warnings.warn(message, UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["Something a user should see."]
