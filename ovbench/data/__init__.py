"""Data layer: real dataset layouts, the synthetic world, transforms (lowest layer above compat)."""
from ovbench.data.ov_dataset import OVSegDataset, load_vocabulary  # noqa: F401
