"""segkit: embeddable entity segmentation and automation on Arrow and DataFusion.

>>> import segkit
>>> ws = segkit.Workspace.open("./ws")                                        # doctest: +SKIP
>>> ws.define_entity("user", key="user_id", attributes={"user_id": "int64", "country": "string"})  # doctest: +SKIP
>>> ws.ingest("user", pyarrow_table_or_polars_df_or_path)                    # doctest: +SKIP
>>> ws.define_segment("cn", entity="user", rule={"attribute": "country", "op": "eq", "value": "CN"})  # doctest: +SKIP
>>> ws.evaluate("cn").members().to_polars()                                   # doctest: +SKIP
"""

from segkit._segkit import (
    CancelledError,
    ConflictError,
    DefinitionError,
    EngineError,
    IngestError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    RuleError,
    SegkitError,
    StorageError,
    __version__,
)
from segkit._actions import Action, Delivered, Delivery, Permanent, Retryable
from segkit._appender import Appender
from segkit._sources import NamedSource, SyncProgress
from segkit._table import Table
from segkit._types import (
    Attribute,
    Entity,
    EntityDependents,
    IngestReport,
    Link,
    QuarantinedRow,
    Segment,
    StaticListReport,
    SyncRecord,
)
from segkit._workspace import DryRun, Explanation, MembersPage, SegmentRun, Source, Workspace
from segkit import testing
from segkit._infer import infer_entity

__all__ = [
    "Action",
    "Appender",
    "Attribute",
    "CancelledError",
    "ConflictError",
    "DefinitionError",
    "Delivered",
    "Delivery",
    "DryRun",
    "EngineError",
    "Entity",
    "EntityDependents",
    "Explanation",
    "IngestError",
    "IngestReport",
    "InternalError",
    "InvalidArgumentError",
    "Link",
    "MembersPage",
    "NamedSource",
    "NotFoundError",
    "Permanent",
    "QuarantinedRow",
    "Retryable",
    "RuleError",
    "Segment",
    "SegmentRun",
    "SegkitError",
    "Source",
    "StaticListReport",
    "StorageError",
    "SyncProgress",
    "SyncRecord",
    "Table",
    "Workspace",
    "__version__",
    "infer_entity",
    "testing",
]
