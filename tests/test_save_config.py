import yaml
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from lightning_app.save_config import SaveConfigWithoutSecrets, masked


def config() -> Namespace:
    return Namespace(
        data=Namespace(gutenberg_mirror="https://reader:s3cret@mirror.example.org", gutenberg_ids=[1, 2]),
        trainer=Namespace(callbacks=[Namespace(class_path="X", init_args=Namespace(url="http://a:b@c/"))], max_steps=3),
        seed_everything=1337,
    )


def test_masked_copies_the_config_with_passwords_hidden():
    original = config()
    copy = masked(original)
    assert copy.data.gutenberg_mirror == "https://reader:***@mirror.example.org"
    assert copy.trainer.callbacks[0].init_args.url == "http://a:***@c/"
    assert copy.data.gutenberg_ids == [1, 2] and copy.trainer.max_steps == 3 and copy.seed_everything == 1337
    assert original == config()  # the run keeps the real values


def test_the_saved_config_has_no_password(tmp_path):
    from types import SimpleNamespace

    parser = LightningArgumentParser()
    parser.add_argument("--data.gutenberg_mirror", type=str)
    real = Namespace(data=Namespace(gutenberg_mirror="https://reader:s3cret@mirror.example.org"))
    callback = SaveConfigWithoutSecrets(parser, real, overwrite=True)
    trainer = SimpleNamespace(log_dir=str(tmp_path), is_global_zero=True, strategy=SimpleNamespace(broadcast=lambda value: value))
    callback.setup(trainer, None, "fit")  # what Lightning calls when fit begins
    text = (tmp_path / "config.yaml").read_text()
    assert "s3cret" not in text
    assert yaml.safe_load(text)["data"]["gutenberg_mirror"] == "https://reader:***@mirror.example.org"
    assert real.data.gutenberg_mirror == "https://reader:s3cret@mirror.example.org"
