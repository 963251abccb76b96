"""Ordering release version strings like 'v1.10.2'."""


def parse_version(text):
    """'v1.10.2' -> (1, 10, 2); a missing minor or patch number counts as 0."""
    parts = text.strip().lstrip("v").split(".")
    while len(parts) < 3:
        parts.append("0")
    return tuple(parts)


def newest(versions):
    """The highest version of a non-empty list."""
    return max(versions, key=parse_version)


def sort_versions(versions):
    """Oldest first."""
    return sorted(versions, key=parse_version)
