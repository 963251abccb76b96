"""A directory of users, looked up by email."""

from .cleaning import clean_email, clean_user


class Directory:
    def __init__(self):
        self._by_email = {}

    def __len__(self):
        return len(self._by_email)

    def add(self, raw):
        user = clean_user(raw)
        if user.email in self._by_email:
            raise ValueError(f"duplicate email {user.email}")
        self._by_email[user.email] = user
        return user

    def find(self, email):
        return self._by_email.get(clean_email(email))
