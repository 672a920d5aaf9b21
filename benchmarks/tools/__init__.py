"""The tools each backend is measured with, registered per workload.

A tool is a factory: given a :class:`~benchmarks.spec.Spec` it builds and warms its client
and creates any data the call consumes (untimed), and returns the timed call.  What the
call writes goes under the measurement's own tag in the round's scratch space, which
``run.py`` empties between rounds (Azurite: a new server), so no per-measurement cleanup
runs while the server is being watched.  Modules import
their SDKs inside the factories, so listing the tools costs nothing and a missing SDK only
disables the tools that need it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.spec import Spec

Run = Callable[[], object]
"""The timed call of a prepared tool."""
Factory = Callable[[Spec], Run]


@dataclass
class Tool:
    factory: Factory
    needs: tuple[str, ...] = ()
    """Modules the tool imports; it is skipped (and the report says so) without them."""


@dataclass
class Registry:
    """workload -> tool name -> :class:`Tool`, filled by the ``@registry.tool`` decorator."""

    tools: dict[str, dict[str, Tool]] = field(default_factory=dict)

    def tool(self, workload: str, name: str,
             needs: tuple[str, ...] = ()) -> Callable[[Factory], Factory]:
        def register(factory: Factory) -> Factory:
            self.tools.setdefault(workload, {})[name] = Tool(factory, needs)
            return factory
        return register


MODULES = {"local-tmpfs": "local", "local-disk": "local", "s3": "s3", "azure": "azure"}
"""Backend as measured -> module of benchmarks.tools that holds its tools."""


def registry(backend: str) -> Registry:
    module = importlib.import_module(f"benchmarks.tools.{MODULES[backend]}")
    found: Registry = module.REGISTRY
    return found


def factory_for(backend: str, workload: str, tool: str) -> Factory:
    return registry(backend).tools[workload][tool].factory


def available(backend: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The runnable tools per workload, and the skipped ones with the reason."""
    runnable: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for workload, tools in registry(backend).tools.items():
        for name, tool in tools.items():
            missing = [m for m in tool.needs if importlib.util.find_spec(m) is None]
            if missing:
                skipped[name] = f"{', '.join(missing)} not installed"
            else:
                runnable.setdefault(workload, []).append(name)
    return runnable, skipped
