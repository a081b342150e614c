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


# The source guide's rules of thumb (`decide.recommend.rules`): the runs each rule names, as
# `method:options` arguments; the first of each is the one the calculator sizes.
RULES_OF_THUMB: dict[str, tuple[str, ...]] = {
    "qlora": ("bnb-nf4:double_quant=true",),          # fine-tuning: NF4 + QLoRA
    "cpu": ("gguf:type=Q4_K_M",),                     # CPU only
    "cpu_roomy": ("gguf:type=Q8_0", "gguf:type=Q4_K_M"),  # CPU whose RAM holds 8 bits easily
    "fp16": ("fp16",),                                # when 16-bit weights fit 80 % of the GPU
    "int4": ("awq:bits=4,group_size=128", "gptq:bits=4,group_size=128"),  # serving / quality
}
RULES_OF_THUMB["gpu_generic"] = RULES_OF_THUMB["fp16"] + RULES_OF_THUMB["int4"]

# The memory calculator's default variants (Choose page): a common setting of each family.
CALCULATOR: tuple[str, ...] = (
    "fp16", "bnb-int8", "bnb-nf4", "gptq:bits=4,group_size=128", "awq:bits=4,group_size=128",
    "gguf:type=Q8_0", "gguf:type=Q4_K_M", "hqq:bits=4,group_size=64",
    "rtn:bits=8,granularity=channel")

# A published figure's method family (shared/reference/published.csv) -> the methods here that
# measure the same kind of thing, for the "beside what was measured" table.
PUBLISHED_FAMILIES: dict[str, tuple[str, ...]] = {
    "baseline": (registry.BASELINE, "bf16", "fp16"), "rtn": ("rtn",),
    "gptq": ("gptq", "llmc-gptq"), "awq": ("awq", "llmc-awq"), "gguf": ("gguf",),
    "bitsandbytes": ("bnb-int8", "bnb-nf4", "bnb-fp4")}


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
