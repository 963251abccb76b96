"""Normalising raw sign-up data."""

from dataclasses import dataclass


@dataclass
class User:
    name: str
    email: str


def clean_email(email):
    return email.strip().lower()


def clean_user(raw):
    """A User from a raw {"name", "email"} dict: name trimmed, email normalised."""
    user = User(name=raw["name"].strip(), email=clean_email(raw["email"]))
    if not user.name:
        raise ValueError("a name is required")
