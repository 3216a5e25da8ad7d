"""Activations: one forward pass of a fixed probe input, each hidden layer's output kept (the information metrics read them)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pinnlog.analyzer.errors import RecorderError
from pinnlog.analyzer.store.format import activation_dim
from pinnlog.recorder.captures.base import Capture, Rows
from pinnlog.recorder.captures.layout import Layout
from pinnlog.recorder.schedules import Schedule

__all__ = ["ActivationSite", "Activations", "activation_sites", "record_activations"]


@dataclass(frozen=True)
class ActivationSite:
    """Where one layer's activations are read: the ``input`` of ``module`` or its ``output``."""

    name: str  # layer_<i>: the layer the values come out of
    module_name: str
    module: nn.Module
    kind: str


def activation_sites(model: nn.Module, layout: Layout, layers: list[str] | None) -> list[ActivationSite]:
    """The hooks for ``probe=``: by default the input of every ``nn.Linear`` but the first.

    That input is the post-activation output of the previous hidden layer, whether the activation is
    an ``nn.Module`` or ``torch.tanh`` inside ``forward``; it is named after that layer. With
    ``layers=[module names]`` each named module's output is recorded, named after the last layer
    inside it or, failing that, before it in module order.
    """
    layer_of = {entry["module"]: entry["index"] for entry in layout.layers}
    modules = list(model.named_modules())
    sites: list[ActivationSite] = []
    if layers is None:
        linears = [(name, m) for name, m in modules if isinstance(m, nn.Linear)]
        for (prev_name, _), (name, module) in itertools.pairwise(linears):
            if prev_name in layer_of:
                sites.append(ActivationSite(f"layer_{layer_of[prev_name]}", name, module, "input"))
        if not sites:
            raise RecorderError(
                "probe= records the inputs of the 2nd, 3rd, ... nn.Linear by default, and this model has fewer than two; "
                "name the modules to record with layers=[...]"
            )
        return sites
    by_name = dict(modules)
    taken: dict[str, str] = {}
    for name in layers:
        if name not in by_name:
            examples = ", ".join(repr(n) for n, _ in modules[1:6])
            raise RecorderError(
                f"layers=: the model has no module named {name!r}; pick names from model.named_modules(), e.g. {examples}"
            )
        position = next(i for i, (n, _) in enumerate(modules) if n == name)
        inside = [layer_of[n] for n, _ in modules if n in layer_of and (n == name or n.startswith(f"{name}.") or name == "")]
        before = [layer_of[n] for n, _ in modules[:position] if n in layer_of]
        if not inside and not before:
            raise RecorderError(
                f"layers=: module {name!r} comes before any layer with parameters; record a module after the first layer"
            )
        layer_name = f"layer_{(inside or before)[-1]}"
        if layer_name in taken:
            raise RecorderError(
                f"layers=: modules {taken[layer_name]!r} and {name!r} both come out of {layer_name}; keep one of them"
            )
        taken[layer_name] = name
        sites.append(ActivationSite(layer_name, name, by_name[name], "output"))
    return sites


def _forward(model: nn.Module, probe):
    if isinstance(probe, dict):
        return model(**probe)
    if isinstance(probe, (tuple, list)):
        return model(*probe)
    return model(probe)


def record_activations(model: nn.Module, probe, sites: list[ActivationSite]) -> dict[str, torch.Tensor]:
    """One forward pass of ``probe`` under ``torch.no_grad``; ``{layer_<i>: (probe, units) float32}``."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, value) -> None:
        value = value[0] if isinstance(value, (tuple, list)) else value
        seen[name] = value.detach().reshape(value.shape[0], -1).to(torch.float32, copy=True)

    handles = []
    for site in sites:
        if site.kind == "input":
            handles.append(site.module.register_forward_pre_hook(lambda m, args, name=site.name: keep(name, args)))
        else:
            handles.append(site.module.register_forward_hook(lambda m, args, out, name=site.name: keep(name, out)))
    try:
        with torch.no_grad():
            _forward(model, probe)
    finally:
        for handle in handles:
            handle.remove()
    missing = [site.module_name for site in sites if site.name not in seen]
    if missing:
        raise RecorderError(
            f"the probe's forward pass never reached module(s) {missing}; name modules that forward() calls in layers="
        )
    return {site.name: seen[site.name] for site in sites}


class Activations(Capture):
    """``activations/layer_<i>``: (probe, units) float32 per recorded layer, one variable per layer."""

    def __init__(self, schedule: Schedule, model: nn.Module, probe: Any, sites: list[ActivationSite]):
        super().__init__(schedule)
        self.model, self.probe, self.sites = model, probe, sites

    def attrs(self):
        return {"probe_schedule": repr(self.schedule)}

    def compute(self, step: int) -> list[Rows]:
        values = record_activations(self.model, self.probe, self.sites)
        dims = {name: ("acapture", "probe", activation_dim(name)) for name in values}
        return [Rows("activations", {"step": [step], **{name: v[None] for name, v in values.items()}}, dims)]
