import pytest

from accounts.cleaning import clean_email, clean_user
from accounts.directory import Directory


def test_clean_email():
    assert clean_email("  Ada@Example.COM ") == "ada@example.com"


def test_blank_name_rejected():
    with pytest.raises(ValueError):
        clean_user({"name": "   ", "email": "x@example.com"})


def test_empty_directory():
    directory = Directory()
    assert len(directory) == 0
    assert directory.find("ada@example.com") is None


def test_add_and_find():
    directory = Directory()
    directory.add({"name": " Ada ", "email": "Ada@Example.com"})
    assert directory.find("ADA@example.com").name == "Ada"
