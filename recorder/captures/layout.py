"""The trainable tensors of a model laid out on one flat parameter axis P, and the layers that own them."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pinnlog.analyzer.errors import ModelChangedWarning, RecorderError

__all__ = ["FROZEN", "GONE", "TRAINED", "UNTRAINED", "Layout", "Live", "ParameterTracker", "build_layout", "is_bias"]


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
    for attr in ("out_features", "out_channels", "embedding_dim", "hidden_size", "embed_dim", "normalized_shape"):
        value = getattr(module, attr, None)
        if isinstance(value, tuple) and len(value) == 1:
            value = value[0]
        if isinstance(value, int) and not isinstance(value, bool):
            if attr == "hidden_size" and getattr(module, "bidirectional", False):
                value *= 2
            return value
    return None


_BIAS_ROLE = re.compile(r"(^|_)bias(_|$)")


def is_bias(local_name: str) -> bool:
    """Whether a tensor adds an offset (a bias) rather than scaling its input, from its role in the module.

    ``bias`` (Linear, Conv, norms), RNN ``bias_ih_l0`` / ``bias_hh_l0_reverse``, attention ``in_proj_bias``,
    ``bias_k`` / ``bias_v``; a parametrized tensor (``parametrizations.weight.original0``) has the role
    of what it parametrizes (``weight``).
    """
    parts = local_name.split(".")
    if "parametrizations" in parts:
        parts = parts[parts.index("parametrizations") + 1 :][:1]
    return bool(_BIAS_ROLE.search(parts[-1]))


def _owner(module_name: str) -> str:
    """The module a parameter belongs to: a parametrization's tensors belong to the parametrized module."""
    parts = module_name.split(".") if module_name else []
    if "parametrizations" in parts:
        parts = parts[: parts.index("parametrizations")]
    return ".".join(parts)


def build_layout(model: nn.Module, parameters: str = "trainable") -> Layout:
    """Number the modules that own parameters (``layer_0``, ...) and place each tensor on P.

    ``parameters="trainable"`` takes the tensors with ``requires_grad`` now; ``"all"`` every parameter
    (frozen ones are recorded as NaN while frozen and recorded once unfrozen). Tensors that
    weight/spectral-norm parametrizations hold (``parametrizations.weight.original0``) belong to the
    parametrized module: one layer, not two. Lazy (uninitialised) parameters are refused.
    """
    if parameters not in ("trainable", "all"):
        raise RecorderError(f"parameters={parameters!r}; use 'trainable' (requires_grad now) or 'all'")
    seen: set[int] = set()
    owned: dict[str, list[tuple[str, torch.Tensor]]] = {}
    modules = dict(model.named_modules())
    for module_name, module in modules.items():
        for local, p in module.named_parameters(recurse=False):
            if id(p) in seen or (parameters == "trainable" and not p.requires_grad):
                continue
            if nn.parameter.is_lazy(p):
                raise RecorderError(
                    f"parameter {module_name}.{local} is not initialised yet (a Lazy module); run one forward pass "
                    "of the model before building the Recorder"
                )
            seen.add(id(p))
            owner = _owner(module_name)
            within = module_name[len(owner) :].lstrip(".")
            owned.setdefault(owner, []).append((f"{within}.{local}" if within else local, p))
    params: list[torch.Tensor] = []
    tensors: list[dict] = []
    layers: list[dict] = []
    offset = 0
    for module_name in modules:  # model order; parametrized modules keep their own place
        if module_name not in owned:
            continue
        index = len(layers)
        layers.append({"index": index, "name": f"layer_{index}", "module": module_name, "width": _width(modules[module_name])})
        for local, p in owned[module_name]:
            tensors.append(
                {
                    "name": f"{module_name}.{local}" if module_name else local,
                    "module": module_name,
                    "shape": list(p.shape),
                    "numel": p.numel(),
                    "offset": offset,
                    "layer": index,
                    "is_bias": is_bias(local),
                }
            )
            params.append(p)
            offset += p.numel()
    if not params:
        raise RecorderError(
            "the model has no trainable parameters (none with requires_grad=True); pass the model the optimizer trains"
        )
    return Layout(tuple(params), tuple(tensors), tuple(layers))


# -- following the model while it trains -------------------------------------------------------------

#: ``gradient_stats/tensor_state`` codes (docs/format.md): what each layout tensor was at a capture.
TRAINED, UNTRAINED, FROZEN, GONE = 0, 1, 2, 3
STATE_MEANINGS = "trained untrained frozen gone"


@dataclass(frozen=True)
class Live:
    """The layout's tensors as the model has them at one capture.

    ``grads``: the tensors to differentiate (None: frozen or gone, their gradient sums are NaN);
    ``weights``: the tensors whose values are read (None: gone, NaN); ``state``: one code per tensor
    (``TRAINED``, ``UNTRAINED``, ``FROZEN``, ``GONE``).
    """

    grads: tuple[torch.Tensor | None, ...]
    weights: tuple[torch.Tensor | None, ...]
    state: np.ndarray


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class ParameterTracker:
    """Match the layout's tensors to the model's at each capture, by name and identity.

    A tensor found under its name and still the same object is live: trained when it requires grad
    and the optimizer holds it, untrained when it requires grad but the optimizer does not hold it,
    frozen when it does not require grad. Under another object (a replaced layer) or gone, it is
    ``GONE``: NaN from then on, never the old tensor's values. Each change is said once, in one warning
    that names the tensors and what to do.
    """

    def __init__(self, layout: Layout, model: nn.Module, optimizer):
        self.layout, self.model, self.optimizer = layout, model, optimizer
        self._names = [t["name"] for t in layout.tensors]
        self._known = {id(p) for p in layout.params}
        self._warned: dict[str, set[str]] = {"frozen": set(), "gone": set(), "new": set()}

    def _held(self) -> set[int] | None:
        groups = getattr(self.optimizer, "param_groups", None)
        if not isinstance(groups, list):
            return None  # not a torch optimizer: everything that requires grad counts as trained
        return {id(p) for group in groups for p in group.get("params", ())}

    def resolve(self, step: int) -> Live:
        current = dict(self.model.named_parameters())
        held = self._held()
        grads: list[torch.Tensor | None] = []
        weights: list[torch.Tensor | None] = []
        state = np.empty(len(self._names), dtype=np.int8)
        frozen: list[str] = []
        gone: list[str] = []
        for i, (name, original) in enumerate(zip(self._names, self.layout.params)):
            p = current.get(name)
            if p is None or p is not original:
                grads.append(None)
                weights.append(None)
                state[i] = GONE
                gone.append(name)
            elif not p.requires_grad:
                grads.append(None)
                weights.append(p)
                state[i] = FROZEN
                frozen.append(name)
            else:
                grads.append(p)
                weights.append(p)
                state[i] = TRAINED if held is None or id(p) in held else UNTRAINED
        new = [n for n, p in current.items() if p.requires_grad and id(p) not in self._known]
        self._warn(
            "frozen",
            frozen,
            f"pinnlog: step {step}: {{names}} do not require grad (frozen); their gradient statistics are NaN "
            "while frozen (weights are still recorded) and training goes on",
        )
        self._warn(
            "gone",
            gone,
            f"pinnlog: step {step}: {{names}} were replaced or removed after the Recorder was built; they are recorded "
            "as NaN from now on. Copy new values in place (load_state_dict, p.data.copy_) to keep recording them, "
            "or start a new Recorder for the new model",
        )
        self._warn(
            "new",
            new,
            f"pinnlog: step {step}: {{names}} require grad but were not trainable (or did not exist) when the Recorder "
            "was built, so they are not recorded; pass parameters='all' to follow tensors that are unfrozen later, "
            "or start a new Recorder for the new model",
        )
        return Live(tuple(grads), tuple(weights), state)

    def _warn(self, kind: str, names: list[str], message: str) -> None:
        fresh = [n for n in names if n not in self._warned[kind]]
        if kind == "frozen":  # a tensor unfrozen again may be frozen again later: say it again then
            self._warned[kind] &= set(names)
        if not fresh:
            return
        self._warned[kind].update(fresh)
        warnings.warn(message.format(names=_names(fresh)), ModelChangedWarning, stacklevel=4)
