"""Request and response bodies of the API, as pydantic models so that ``/docs`` and ``/openapi.json`` describe
them exactly."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, computed_field, field_serializer

from nodeforge.engine.record import RunHead, RunRecord, RunStatus, iso
from nodeforge.engine.sweep import MAX_CELLS

GRAPH_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9](\.?[A-Za-z0-9_-])*\.?$", "maxLength": 100,
              "description": "a saved graph's name: 1-100 letters, digits, '_', '.', '-', starting with a letter or "
                             "digit, without '..' or a '.json' suffix"}
"""What ``server.library.check_name`` accepts, as JSON Schema (the '.json' suffix aside); the routes answer 400
for anything else, so the schema only documents it."""
GraphName = Annotated[str, WithJsonSchema(GRAPH_NAME)]
GraphDocumentBody = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/GraphDocument"})]
"""A graph document, described by the engine's own JSON Schema (``server.openapi`` adds it as a component)."""


class IssueBody(BaseModel):
    node: str | None = Field(description="node id, or null for a graph-level issue")
    input: str | None = Field(description="input (or graph input) name, or null")
    code: str = Field(description="machine-readable kind, e.g. missing_input, type_mismatch, forbidden_path")
    message: str


class ErrorBody(BaseModel):
    """Every error outside ``/v1``; ``issues`` when a graph, a submission or the request body has problems."""

    detail: str
    issues: list[IssueBody] | None = None


class OpenAIError(BaseModel):
    message: str
    type: Literal["invalid_request_error", "server_error"]
    code: str | None = Field(description="e.g. model_not_found, invalid_api_key, invalid_request")
    param: str | None = Field(description="the request field at fault, when there is one")


class OpenAIErrorBody(BaseModel):
    """Every error under ``/v1``, in OpenAI's shape so that OpenAI clients show the message."""

    error: OpenAIError


class Problem(BaseModel):
    plugin: str
    reason: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    devices: list[str] | None = Field(description="null while the devices are still being detected")
    queue: dict[str, int]
    nodes: int
    problems: list[Problem]
    uptime_seconds: float
    listeners: int


class Catalogue(BaseModel):
    nodes: list[dict[str, Any]] = Field(description="each type with JSON Schema of its inputs and outputs")
    problems: list[Problem]
    node_status: dict[str, str] = Field(description="the status each event kind gives the node(s) it names "
                                                    "(nodes.cached: every node in its nodes list)")
    links: dict[str, list[str]] = Field(description="for each port type, the port types its outputs may feed")


class ModelEntry(BaseModel):
    name: str
    kind: str | None = None
    source: str | None = None
    description: str | None = None


class ModelList(BaseModel):
    models: list[ModelEntry]
    registry: bool = Field(description="whether the model registry package is installed")


class GraphEntry(BaseModel):
    name: str
    description: str
    readonly: bool
    inputs: dict[str, Any]
    outputs: list[str]
    modified: float


class GraphList(BaseModel):
    graphs: list[GraphEntry]


class Saved(BaseModel):
    name: str
    created: bool
    url: str


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    axes: dict[str, Annotated[list[Any], Field(min_length=1, max_length=MAX_CELLS)]] = Field(
        min_length=1, description='the swept graph inputs and their values: {"seed": [1, 2, 3]}; at most '
                                  f"{MAX_CELLS} cells in all")
    mode: Literal["product", "zip"] = Field("product", description="product: every combination; zip: the i-th "
                                                                    "values of every axis together")


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {  # the route refuses both (422)
        "required": ["sweep", "rows"], "properties": {"sweep": {"type": "object"}, "rows": {"type": "array"}}}})
    graph: GraphName | GraphDocumentBody = Field(description="a saved graph's name, or a whole graph document")
    inputs: dict[str, Any] = Field(default_factory=dict, description="graph inputs; media inputs take artifact ids")
    sweep: SweepRequest | None = Field(None, description="run the graph over several values of its inputs; "
                                                         "GET /api/runs/{id}/compare shows the cells side by side")
    rows: list[Annotated[dict[str, Any], Field(min_length=1)]] | None = Field(
        None, min_length=1, max_length=MAX_CELLS, description="run the graph once per object of inputs (a batch)")


class Queued(BaseModel):
    id: str
    status: RunStatus
    created: bool = Field(description="false when an earlier request with the same Idempotency-Key made the run")
    url: str
    events_url: str


class RunSummary(RunHead):
    """A run as the run history lists it: the record's head and when the run was queued."""

    created: float | None = Field(default=None, serialization_alias="created_at")

    @field_serializer("created")
    def _created_at(self, timestamp: float | None) -> str | None:
        return iso(timestamp)


class RunList(BaseModel):
    runs: list[RunSummary]
    total: int
    limit: int
    offset: int


class RunView(RunRecord, RunSummary):
    """One run as ``GET /api/runs/{id}`` returns it and the run store reads it back: the engine's record (media
    outputs as artifact URLs) with when it was queued and where its events stream."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def events_url(self) -> str:
        return f"/api/runs/{self.id}/events"


class CancelResult(BaseModel):
    id: str
    status: Literal["cancelled", "cancelling"] = Field(description="cancelled: it was queued; cancelling: it stops "
                                                                   "at its next node boundary or step")


class Uploaded(BaseModel):
    artifact: str
    url: str
    media_type: str
    filename: str
    size: int
