"""Health, the node catalogue, the graph document's JSON Schema and the models the registry knows."""

from typing import Any

from fastapi import APIRouter

from nodeforge.engine.document import document_schema
from nodeforge.engine.events import NODE_STATUS
from nodeforge.engine.types import link_table
from nodeforge.server.model_names import known_models
from nodeforge.server.routes.deps import RuntimeDep
from nodeforge.server.schemas import Catalogue, Health, ModelList

router = APIRouter(prefix="/api", tags=["system"])


@router.get("/health", response_model=Health, summary="Status, version, devices, queue and plugin problems")
def health(runtime: RuntimeDep) -> dict[str, Any]:
    return runtime.health()


@router.get("/nodes", response_model=Catalogue, summary="Every node type with the JSON Schema of its ports")
def nodes(runtime: RuntimeDep) -> dict[str, Any]:
    registry = runtime.registry
    return {"nodes": registry.catalogue(), "problems": runtime.plugin_problems(), "node_status": dict(NODE_STATUS),
            "links": link_table()}


@router.get("/schema/graph", summary="JSON Schema of the graph document")
def graph_schema() -> dict[str, Any]:
    return document_schema()


@router.get("/models", response_model=ModelList, summary="Model names the model registry resolves")
def models(runtime: RuntimeDep) -> dict[str, Any]:
    entries, available = known_models(runtime.registry.model_source, runtime.settings.data_dir,
                                      redact=runtime.redact)
    return {"models": entries, "registry": available}
