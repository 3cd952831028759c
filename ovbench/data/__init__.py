"""Data layer: real dataset layouts, vocabularies, transforms, the synthetic world."""
from ovbench.data.ov_dataset import OVSegDataset, load_vocabulary, shipped_vocabularies  # noqa: F401
from ovbench.data.ov_benchmarks import (  # noqa: F401
    ADE20K847Dataset,
    PascalContext459Dataset,
    PascalVOC20bDataset,
    PascalVOC20Dataset,
)
from ovbench.data.transforms import LoadWideAnnotations  # noqa: F401
from ovbench.data.panoptic import (  # noqa: F401
    ADE20KPanopticDataset,
    CityscapesPanopticDataset,
    COCOPanopticDataset,
    OVPanopticDataset,
)
from ovbench.data.panoptic_transforms import LoadPanopticAnnotations, PackPanopticInputs  # noqa: F401
