"""`ctt generate`: text from a checkpoint streamed to standard output, nothing else there, one-line errors."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_app.cli import main
from lightning_app.language_model import LanguageModel
from lightning_app.generate import GenerateOptions
from lightning_app.sampling import SamplingOptions

from .conftest import REPO, SAMPLE_TEXT, subprocess_env


@pytest.fixture(scope="module")
def char_ckpt(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    (folder / "corpus").mkdir()
    (folder / "corpus" / "a.txt").write_text(SAMPLE_TEXT * 60)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        main([
            "fit", "--data.data_dir=corpus", "--data.vocab=char", "--data.context_len=16", "--model.dim=32",
            "--model.depth=1", "--model.heads=2", "--trainer.max_steps=3", "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false", "--sample.length=0", "--trainer.logger=false",
        ])  # fmt: skip
    finally:
        os.chdir(cwd)
    return folder / "checkpoints" / "model.ckpt"


def generate(*args: str) -> None:
    main(["generate", *args])


def test_prints_only_the_text_and_is_repeatable(char_ckpt: Path, capsys):
    args = (f"--ckpt_path={char_ckpt}", "--prompt=It was", "--length=50", "--temperature=0.8", "--top_k=10", "--top_p=0.95", "--seed=1")
    generate(*args)
    first = capsys.readouterr().out
    generate(*args)
    assert capsys.readouterr().out == first
    assert first.startswith("It was") and len(first.rstrip("\n")) == len("It was") + 50


@pytest.mark.parametrize("prompt", ["It was", ""])
def test_no_new_tokens_prints_the_prompt(char_ckpt: Path, capsys, prompt: str):
    generate(f"--ckpt_path={char_ckpt}", f"--prompt={prompt}", "--length=0")
    assert capsys.readouterr().out.rstrip("\n") == prompt


def test_several_samples_as_text_and_as_json_lines(char_ckpt: Path, capsys):
    args = (f"--ckpt_path={char_ckpt}", "--prompt=age", "--length=20", "--num_samples=3", "--seed=2")
    generate(*args, "--format=jsonl")
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["index"], r["seed"], r["prompt"]) for r in records] == [(0, 2, "age"), (1, 3, "age"), (2, 4, "age")]
    assert len({r["text"] for r in records}) == 3  # three different continuations
    generate(*args)
    out = capsys.readouterr().out
    assert out == "".join(f"--- sample {r['index'] + 1}/3, seed {r['seed']} ---\nage{r['text']}\n" for r in records)
    generate(f"--ckpt_path={char_ckpt}", "--prompt=age", "--length=20", "--seed=3")  # the second sample, alone
    assert capsys.readouterr().out == f"age{records[1]['text']}\n"


def test_a_seed_is_drawn_and_reported_when_none_is_given(char_ckpt: Path, capsys):
    generate(f"--ckpt_path={char_ckpt}", "--prompt=it", "--length=5", "--num_samples=2", "--format=jsonl")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert isinstance(first["seed"], int) and second["seed"] == first["seed"] + 1


def test_defaults_match_the_after_training_sample_of_the_quickstart():
    quickstart = yaml.safe_load((REPO / "configs" / "quickstart.yaml").read_text())["sample"]
    defaults, sample_defaults = GenerateOptions(ckpt_path="x"), SamplingOptions()
    assert defaults.temperature == quickstart["temperature"] != sample_defaults.temperature  # 1.0: configs/default.yaml
    assert (defaults.top_k, defaults.top_p) == (quickstart.get("top_k", 0), quickstart.get("top_p", 1.0))
    assert (defaults.prompt, defaults.length) == (sample_defaults.prompt, sample_defaults.length)


def test_prompt_from_a_file(char_ckpt: Path, capsys):
    Path("prompt.txt").write_text("It was the age\n", encoding="utf-8")
    generate(f"--ckpt_path={char_ckpt}", "--prompt_file=prompt.txt", "--length=5", "--seed=1")
    assert capsys.readouterr().out.startswith("It was the age\n")


def test_prompt_longer_than_the_context_keeps_its_tail(char_ckpt: Path, capsys):
    context = LanguageModel.from_checkpoint(char_ckpt).model.config.context_len
    long_prompt = "it was the best of times, " * 10
    continuations = []
    for prompt in (long_prompt, long_prompt[-context:], "the worst " + long_prompt[-context:]):
        generate(f"--ckpt_path={char_ckpt}", f"--prompt={prompt}", "--length=20", "--temperature=0", "--format=jsonl")
        continuations.append(json.loads(capsys.readouterr().out)["text"])
    assert len(long_prompt) > context and len(continuations[0]) == 20
    assert continuations[0] == continuations[1] == continuations[2]  # only the last context_len characters count


def error_line(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        generate(*args)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_unknown_characters_are_named(char_ckpt: Path, capsys):
    assert "'Ωλ'" in error_line(capsys, f"--ckpt_path={char_ckpt}", "--prompt=Ωλ")


def test_a_prompt_the_vocabulary_cannot_hold_writes_nothing(char_ckpt: Path, capsys):
    with pytest.raises(SystemExit):
        generate(f"--ckpt_path={char_ckpt}", "--prompt=It Ω", "--num_samples=2")
    assert capsys.readouterr().out == ""  # no sample header, no prompt


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda: None, ["--prompt_file=none.txt"], "Cannot read --prompt_file none.txt: No such file"),
        (lambda: os.mkdir("folder"), ["--prompt_file=folder"], "Cannot read --prompt_file folder: Is a directory"),
        (lambda: Path("l1.txt").write_bytes("café".encode("latin-1")), ["--prompt_file=l1.txt"], "not UTF-8 text (byte 3)"),
        (lambda: Path("empty.txt").write_text(""), ["--prompt_file=empty.txt"], "--prompt_file empty.txt is empty"),
        (lambda: Path("p.txt").write_text("It"), ["--prompt_file=p.txt", "--prompt=It"], "--prompt and --prompt_file"),
    ],
)
def test_prompt_file_mistakes(char_ckpt: Path, capsys, setup, args, message):
    setup()
    assert message in error_line(capsys, f"--ckpt_path={char_ckpt}", *args)


def test_sampling_mistakes_name_the_flag(char_ckpt: Path, capsys):
    assert "--top_p must be in (0, 1], got 0.0" in error_line(capsys, f"--ckpt_path={char_ckpt}", "--top_p=0")
    assert "--num_samples must be >= 1" in error_line(capsys, f"--ckpt_path={char_ckpt}", "--num_samples=0")
    for seed in ("-1", str(2**63)):
        assert "--seed must be between 0 and 2**63" in error_line(capsys, f"--ckpt_path={char_ckpt}", f"--seed={seed}")


@pytest.mark.parametrize(("args", "said"), [(["--ckpt_path=x.ckpt", "--lenght=5"], "unrecognized arguments: --lenght=5"),
                                            ([], "ckpt_path")])  # fmt: skip
def test_a_wrong_flag_is_one_line_without_the_usage(args: list[str], said: str, capsys):
    with pytest.raises(SystemExit) as exit_:
        generate(*args)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith("error: ") and said in err and "\n" not in err and "usage" not in err


def test_a_missing_device_is_named_before_the_checkpoint_is_read(capsys):
    absent = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    message = error_line(capsys, "--ckpt_path=nope.ckpt", f"--device={absent}")
    assert f"--device {absent} is not available" in message and "it has: cpu" in message and "nope" not in message
    with pytest.raises(ValueError) as debug:
        generate("--ckpt_path=nope.ckpt", f"--device={absent}", "--debug")
    assert debug.value.__cause__ is not None  # --debug shows torch's own reason as the cause


def test_ctrl_c_keeps_the_text_printed_so_far_and_exits_130(char_ckpt: Path):
    env = subprocess_env()
    command = [sys.executable, "-m", "lightning_app", "generate", f"--ckpt_path={char_ckpt}", "--prompt=It was"]
    command.append("--length=10000000")  # far more than it can write before the signal
    # Ctrl-C as in a terminal: a shell that runs the tests in the background hands SIGINT down ignored,
    # while a signal with a handler here starts at its default in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        seen = b""
        while len(seen) <= len("It was") + 5:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, proc.stderr.read().decode()
            seen += chunk
        assert proc.poll() is None  # the text arrives while it is being generated
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert (seen + rest).decode().startswith("It was") and "Traceback" not in err.decode()
    assert err.decode().strip().splitlines() == ["Interrupted: the text above is what was generated."]


def test_missing_checkpoint(capsys):
    assert "does not exist" in error_line(capsys, "--ckpt_path=nope.ckpt")


def test_truncated_checkpoint(char_ckpt: Path, capsys):
    Path("cut.ckpt").write_bytes(char_ckpt.read_bytes()[:1000])
    assert "not a readable checkpoint" in error_line(capsys, "--ckpt_path=cut.ckpt")


def test_foreign_checkpoint(capsys):
    torch.save({"state_dict": {}, "hyper_parameters": {"dim": 8}}, "other.ckpt")
    assert "not written by this version" in error_line(capsys, "--ckpt_path=other.ckpt")
    torch.save({"weights": torch.zeros(2)}, "plain.pt")
    assert "not a checkpoint written by `ctt fit`" in error_line(capsys, "--ckpt_path=plain.pt")


def test_pickled_code_is_refused(capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, "evil.ckpt")
    assert "not a readable checkpoint" in error_line(capsys, "--ckpt_path=evil.ckpt")


def test_a_reader_that_goes_away_ends_it_quietly(char_ckpt: Path):
    command = [sys.executable, "-m", "lightning_app", "generate", f"--ckpt_path={char_ckpt}", "--prompt=It was", "--length=10000000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    try:
        assert os.read(proc.stdout.fileno(), 20)  # like `ctt generate ... | head -c 20`
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGPIPE and err.decode().strip() == ""

