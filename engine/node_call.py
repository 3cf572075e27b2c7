"""One node call: its context built once, its input values validated, the node run and its outputs collected.

The same function runs a node in this process (``engine.backend.LocalBackend``) and in a Ray worker
(``engine.ray.worker``), so the two cannot drift. Everything it takes is what either side has at hand: the node's
spec and its ``Prepared`` inputs (plain and picklable), the input values, the device, the model manager of the
process, and a ``RunScope`` (the run's events, cancellation, environment, files, nested graphs, previews, details).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from nodeforge.engine.context import NodeContext, NodeModels
from nodeforge.engine.declared_checks import model_problems
from nodeforge.engine.errors import EngineError, NodeExecutionError
from nodeforge.engine.previews import NodePreviews

if TYPE_CHECKING:
    from nodeforge.engine.backend import Prepared, RunScope
    from nodeforge.engine.models import ModelManager
    from nodeforge.engine.node import NodeSpec
    from nodeforge.engine.ports import Port


def run_call(spec: NodeSpec, node_id: str, prepared: Prepared, values: dict[str, Any], device: str,
             models: ModelManager, scope: RunScope, input_ports: Mapping[str, Port],
             output_names: Collection[str], *, recheck: bool = True) -> dict[str, Any]:
    """Run node ``node_id`` of type ``spec`` on ``device`` with its input ``values``; its outputs by name. The
    models it loads stay pinned until it returns. ``input_ports`` must hold the ports of extra inputs;
    ``output_names`` are the node's output ports; ``recheck``: see ``_run_node``."""
    held = NodeModels(models, device, scope.emitter, node_id, source=scope.env.registry.model_source,
                      kinds=spec.model_kinds, files=scope.files, data_dir=scope.data_dir)
    ctx = NodeContext(node_id=node_id, node_type=spec.type, device=device, emitter=scope.emitter,
                      cancel=scope.cancel, env=scope.env, data_dir=scope.data_dir, materials=prepared.materials,
                      literals=prepared.literals, call_graph=scope.call_graph, models=held, files=scope.files,
                      previews=NodePreviews(scope.previews, scope.emitter, node_id) if scope.previews else None,
                      details=functools.partial(scope.details, node_id) if scope.details else None)
    try:
        return _run_node(spec, node_id, values, ctx, input_ports, output_names, recheck=recheck)
    finally:
        held.release_all()


def _run_node(spec: NodeSpec, node_id: str, values: dict[str, Any], ctx: NodeContext,
             input_ports: Mapping[str, Port], output_names: Collection[str], *, recheck: bool = True) -> dict[str, Any]:
    """Validate a node's input values, run it and collect its outputs by name. With ``recheck`` (some input came
    from a link or a graph input, unseen by validation) the node's own ``check`` runs again on the values it is
    about to get, with the model names checked against their declared kinds as at validation, so ``run`` never
    repeats what ``check`` says."""
    try:
        if spec.cls.extra_inputs is not None:
            for name in values.keys() - spec.inputs.keys():
                values[name] = input_ports[name].validate_literal(values[name])
        inputs = spec.cls.Inputs.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = str(err["loc"][0]) if err["loc"] else None
        message = err["msg"]
        if where is not None and where in values and values[where] is None:  # an optional output that was empty
            message = "the output linked here gave no value (e.g. video.load's audio for a file without sound)"
        raise NodeExecutionError(node_id, spec.type, InputProblem(where, message)) from None
    if recheck and (spec.model_kinds or spec.checks):
        given = {**inputs.__dict__, **(inputs.model_extra or {})}  # pydantic keeps the fields in __dict__
        problems: Iterable[tuple[str | None, str]] = model_problems(spec, given, ctx.models.source)
        if spec.checks:
            problems = itertools.chain(problems, spec.instance.check(given, frozenset(values), ctx.models.source))
        for where, message in problems:
            raise NodeExecutionError(node_id, spec.type, InputProblem(where, message))
    result = spec.instance.run(inputs, ctx)
    if result.model_extra:
        outputs = {**{name: getattr(result, name) for name in spec.outputs}, **result.model_extra}
        missing = [name for name in output_names if name not in outputs]
        if missing:
            raise EngineError(f"the node returned no value for output(s) {', '.join(missing)}")
        return outputs
    return {name: getattr(result, name) for name in output_names}


class InputProblem(EngineError):
    """An input value that does not fit its port, found just before the node runs."""

    def __init__(self, input_name: str | None, message: str) -> None:
        self.input = input_name
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return InputProblem, (self.input, str(self))
