"""GPU memory in the catalogue is what a program can allocate, in GiB, and its name says so:
an "A10 (24 GB)" is never read as 24 GiB (issue #29, item 10)."""
from qcompare.decide import catalog


def test_gpu_names_state_the_gib_their_value_holds():
    for name, gib in catalog.GPUS.items():
        assert name.endswith(f"({gib:.1f} GiB)"), name
    assert abs(catalog.GPUS["A10 (22.5 GiB)"] - 22.49) < 0.01      # nvidia-smi: 23,028 MiB
    assert all(" GB)" not in name for name in catalog.GPUS)
