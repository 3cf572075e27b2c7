"""Run the showcase graphs (graphs/showcase-*.json) on a GPU with real models from the Hugging Face Hub.

Without a CUDA GPU it only validates them and says so. With one, it first resolves every model the graphs name
(downloading when online; offline, the resolver's message says which weights are missing and how to get them),
then runs each graph, printing per-node seconds, model loads, peak GPU memory and where the outputs were written.

    .venv/bin/python bench/showcase.py                       # every showcase graph
    .venv/bin/python bench/showcase.py narrated-video        # one (name with or without the showcase- prefix)
    .venv/bin/python bench/showcase.py --set idea="a koi pond at night"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if not __package__:  # run as a file, this folder would shadow the engine package: use the project root instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import time
from typing import Any

from nodeforge.engine.cache import ResultCache
from nodeforge.engine.compiler import GraphEnv, compile_graph, validate
from nodeforge.engine.datadir import resolve_data_dir
from nodeforge.engine.document import GraphDocument, load_document
from nodeforge.engine.errors import EngineError
from nodeforge.engine.events import Event, ModelLoaded, NodeFailed, NodeFinished, NodeStarted, NodeWarning
from nodeforge.engine.inputs import parse_cli_value
from nodeforge.engine.registry import Registry
from nodeforge.engine.saved_graphs import GraphLibrary
from nodeforge.engine.session import Session

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"


def showcase_paths(names: list[str]) -> list[Path]:
    every = sorted(GRAPHS.glob("showcase-*.json"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = name if name.startswith("showcase-") else f"showcase-{name}"
        path = GRAPHS / f"{stem.removesuffix('.json')}.json"
        if not path.is_file():
            raise SystemExit(f"no showcase graph {path.name} (there are: {', '.join(p.stem for p in every)})")
        chosen.append(path)
    return chosen


def model_names(document: GraphDocument) -> list[str]:
    """The literal ``model`` inputs of a graph, in order, once each."""
    found = [node.inputs.get("model") for node in document.nodes.values()]
    return list(dict.fromkeys(name for name in found if isinstance(name, str) and not name.startswith("openai:")))


def fetch_models(names: list[str], data_dir: Path) -> list[str]:
    """Resolve (and so download, when online) each model; the problems, one line per model that is missing."""
    from nodeforge.nodes.models import build_resolver

    problems = []
    for name in names:
        started = time.perf_counter()
        try:
            resolved = build_resolver().resolve(name, data_dir)
        except EngineError as exc:
            problems.append(f"{name}: {exc}")
            continue
        print(f"  model {name:<26} {resolved.source:<8} {time.perf_counter() - started:6.1f}s  {resolved.path}")
    return problems


def progress_printer() -> Any:
    def listen(event: Event) -> None:
        match event.data:
            case NodeStarted(node=node, node_type=node_type, device=device):
                print(f"    {node} ({node_type}) on {device}", flush=True)
            case NodeFinished(node=node, seconds=seconds):
                print(f"    {node} done in {seconds:.1f}s", flush=True)
            case ModelLoaded(model=model, device=device, seconds=seconds):
                print(f"    loaded {model} on {device} in {seconds:.1f}s", flush=True)
            case NodeWarning(node=node, text=text) | NodeFailed(node=node, error=text):
                print(f"    {node}: {text}", flush=True)

    return listen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="*", help="showcase names (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a graph input")
    parser.add_argument("--data-dir", help="state folder (models, cache); env NODEFORGE_DATA_DIR")
    parser.add_argument("--out", default="outputs/showcase", help="folder for the outputs")
    parser.add_argument("--force", action="store_true", help="run even without a CUDA GPU (slow on a CPU)")
    args = parser.parse_args()

    import torch

    env = GraphEnv(Registry.discover(), GraphLibrary([GRAPHS]))
    paths = showcase_paths(args.graphs)
    documents = {path.stem: load_document(path) for path in paths}
    invalid = {name: validate(document, env) for name, document in documents.items()}
    for name, issues in invalid.items():
        print(f"{name}: {'valid' if not issues else f'{len(issues)} issue(s)'}")
        for issue in issues:
            print(f"  {issue}")
    if any(invalid.values()):
        return 1
    if not torch.cuda.is_available() and not args.force:
        print("no CUDA GPU here: the showcase graphs were validated, not run (--force runs them on the CPU)")
        return 0
    data_dir = resolve_data_dir(args.data_dir)
    print(f"devices: {', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or 'cpu'}")
    problems = fetch_models(list(dict.fromkeys(n for d in documents.values() for n in model_names(d))), data_dir)
    if problems:
        print("missing models:\n  " + "\n  ".join(problems))
        return 1
    cache = ResultCache(data_dir / "cache")
    failed = 0
    try:
        executor = Session(env, cache, workers=4, data_dir=data_dir)
        for name, document in documents.items():
            given = {}
            for item in args.set:
                key, _, text = item.partition("=")
                if key in document.inputs:
                    given[key] = parse_cli_value(document.inputs[key].type, text)
            print(f"\n{name}")
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            result = executor.run(compile_graph(document, env), given, listener=progress_printer(),
                                  out_dir=Path(args.out) / name)
            seconds = time.perf_counter() - started
            peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
            print(f"  {result.record.status} in {seconds:.1f}s, peak GPU memory {peak:.1f} GiB")
            for output, value in result.record.outputs.items():
                print(f"  {output}: {value['path'] if isinstance(value, dict) else value}")
            failed += result.record.status != "succeeded"
    finally:
        cache.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
