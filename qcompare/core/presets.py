"""Named method lists a user can run in one go (`sweep --preset NAME`, the Home page button)."""
from __future__ import annotations

from qcompare.core import registry
from qcompare.core.errors import UserError
from qcompare.core.specs import MethodSpec

# default: one method per family at a common 4-bit or 8-bit setting, a comparison that finishes
# on a laptop CPU (the calibrating ones use the default 32 x 512 calibration set).
PRESETS: dict[str, tuple[str, ...]] = {
    "default": (registry.BASELINE, "bf16", "rtn:bits=8", "rtn:bits=4", "gptq:bits=4",
                "awq:bits=4", "hqq:bits=4", "bnb-nf4", "smoothquant", "torchao-int8wo",
                "gguf:type=Q4_K_M"),
}


def preset_methods(name: str = "default", device: str = "cpu") -> list[MethodSpec]:
    """The preset's methods that can run on `device`, each at its default options otherwise."""
    if name not in PRESETS:
        raise UserError(key="errors.preset", name=repr(name), presets=", ".join(PRESETS))
    out = []
    for arg in PRESETS[name]:
        spec = registry.parse_method_arg(arg)
        if registry.get(spec.name).unavailable_reason(device) is None:
            out.append(spec)
    return out


def preset_families(name: str = "default", device: str = "cpu") -> list[str]:
    """The families the preset's runnable methods belong to, in order, each once."""
    families = [registry.get(m.name).family for m in preset_methods(name, device)]
    return list(dict.fromkeys(families))
