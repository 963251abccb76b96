"""What the data sources share: reading rows from a local copy or the hub, and test shapes.

A source is either a local path (a `.jsonl`/`.json` file, a `.parquet`/`.arrow` file, a folder of
such files, or a folder written by `datasets.Dataset.save_to_disk`) or a hub id, which goes through
`datasets.load_dataset` (network, cache and authentication are `datasets`' business).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ledex.errors import LedexError

Row = dict[str, Any]

_DATASETS_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}


class DataError(LedexError):
    """A data file that cannot be read as the source it claims to be; the message names the place."""


def is_local(path: str) -> bool:
    """A path on this machine (hub ids such as `codeparrot/apps` are never created locally)."""
    return Path(path).expanduser().exists()


def read_local(path: str | os.PathLike[str], split: str | None = None) -> list[Row]:
    """The rows of a local copy; `split` picks a split of a folder that holds several."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        return list(_read_json_rows(path))
    if path.is_file() and path.suffix not in _DATASETS_FORMATS:
        raise DataError(
            f"{path}: unknown data file type {path.suffix!r}; expected .jsonl, .json, .parquet or "
            ".arrow (or a folder of them)"
        )
    return _datasets_rows(path, split)


def read_hub(hub_id: str, split: str | None, config: str | None = None) -> list[Row]:
    """The rows of a hub dataset (all splits, in split order, when `split` is None)."""
    import datasets

    try:
        loaded = datasets.load_dataset(hub_id, config, split=split)
    except Exception as error:  # datasets raises many types (connection, missing, script...)
        raise DataError(f"could not load {hub_id!r} from the Hugging Face hub: {error}") from error
    return _rows_of(loaded)


def _read_json_rows(path: Path) -> Iterator[Row]:
    """JSON lines (or one JSON array), each line checked so an error names its line number."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except ValueError as error:
            raise DataError(f"{path}: not valid JSON ({error})") from error
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"{path}: item {index} is not a JSON object")
            yield row
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error})") from error
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: not a JSON object")
        yield row


def _datasets_rows(path: Path, split: str | None) -> list[Row]:
    import datasets

    try:
        if path.is_dir() and (
            (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists()
        ):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict) and split is not None:
                loaded = loaded[split]
        elif path.is_dir():
            # A folder of data files: `datasets` names the splits after the files (train*.parquet).
            loaded = datasets.load_dataset(str(path), split=split)
        else:
            loaded = datasets.load_dataset(
                _DATASETS_FORMATS[path.suffix], data_files=str(path), split="train"
            )
    except KeyError as error:
        raise DataError(f"{path}: has no split {split!r}") from error
    except (ValueError, FileNotFoundError, OSError) as error:
        raise DataError(f"{path}: could not be read as a dataset ({error})") from error
    return _rows_of(loaded)


def _rows_of(loaded: Any) -> list[Row]:
    if hasattr(loaded, "keys") and not hasattr(loaded, "features"):  # a DatasetDict: every split
        return [row for name in loaded for row in loaded[name]]
    return [dict(row) for row in loaded]


def as_text(value: Any) -> str:
    """A test's stdin or stdout: sources store it as a string or as a list of lines."""
    if isinstance(value, list):
        return "\n".join(as_text(item) for item in value)
    return value if isinstance(value, str) else str(value)


def json_field(row: Mapping[str, Any], name: str, where: str) -> Any:
    """A field that holds JSON text (APPS' `input_output` and `solutions`); "" means absent."""
    raw = row.get(name)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError as error:
        raise DataError(f"{where}: field {name!r} is not valid JSON ({error})") from error
