import pytest

from lightning_app.credentials import mask_credentials


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://reader:s3cret@mirror.example.org/books", "https://reader:***@mirror.example.org/books"),
        ("http://reader:s3cret@127.0.0.1:8080", "http://reader:***@127.0.0.1:8080"),
        ("http://reader:p@ss@host/", "http://reader:***@host/"),
        ("http://reader:@host/", "http://reader:***@host/"),
        ("from http://a:b@h/x: refused; ftp://c:d@k", "from http://a:***@h/x: refused; ftp://c:***@k"),
    ],
)
def test_passwords_are_masked(text: str, shown: str):
    assert mask_credentials(text) == shown


@pytest.mark.parametrize(
    "text",
    ["https://www.gutenberg.org", "http://reader@host/", "http://host:8080/path@x", "user:pass@host", "The", ""],
)
def test_text_without_a_password_is_unchanged(text: str):
    assert mask_credentials(text) == text
