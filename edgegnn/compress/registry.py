"""The pass registry: config type -> pass, filled where each pass is written.

    @register_pass(QuantizeConfig)
    def quantize(edge, config, calibration=None) -> EdgeModel: ...

torchao's shape (`quantize_(model, config)`, handlers registered beside their configs): a
new pass is its config (`edgegnn.compress.configs`), its module with the decorator, and the
module's import in `edgegnn.compress.pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable

REGISTRY: dict[type, Callable] = {}


def register_pass(config_type: type) -> Callable[[Callable], Callable]:
    """Register the decorated function as the pass that `compress` runs for `config_type`."""
    def decorate(function: Callable) -> Callable:
        if config_type in REGISTRY:
            raise ValueError(f"a pass for {config_type.__name__} is registered already ({REGISTRY[config_type]})")
        REGISTRY[config_type] = function
        return function
    return decorate
