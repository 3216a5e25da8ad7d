"""The trainable tensors of a model laid out on one flat parameter axis P, and the layers that own them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pinnlog.analyzer.errors import RecorderError

__all__ = ["Layout", "build_layout"]


@dataclass(frozen=True)
class Layout:
    """The trainable tensors in ``model.named_parameters()`` order and the layers that own them.

    ``tensors`` and ``layers`` are the ``layout`` and ``layers`` root attributes of docs/format.md.
    """

    params: tuple[torch.Tensor, ...]
    tensors: tuple[dict, ...]
    layers: tuple[dict, ...]

    @property
    def n_params(self) -> int:
        return sum(t["numel"] for t in self.tensors)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return [(t["offset"], t["numel"]) for t in self.tensors]

    @property
    def device(self) -> torch.device:
        return self.params[0].device


def _width(module: nn.Module) -> int | None:
    for attr in ("out_features", "out_channels", "embedding_dim", "hidden_size"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    return None


def build_layout(model: nn.Module) -> Layout:
    """Number the modules that own trainable parameters (``layer_0``, ...) and place each tensor on P."""
    seen: set[int] = set()
    params: list[torch.Tensor] = []
    tensors: list[dict] = []
    layers: list[dict] = []
    offset = 0
    for module_name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad and id(p) not in seen]
        if not own:
            continue
        index = len(layers)
        layers.append({"index": index, "name": f"layer_{index}", "module": module_name, "width": _width(module)})
        for local, p in own:
            seen.add(id(p))
            tensors.append(
                {
                    "name": f"{module_name}.{local}" if module_name else local,
                    "module": module_name,
                    "shape": list(p.shape),
                    "numel": p.numel(),
                    "offset": offset,
                    "layer": index,
                    "is_bias": local == "bias",
                }
            )
            params.append(p)
            offset += p.numel()
    if not params:
        raise RecorderError(
            "the model has no trainable parameters (none with requires_grad=True); pass the model the optimizer trains"
        )
    return Layout(tuple(params), tuple(tensors), tuple(layers))
