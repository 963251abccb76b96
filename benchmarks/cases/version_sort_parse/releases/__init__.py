from .versions import newest, parse_version, sort_versions

__all__ = ["newest", "parse_version", "sort_versions"]
