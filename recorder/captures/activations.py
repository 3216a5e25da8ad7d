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

__all__ = ["ActivationSite", "Activations", "activation_sites", "per_sample", "record_activations"]


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


def per_sample(module: nn.Module, value) -> torch.Tensor:
    """One module's input/output as (probe sample, units) float32, a detached copy.

    A tuple (an RNN's ``(output, h_n)``, attention's ``(output, weights)``) gives its first element. The
    sample axis is the batch axis: dim 1 of a sequence-first RNN or Transformer output, dim 0 otherwise;
    every other axis (channels x height x width of a convolution, time x hidden of an RNN) is units.
    """
    value = value[0] if isinstance(value, (tuple, list)) else value
    if not isinstance(value, torch.Tensor):
        raise RecorderError(
            f"probe=: {type(module).__name__} gives {type(value).__name__}, not a tensor; record another module with layers="
        )
    sequence_first = isinstance(
        module, (nn.RNNBase, nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    )
    if sequence_first and not getattr(module, "batch_first", False) and value.dim() >= 3:
        value = value.transpose(0, 1)
    return value.detach().reshape(value.shape[0], -1).to(torch.float32, copy=True)


def record_activations(model: nn.Module, probe, sites: list[ActivationSite]) -> dict[str, torch.Tensor]:
    """One forward pass of ``probe`` under ``torch.no_grad``; ``{layer_<i>: (probe, units) float32}``."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, module: nn.Module, value) -> None:
        seen[name] = per_sample(module, value)

    handles = []
    for site in sites:
        if site.kind == "input":
            handles.append(site.module.register_forward_pre_hook(lambda m, args, name=site.name: keep(name, m, args)))
        else:
            handles.append(site.module.register_forward_hook(lambda m, args, out, name=site.name: keep(name, m, out)))
    try:
        with torch.no_grad():
            _forward(model, probe)
    finally:
        for handle in handles:
            handle.remove()
    missing = [site.module_name for site in sites if site.name not in seen]
    if missing:
        raise RecorderError(
            f"the probe's forward pass (under torch.no_grad) never reached module(s) {missing} (a fused fast path, "
            "as in nn.TransformerEncoder, skips them); name modules that forward() calls in layers=, e.g. the encoder layers"
        )
    return {site.name: seen[site.name] for site in sites}


class Activations(Capture):
    """``activations/layer_<i>``: (probe, units) float32 per recorded layer, one variable per layer."""

    def __init__(self, schedule: Schedule, model: nn.Module, probe: Any, sites: list[ActivationSite]):
        super().__init__(schedule)
        self.model, self.probe, self.sites = model, probe, sites
        #: Units per probe sample of each recorded layer (set by the recorder's dry run at construction).
        self.units: dict[str, int] = {}

    def attrs(self):
        return {"probe_schedule": repr(self.schedule)}

    def compute(self, step: int) -> list[Rows]:
        values = record_activations(self.model, self.probe, self.sites)
        changed = [n for n, v in values.items() if self.units and v.shape[1] != self.units.get(n)]
        if changed:
            raise RecorderError(
                f"probe=: layer {changed[0]} gives {values[changed[0]].shape[1]} values per sample at step {step} but "
                f"{self.units[changed[0]]} when recording started; keep the probe and the model's shapes fixed"
            )
        dims = {name: ("acapture", "probe", activation_dim(name)) for name in values}
        return [Rows("activations", {"step": [step], **{name: v[None] for name, v in values.items()}}, dims)]
