"""gitract: classical block classifiers against deep segmentation for GI-tract organs on MRI.

Data flow: ``gitract.data`` (records) -> ``gitract.blocks`` / ``gitract.features`` ->
``gitract.models`` -> ``gitract.probmaps`` -> ``gitract.metrics`` -> reports.
Importing the package never imports torch.
"""

from gitract.constants import CLASSES

__version__ = "0.1.0"

__all__ = ["CLASSES", "__version__"]
