"""Track kind ``cnn``: the block CNN (:class:`gitract.models.cnn.BlockCNNClassifier`).

A block track whose classifier is the CNN on raw block pixels; its probability maps come
from the net's dense pass. ``cnn`` is also the name of the classifier, so a ``blocks``
track may say ``classifier: cnn`` (the same entry). Torch is imported only when a CNN is
built or its parameters are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitract.models import device_name_problem
from gitract.tracks._registry import register
from gitract.tracks.blocks import BlockSettings, BlockTrackAdapter
from gitract.utils.schema import KeyProblem, check_keys, join, problem_of, show

__all__ = ["BlockCNNSettings"]


def _cnn_class() -> type:
    from gitract.models.cnn import BlockCNNClassifier  # torch only for a cnn track

    return BlockCNNClassifier


@dataclass(frozen=True)
class BlockCNNSettings(BlockSettings):
    """:class:`~gitract.tracks.blocks.BlockSettings` of a ``cnn`` track: the classifier
    is ``cnn`` on ``raw`` features (written out, they must say so);
    ``model_params`` are ``BlockCNNClassifier`` parameters (``max_epochs``,
    ``max_steps``, ``channels``, ``device``, ...)."""

    classifier: str = "cnn"
    features: str = "raw"

    def __post_init__(self) -> None:
        for key, want in (("classifier", "cnn"), ("features", "raw")):
            if getattr(self, key) != want:
                raise ValueError(f"{key}: a track of kind cnn has {key} {want!r}, got "
                                 f"{show(getattr(self, key))}")
        super().__post_init__()


class _CNNSpec:
    """The block CNN as a block classifier."""

    estimator = "BlockCNNClassifier"

    def make(self, settings: BlockSettings):
        return _cnn_class()(block_size=settings.block_size,
                            **{"random_state": settings.random_state,
                               **settings.model_params})

    def check_params(self, model_params: Any, path: str, settings: BlockSettings) -> None:
        """Every key a ``BlockCNNClassifier`` parameter, and its own checks."""
        if not isinstance(model_params, Mapping):
            raise KeyProblem(path, f"expected a mapping, got {show(model_params)}")
        cls = _cnn_class()
        known = set(cls().get_params())
        if "block_size" in model_params:
            raise KeyProblem(join(path, "block_size"),
                             "set block_size on the track (params.block_size), not here")
        check_keys(model_params, known, path, what=f"parameter of {cls.__name__}")
        if "device" in model_params and device_name_problem(model_params["device"]):
            raise KeyProblem(join(path, "device"), device_name_problem(model_params["device"]))
        channels = model_params.get("channels", (16,))
        if isinstance(channels, (str, bytes)) or not isinstance(channels, (list, tuple)) \
                or not channels or not all(isinstance(c, int) and not isinstance(c, bool)
                                           and c > 0 for c in channels):
            raise KeyProblem(join(path, "channels"),
                             f"expected a list of positive ints, got {show(channels)}")
        try:
            cls(block_size=settings.block_size, **model_params)._check_params()
        except (TypeError, ValueError) as exc:
            raise problem_of(exc, known, path) from None


register("cnn", settings=BlockCNNSettings, adapter=BlockTrackAdapter, model=_CNNSpec(),
         device_key="model_params.device")
