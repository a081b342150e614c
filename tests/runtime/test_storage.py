"""The one stored-bytes accounting, checked by hand for each storage layout it knows."""
import pytest
import torch

from qcompare.runtime.storage import stored_bytes


class _Head(torch.nn.Module):
    def __init__(self, tied: bool):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.proj = torch.nn.Linear(4, 3)                    # 12 weights + 3 bias
        self.head = torch.nn.Linear(4, 10, bias=False)
        if tied:
            self.head.weight = self.embed.weight
        self.register_buffer("rotary", torch.ones(100))     # computed at load: not a weight


def test_plain_tensors_count_their_dtype_and_tied_weights_once():
    assert stored_bytes(_Head(tied=False)) == (40 + 12 + 3 + 40) * 4
    assert stored_bytes(_Head(tied=True)) == (40 + 12 + 3) * 4
    assert stored_bytes(_Head(tied=True).to(torch.bfloat16)) == (40 + 12 + 3) * 2


def test_bits_of_sets_simulated_storage_per_parameter_and_none_keeps_the_dtype():
    m = _Head(tied=True)
    bits = {"proj.weight": 4.5, "embed.weight": 16}
    # proj.weight at 4.5 bits, embedding at 16, proj.bias at its own fp32
    assert stored_bytes(m, lambda n, t: bits.get(n)) == round((12 * 4.5 + 40 * 16) / 8) + 3 * 4


def test_a_tensor_subclass_counts_its_inner_tensors():
    pytest.importorskip("torchao", reason="torchao is not installed")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    lin = torch.nn.Sequential(torch.nn.Linear(64, 8, bias=False))
    quantize_(lin, Int8WeightOnlyConfig())
    w = lin[0].weight
    assert w.__tensor_flatten__()[0] == ["qdata", "scale", "zero_point"]
    # int8 codes (8 x 64 x 1 byte), and per output row a float32 scale and an int8 zero point
    assert stored_bytes(lin) == 8 * 64 + 8 * 4 + 8 * 1


def test_bitsandbytes_4bit_counts_codes_and_block_absmax():
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    lin = bnb.nn.Linear4bit(128, 4, bias=False, quant_type="nf4", compress_statistics=False)
    lin = lin.to("cpu")
    lin.weight = bnb.nn.Params4bit(torch.randn(4, 128), requires_grad=False, quant_type="nf4",
                                   blocksize=64, compress_statistics=False)._quantize("cpu")
    m = torch.nn.Sequential(lin)
    # 512 4-bit codes in 256 bytes, one fp32 absmax per block of 64: 8 blocks
    assert stored_bytes(m) == 256 + 8 * 4


def test_bitsandbytes_int8_counts_codes_and_row_scales():
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed")
    p = bnb.nn.Int8Params(torch.randn(6, 32), requires_grad=False)
    p.SCB = torch.ones(6, dtype=torch.float32)
    p.data = p.data.to(torch.int8)
    m = torch.nn.Module()
    m.weight = p
    assert stored_bytes(m) == 6 * 32 + 6 * 4


@pytest.mark.parametrize("per_channel", [True, False])
def test_torch_ao_packed_linear_counts_codes_quantization_parameters_and_bias(per_channel):
    import warnings

    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(16, 5)), {torch.nn.Linear: qconfig},
                             dtype=torch.qint8)
    # 80 int8 codes + fp32 bias of 5; per row a float64 scale and an int64 zero point, or
    # one of each for the tensor
    params = 5 * (8 + 8) if per_channel else 8 + 8
    assert stored_bytes(m) == 80 + params + 5 * 4


def test_module_meta_tensors_are_counted_and_named_for_bits_of():
    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W_q = torch.nn.Parameter(torch.zeros(16, dtype=torch.uint8), requires_grad=False)
            self.meta = {"scale": torch.ones(4), "zero": torch.ones(4), "nbits": 4}

    m = torch.nn.Sequential(Packed())
    assert stored_bytes(m) == 16 + 4 * 4 + 4 * 4
    seen = []
    assert stored_bytes(m, lambda n, t: seen.append(n) or (16 if ".meta." in n else None)) == 16 + 8 * 2
    assert seen == ["0.W_q", "0.meta.scale", "0.meta.zero"]
