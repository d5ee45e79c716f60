"""Arrow results: a thin wrapper over the native table that speaks the Arrow PyCapsule interface."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

    from segkit._segkit import NativeTable


def _require(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"{what} needs `{module}`; install it with `pip install {module}`") from e


class Table:
    """An Arrow table returned by segkit.

    It implements ``__arrow_c_stream__`` (and ``__arrow_c_schema__``), so ``pyarrow.table(t)``,
    ``polars.DataFrame(t)``, ``duckdb`` and any other Arrow PyCapsule consumer read it without copying. It keeps
    its schema when it has no rows. ``to_pyarrow`` / ``to_polars`` / ``to_pandas`` import those libraries lazily;
    none of them is a dependency of segkit.
    """

    __slots__ = ("_table",)

    def __init__(self, native: NativeTable) -> None:
        self._table = native

    # Arrow PyCapsule interface
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._table.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> object:
        return self._table.__arrow_c_schema__()

    def __len__(self) -> int:
        return len(self._table)

    @property
    def num_rows(self) -> int:
        """Number of rows."""
        return len(self._table)

    @property
    def num_columns(self) -> int:
        """Number of columns."""
        return int(self._table.num_columns)

    @property
    def column_names(self) -> list[str]:
        """Column names, in order."""
        return list(self._table.column_names)

    def to_pyarrow(self) -> pyarrow.Table:
        """This table as a ``pyarrow.Table`` (zero-copy; needs pyarrow)."""
        pa = _require("pyarrow", "Table.to_pyarrow()")
        return pa.table(self)

    def to_polars(self) -> polars.DataFrame:
        """This table as a ``polars.DataFrame`` (zero-copy; needs polars)."""
        pl = _require("polars", "Table.to_polars()")
        df: polars.DataFrame = pl.DataFrame(self)
        return df

    def to_pandas(self) -> pandas.DataFrame:
        """This table as a ``pandas.DataFrame`` (through pyarrow)."""
        _require("pandas", "Table.to_pandas()")
        df: pandas.DataFrame = self.to_pyarrow().to_pandas()
        return df

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as dicts (through pyarrow)."""
        rows: list[dict[str, Any]] = self.to_pyarrow().to_pylist()
        return rows

    def column(self, name: str) -> list[Any]:
        """One column's values as a Python list (through pyarrow)."""
        values: list[Any] = self.to_pyarrow().column(name).to_pylist()
        return values

    def __repr__(self) -> str:
        return f"segkit.Table(num_rows={self.num_rows}, columns={self.column_names})\n{self._table!r}"
