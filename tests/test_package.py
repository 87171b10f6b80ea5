"""`lightning_app`'s public classes resolve on first use (the package itself imports nothing heavy)."""

import pytest

import lightning_app
from lightning_app.datamodule import LMSequenceDataset, TextDataModule
from lightning_app.language_model import LanguageModel
from lightning_app.model import TinyDecoderLM


def test_public_names_are_the_modules_classes():
    exported = {name: getattr(lightning_app, name) for name in lightning_app.__all__}
    assert exported == {
        "LMSequenceDataset": LMSequenceDataset, "LanguageModel": LanguageModel,
        "TextDataModule": TextDataModule, "TinyDecoderLM": TinyDecoderLM,
    }  # fmt: skip
    assert set(lightning_app.__all__) <= set(dir(lightning_app))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        lightning_app.Nope  # noqa: B018
